"""The `rag` command line: JSON output shapes, exit codes, usage errors."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from rag.cli import app

runner = CliRunner()


def env_for(settings) -> dict[str, str]:
    return {"RAG_INDEX_DIR": str(settings.index_dir), "RAG_EMBEDDING_MODEL": "hash",
            "RAG_CHUNK_SIZE": "16", "RAG_CHUNK_OVERLAP": "4"}


def test_index_json_then_search_json(corpus, settings) -> None:
    (corpus / "notes.bin").write_bytes(b"\x00")
    result = runner.invoke(app, ["index", str(corpus), "--json"], env=env_for(settings))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {"files_indexed", "files_updated", "files_skipped", "chunks_embedded",
                           "chunks_removed", "chunks_total", "seconds"}
    assert report["files_indexed"] == 3 and report["chunks_embedded"] == 4
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
    assert result.exit_code == 2 and "mode must be one of" in result.stderr


def test_help_is_fast_and_imports_no_model_libraries() -> None:
    code = ("import sys; from rag.cli import app; "
            "print(sorted(m for m in ('torch','faiss','sentence_transformers','llama_cpp','gradio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_dense_index_option_and_verify(corpus, settings) -> None:
    result = runner.invoke(app, ["index", str(corpus), "--dense-index", "hnsw", "--json"], env=env_for(settings))
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["verify", "--json"], env=env_for(settings))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["artifacts"] == 7
    from rag.store import IndexStore

    assert IndexStore(settings.index_dir).load().manifest["dense"]["index"] == "hnsw"
    result = runner.invoke(app, ["index", str(corpus), "--dense-index", "flat", "--json"], env=env_for(settings))
    assert result.exit_code == 0 and IndexStore(settings.index_dir).load().manifest["dense"]["index"] == "flat"
    assert json.loads(result.stdout)["chunks_embedded"] == 0  # the vectors on disk are re-indexed, not re-embedded
    result = runner.invoke(app, ["index", str(corpus), "--dense-index", "annoy"], env=env_for(settings))
    assert result.exit_code == 2 and "dense index must be one of flat, hnsw, ivf-pq" in result.output
    (IndexStore(settings.index_dir).current() / "dense.faiss").write_bytes(b"broken")
    result = runner.invoke(app, ["verify"], env=env_for(settings))
    assert result.exit_code == 1 and "fails its checksum" in result.output
