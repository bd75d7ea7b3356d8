"""The on-disk index: round trip, checksums, model and format checks, atomic versions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag.errors import IndexCorrupt, IndexMismatch, IndexMissing
from rag.index.store import FORMAT_VERSION, IndexData, IndexStore
from rag.types import Chunk, Document


def sample() -> IndexData:
    doc = Document.create("a.txt", "A", "Alpha beta. Gamma delta.")
    chunks = [Chunk.create(doc, 0, 11), Chunk.create(doc, 12, 24)]
    vectors = np.array([[1, 0, 0], [0, 0.6, 0.8]], dtype=np.float32)
    manifest = {
        "embedding": {"model": "hash", "dim": 3},
        "chunking": {"size": 8, "overlap": 0},
        "files": {"a.txt": {"sha256": "x", "doc_id": doc.id, "path": "a.txt"}},
    }
    return IndexData([doc], chunks, vectors, manifest)


def artifact(version, name: str):
    """The path of the artifact whose name ends with `name` (segment folders have generated names)."""
    manifest = json.loads((version / "manifest.json").read_text())
    (rel,) = [rel for rel in manifest["artifacts"] if rel == name or rel.endswith("/" + name)]
    return version / rel


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
    (segment,) = manifest["segments"]
    assert segment["chunks"] == 2 and segment["documents"] == 1 and segment["dim"] == 3
    seg = f"segments/{segment['name']}"
    assert set(manifest["artifacts"]) == {
        "dense.faiss",
        f"{seg}/chunks.sqlite",
        f"{seg}/vectors.npy",
        f"{seg}/bm25/terms.sqlite",
        f"{seg}/bm25/rows.npy",
        f"{seg}/bm25/tf.npy",
        f"{seg}/bm25/doclen.npy",
    }
    assert all(set(r) == {"sha256", "bytes"} for r in manifest["artifacts"].values())  # small: checked in full
    assert manifest["dense"] == {"store": "faiss", "index": "flat", "choice": "flat", "rows": 2, "params": {}}
    assert loaded.n_chunks == 2 and loaded.n_documents == 1
    assert loaded.chunk(1) == data.chunks[1] and loaded.chunks_by_rows([1, 0]) == data.chunks[::-1]
    assert loaded.document_text(data.documents[0].id) == data.documents[0].text
    assert loaded.chunk_ids() == [c.id for c in data.chunks]
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


@pytest.mark.parametrize("name", ["chunks.sqlite", "dense.faiss", "vectors.npy", "bm25/terms.sqlite", "bm25/rows.npy"])
def test_altered_or_truncated_artifact_is_detected(tmp_path, name: str) -> None:
    store = IndexStore(tmp_path / "idx")
    with store.writer_lock():
        version = store.write(sample())
    path = artifact(version, name)
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
    (store.versions / ".tmp-dead" / "chunks.sqlite").write_text("partial")
    with store.writer_lock():
        store.write(sample())
    assert not (store.versions / ".tmp-dead").exists()


def test_large_artifacts_are_checked_by_size_and_sample_at_open_and_in_full_by_verify(tmp_path, monkeypatch) -> None:
    import rag.index.integrity

    monkeypatch.setattr(rag.index.integrity, "FULL_CHECK_BYTES", 1024)  # everything counts as large here
    monkeypatch.setattr(rag.index.integrity, "SAMPLE_EDGE", 256)
    monkeypatch.setattr(rag.index.integrity, "SAMPLE_BLOCKS", 2)
    monkeypatch.setattr(rag.index.integrity, "SAMPLE_BYTES", 256)
    store = IndexStore(tmp_path / "idx")
    data = sample()
    data = IndexData(data.documents, data.chunks, np.tile(data.vectors, (1, 2000)), data.manifest)
    with store.writer_lock():
        version = store.write(data)
    path = artifact(version, "vectors.npy")
    record = json.loads((version / "manifest.json").read_text())["artifacts"][str(path.relative_to(version))]
    assert record["bytes"] > 1024 and "sampled_sha256" in record
    assert store.verify()["artifacts"] == 7
    original = path.read_bytes()
    middle = bytearray(original)
    middle[len(middle) // 2] ^= 1  # between the sampled blocks: the cheap check at open cannot see it
    path.write_bytes(bytes(middle))
    store.load()
    with pytest.raises(IndexCorrupt, match="vectors.npy fails its checksum"):
        store.verify()
    head = bytearray(original)
    head[200] ^= 1  # inside the head, which is always sampled
    path.write_bytes(bytes(head))
    with pytest.raises(IndexCorrupt, match="fails its checksum"):
        store.load()
    path.write_bytes(original[:-8])
    with pytest.raises(IndexCorrupt, match="checksum.*truncated"):
        store.load()


@pytest.mark.parametrize("old_format", [1, 2])
def test_an_index_of_a_previous_format_says_to_rebuild(tmp_path, old_format) -> None:
    version = tmp_path / "idx" / "versions" / "v1"
    version.mkdir(parents=True)
    (version / "manifest.json").write_text(json.dumps({"format_version": old_format, "artifacts": {}}))
    (version / "chunks.jsonl").write_text("")
    (tmp_path / "idx" / "CURRENT").write_text("v1\n")
    with pytest.raises(IndexMismatch, match=rf"index format {old_format} .*JSONL.*reads format 3.*rag index --rebuild"):
        IndexStore(tmp_path / "idx").load()
