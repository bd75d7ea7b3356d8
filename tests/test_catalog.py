"""The documents an index holds: `rag documents` (and --json), `rag remove` of an upload deleting its copy,
`rag search/ask --source`, and removal that is atomic: a write that dies leaves the old index whole and the
upload in place."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from conftest import write_corpus
from rag.cli import app
from rag.index.embedding import HashEmbedder
from rag.index.indexer import Indexer
from rag.index.store import IndexStore
from rag.settings import Settings
from test_locations import make_pdf

runner = CliRunner()
ENV = {"RAG_EMBEDDING_MODEL": "hash", "RAG_CHUNK_SIZE": "16", "RAG_CHUNK_OVERLAP": "4", "RAG_BACKEND": "extractive"}


@pytest.fixture
def project(tmp_path, monkeypatch):
    """seeds/ with two files and an upload area holding a three-page PDF, both indexed."""
    monkeypatch.chdir(tmp_path)
    write_corpus(
        tmp_path / "seeds",
        {"cats.txt": "Cats purr when they are content.", "dogs.md": "# Dogs\n\nDogs bark at strangers."},
    )
    make_pdf(tmp_path / "index" / "uploads" / "report.pdf")
    rag("index", "seeds", "index/uploads")
    return tmp_path


def rag(*args: str, code: int = 0):
    result = runner.invoke(app, list(args), env=ENV)
    assert result.exit_code == code, result.output
    return result


def test_rag_documents_lists_every_document(project) -> None:
    rows = json.loads(rag("documents", "--json").stdout)
    assert [r["source"] for r in rows] == ["cats.txt", "dogs.md", "report.pdf"]
    pdf = rows[2]
    assert (pdf["pages"], pdf["upload"], pdf["path"]) == (3, True, "index/uploads/report.pdf")
    assert pdf["size"] == (project / "index/uploads/report.pdf").stat().st_size and pdf["chunks"] >= 3
    assert rows[0]["pages"] is None and rows[0]["upload"] is False and rows[0]["chunks"] == 1
    assert rows[1]["title"] == "Dogs" and rows[1]["sections"] == 1
    assert all(r["added_at"].endswith("Z") for r in rows)
    stored = IndexStore("index").load()
    assert {r["doc_id"] for r in rows} == {d.id for d in stored.documents}
    assert sum(r["chunks"] for r in rows) == len(stored.chunks)
    text = rag("documents").stdout
    assert "report.pdf" in text and "3 p." in text and "upload" in text and "3 documents" in text


def test_added_at_survives_a_re_sync(project) -> None:
    before = {r["source"]: r["added_at"] for r in json.loads(rag("documents", "--json").stdout)}
    (project / "seeds" / "cats.txt").write_text("Cats purr loudly when they are content.")
    rag("index")
    after = {r["source"]: r["added_at"] for r in json.loads(rag("documents", "--json").stdout)}
    assert after == before


def test_rag_remove_of_an_upload_deletes_the_copy(project) -> None:
    report = json.loads(rag("remove", "report.pdf", "--json").stdout)
    assert report["files_removed"] == ["report.pdf"] and report["uploads_deleted"] == ["index/uploads/report.pdf"]
    assert report["still_in_sources"] == []
    assert not (project / "index/uploads/report.pdf").exists()
    assert [r["source"] for r in json.loads(rag("documents", "--json").stdout)] == ["cats.txt", "dogs.md"]
    rag("index")  # nothing comes back
    assert len(json.loads(rag("documents", "--json").stdout)) == 2


def test_rag_remove_by_doc_id_and_files_outside_the_upload_area_stay(project) -> None:
    rows = {r["source"]: r["doc_id"] for r in json.loads(rag("documents", "--json").stdout)}
    out = rag("remove", rows["cats.txt"]).stdout
    assert "removed 1 file (cats.txt)" in out and "deleted" not in out
    assert (project / "seeds/cats.txt").exists()


def test_a_removal_that_dies_mid_write_leaves_the_old_index_and_the_upload(project, monkeypatch) -> None:
    before = IndexStore("index").load()
    import rag.index.bm25

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(rag.index.bm25, "write_segment", crash)  # after the chunk store and vectors are in the temp dir
    settings = Settings(index_dir="index", embedding_model="hash", chunk_size=16, chunk_overlap=4)
    with pytest.raises(KeyboardInterrupt):
        Indexer(settings, HashEmbedder()).remove(["report.pdf"])
    after = IndexStore("index").load()
    assert after.path == before.path and [c.id for c in after.chunks] == [c.id for c in before.chunks]
    assert (project / "index/uploads/report.pdf").exists()
    assert not list((project / "index/versions").glob(".tmp-*"))


def test_search_and_ask_with_source_globs(project) -> None:
    hits = json.loads(rag("search", "dogs bark", "--source", "*.pdf", "--source", "cats*", "--json").stdout)
    assert hits and {h["source"] for h in hits} <= {"report.pdf", "cats.txt"}
    hits = json.loads(rag("search", "dogs bark", "--source", "dogs.md", "--json").stdout)
    assert {h["source"] for h in hits} == {"dogs.md"}
    answer = json.loads(
        rag(
            "ask",
            "Which data centre did the board approve?",
            "--source",
            "report.pdf",
            "--min-confidence",
            "0",
            "--json",
        ).stdout
    )
    assert answer["passages"] and {p["source"] for p in answer["passages"]} == {"report.pdf"}
    result = rag("search", "dogs", "--source", "*.docx", code=1)
    assert "no indexed document matches --source *.docx" in result.output and "rag documents" in result.output


def test_an_old_format_index_is_rebuilt_from_all_its_recorded_sources(project) -> None:
    manifest_path = IndexStore("index").current() / "manifest.json"
    manifest_path.write_text(json.dumps({**json.loads(manifest_path.read_text()), "format_version": 1}))
    report = json.loads(rag("index", "--json").stdout)  # every source is on disk: a plain run rebuilds
    assert report["upgraded_from"] == 1
    assert report["sources"] == ["seeds", "index/uploads"] and report["files_indexed"] == 3
    manifest_path = IndexStore("index").current() / "manifest.json"
    manifest_path.write_text(json.dumps({**json.loads(manifest_path.read_text()), "format_version": 1}))
    report = json.loads(rag("index", "--rebuild", "--json").stdout)
    assert report["sources"] == ["seeds", "index/uploads"] and report["files_indexed"] == 3
    assert [r["pages"] for r in json.loads(rag("documents", "--json").stdout)] == [None, None, 3]
