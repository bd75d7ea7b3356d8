"""The on-disk index: versioned directories swapped in atomically, verified on load, read on demand. No pickle.

Layout of an index dir:
    CURRENT                          name of the live version (replaced with an atomic rename)
    versions/<name>/manifest.json    format, embedding, chunking, files, segments, dense index, artifact checksums
    versions/<name>/dense.faiss      FAISS's own file: flat, hnsw or ivf-pq over the first `dense.rows` rows
    versions/<name>/segments/<seg>/  chunks.sqlite (chunks + documents), vectors.npy, bm25/ (postings)
A write builds a temp dir beside the versions, fsyncs it, renames it into place, then flips CURRENT; a process
killed at any point leaves CURRENT naming a whole version. Files are never changed once written, so a version
that only adds rows hard-links the previous version's segments and writes one new segment (small indexes are
always rewritten whole instead). Loading opens files without reading them whole: small artifacts are sha256-checked
in full, large ones by size and a sampled digest (`verify()` checks every byte). Chunking and embedding happen
elsewhere. Which dense store holds the vectors is the manifest's `dense.store`, a name in rag.index.stores's
registry; this module talks to it only through rag.index.dense_store.DenseStore. The manifest is rag.index.manifest.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rag.errors import IndexCorrupt, IndexMismatch, IndexMissing, RagError
from rag.index import bm25 as bm25_segments
from rag.index import dense as dense_index
from rag.index import integrity
from rag.index import segments as segment_files
from rag.index.chunkstore import ChunkStore, ChunkView, DocumentsById, DocumentTexts, DocumentView
from rag.index.dense import VectorFiles
from rag.index.dense_store import DenseStore, FullText, StoreOptions
from rag.index.files import fsync as _fsync
from rag.index.files import link as _link
from rag.index.manifest import CORE_KEYS, FORMAT_VERSION, REBUILD_HINT, Manifest
from rag.index.stores import DEFAULT, check_options, store_class
from rag.types import Chunk, Document

__all__ = ["APPEND_MIN_ROWS", "FORMAT_VERSION", "IndexData", "IndexStore", "LoadedIndex", "Manifest"]

APPEND_MIN_ROWS = 20_000  # smaller indexes are rewritten whole on every change (row order as a fresh build)


@dataclass
class IndexData:
    """The whole content of one index version, in memory."""

    documents: list[Document]
    chunks: list[Chunk]
    vectors: np.ndarray  # (len(chunks), dim) float32, row i is chunks[i]
    manifest: dict  # the indexer's entries (embedding, chunking, files, ...); the store adds its own on write


@dataclass
class _Change:
    """What a write adds to the live version and takes out of it (rows and doc ids of the live version)."""

    documents: list[Document] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    drop_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # sorted
    drop_documents: set[str] = field(default_factory=set)


@dataclass
class LoadedIndex:
    """An open index version. Chunks and documents stay on disk and are fetched by row or id:
    `chunk(row)`, `chunks_by_rows(rows)`, `document(doc_id)`, `document_text(doc_id)`; `chunks`, `documents` and
    `document_texts` are read-only views (sequence / mapping) over the same store."""

    path: Path
    manifest: Manifest
    store: ChunkStore
    bm25: bm25_segments.Bm25Index
    vector_files: VectorFiles
    dense: DenseStore  # opens cheaply; a FAISS file is read on the first search
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _source_rows: dict | None = field(default=None, repr=False)

    @property
    def full_text(self) -> FullText | None:
        """BM25 run by the dense store itself (Milvus full-text search), or None: the local BM25 index serves."""
        return self.dense.full_text()

    @property
    def n_chunks(self) -> int:
        return self.store.n_chunks

    @property
    def n_documents(self) -> int:
        return self.store.n_documents

    @property
    def chunks(self) -> ChunkView:
        return ChunkView(self.store)

    @property
    def documents(self) -> DocumentView:
        return DocumentView(self.store)

    @property
    def document_texts(self) -> DocumentTexts:
        return DocumentTexts(self.store)

    @property
    def documents_by_id(self) -> DocumentsById:
        return DocumentsById(self.store)

    def source_rows(self) -> dict[str, np.ndarray]:
        """Each source's chunk rows (sorted int64), read once from the chunk store's runs (no chunk is read)."""
        if self._source_rows is None:
            with self._lock:
                if self._source_rows is None:
                    parts: dict[str, list[np.ndarray]] = {}
                    for start, stop, _, source in self.store.runs():
                        parts.setdefault(source, []).append(np.arange(start, stop, dtype=np.int64))
                    self._source_rows = {s: np.concatenate(p) for s, p in parts.items()}
        return self._source_rows

    def chunk_counts(self) -> dict[str, int]:
        """doc_id -> how many chunks it has (from the chunk store's runs)."""
        counts: dict[str, int] = {}
        for start, stop, doc_id, _ in self.store.runs():
            counts[doc_id] = counts.get(doc_id, 0) + stop - start
        return counts

    def chunk(self, row: int) -> Chunk:
        return self.store.chunk(row)

    def chunks_by_rows(self, rows: Sequence[int]) -> list[Chunk]:
        return self.store.chunks_by_rows(rows)

    def document(self, doc_id: str) -> Document | None:
        return self.store.document(doc_id)

    def document_text(self, doc_id: str) -> str:
        return self.document_texts[doc_id]

    def chunk_ids(self) -> list[str]:
        return self.store.chunk_ids()

    def rows_of_documents(self, doc_ids: Collection[str]) -> np.ndarray:
        return self.store.rows_of_documents(doc_ids)

    def document_ids(self) -> list[str]:
        return self.store.document_ids()

    def vectors(self) -> np.ndarray:
        """All chunk vectors, row i for chunk i (the exact float32 vectors, whatever the dense index)."""
        return self.vector_files.range(0, self.vector_files.ntotal)


class IndexStore:
    """Reads and writes the versioned index directory at `root`.

    `options` say which dense store the vectors go to on write and how each store builds and reaches them
    (rag.index.dense_store.StoreOptions); without them a write keeps what the index already uses.
    """

    def __init__(self, root: Path | str, options: StoreOptions | None = None, append_min_rows: int | None = None):
        self.root = Path(root)
        self.options = check_options(options or StoreOptions())
        self.append_min_rows = APPEND_MIN_ROWS if append_min_rows is None else append_min_rows

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

    def write(self, data: IndexData, fresh: bool = False) -> Path:
        """Persist `data` as a new version and make it current, atomically. Call under writer_lock.

        A large index shares the live version's files where it can: added chunks go to a new segment, and the
        segments that lose chunks are rewritten without them (nothing re-tokenised or re-embedded). `fresh`
        writes every file anew (a rebuild shares nothing with the version it replaces).
        """
        self.versions.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temps()
        previous = self._previous_manifest()
        store = self._store_name(previous)
        if not fresh and previous is not None and data.chunks and self._appendable(previous, data.manifest, store):
            try:
                change = self._changes(data, previous)
            except RagError:  # the live version is damaged: write everything anew
                change = None
            if change is not None:
                return self._write_update(previous, change, data.manifest)
        return self._write_whole(data, previous, store)

    def update(
        self,
        documents: Sequence[Document],
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        drop_documents: Collection[str] = (),
        manifest: dict | None = None,
    ) -> Path:
        """Add chunks (and their new documents) and drop the documents `drop_documents` with their chunks, as a
        new version. Call under writer_lock.

        `manifest` replaces the non-store manifest entries (files, sources, ...); by default they are kept. A large
        index gets a segment with the new rows and rewrites only the segments that lose rows; a small one is
        rewritten whole, the new rows after the old ones.
        """
        self.versions.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temps()
        previous = self._previous_manifest()
        manifest = self._carried(previous, manifest)
        drop = set(drop_documents)
        vectors = _matrix(vectors, len(chunks), Manifest(manifest).dim)
        if previous is None:
            return self._write_whole(
                IndexData(list(documents), list(chunks), vectors, manifest), None, self._store_name(None)
            )
        old = self._open_store(self.current(), previous)
        try:
            clash = old.rows_of([c.id for c in chunks])
            rows = old.rows_of_documents(drop)
            known_docs = {d.id for d in documents if old.has_document(d.id)}
        finally:
            old.close()
        if clash:
            raise ValueError(f"{len(clash)} of the chunks to add are already in the index (e.g. {next(iter(clash))})")
        documents = [d for d in documents if d.id not in known_docs]
        store = self._store_name(previous)
        emptied = not chunks and len(rows) == previous.n_chunks
        if self._appendable(previous, manifest, store) and not emptied:
            return self._write_update(previous, _Change(documents, list(chunks), vectors, rows, drop), manifest)
        loaded = self.load()
        keep = [row for row, c in enumerate(loaded.chunks) if c.doc_id not in drop]
        kept_vectors = loaded.vector_files.rows(keep)
        data = IndexData(
            [*(d for d in loaded.documents if d.id not in drop), *documents],
            [*loaded.chunks_by_rows(keep), *chunks],
            np.concatenate([kept_vectors, _matrix(vectors, len(chunks), kept_vectors.shape[1])]),
            manifest,
        )
        return self._write_whole(data, previous, store)

    def append(
        self, documents: Sequence[Document], chunks: Sequence[Chunk], vectors: np.ndarray, manifest: dict | None = None
    ) -> Path:
        """`update` that only adds."""
        return self.update(documents, chunks, vectors, (), manifest)

    def remove(self, doc_ids: Collection[str], manifest: dict | None = None) -> Path:
        """`update` that only drops documents: a large index keeps its dense index (the dropped rows are skipped)."""
        return self.update([], [], np.zeros((0, 0), np.float32), doc_ids, manifest)

    def updates_in_place(self, previous: Manifest, manifest: dict) -> bool:
        """Whether a write to the index with manifest `previous` that keeps `manifest`'s embedding and chunking
        would change only what changed (a large index in a store that updates in place, kept as it is)."""
        return self._appendable(previous, manifest, self._store_name(previous)) and not self.moves_vectors(previous)

    def moves_vectors(self, manifest: Manifest) -> bool:
        """Whether the options send the vectors of the index with `manifest` to another store, or ask its store
        to keep them otherwise (another address, another dense index kind)."""
        if self.options.store not in ("", manifest.store):
            return True
        return store_class(manifest.store).moves(self.root, self.options, manifest.dense)

    def _store_name(self, previous: Manifest | None) -> str:
        """The store a write goes to: the options', else the live version's, else the default."""
        return self.options.store or (previous.store if previous is not None else DEFAULT)

    @staticmethod
    def _carried(previous: Manifest | None, manifest: dict | None) -> dict:
        """The non-store entries of the live manifest, with `manifest`'s on top."""
        return {**(previous.info if previous is not None else {}), **(manifest or {})}

    def _appendable(self, previous: Manifest, manifest: dict, store: str) -> bool:
        """A large index staying in a store that updates in place, its embedding and chunking as they are."""
        return (
            previous.n_chunks >= self.append_min_rows
            and previous.store == store
            and store_class(store).updates_in_place
            and previous.info.get("embedding") == manifest.get("embedding")
            and previous.info.get("chunking") == manifest.get("chunking")
        )

    def _changes(self, data: IndexData, previous: Manifest) -> _Change:
        """What `data` adds to and drops from the live version."""
        for name, record in previous.artifacts.items():  # never share a damaged file (the cheap check)
            integrity.check(self.current() / name, record, full=False)
        old = self._open_store(self.current(), previous)
        try:
            old_chunks, old_docs = old.chunk_ids(), set(old.document_ids())
        finally:
            old.close()
        ids, doc_ids, known = {c.id for c in data.chunks}, {d.id for d in data.documents}, set(old_chunks)
        rows = [i for i, c in enumerate(data.chunks) if c.id not in known]
        return _Change(
            [d for d in data.documents if d.id not in old_docs],
            [data.chunks[i] for i in rows],
            np.asarray(data.vectors, dtype=np.float32)[rows],
            np.array([r for r, c in enumerate(old_chunks) if c not in ids], dtype=np.int64),
            old_docs - doc_ids,
        )

    def _write_whole(self, data: IndexData, previous: Manifest | None, store: str) -> Path:
        cls = store_class(store)
        vectors = _matrix(data.vectors, len(data.chunks), Manifest(data.manifest).dim)
        dense = cls.create(
            self.root,
            self.options,
            data.manifest["embedding"],
            self.current() if previous is not None else None,
            previous,
            self._current_chunk_ids if previous is not None else list,
        )
        dense.add(data.chunks, vectors)  # a remote store gets this version's vectors before the version exists
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.versions))
        try:
            segment = segment_files.write(tmp, data.documents, data.chunks, vectors)
            record = self._save_dense(dense, tmp, [segment])
            name = self._commit(tmp, data.manifest, [segment], record, {})
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        dense.finish()  # what the new version dropped goes only now that it is live
        if previous is not None and previous.store != cls.name:  # moved to another store
            store_class(previous.store).retire(self.root, self.options, previous.dense)
        self._remove_old_versions(keep=name)
        return self.versions / name

    @staticmethod
    def _save_dense(dense: DenseStore, tmp: Path, segments: list[dict]) -> dict:
        """`dense` saved into the new version `tmp` with the given segments; its manifest record."""
        files = VectorFiles(
            [(tmp / "segments" / s["name"] / dense_index.VECTORS, s["chunks"]) for s in segments],
            segments[0]["dim"] if segments else 0,
        )
        try:
            return dense.save(tmp, files)
        finally:
            files.close()

    def _write_update(self, previous: Manifest, change: _Change, manifest: dict) -> Path:
        """A version made of the live one's files (hard links), its segments that lose rows rewritten without
        them, and one segment with the new rows."""
        live = self.current()
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.versions))
        try:
            segments = list(previous.segments)
            artifacts = {k: v for k, v in previous.artifacts.items() if k.startswith("segments/")}
            sources = {s["name"]: live for s in segments}
            if len(change.drop_rows) or change.drop_documents:
                segments = self._drop(tmp, live, segments, sources, change)
            if change.chunks or change.documents:
                dim = previous.segments[0]["dim"]
                segments.append(
                    segment_files.write(
                        tmp, change.documents, change.chunks, _matrix(change.vectors, len(change.chunks), dim)
                    )
                )
                sources[segments[-1]["name"]] = tmp
            segments = self._merge_small(tmp, segments, sources, artifacts)
            for seg in segments:  # share the untouched segments' files with the live version
                if sources[seg["name"]] is live:
                    for rel in (k for k in previous.artifacts if k.startswith(f"segments/{seg['name']}/")):
                        _link(live / rel, tmp / rel)
            artifacts = {k: v for k, v in artifacts.items() if k.split("/")[1] in {s["name"] for s in segments}}
            dense = store_class(previous.store).load(self.root, self.options, live, previous, list, None)
            try:
                dense.delete(change.drop_rows)
                dense.add(change.chunks, change.vectors)
                record = self._save_dense(dense, tmp, segments)
            finally:
                dense.close()
            for rel, digest in previous.artifacts.items():  # files the store shared with the live version
                shared = not rel.startswith("segments/") and (tmp / rel).is_file()
                if shared and os.path.samefile(tmp / rel, live / rel):
                    artifacts[rel] = digest
            name = self._commit(tmp, manifest, segments, record, artifacts)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._remove_old_versions(keep=name)
        return self.versions / name

    def _drop(
        self, tmp: Path, live: Path, segments: list[dict], sources: dict[str, Path], change: _Change
    ) -> list[dict]:
        """The segments with `change`'s rows and documents taken out: those that hold any are rewritten in `tmp`
        (an emptied one is left out), the others kept as they are."""
        kept, first = [], 0
        for seg in segments:
            folder = live / "segments" / seg["name"]
            rows = change.drop_rows[(change.drop_rows >= first) & (change.drop_rows < first + seg["chunks"])] - first
            first += seg["chunks"]
            docs = set()
            if change.drop_documents:
                store = ChunkStore.open([(folder, seg["chunks"], seg["documents"])])
                try:
                    docs = {d for d in change.drop_documents if store.has_document(d)}
                finally:
                    store.close()
            if not len(rows) and not docs:
                kept.append(seg)
            elif len(rows) < seg["chunks"] or len(docs) < seg["documents"]:
                kept.append(segment_files.filter(folder, tmp, rows, docs, seg["dim"]))
                sources[kept[-1]["name"]] = tmp
        return kept

    def _merge_small(self, tmp: Path, segments: list[dict], sources: dict[str, Path], artifacts: dict) -> list[dict]:
        """Keep segment sizes geometric: while a segment is at most twice the next one, merge the two.

        So n appends leave O(log n) segments, and a merged row is rewritten O(log n) times.
        """
        while len(segments) >= 2 and segments[-2]["chunks"] <= 2 * segments[-1]["chunks"]:
            a, b = segments[-2], segments[-1]
            store = ChunkStore.open(
                [(sources[s["name"]] / "segments" / s["name"], s["chunks"], s["documents"]) for s in (a, b)]
            )
            files = VectorFiles(
                [(sources[s["name"]] / "segments" / s["name"] / dense_index.VECTORS, s["chunks"]) for s in (a, b)],
                a["dim"],
            )
            try:
                merged = segment_files.write(
                    tmp, list(store.iter_documents()), list(store.iter_chunks()), files.range(0, files.ntotal)
                )
            finally:
                store.close()
                files.close()
            for s in (a, b):
                if sources[s["name"]] is tmp:
                    shutil.rmtree(tmp / "segments" / s["name"])
            segments[-2:] = [merged]
            sources[merged["name"]] = tmp
        return segments

    def _commit(self, tmp: Path, manifest: dict, segments: list[dict], dense: dict, artifacts: dict) -> str:
        """Checksum what is new in `tmp`, write the manifest, fsync, rename into versions/, flip CURRENT."""
        artifacts = dict(artifacts)
        for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
            rel = path.relative_to(tmp).as_posix()
            if rel not in artifacts:  # written by this version (linked files keep their recorded digests)
                _fsync(path)
                artifacts[rel] = integrity.record(path)
        counts = {"documents": sum(s["documents"] for s in segments), "chunks": sum(s["chunks"] for s in segments)}
        full = Manifest(
            {k: v for k, v in manifest.items() if k not in CORE_KEYS},
            FORMAT_VERSION,
            dict(sorted(artifacts.items())),
            counts,
            segments,
            dense,
        )
        _fsync(full.write(tmp))
        for folder in sorted((p for p in tmp.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            _fsync(folder)
        _fsync(tmp)
        name = f"v{time.time_ns()}-{integrity.sha256_file(tmp / 'manifest.json')[:8]}"
        os.rename(tmp, self.versions / name)
        _fsync(self.versions)
        self._point_current_at(name)
        return name

    def _previous_manifest(self) -> Manifest | None:
        try:
            return self.read_manifest() if self.current() is not None else None
        except RagError:  # a damaged or old-format live version is being replaced: nothing to carry over
            return None

    def _current_chunk_ids(self) -> list[str]:
        try:
            store = self._open_store(self.current(), self.read_manifest())
        except (RagError, OSError, KeyError):
            return []
        try:
            return store.chunk_ids()
        except RagError:
            return []
        finally:
            store.close()

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
        """Keep the live version and the one before it (a reader may still be opening it).

        Files shared by hard links live on while any version still names them."""
        old = sorted(
            (p for p in self.versions.iterdir() if p.name.startswith("v") and p.name != keep),
            key=lambda p: p.stat().st_mtime,
        )
        for path in old[:-1]:
            shutil.rmtree(path, ignore_errors=True)

    # -- reading -------------------------------------------------------------------------------

    def read_manifest(self, version: Path | None = None) -> Manifest:
        """The manifest of `version` (the live one by default), its format version checked."""
        version = version or self.current()
        if version is None:
            raise IndexMissing(f"no index at {self.root}: build one with `rag index`")
        return Manifest.read(version)

    def load(self, expected_model: str | None = None) -> LoadedIndex:
        """Open the live version, checking the artifacts' checksums and the embedding model.

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

    def verify(self) -> dict:
        """Check every byte of every artifact of the live version against its sha256 (what `rag verify` runs)."""
        version = self.current()
        manifest = self.read_manifest(version)
        started = time.perf_counter()
        total = 0
        for name, record in manifest.artifacts.items():
            integrity.check(version / name, record, full=True)
            total += record["bytes"]
        return {
            "version": version.name,
            "artifacts": len(manifest.artifacts),
            "bytes": total,
            "seconds": round(time.perf_counter() - started, 2),
        }

    def _open_store(self, version: Path, manifest: Manifest) -> ChunkStore:
        return ChunkStore.open(
            [(version / "segments" / s["name"], s["chunks"], s["documents"]) for s in manifest.segments]
        )

    def _load_version(self, version: Path | None, expected_model: str | None) -> LoadedIndex:
        manifest = self.read_manifest(version)
        model = manifest.model
        if expected_model is not None and model != expected_model:
            raise IndexMismatch(
                f"index was built with embedding model {model!r}, settings say {expected_model!r}: "
                f"{REBUILD_HINT} (or set RAG_EMBEDDING_MODEL={model})"
            )
        for name, record in manifest.artifacts.items():
            integrity.check(version / name, record, full=False)
        segments = manifest.segments
        store = self._open_store(version, manifest)
        try:
            folders = [version / "segments" / s["name"] for s in segments]
            dim = segments[0]["dim"] if segments else manifest.dim
            vectors = VectorFiles(
                [(f / dense_index.VECTORS, s["chunks"]) for f, s in zip(folders, segments, strict=True)], dim
            )
            starts = np.cumsum([0] + [s["chunks"] for s in segments])[:-1].tolist()
            bm25 = bm25_segments.Bm25Index.open(list(zip((f / "bm25" for f in folders), starts, strict=True)))
            dense = store_class(manifest.store).load(
                self.root, self.options, version, manifest, store.chunk_ids, vectors
            )
        except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
            store.close()
            raise IndexCorrupt(f"cannot read the index at {version} ({exc}): {REBUILD_HINT}") from None
        if (
            store.n_chunks != manifest.counts.get("chunks")
            or vectors.ntotal != store.n_chunks
            or bm25.num_docs != store.n_chunks
            or dense.count() != store.n_chunks
        ):
            store.close()
            dense.close()
            raise IndexCorrupt(
                f"{version}: {vectors.ntotal} vectors and {bm25.num_docs} BM25 rows for "
                f"{store.n_chunks} chunks: {REBUILD_HINT}"
            )
        return LoadedIndex(version, manifest, store, bm25, vectors, dense)


def _matrix(vectors, rows: int, dim: int | None) -> np.ndarray:
    """`vectors` as a (rows, dim) float32 array (an empty list of chunks may come with an empty array of any shape)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if rows == 0:
        return np.zeros((0, int(dim or (vectors.shape[-1] if vectors.ndim == 2 else 0))), dtype=np.float32)
    if vectors.ndim == 2 and len(vectors) == rows:
        return vectors
    return vectors.reshape(rows, -1)
