"""Incremental indexing: unchanged corpora embed nothing, changes re-embed only what changed."""

from __future__ import annotations

import pytest

from conftest import write_corpus
from rag.errors import IndexMismatch, RagError
from rag.index.indexer import Indexer
from rag.index.store import IndexStore


def chunk_texts(settings) -> dict[str, list[str]]:
    loaded = IndexStore(settings.index_dir).load()
    out: dict[str, list[str]] = {}
    for c in loaded.chunks:
        out.setdefault(c.source, []).append(c.text)
    return out


def test_first_build_then_unchanged_rerun_embeds_nothing(corpus, settings, hash_embedder) -> None:
    indexer = Indexer(settings, hash_embedder)
    first = indexer.index([corpus])
    assert (first.files_indexed, first.files_updated, first.chunks_removed) == (3, 3, 0)
    assert first.chunks_embedded == first.chunks_total == hash_embedder.calls == 4
    version = IndexStore(settings.index_dir).current()

    again = indexer.index([corpus])
    assert (again.files_indexed, again.files_updated, again.chunks_embedded, again.chunks_removed) == (3, 0, 0, 0)
    assert again.chunks_total == 4 and not again.changed
    assert hash_embedder.calls == 4
    assert IndexStore(settings.index_dir).current() == version  # nothing was rewritten


def test_changed_file_reembeds_only_its_own_chunks(corpus, settings, hash_embedder) -> None:
    indexer = Indexer(settings, hash_embedder)
    indexer.index([corpus])
    (corpus / "dogs.md").write_text("# Dogs\n\nDogs howl at the moon.", encoding="utf-8")
    report = indexer.index([corpus])
    assert (report.files_updated, report.chunks_embedded, report.chunks_removed) == (1, 1, 1)
    assert chunk_texts(settings)["dogs.md"] == ["# Dogs\n\nDogs howl at the moon."]
    assert hash_embedder.calls == 5


def test_deleted_file_chunks_disappear(corpus, settings, hash_embedder) -> None:
    indexer = Indexer(settings, hash_embedder)
    indexer.index([corpus])
    (corpus / "sub" / "birds.txt").unlink()
    report = indexer.index([corpus])
    assert (report.files_indexed, report.chunks_embedded, report.chunks_removed, report.chunks_total) == (2, 0, 1, 3)
    assert set(chunk_texts(settings)) == {"cats.txt", "dogs.md"}


def test_add_mode_keeps_files_not_listed(corpus, settings, hash_embedder, tmp_path) -> None:
    indexer = Indexer(settings, hash_embedder)
    indexer.index([corpus])
    extra = write_corpus(tmp_path / "uploads", {"fish.txt": "Salmon swim upstream to spawn."})
    report = indexer.index([extra], prune=False)
    assert (report.files_indexed, report.chunks_embedded, report.chunks_total) == (4, 1, 5)
    assert set(chunk_texts(settings)) == {"cats.txt", "dogs.md", "sub/birds.txt", "fish.txt"}


def test_bad_files_are_skipped_with_reasons_and_never_reach_the_index(corpus, settings, hash_embedder) -> None:
    (corpus / "empty.txt").write_text("   \n")
    (corpus / "binary.txt").write_bytes(b"\x00\x01\x02abc")
    (corpus / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    (corpus / "image.png").write_bytes(b"\x89PNG")
    report = Indexer(settings, hash_embedder).index([corpus])
    reasons = {s.path.rsplit("/", 1)[-1]: s.reason for s in report.files_skipped}
    assert reasons["empty.txt"] == "empty file"
    assert reasons["binary.txt"] == "binary file (contains NUL bytes)"
    assert reasons["latin1.txt"].startswith("not UTF-8 text")
    assert reasons["broken.pdf"].startswith("unreadable PDF")
    assert reasons["image.png"] == "unsupported file type .png"
    assert report.files_indexed == 3
    assert set(chunk_texts(settings)) == {"cats.txt", "dogs.md", "sub/birds.txt"}


def test_a_file_that_turns_bad_keeps_its_last_good_version(corpus, settings, hash_embedder) -> None:
    indexer = Indexer(settings, hash_embedder)
    indexer.index([corpus])
    before = chunk_texts(settings)
    (corpus / "cats.txt").write_bytes(b"\x00garbage")
    report = indexer.index([corpus])
    assert report.files_skipped[0].reason == "binary file (contains NUL bytes) (kept the previously indexed version)"
    assert chunk_texts(settings) == before


def test_oversized_file_is_skipped(corpus, settings, hash_embedder) -> None:
    (corpus / "huge.txt").write_text("word " * 300_000)
    small = settings.with_overrides(max_file_mb=1.0)
    report = Indexer(small, hash_embedder).index([corpus])
    assert [s.reason for s in report.files_skipped] == ["larger than the 1 MB limit (1500000 bytes)"]


def test_nothing_readable_is_an_error_and_writes_nothing(tmp_path, settings, hash_embedder) -> None:
    empty = write_corpus(tmp_path / "bad", {"a.txt": ""})
    with pytest.raises(RagError, match="nothing to index"):
        Indexer(settings, hash_embedder).index([empty])
    assert IndexStore(settings.index_dir).current() is None


def test_chunking_change_rechunks_but_reuses_known_vectors(corpus, settings, hash_embedder) -> None:
    Indexer(settings, hash_embedder).index([corpus])
    report = Indexer(settings.with_overrides(chunk_size=200), hash_embedder).index([corpus])
    assert report.changed and report.chunks_total == 3
    assert report.chunks_embedded == 1  # cats.txt's two chunks merge into one new text


def test_model_change_needs_rebuild(corpus, settings, hash_embedder) -> None:
    Indexer(settings, hash_embedder).index([corpus])
    other = type(hash_embedder)(dim=32)
    other.name = "hash-32"
    with pytest.raises(IndexMismatch, match="--rebuild"):
        Indexer(settings, other).index([corpus])
    report = Indexer(settings, other).index([corpus], rebuild=True)
    assert report.chunks_embedded == 4
    manifest = IndexStore(settings.index_dir).load().manifest
    assert manifest.embedding == {"model": "hash-32", "dim": 32, "backend": "hash"}


def test_whole_documents_makes_one_chunk_per_file(corpus, settings, hash_embedder) -> None:
    report = Indexer(settings, hash_embedder, whole_documents=True).index([corpus])
    assert report.chunks_total == 3
    loaded = IndexStore(settings.index_dir).load()
    docs = {d.id: d.text for d in loaded.documents}
    assert all(c.start == 0 and c.text == docs[c.doc_id] for c in loaded.chunks)
    assert loaded.manifest.chunking == {"whole_documents": True, "tokenizer": "hash"}
