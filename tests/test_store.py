"""The on-disk index: round trip, checksums, model and format checks, atomic versions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag.errors import IndexCorrupt, IndexMismatch, IndexMissing
from rag.store import FORMAT_VERSION, IndexData, IndexStore
from rag.types import Chunk, Document


def sample() -> IndexData:
    doc = Document.create("a.txt", "A", "Alpha beta. Gamma delta.")
    chunks = [Chunk.create(doc, 0, 11), Chunk.create(doc, 12, 24)]
    vectors = np.array([[1, 0, 0], [0, 0.6, 0.8]], dtype=np.float32)
    manifest = {"embedding": {"model": "hash", "dim": 3}, "chunking": {"size": 8, "overlap": 0},
                "files": {"a.txt": {"sha256": "x", "doc_id": doc.id, "path": "a.txt"}}}
    return IndexData([doc], chunks, vectors, manifest)


def test_round_trip(tmp_path) -> None:
    store = IndexStore(tmp_path / "idx")
    data = sample()
    with store.writer_lock():
        version = store.write(data)
    loaded = store.load(expected_model="hash")
    assert loaded.path == version == store.current()
    assert loaded.documents == data.documents
    assert loaded.chunks == data.chunks
    np.testing.assert_array_equal(loaded.vectors(), data.vectors)
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["counts"] == {"documents": 1, "chunks": 2}
    assert set(manifest["artifacts"]) == {
        "chunks.jsonl", "documents.jsonl", "dense.faiss", "bm25/data.csc.index.npy",
        "bm25/indices.csc.index.npy", "bm25/indptr.csc.index.npy", "bm25/params.index.json",
        "bm25/vocab.index.json"}
    assert loaded.bm25.get_scores(["gamma"]).tolist()[0] == 0.0
    assert loaded.bm25.get_scores(["gamma"]).tolist()[1] > 0.0


def test_no_pickle_in_any_artifact(tmp_path) -> None:
    store = IndexStore(tmp_path / "idx")
    with store.writer_lock():
        version = store.write(sample())
    for path in version.rglob("*.npy"):
        np.load(path, allow_pickle=False)  # raises if an object array had been pickled


def test_missing_index(tmp_path) -> None:
    with pytest.raises(IndexMissing, match="rag index"):
        IndexStore(tmp_path / "nothing").load()


@pytest.mark.parametrize("artifact", ["chunks.jsonl", "dense.faiss", "bm25/vocab.index.json"])
def test_altered_or_truncated_artifact_is_detected(tmp_path, artifact: str) -> None:
    store = IndexStore(tmp_path / "idx")
    with store.writer_lock():
        version = store.write(sample())
    path = version / artifact
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexCorrupt, match="checksum.*rag index --rebuild"):
        store.load()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(IndexCorrupt, match="checksum"):
        store.load()
    path.unlink()
    with pytest.raises(IndexCorrupt, match="missing"):
        store.load()


def test_model_mismatch_says_how_to_rebuild(tmp_path) -> None:
    store = IndexStore(tmp_path / "idx")
    with store.writer_lock():
        store.write(sample())
    with pytest.raises(IndexMismatch, match="built with embedding model 'hash', settings say 'other'.*--rebuild"):
        store.load(expected_model="other")


def test_format_version_mismatch(tmp_path) -> None:
    store = IndexStore(tmp_path / "idx")
    with store.writer_lock():
        version = store.write(sample())
    manifest = json.loads((version / "manifest.json").read_text())
    manifest["format_version"] = 99
    (version / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatch, match="format 99"):
        store.load()


def test_new_version_swaps_in_and_old_ones_are_pruned(tmp_path) -> None:
    store = IndexStore(tmp_path / "idx")
    names = []
    for _ in range(3):
        with store.writer_lock():
            names.append(store.write(sample()).name)
    assert store.current().name == names[-1]
    remaining = sorted(p.name for p in store.versions.iterdir())
    assert remaining == sorted(names[-2:])  # the live one and the one before it


def test_stale_temp_dirs_from_killed_builds_are_cleaned(tmp_path) -> None:
    store = IndexStore(tmp_path / "idx")
    (store.versions / ".tmp-dead").mkdir(parents=True)
    (store.versions / ".tmp-dead" / "chunks.jsonl").write_text("partial")
    with store.writer_lock():
        store.write(sample())
    assert not (store.versions / ".tmp-dead").exists()
