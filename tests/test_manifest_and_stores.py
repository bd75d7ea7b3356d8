"""The typed manifest (one reader and writer, byte-compatible with format 3) and the dense-store registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rag.errors import ConfigError, IndexMismatch
from rag.index import stores
from rag.index.dense_store import StoreOptions
from rag.index.faiss_store import FaissStore
from rag.index.manifest import FORMAT_VERSION, Manifest
from rag.index.store import IndexData, IndexStore
from rag.types import Chunk, Document

OLD = Path(__file__).parent / "data" / "manifest-format3.json"  # written by the code before Manifest (67d3d38)


def sample(n: int = 4) -> IndexData:
    docs = [Document.create(f"d{i}.txt", f"D{i}", f"Doc {i} text. More words for doc {i}.") for i in range(n)]
    chunks = [Chunk.create(d, 0, 12) for d in docs]
    vectors = np.eye(n, 4, dtype=np.float32)
    return IndexData(docs, chunks, vectors, {"embedding": {"model": "hash", "dim": 4}, "chunking": {"size": 8}})


def test_a_manifest_written_before_the_dataclass_round_trips_byte_for_byte(tmp_path) -> None:
    (tmp_path / "manifest.json").write_bytes(OLD.read_bytes())
    manifest = Manifest.read(tmp_path)
    assert manifest.model == "hash" and manifest.dim == 4 and manifest.backend == "hash" and manifest.store == "faiss"
    assert manifest.sources == ["seeds"] and manifest.n_chunks == 10 and manifest.dense["dropped"] == 2
    assert list(manifest.info) == ["embedding", "chunking", "files", "sources", "created_at"]
    out = tmp_path / "again"
    out.mkdir()
    manifest.write(out)
    assert (out / "manifest.json").read_bytes() == OLD.read_bytes()


def test_the_store_writes_manifests_in_the_same_layout_as_before(tmp_path) -> None:
    store = IndexStore(tmp_path / "idx")
    with store.writer_lock():
        store.write(sample())
    written = json.loads((store.current() / "manifest.json").read_text())
    old = json.loads(OLD.read_text())
    assert list(written) == ["embedding", "chunking", *list(old)[5:]]  # indexer entries first, then the store's
    assert written["dense"] == {"store": "faiss", "index": "flat", "choice": "flat", "rows": 4, "params": {}}
    assert Manifest.read(store.current()).to_dict() == written


def test_the_format_version_is_checked_where_the_manifest_is_read(tmp_path) -> None:
    old = json.loads(OLD.read_text())
    (tmp_path / "manifest.json").write_text(json.dumps({**old, "format_version": 2}))
    with pytest.raises(IndexMismatch, match=rf"index format 2 at .*reads format {FORMAT_VERSION}"):
        Manifest.read(tmp_path)
    assert Manifest.parse(tmp_path).format_version == 2  # unchecked: what the indexer reads to re-sync sources


def test_an_unknown_store_name_says_which_are_registered(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"^store must be one of faiss, milvus, got 'pinecone'$"):
        stores.store_class("pinecone")
    with pytest.raises(ConfigError, match="store must be one of"):
        IndexStore(tmp_path / "idx", StoreOptions(store="pinecone"))
    store = IndexStore(tmp_path / "idx")
    with store.writer_lock():
        store.write(sample())
    manifest = store.current() / "manifest.json"
    data = json.loads(manifest.read_text())
    data["dense"]["store"] = "pinecone"
    manifest.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="got 'pinecone'"):
        store.load()


class Recording(FaissStore):
    """A registered fake: FAISS underneath, under another name, counting what the index store asks of it."""

    name = "recording"
    calls: list[str] = []

    @classmethod
    def load(cls, *args, **kwargs):
        cls.calls.append("load")
        return super().load(*args, **kwargs)

    def add(self, chunks, vectors) -> None:
        type(self).calls.append("add")
        super().add(chunks, vectors)

    def save(self, folder, vectors) -> dict:
        type(self).calls.append("save")
        return super().save(folder, vectors)


def test_a_registered_store_is_picked_from_the_manifest(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(stores.REGISTRY, "recording", Recording)
    monkeypatch.setattr(Recording, "calls", [])
    store = IndexStore(tmp_path / "idx", StoreOptions(store="recording"))
    with store.writer_lock():
        store.write(sample())
    assert store.read_manifest().dense["store"] == "recording" and Recording.calls == ["add", "save"]
    loaded = IndexStore(tmp_path / "idx").load()  # no options: the manifest names the store
    assert isinstance(loaded.dense, Recording) and Recording.calls[-1] == "load"
    scores, rows = loaded.dense.search(np.eye(1, 4, dtype=np.float32), 2)
    assert rows[0].tolist()[0] == 0 and scores[0][0] == pytest.approx(1.0)
