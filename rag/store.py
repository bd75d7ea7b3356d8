"""The on-disk index: versioned directories swapped in atomically, verified on load. No pickle.

Layout of an index dir:
    CURRENT                 name of the live version (replaced with an atomic rename)
    versions/<name>/        manifest.json, dense.faiss, bm25/*, chunks.jsonl, documents.jsonl
A build writes a temp dir beside the versions, fsyncs it, renames it into place, then flips CURRENT.
A process killed at any point leaves CURRENT naming a whole, verified version. Chunking and
embedding happen elsewhere; this module only persists and loads. With the Milvus store the vectors live in
a collection instead of dense.faiss (rag.milvus_store), written around the same atomic swap.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.errors import IndexCorrupt, IndexMismatch, IndexMissing, RagError
from rag.milvus_store import StoreOptions, begin_write, drop_collection, open_dense
from rag.text import bm25_tokens
from rag.types import Chunk, Document

FORMAT_VERSION = 2  # 2: documents carry page and heading markers, chunks their page and section
REBUILD_HINT = "rebuild it with `rag index --rebuild`"


@dataclass
class IndexData:
    """The whole content of one index version, in memory."""

    documents: list[Document]
    chunks: list[Chunk]
    vectors: np.ndarray  # (len(chunks), dim) float32, row i is chunks[i]
    manifest: dict


@dataclass
class LoadedIndex:
    """An index version opened for search: documents, chunks, manifest, and the FAISS and BM25 structures."""

    path: Path
    documents: list[Document]
    chunks: list[Chunk]
    manifest: dict
    dense: object  # faiss.Index, or rag.milvus_store.MilvusDense (same search/ntotal/d/reconstruct_n)
    bm25: object  # bm25s.BM25
    full_text: object = None  # rag.milvus_store.MilvusFullText where BM25 runs in Milvus, else None

    def vectors(self) -> np.ndarray:
        """All chunk vectors, row i for chunks[i] (copied out of the flat FAISS index, or fetched from Milvus)."""
        if not self.dense.ntotal:
            return np.zeros((0, self.dense.d), dtype=np.float32)
        return self.dense.reconstruct_n(0, self.dense.ntotal)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class IndexStore:
    """Reads and writes the versioned index directory at `root`.

    `options` say where dense vectors go on write (FAISS file or Milvus collection) and how to reach Milvus on
    read; without them a write keeps the store the index already uses and a read follows the manifest.
    """

    def __init__(self, root: Path | str, options: StoreOptions | None = None):
        self.root = Path(root)
        self.options = options or StoreOptions()

    @property
    def versions(self) -> Path:
        return self.root / "versions"

    def current(self) -> Path | None:
        """The live version directory, or None when nothing was ever built here."""
        try:
            name = (self.root / "CURRENT").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return self.versions / name

    @contextlib.contextmanager
    def writer_lock(self) -> Iterator[None]:
        """One writer at a time per index dir; readers never wait."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # -- writing -------------------------------------------------------------------------------

    def write(self, data: IndexData) -> Path:
        """Persist `data` as a new version and make it current, atomically. Call under writer_lock."""
        import faiss

        self.versions.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temps()
        previous, milvus = self._previous_manifest(), None
        store = self.options.store or (previous or {}).get("dense", {}).get("store", "faiss")
        if store == "milvus":  # the collection gets this version's vectors before the version exists
            milvus = begin_write(self.root, self.options, data.chunks, data.vectors, data.manifest["embedding"],
                                 previous, self._current_chunk_ids() if previous else [])
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.versions))
        try:
            _write_jsonl(tmp / "documents.jsonl", [d.to_dict() for d in data.documents])
            _write_jsonl(tmp / "chunks.jsonl", [c.to_dict() for c in data.chunks])
            if milvus is None:
                faiss.write_index(build_dense(data.vectors), str(tmp / "dense.faiss"))
            build_bm25([c.text for c in data.chunks]).save(str(tmp / "bm25"), show_progress=False)
            artifacts = {}
            for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
                _fsync(path)
                artifacts[path.relative_to(tmp).as_posix()] = sha256_file(path)
            manifest = {**data.manifest, "format_version": FORMAT_VERSION, "artifacts": artifacts,
                        "counts": {"documents": len(data.documents), "chunks": len(data.chunks)}}
            if milvus is not None:
                manifest["dense"] = milvus.record
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
            _fsync(tmp / "manifest.json")
            _fsync(tmp / "bm25")
            _fsync(tmp)
            name = f"v{time.time_ns()}-{sha256_file(tmp / 'manifest.json')[:8]}"
            os.rename(tmp, self.versions / name)
            _fsync(self.versions)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._point_current_at(name)
        if milvus is not None:  # rows the new version dropped go only now that it is live
            milvus.finish(self.root, self.options)
        elif (previous or {}).get("dense", {}).get("store") == "milvus":  # moved back to FAISS
            drop_collection(self.root, self.options, previous["dense"])
        self._remove_old_versions(keep=name)
        return self.versions / name

    def _previous_manifest(self) -> dict | None:
        try:
            return self.read_manifest() if self.current() is not None else None
        except RagError:  # a damaged live version is being replaced: nothing to carry over
            return None

    def _current_chunk_ids(self) -> list[str]:
        try:
            return [row["id"] for row in _read_jsonl(self.current() / "chunks.jsonl")]
        except (OSError, ValueError, KeyError):
            return []

    def _point_current_at(self, name: str) -> None:
        pointer = self.root / "CURRENT.tmp"
        with open(pointer, "w", encoding="utf-8") as f:
            f.write(name + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(pointer, self.root / "CURRENT")
        _fsync(self.root)

    def _remove_stale_temps(self) -> None:
        for tmp in self.versions.glob(".tmp-*"):  # left by killed builds; safe under the writer lock
            shutil.rmtree(tmp, ignore_errors=True)

    def _remove_old_versions(self, keep: str) -> None:
        """Keep the live version and the one before it (a reader may still be opening it)."""
        old = sorted((p for p in self.versions.iterdir() if p.name.startswith("v") and p.name != keep),
                     key=lambda p: p.stat().st_mtime)
        for path in old[:-1]:
            shutil.rmtree(path, ignore_errors=True)

    # -- reading -------------------------------------------------------------------------------

    def read_manifest(self, version: Path | None = None) -> dict:
        version = version or self.current()
        if version is None:
            raise IndexMissing(f"no index at {self.root}: build one with `rag index`")
        try:
            manifest = json.loads((version / "manifest.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise IndexCorrupt(f"{version} has no manifest.json: {REBUILD_HINT}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise IndexCorrupt(f"{version}/manifest.json is not valid JSON ({exc}): {REBUILD_HINT}") from None
        if manifest.get("format_version") != FORMAT_VERSION:
            raise IndexMismatch(
                f"index format {manifest.get('format_version')} at {version}, this version reads "
                f"{FORMAT_VERSION}: {REBUILD_HINT}"
            )
        return manifest

    def load(self, expected_model: str | None = None) -> LoadedIndex:
        """Open the live version, verifying every artifact's checksum and the embedding model.

        A writer may swap in a new version and prune old ones while we read; if the version we started
        on vanished under us, we start over on the new one (a few times) instead of reporting corruption.
        """
        for _ in range(3):
            version = self.current()
            try:
                return self._load_version(version, expected_model)
            except (IndexCorrupt, FileNotFoundError):
                if self.current() == version:
                    raise
        return self._load_version(self.current(), expected_model)

    def _load_version(self, version: Path | None, expected_model: str | None) -> LoadedIndex:
        import bm25s
        import faiss

        manifest = self.read_manifest(version)
        model = manifest.get("embedding", {}).get("model")
        if expected_model is not None and model != expected_model:
            raise IndexMismatch(
                f"index was built with embedding model {model!r}, settings say {expected_model!r}: "
                f"{REBUILD_HINT} (or set RAG_EMBEDDING_MODEL={model})"
            )
        for name, digest in manifest.get("artifacts", {}).items():
            path = version / name
            if not path.is_file():
                raise IndexCorrupt(f"{path} is missing: {REBUILD_HINT}")
            if sha256_file(path) != digest:
                raise IndexCorrupt(f"{path} fails its checksum (altered or truncated): {REBUILD_HINT}")
        try:
            documents = [Document.from_dict(row) for row in _read_jsonl(version / "documents.jsonl")]
            chunks = [Chunk(**row) for row in _read_jsonl(version / "chunks.jsonl")]
            full_text = None
            if manifest.get("dense", {}).get("store") == "milvus":
                dense, full_text = open_dense(self.root, self.options, manifest, [c.id for c in chunks])
            else:
                dense = faiss.read_index(str(version / "dense.faiss"))
            bm25 = bm25s.BM25.load(str(version / "bm25"), mmap=False, allow_pickle=False)
        except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
            raise IndexCorrupt(f"cannot read the index at {version} ({exc}): {REBUILD_HINT}") from None
        if dense.ntotal != len(chunks) or manifest.get("counts", {}).get("chunks") != len(chunks):
            raise IndexCorrupt(f"{version}: {dense.ntotal} vectors for {len(chunks)} chunks: {REBUILD_HINT}")
        return LoadedIndex(version, documents, chunks, manifest, dense, bm25, full_text)


def build_dense(vectors: np.ndarray):
    """An exact inner-product FAISS index over unit vectors (cosine similarity)."""
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def build_bm25(texts: list[str]):
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(bm25_tokens(texts or [""]), show_progress=False)
    return retriever
