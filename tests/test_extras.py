"""A missing optional extra (ui, local, hosted, milvus, ray) is one line naming the extra and the install command.

Each import is made to fail the way a missing package fails (`sys.modules[name] = None`)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rag.errors import MissingDependency, needs_extra
from rag.index.embedding import HashEmbedder


def expected(module: str, extra: str) -> str:
    return (
        f"{module} is not installed; it comes with the `{extra}` extra: install it with `pip install -e '.[{extra}]'`"
    )


def hide(monkeypatch, *modules: str) -> None:
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def fresh_import(monkeypatch, module: str) -> None:
    monkeypatch.delitem(sys.modules, module, raising=False)
    __import__(module)


def test_needs_extra_turns_any_import_error_into_one_line() -> None:
    with pytest.raises(MissingDependency) as caught:
        with needs_extra("ui"):
            import rag_no_such_module  # noqa: F401
    assert str(caught.value) == expected("rag_no_such_module", "ui")
    assert "\n" not in str(caught.value) and caught.value.extra == "ui"


@pytest.mark.parametrize(("hidden", "module"), [("fastapi", "rag.serve.server"), ("gradio", "ui.app")])
def test_ui_modules_need_the_ui_extra(monkeypatch, hidden, module) -> None:
    hide(monkeypatch, hidden)
    with pytest.raises(MissingDependency) as caught:
        fresh_import(monkeypatch, module)
    assert str(caught.value) == expected(hidden, "ui")


@pytest.mark.parametrize("hidden", ["fastapi", "gradio", "uvicorn"])
def test_rag_serve_without_the_ui_extra_is_one_line_and_exit_1(settings, hidden) -> None:
    # a new process, as a user's would be: nothing imported by earlier tests can stand in for the missing package
    script = (
        f"import sys; sys.modules[{hidden!r}] = None; sys.argv = ['rag', 'serve', '--backend', 'extractive']; "
        "from rag.cli import main; main()"
    )
    env = {**os.environ, "RAG_INDEX_DIR": str(settings.index_dir), "RAG_EMBEDDING_MODEL": "hash"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr == f"error: {expected(hidden, 'ui')}\n"


def test_a_missing_page_registration_says_to_reinstall() -> None:
    from rag.errors import ConfigError
    from rag.serve.server import installed_page

    with pytest.raises(ConfigError) as caught:
        installed_page("no-such-page")
    assert str(caught.value) == (
        "no 'no-such-page' page is registered under the 'rag.pages' entry point: "
        "reinstall the package with `pip install -e '.[ui]'`"
    )


def test_local_backend_needs_the_local_extra(monkeypatch) -> None:
    from rag.answer.llm import _load_llama

    hide(monkeypatch, "llama_cpp")
    with pytest.raises(MissingDependency) as caught:
        _load_llama("/nowhere/model-for-test-extras.gguf", 64, 1)
    assert str(caught.value) == expected("llama_cpp", "local")


def test_hosted_backends_need_the_hosted_extra(monkeypatch) -> None:
    from rag.answer.llm import make_backend
    from rag.settings import Settings

    hide(monkeypatch, "langchain_openai")
    backend = make_backend(Settings(backend="openai", openai_api_key="k", openai_base_url="http://127.0.0.1:9/v1"))
    with pytest.raises(MissingDependency) as caught:
        backend._chat  # noqa: B018  (the chat model is built on first use)
    assert str(caught.value) == expected("langchain_openai", "hosted")


@pytest.mark.parametrize("hidden", ["pymilvus", "milvus_lite"])
def test_milvus_store_needs_the_milvus_extra(monkeypatch, tmp_path, hidden) -> None:
    from rag.index.milvus_store import connect

    hide(monkeypatch, hidden)
    with pytest.raises(MissingDependency) as caught:
        connect(str(tmp_path / "milvus.db"))
    assert str(caught.value) == expected(hidden, "milvus")


def test_ray_embedding_needs_the_ray_extra(monkeypatch) -> None:
    from rag.index.distributed import RayEmbedder

    hide(monkeypatch, "ray")
    with pytest.raises(MissingDependency) as caught:
        RayEmbedder(HashEmbedder()).embed(["one text"])
    assert str(caught.value) == expected("ray", "ray")
