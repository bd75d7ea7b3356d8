"""The `rag` command line: JSON output shapes, exit codes, usage errors."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from rag.cli import app

runner = CliRunner()


def env_for(settings) -> dict[str, str]:
    return {
        "RAG_INDEX_DIR": str(settings.index_dir),
        "RAG_EMBEDDING_MODEL": "hash",
        "RAG_CHUNK_SIZE": "16",
        "RAG_CHUNK_OVERLAP": "4",
    }


def test_index_json_then_search_json(corpus, settings) -> None:
    (corpus / "notes.bin").write_bytes(b"\x00")
    result = runner.invoke(app, ["index", str(corpus), "--json"], env=env_for(settings))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {
        "files_indexed",
        "files_updated",
        "files_skipped",
        "chunks_embedded",
        "chunks_removed",
        "chunks_total",
        "seconds",
        "sources",
        "sources_missing",
        "upgraded_from",
    }
    assert report["files_indexed"] == 3 and report["chunks_embedded"] == 4 and report["upgraded_from"] is None
    assert report["sources"] == [corpus.as_posix()] and report["sources_missing"] == []
    assert report["files_skipped"] == [{"path": str(corpus / "notes.bin"), "reason": "unsupported file type .bin"}]

    result = runner.invoke(app, ["search", "dogs bark", "--k", "2", "--json"], env=env_for(settings))
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert len(hits) == 2 and hits[0]["source"] == "dogs.md"
    assert hits[0]["dense_rank"] == 1 and hits[0]["bm25_rank"] == 1


def test_missing_path_is_a_usage_error(tmp_path, settings) -> None:
    result = runner.invoke(app, ["index", str(tmp_path / "nope")], env=env_for(settings))
    assert result.exit_code == 2
    assert "no such file or folder" in result.stderr


def test_search_without_index_says_how_to_build_one(settings) -> None:
    result = runner.invoke(app, ["search", "x"], env=env_for(settings))
    assert result.exit_code == 1
    assert "build one with `rag index`" in result.stderr


def test_bad_setting_is_a_usage_error(settings) -> None:
    result = runner.invoke(app, ["search", "x", "--mode", "fuzzy"], env=env_for(settings))
    assert result.exit_code == 2
    assert "Invalid value for '--mode'" in result.stderr and "'hybrid', 'dense', 'bm25'" in result.stderr


def test_a_bad_environment_variable_is_a_usage_error_naming_it(settings) -> None:
    env = {**env_for(settings), "RAG_GROUNDING": "flase"}
    result = runner.invoke(app, ["ask", "x", "--backend", "extractive"], env=env)
    assert result.exit_code == 2
    assert result.stderr == (
        "error: RAG_GROUNDING='flase' is not a valid boolean: use true/false, 1/0, yes/no or on/off\n"
    )
    result = runner.invoke(app, ["search", "x"], env={**env_for(settings), "RAG_K": "abc"})
    assert (result.exit_code, result.stderr) == (2, "error: RAG_K='abc' is not a valid whole number\n")
    # a variable no option of the command reads is checked too, and help still works with a bad one
    result = runner.invoke(app, ["search", "x"], env={**env_for(settings), "RAG_PORT": "http"})
    assert (result.exit_code, result.stderr) == (2, "error: RAG_PORT='http' is not a valid whole number\n")
    assert runner.invoke(app, ["search", "--help"], env={"RAG_K": "abc"}).exit_code == 0


def test_options_come_from_the_environment_and_flags_win(corpus, settings) -> None:
    assert runner.invoke(app, ["index", str(corpus)], env=env_for(settings)).exit_code == 0
    env = {**env_for(settings), "RAG_K": "1", "RAG_MODE": "bm25"}
    hits = json.loads(runner.invoke(app, ["search", "dogs bark", "--json"], env=env).stdout)
    assert len(hits) == 1 and hits[0]["dense_rank"] is None  # k=1 and BM25 only, from the environment
    args = ["search", "dogs bark", "--k", "2", "--mode", "hybrid", "--json"]
    hits = json.loads(runner.invoke(app, args, env=env).stdout)
    assert len(hits) == 2 and hits[0]["dense_rank"] == 1
    answer = json.loads(
        runner.invoke(
            app, ["ask", "Do dogs bark?", "--backend", "extractive", "--no-grounding", "--json"], env=env
        ).stdout
    )
    assert answer["backend"] == "extractive" and len(answer["passages"]) == 1


def help_text(*args: str) -> str:
    result = runner.invoke(app, [*args, "--help"], env={})
    assert result.exit_code == 0, result.output
    return " ".join(result.stdout.split())  # unwrapped


def test_help_shows_each_options_variable_and_default() -> None:
    text = help_text("search")
    assert "--k <int range> Number of passages. [env var: RAG_K; default: 5; x>=1]" in text
    assert (
        "--mode <hybrid|dense|bm25> Retrieval: dense and BM25 fused, or one of them. "
        "[env var: RAG_MODE; default: hybrid]"
    ) in text
    assert "--index-dir <path> Index directory. [env var: RAG_INDEX_DIR; default: index]" in text
    assert " ." not in text and "<bool>" not in text
    text = help_text("ask")
    assert (
        "--grounding / --no-grounding Drop answer sentences the passages do not support. "
        "[env var: RAG_GROUNDING; default: grounding]"
    ) in text
    assert (
        "--backend <local|openai|azure|extractive> What writes the answer. [env var: RAG_BACKEND; default: extractive]"
    ) in text
    assert "--json Print one JSON document for scripts." in text and "<bool>" not in text
    for command in ("index", "remove", "eval", "eval-beir", "serve"):
        assert "<bool>" not in help_text(command), command
    assert "--port <int range> Port. [env var: RAG_PORT; default: 7860; 1<=x<=65535]" in help_text("serve")


def test_help_is_fast_and_imports_no_model_libraries() -> None:
    code = (
        "import sys; from rag.cli import app; "
        "print(sorted(m for m in ('torch', 'faiss', 'sentence_transformers', 'llama_cpp', 'gradio') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_dense_index_option_and_verify(corpus, settings) -> None:
    result = runner.invoke(app, ["index", str(corpus), "--dense-index", "hnsw", "--json"], env=env_for(settings))
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["verify", "--json"], env=env_for(settings))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["artifacts"] == 7
    from rag.index.store import IndexStore

    assert IndexStore(settings.index_dir).load().manifest.dense["index"] == "hnsw"
    result = runner.invoke(app, ["index", str(corpus), "--dense-index", "flat", "--json"], env=env_for(settings))
    assert result.exit_code == 0 and IndexStore(settings.index_dir).load().manifest.dense["index"] == "flat"
    assert json.loads(result.stdout)["chunks_embedded"] == 0  # the vectors on disk are re-indexed, not re-embedded
    result = runner.invoke(app, ["index", str(corpus), "--dense-index", "annoy"], env=env_for(settings))
    assert result.exit_code == 2 and "dense index must be one of flat, hnsw, ivf-pq" in result.output
    (IndexStore(settings.index_dir).current() / "dense.faiss").write_bytes(b"broken")
    result = runner.invoke(app, ["verify"], env=env_for(settings))
    assert result.exit_code == 1 and "fails its checksum" in result.output


def test_ask_streams_the_draft_without_echoed_delimiters_and_says_when_it_was_replaced(
    corpus, settings, monkeypatch
) -> None:
    from rag.answer import chain
    from test_answer_step import ScriptedBackend

    assert runner.invoke(app, ["index", str(corpus)], env=env_for(settings)).exit_code == 0
    draft = "<<<PASSAGES-0a1b2c3d4e5f>>> Elon Musk bought Contoso for 42 billion dollars [1]."
    monkeypatch.setattr(chain, "make_backend", lambda _: ScriptedBackend(draft))
    result = runner.invoke(app, ["ask", "Do dogs bark?", "--min-confidence", "0"], env=env_for(settings))
    assert result.exit_code == 0, result.output
    streamed, note = result.stderr.splitlines()
    assert streamed == "Elon Musk bought Contoso for 42 billion dollars [1]."  # as it streamed, minus the echo
    assert note == chain.REPLACED  # the passages' answer follows on stdout
    assert "Contoso" not in result.stdout and "[1]" in result.stdout


def test_ask_abstaining_shows_the_closest_match_as_not_an_answer(corpus, settings) -> None:
    assert runner.invoke(app, ["index", str(corpus)], env=env_for(settings)).exit_code == 0
    args = ["ask", "Do dogs bark?", "--backend", "extractive", "--min-confidence", "1"]
    shown = runner.invoke(app, args, env=env_for(settings))
    answer = json.loads(runner.invoke(app, [*args, "--json"], env=env_for(settings)).stdout)
    assert shown.exit_code == 0 and answer["abstained"] and answer["threshold"] == 1.0
    closest = answer["withheld"][0]["citations"][0]
    assert shown.stdout.startswith("The documents do not say.")
    assert f"Closest match, not an answer (confidence {answer['confidence']:.2f}, below the threshold 1.00):" in (
        shown.stdout
    )
    assert f"[{closest['n']}] " in shown.stdout and f"\u201c{closest['quote']}\u201d" in shown.stdout
