"""The index remembers its sources: a plain `rag index` re-syncs all of them, uploads included; dropping one
is explicit (`rag remove`); a source that vanished from disk is kept and reported; `rag eval` never touches
the live index."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import write_corpus
from rag.cli import app
from rag.errors import RagError
from rag.index.embedding import HashEmbedder
from rag.index.indexer import Indexer
from rag.index.store import IndexStore
from rag.serve.service import Service
from rag.settings import Settings

runner = CliRunner()
ENV = {"RAG_EMBEDDING_MODEL": "hash", "RAG_CHUNK_SIZE": "16", "RAG_CHUNK_OVERLAP": "4"}
FISH = "Salmon swim upstream to spawn in the river."


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A folder laid out like the repository: seeds/ and index/, the working directory of the commands."""
    monkeypatch.chdir(tmp_path)
    write_corpus(
        tmp_path / "seeds", {"cats.txt": "Cats purr when they are content.", "dogs.md": "Dogs bark at strangers."}
    )
    return tmp_path


def rag(*args: str):
    result = runner.invoke(app, list(args), env=ENV)
    assert result.exit_code == 0, result.output
    return result


def indexed(index_dir="index") -> dict[str, str]:
    """source name -> the file path the manifest records for it."""
    return {name: f["path"] for name, f in IndexStore(index_dir).read_manifest().files.items()}


def test_plain_rag_index_keeps_documents_from_every_source(project) -> None:
    write_corpus(project / "index" / "uploads", {"fish.txt": FISH})
    rag("index", "seeds", "index/uploads")
    result = rag("index", "--json")  # the README's plain command: re-syncs every recorded source
    report = json.loads(result.stdout)
    assert report["chunks_removed"] == 0 and report["files_indexed"] == 3
    assert report["sources"] == ["seeds", "index/uploads"] and report["sources_missing"] == []
    assert indexed() == {"cats.txt": "seeds/cats.txt", "dogs.md": "seeds/dogs.md", "fish.txt": "index/uploads/fish.txt"}
    hits = json.loads(rag("search", "salmon upstream", "--k", "1", "--json").stdout)
    assert hits[0]["source"] == "fish.txt"


def test_an_upload_stays_indexed_after_a_plain_rag_index(project) -> None:
    rag("index")  # a new index starts from seeds/
    assert IndexStore("index").read_manifest().sources == ["seeds"]
    (project / "incoming.txt").write_text(FISH)
    service = Service(
        Settings(index_dir="index", embedding_model="hash", chunk_size=16, chunk_overlap=4, backend="extractive"),
        HashEmbedder(),
    )
    assert [r.status for r in service.add_documents([project / "incoming.txt"])] == ["added"]
    assert IndexStore("index").read_manifest().sources == ["seeds", "index/uploads"]
    report = json.loads(rag("index", "--json").stdout)
    assert report["chunks_removed"] == 0 and "fish.txt" not in indexed() and "incoming.txt" in indexed()


def test_naming_a_path_adds_it_and_keeps_the_other_sources(project) -> None:
    notes = write_corpus(project / "notes", {"birds.txt": "Crows solve puzzles with tools."})
    rag("index", "seeds")
    rag("index", "notes")
    assert sorted(indexed()) == ["birds.txt", "cats.txt", "dogs.md"]
    assert IndexStore("index").read_manifest().sources == ["seeds", "notes"]
    # within a source the index mirrors the disk: a new file is added, a deleted one dropped
    (notes / "birds.txt").unlink()
    write_corpus(project / "seeds", {"owls.txt": "Owls hunt at night."})
    report = json.loads(rag("index", "--json").stdout)
    assert sorted(indexed()) == ["cats.txt", "dogs.md", "owls.txt"]
    assert report["chunks_removed"] == 1 and report["chunks_embedded"] == 1


def test_a_source_gone_from_disk_is_kept_and_reported(project) -> None:
    write_corpus(project / "notes", {"birds.txt": "Crows solve puzzles with tools."})
    rag("index", "seeds", "notes")
    version = IndexStore("index").current()
    shutil.rmtree(project / "notes")
    result = rag("index", "--json")
    assert json.loads(result.stdout)["sources_missing"] == ["notes"]
    assert (
        "warning: source notes no longer exists; its documents stay in the index: run `rag remove notes` to drop them"
    ) in result.stderr
    assert IndexStore("index").current() == version and "birds.txt" in indexed()
    result = rag("index")  # the text output says it too
    assert "rag remove notes" in result.stderr and "3 files" in result.stdout


def test_rag_remove_drops_a_source_without_embedding_anything(project) -> None:
    write_corpus(
        project / "notes", {"birds.txt": "Crows solve puzzles with tools.", "deep/owls.txt": "Owls hunt at night."}
    )
    settings = Settings(index_dir="index", embedding_model="hash", chunk_size=16, chunk_overlap=4)
    embedder = HashEmbedder()
    Indexer(settings, embedder).index([project / "seeds", project / "notes"])
    before = IndexStore("index").load()
    calls = embedder.calls
    report = Indexer(settings, embedder).remove(["notes"])
    assert embedder.calls == calls  # nothing re-embedded
    removed = (report.sources_removed, report.files_removed, report.chunks_removed)
    assert removed == (["notes"], ["birds.txt", "deep/owls.txt"], 2)
    assert (report.files_total, report.chunks_total, report.sources) == (2, 2, ["seeds"])
    after = IndexStore("index").load()
    assert after.manifest.sources == ["seeds"] and sorted(after.manifest.files) == ["cats.txt", "dogs.md"]
    assert [c.id for c in after.chunks] == [c.id for c in before.chunks if c.source in ("cats.txt", "dogs.md")]
    rows = [i for i, c in enumerate(before.chunks) if c.source in ("cats.txt", "dogs.md")]
    assert np.array_equal(after.vectors(), before.vectors()[rows])  # the very same vectors
    assert (project / "notes" / "birds.txt").exists()  # files on disk are left alone
    assert sorted(indexed()) == ["cats.txt", "dogs.md"]
    rag("index")  # and a plain re-sync does not bring the source back
    assert sorted(indexed()) == ["cats.txt", "dogs.md"]


def test_rag_remove_takes_files_folders_and_names_and_reports(project) -> None:
    write_corpus(project / "notes", {"birds.txt": "Crows solve puzzles with tools.", "deep/owls.txt": "Owls hunt."})
    rag("index", "seeds", "notes")
    result = rag("remove", "notes/deep", "cats.txt", "--json")
    report = json.loads(result.stdout)
    assert report["files_removed"] == ["cats.txt", "deep/owls.txt"] and report["sources_removed"] == []
    assert report["still_in_sources"] == ["notes/deep/owls.txt", "seeds/cats.txt"]  # still on disk there
    assert "the next `rag index` adds it back" in result.stderr
    assert sorted(indexed()) == ["birds.txt", "dogs.md"]
    result = rag("remove", "seeds")
    assert result.stdout == (
        "removed source seeds\nremoved 1 file (dogs.md), 1 chunk; the index at index "
        "holds 1 file, 1 chunk; sources: notes\n"
    )


def test_rag_remove_of_something_not_indexed_changes_nothing(project) -> None:
    rag("index")
    version = IndexStore("index").current()
    result = runner.invoke(app, ["remove", "dogs.md", "nope"], env=ENV)
    assert result.exit_code == 1
    assert result.stderr == "error: nothing in the index at index matches nope (its sources: seeds)\n"
    assert IndexStore("index").current() == version and sorted(indexed()) == ["cats.txt", "dogs.md"]


def test_rag_remove_never_leaves_an_empty_index(project) -> None:
    rag("index")
    version = IndexStore("index").current()
    result = runner.invoke(app, ["remove", "seeds"], env=ENV)
    assert result.exit_code == 1
    assert result.stderr == (
        "error: removing seeds would leave the index at index empty: delete that folder to start over\n"
    )
    assert IndexStore("index").current() == version


def test_a_name_held_by_another_source_is_skipped_not_replaced(project) -> None:
    write_corpus(project / "other", {"cats.txt": "Tigers are big cats."})
    report = json.loads(rag("index", "seeds", "other", "--json").stdout)
    assert report["files_skipped"] == [
        {"path": "other/cats.txt", "reason": "another file is already indexed as cats.txt (from seeds)"}
    ]
    assert indexed()["cats.txt"] == "seeds/cats.txt"


def test_an_index_from_before_sources_were_recorded_keeps_all_its_files(project) -> None:
    write_corpus(project / "index" / "uploads", {"fish.txt": FISH})
    rag("index", "seeds", "index/uploads")
    version = IndexStore("index").current()
    manifest = json.loads((version / "manifest.json").read_text())
    del manifest["sources"]
    for f in manifest["files"].values():
        del f["root"]
    (version / "manifest.json").write_text(json.dumps(manifest))  # as the previous release wrote it
    assert Indexer(Settings(index_dir="index", embedding_model="hash"), HashEmbedder()).sources() == [
        "index/uploads",
        "seeds",
    ]
    report = json.loads(rag("index", "--json").stdout)
    assert (
        report["chunks_removed"] == 0
        and report["chunks_embedded"] == 0
        and sorted(indexed()) == ["cats.txt", "dogs.md", "fish.txt"]
    )


def test_rebuild_re_embeds_every_recorded_source(project) -> None:
    write_corpus(project / "notes", {"birds.txt": "Crows solve puzzles with tools."})
    rag("index", "seeds", "notes")
    report = json.loads(rag("index", "--rebuild", "--json").stdout)
    assert report["chunks_embedded"] == report["chunks_total"] == 3 and report["sources"] == ["seeds", "notes"]


def test_the_library_needs_a_path_or_recorded_sources(tmp_path) -> None:
    settings = Settings(index_dir=tmp_path / "index", embedding_model="hash", chunk_size=16, chunk_overlap=4)
    with pytest.raises(RagError, match="records no sources; give a file or folder"):
        Indexer(settings, HashEmbedder()).index()


def test_rag_eval_never_touches_the_live_index(project) -> None:
    rag("index")
    store = IndexStore("index")
    version, manifest = store.current(), store.read_manifest()
    questions = project / "q.jsonl"
    questions.write_text(
        json.dumps(
            {
                "id": "q1",
                "question": "Do dogs bark?",
                "answers": ["bark"],
                "answerable": True,
                "support": [{"source": "dogs.md", "quote": "Dogs bark at strangers."}],
            }
        )
    )
    write_corpus(project / "seeds", {"new.txt": "A file added after the live index was built."})
    rag("eval", str(questions), "--backend", "extractive", "--out", str(project / "report"), "--json")
    assert store.current() == version and store.read_manifest() == manifest  # neither re-synced nor rewritten
    caches = sorted((project / "eval" / ".cache").iterdir())
    assert len(caches) == 1 and caches[0].name.startswith("corpus-seeds-")
    assert "new.txt" in IndexStore(caches[0]).read_manifest().files
    # the cache key covers the corpus content and the chunking: either change makes a fresh index
    (project / "seeds" / "new.txt").write_text("Changed.")
    rag("eval", str(questions), "--backend", "extractive", "--out", str(project / "report"), "--json")
    runner.invoke(
        app,
        ["eval", str(questions), "--backend", "extractive", "--out", str(project / "report")],
        env={**ENV, "RAG_CHUNK_SIZE": "32"},
    )
    assert len(list((project / "eval" / ".cache").iterdir())) == 3


def _age(index_dir: str, format_version: int) -> None:
    """Make the live version look written by an older release (another index format)."""
    path = IndexStore(index_dir).current() / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**manifest, "format_version": format_version}), encoding="utf-8")


def test_an_index_in_an_older_format_is_rebuilt_from_its_sources_by_a_plain_rag_index(project) -> None:
    rag("index", "seeds")
    _age("index", 2)
    result = rag("index", "--json")  # what `make run` does after an upgrade
    assert json.loads(result.stdout)["upgraded_from"] == 2
    assert "format 2, which this version cannot read: rebuilt from its sources (seeds)" in result.stderr
    assert sorted(indexed()) == ["cats.txt", "dogs.md"]
    hits = json.loads(rag("search", "purr", "--k", "1", "--json").stdout)
    assert hits[0]["source"] == "cats.txt"


def test_an_older_index_whose_source_is_gone_is_not_rebuilt_behind_the_users_back(project) -> None:
    write_corpus(project / "notes", {"birds.txt": "Crows solve puzzles with tools."})
    rag("index", "seeds", "notes")
    _age("index", 2)
    shutil.rmtree(project / "notes")  # a rebuild would lose birds.txt
    result = runner.invoke(app, ["index"], env=ENV)
    assert result.exit_code == 1 and "rebuild it with `rag index --rebuild`" in result.output
    assert json.loads((IndexStore("index").current() / "manifest.json").read_text())["format_version"] == 2
