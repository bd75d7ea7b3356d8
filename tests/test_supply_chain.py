"""Supply chain: no pickle on any load path, GGUF chat templates rendered in a sandbox, Gradio past the
published path-traversal and SSRF fixes."""

from __future__ import annotations

import ast
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("+")[0].split(".")[:3] if p.isdigit())


def test_no_pickle_in_project_code() -> None:
    for path in [*ROOT.glob("rag/**/*.py"), *ROOT.glob("ui/*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
                assert not any(n.split(".")[0] in ("pickle", "cPickle", "dill", "joblib") for n in names), path
            if isinstance(node, ast.keyword) and node.arg == "allow_pickle":
                assert isinstance(node.value, ast.Constant) and node.value.value is False, path


def test_llama_cpp_renders_chat_templates_in_a_sandbox() -> None:
    # CVE-2024-34359: GGUF chat templates ran unsandboxed before llama-cpp-python 0.2.72
    assert _version(version("llama-cpp-python")) >= (0, 2, 72)
    import llama_cpp.llama_chat_format as fmt
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    formatter = fmt.Jinja2ChatFormatter(template="{{ messages[0]['content'] }}", eos_token="</s>", bos_token="<s>")
    assert isinstance(formatter._environment.environment, ImmutableSandboxedEnvironment)
    with pytest.raises(Exception, match="unsafe|access"):  # a template trying to reach Python internals
        fmt.Jinja2ChatFormatter(template="{{ ''.__class__.__mro__[1].__subclasses__() }}", eos_token="", bos_token="")(
            messages=[{"role": "user", "content": "x"}]
        )


def test_gradio_is_past_the_published_path_traversal_and_ssrf_fixes() -> None:
    # path traversal (CVE-2024-1561, CVE-2024-47168 family) and SSRF (CVE-2024-47167) were fixed by 5.0
    assert _version(version("gradio")) >= (5, 0, 0)
