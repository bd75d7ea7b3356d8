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
elsewhere. With the Milvus store the vectors are searched in a collection (rag.index.milvus_store) instead of
dense.faiss.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
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
from rag.index.dense import Choice, DenseIndex, VectorFiles
from rag.index.milvus_store import StoreOptions, begin_write, drop_collection, open_dense
from rag.types import Chunk, Document

FORMAT_VERSION = 3  # 2: JSONL chunks and documents, pages and headings; 3: SQLite chunk store, segments, dense kinds
REBUILD_HINT = "rebuild it with `rag index --rebuild`"
APPEND_MIN_ROWS = 20_000  # smaller indexes are rewritten whole on every change (row order as a fresh build)
_CORE_KEYS = ("format_version", "artifacts", "counts", "segments", "dense")  # what the store owns in a manifest


@dataclass
class IndexData:
    """The whole content of one index version, in memory."""

    documents: list[Document]
    chunks: list[Chunk]
    vectors: np.ndarray  # (len(chunks), dim) float32, row i is chunks[i]
    manifest: dict


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
    manifest: dict
    store: ChunkStore
    bm25: object  # rag.index.bm25.Bm25Index
    vector_files: VectorFiles
    full_text: object = None  # rag.index.milvus_store.MilvusFullText where BM25 runs in Milvus, else None
    _dense: object = None  # DenseIndex or rag.index.milvus_store.MilvusDense; the FAISS file is read on first use
    _dense_file: object = field(default=None, repr=False)  # held open from load, so a pruned version still reads
    _dense_ids: np.ndarray | None = field(default=None, repr=False)  # dense-ids.npy, read at load (after removals)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _source_rows: dict | None = field(default=None, repr=False)

    @property
    def dense(self):
        """The dense index (search/ntotal/d/reconstruct_n); read from dense.faiss on first use."""
        if self._dense is None:
            with self._lock:
                if self._dense is None:
                    record = self.manifest.get("dense") or {}
                    main = dense_index.read_file(self._dense_file, self.path / dense_index.FILE)
                    self._dense = DenseIndex(record.get("index", "flat"), main, self.vector_files, record.get("params"),
                                             self._dense_ids)
                    if self._dense.main_rows != record.get("rows", self._dense.main_rows):
                        raise IndexCorrupt(f"{self.path}/dense.faiss holds {self._dense.main_rows} rows, the manifest "
                                           f"says {record.get('rows')}: {REBUILD_HINT}")
                    self._dense_file.close()
        return self._dense

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


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _link(src: Path, dst: Path) -> None:
    """Share an immutable file with the previous version (a copy where hard links are not possible)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


class IndexStore:
    """Reads and writes the versioned index directory at `root`.

    `options` say where dense vectors go on write (FAISS file or Milvus collection), which dense index to build
    and how to reach Milvus on read; without them a write keeps what the index already uses.
    """

    def __init__(self, root: Path | str, options: StoreOptions | None = None, append_min_rows: int | None = None):
        self.root = Path(root)
        self.options = options or StoreOptions()
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
        store = self.options.store or (previous or {}).get("dense", {}).get("store", "faiss")
        if not fresh and store == "faiss" and previous is not None and data.chunks \
                and self._appendable(previous, data.manifest):
            try:
                change = self._changes(data, previous)
            except RagError:  # the live version is damaged: write everything anew
                change = None
            if change is not None:
                return self._write_update(previous, change, data.manifest)
        return self._write_whole(data, previous, store)

    def update(self, documents: Sequence[Document], chunks: Sequence[Chunk], vectors: np.ndarray,
               drop_documents: Collection[str] = (), manifest: dict | None = None) -> Path:
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
        vectors = _matrix(vectors, len(chunks), manifest.get("embedding", {}).get("dim"))
        if previous is None:
            return self._write_whole(IndexData(list(documents), list(chunks), vectors, manifest), None,
                                     self.options.store or "faiss")
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
        store = self.options.store or previous.get("dense", {}).get("store", "faiss")
        emptied = not chunks and len(rows) == previous["counts"]["chunks"]
        if store == "faiss" and self._appendable(previous, manifest) and not emptied:
            return self._write_update(previous, _Change(documents, list(chunks), vectors, rows, drop), manifest)
        loaded = self.load()
        keep = [row for row, c in enumerate(loaded.chunks) if c.doc_id not in drop]
        kept_vectors = loaded.vector_files.rows(keep)
        data = IndexData([*(d for d in loaded.documents if d.id not in drop), *documents],
                         [*loaded.chunks_by_rows(keep), *chunks],
                         np.concatenate([kept_vectors, _matrix(vectors, len(chunks), kept_vectors.shape[1])]), manifest)
        return self._write_whole(data, previous, store)

    def append(self, documents: Sequence[Document], chunks: Sequence[Chunk], vectors: np.ndarray,
               manifest: dict | None = None) -> Path:
        """`update` that only adds."""
        return self.update(documents, chunks, vectors, (), manifest)

    def remove(self, doc_ids: Collection[str], manifest: dict | None = None) -> Path:
        """`update` that only drops documents: a large index keeps its dense index (the dropped rows are skipped)."""
        return self.update([], [], np.zeros((0, 0), np.float32), doc_ids, manifest)

    def updates_in_place(self, previous: dict, manifest: dict) -> bool:
        """Whether a write to the index with manifest `previous` that keeps `manifest`'s embedding and chunking
        would change only what changed (a large FAISS index keeping its dense index)."""
        return (self.options.store or "faiss") == "faiss" and self._appendable(previous, manifest) \
            and not self.changes_dense_index(previous)

    @staticmethod
    def _carried(previous: dict | None, manifest: dict | None) -> dict:
        """The non-store entries of the live manifest, with `manifest`'s on top."""
        return {**{k: v for k, v in (previous or {}).items() if k not in _CORE_KEYS}, **(manifest or {})}

    def _appendable(self, previous: dict, manifest: dict) -> bool:
        """A large FAISS index whose embedding and chunking stay as they are."""
        return previous.get("counts", {}).get("chunks", 0) >= self.append_min_rows \
            and (previous.get("dense") or {}).get("store") == "faiss" \
            and previous.get("embedding") == manifest.get("embedding") \
            and previous.get("chunking") == manifest.get("chunking")

    def _changes(self, data: IndexData, previous: dict) -> _Change:
        """What `data` adds to and drops from the live version."""
        for name, record in previous["artifacts"].items():  # never share a damaged file (the cheap check)
            integrity.check(self.current() / name, record, full=False)
        old = self._open_store(self.current(), previous)
        try:
            old_chunks, old_docs = old.chunk_ids(), set(old.document_ids())
        finally:
            old.close()
        ids, doc_ids, known = {c.id for c in data.chunks}, {d.id for d in data.documents}, set(old_chunks)
        rows = [i for i, c in enumerate(data.chunks) if c.id not in known]
        return _Change([d for d in data.documents if d.id not in old_docs], [data.chunks[i] for i in rows],
                       np.asarray(data.vectors, dtype=np.float32)[rows],
                       np.array([r for r, c in enumerate(old_chunks) if c not in ids], dtype=np.int64),
                       old_docs - doc_ids)

    def changes_dense_index(self, manifest: dict) -> bool:
        """Whether the options ask for another dense index than the one the index with `manifest` records."""
        recorded = (manifest.get("dense") or {}).get("choice", "flat")
        return bool(self.options.dense_index) and Choice.parse(self.options.dense_index) != Choice.parse(recorded)

    def _choice(self, previous: dict | None) -> Choice:
        requested = self.options.dense_index or ((previous or {}).get("dense") or {}).get("choice") or "flat"
        return Choice.parse(requested)

    def _write_whole(self, data: IndexData, previous: dict | None, store: str) -> Path:
        milvus = None
        if store == "milvus":  # the collection gets this version's vectors before the version exists
            milvus = begin_write(self.root, self.options, data.chunks, data.vectors, data.manifest["embedding"],
                                 previous, self._current_chunk_ids() if previous else [])
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.versions))
        try:
            vectors = _matrix(data.vectors, len(data.chunks), data.manifest.get("embedding", {}).get("dim"))
            segment = segment_files.write(tmp, data.documents, data.chunks, vectors)
            if milvus is None:
                choice = self._choice(previous)
                kind = choice.kind_for(len(data.chunks))
                like, like_params = self._previous_dense(previous, kind)
                index, params = dense_index.build(kind, vectors, like, like_params)
                dense_index.write(index, tmp / dense_index.FILE)
                record = {"store": "faiss", "index": kind, "choice": str(choice), "rows": len(data.chunks),
                          "params": params}
            else:
                record = milvus.record
            name = self._commit(tmp, data.manifest, [segment], record, {})
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if milvus is not None:  # rows the new version dropped go only now that it is live
            milvus.finish(self.root, self.options)
        elif (previous or {}).get("dense", {}).get("store") == "milvus":  # moved back to FAISS
            drop_collection(self.root, self.options, previous["dense"])
        self._remove_old_versions(keep=name)
        return self.versions / name

    def _previous_dense(self, previous: dict | None, kind: str):
        """The live IVF-PQ index, when the new one may reuse its training."""
        record = (previous or {}).get("dense") or {}
        if kind != "ivf-pq" or record.get("index") != "ivf-pq":
            return None, None
        try:
            return dense_index.read(self.current() / dense_index.FILE), record.get("params")
        except (RagError, OSError):
            return None, None

    def _write_update(self, previous: dict, change: _Change, manifest: dict) -> Path:
        """A version made of the live one's files (hard links), its segments that lose rows rewritten without
        them, and one segment with the new rows."""
        live = self.current()
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.versions))
        try:
            segments = list(previous["segments"])
            artifacts = {k: v for k, v in previous["artifacts"].items() if k.startswith("segments/")}
            sources = {s["name"]: live for s in segments}
            if len(change.drop_rows) or change.drop_documents:
                segments = self._drop(tmp, live, segments, sources, change)
            if change.chunks or change.documents:
                dim = previous["segments"][0]["dim"]
                segments.append(segment_files.write(tmp, change.documents, change.chunks,
                                               _matrix(change.vectors, len(change.chunks), dim)))
                sources[segments[-1]["name"]] = tmp
            segments = self._merge_small(tmp, segments, sources, artifacts)
            for seg in segments:  # share the untouched segments' files with the live version
                if sources[seg["name"]] is live:
                    for rel in (k for k in previous["artifacts"] if k.startswith(f"segments/{seg['name']}/")):
                        _link(live / rel, tmp / rel)
            artifacts = {k: v for k, v in artifacts.items() if k.split("/")[1] in {s["name"] for s in segments}}
            record = self._update_dense(tmp, live, previous, segments, artifacts, change.drop_rows)
            name = self._commit(tmp, manifest, segments, record, artifacts)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._remove_old_versions(keep=name)
        return self.versions / name

    def _drop(self, tmp: Path, live: Path, segments: list[dict], sources: dict[str, Path],
              change: _Change) -> list[dict]:
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
            store = ChunkStore.open([(sources[s["name"]] / "segments" / s["name"], s["chunks"], s["documents"])
                                     for s in (a, b)])
            files = VectorFiles([(sources[s["name"]] / "segments" / s["name"] / dense_index.VECTORS, s["chunks"])
                                 for s in (a, b)], a["dim"])
            try:
                merged = segment_files.write(tmp, list(store.iter_documents()), list(store.iter_chunks()),
                                        files.range(0, files.ntotal))
            finally:
                store.close()
                files.close()
            for s in (a, b):
                if sources[s["name"]] is tmp:
                    shutil.rmtree(tmp / "segments" / s["name"])
            segments[-2:] = [merged]
            sources[merged["name"]] = tmp
        return segments

    def _update_dense(self, tmp: Path, live: Path, previous: dict, segments: list[dict], artifacts: dict,
                      drop_rows: np.ndarray) -> dict:
        """The dense index of the new version. The live dense.faiss is kept while it can serve: rows dropped from
        it are skipped through `dense-ids.npy` (its ids -> rows, -1 for dropped ones) until a quarter of it is
        dropped, and appended rows are searched exactly beside it until there are TAIL_MAX_ROWS of them, when
        FAISS's `add` folds them in. A kind change, a grown IVF-PQ or too many dropped rows build it anew."""
        record = dict(previous["dense"])
        total = sum(s["chunks"] for s in segments)
        choice = self._choice(previous)
        kind = choice.kind_for(total)
        ids = dense_index.renumbered(self._dense_ids(live, record), record["rows"], drop_rows)
        covered = int((ids >= 0).sum()) if ids is not None else record["rows"]  # rows 0..covered-1 are in it
        params = record.get("params", {})
        grown = kind == "ivf-pq" and total > dense_index.RETRAIN_GROWTH * params.get("trained_rows", total)
        files = VectorFiles([(tmp / "segments" / s["name"] / dense_index.VECTORS, s["chunks"]) for s in segments],
                            segments[0]["dim"] if segments else 0)
        try:
            worn = ids is not None and (ids < 0).mean() > dense_index.DROPPED_MAX_SHARE
            if kind != record["index"] or grown or worn:
                like, like_params = self._previous_dense(previous, kind) if not grown else (None, None)
                index, params = dense_index.build(kind, files.range(0, total), like, like_params)
                ids = covered = None
            elif total - covered > dense_index.TAIL_MAX_ROWS:
                index = dense_index.read(live / dense_index.FILE)
                dense_index.extend(index, files.range(covered, total))
                if ids is not None:
                    ids = np.concatenate([ids, np.arange(covered, total)])
            else:
                _link(live / dense_index.FILE, tmp / dense_index.FILE)
                artifacts[dense_index.FILE] = previous["artifacts"][dense_index.FILE]
                index = None
        finally:
            files.close()
        if index is not None:
            dense_index.write(index, tmp / dense_index.FILE)
            covered = total
        if ids is not None and (ids < 0).any():
            np.save(tmp / dense_index.IDS, ids, allow_pickle=False)
        else:
            ids = None
        return {"store": "faiss", "index": kind, "choice": str(choice), "rows": covered, "params": params,
                **({"dropped": int((ids < 0).sum())} if ids is not None else {})}

    def _dense_ids(self, version: Path, record: dict) -> np.ndarray | None:
        """The live dense index's map from its ids to rows, or None where id i is row i."""
        return np.load(version / dense_index.IDS, allow_pickle=False) if record.get("dropped") else None

    def _commit(self, tmp: Path, manifest: dict, segments: list[dict], dense: dict, artifacts: dict) -> str:
        """Checksum what is new in `tmp`, write the manifest, fsync, rename into versions/, flip CURRENT."""
        artifacts = dict(artifacts)
        for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
            rel = path.relative_to(tmp).as_posix()
            if rel not in artifacts:  # written by this version (linked files keep their recorded digests)
                _fsync(path)
                artifacts[rel] = integrity.record(path)
        base = {k: v for k, v in manifest.items() if k not in _CORE_KEYS}
        full = {**base, "format_version": FORMAT_VERSION, "artifacts": dict(sorted(artifacts.items())),
                "counts": {"documents": sum(s["documents"] for s in segments),
                           "chunks": sum(s["chunks"] for s in segments)},
                "segments": segments, "dense": dense}
        (tmp / "manifest.json").write_text(json.dumps(full, indent=2, ensure_ascii=False), encoding="utf-8")
        _fsync(tmp / "manifest.json")
        for folder in sorted((p for p in tmp.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            _fsync(folder)
        _fsync(tmp)
        name = f"v{time.time_ns()}-{integrity.sha256_file(tmp / 'manifest.json')[:8]}"
        os.rename(tmp, self.versions / name)
        _fsync(self.versions)
        self._point_current_at(name)
        return name

    def _previous_manifest(self) -> dict | None:
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
        found = manifest.get("format_version")
        if found != FORMAT_VERSION:
            why = " (chunks and documents in JSONL files read whole at open)" if found in (1, 2) else ""
            raise IndexMismatch(f"index format {found} at {version}{why}, this version reads format "
                                f"{FORMAT_VERSION} (chunks on disk, segments, choice of dense index): {REBUILD_HINT}")
        return manifest

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
        for name, record in manifest["artifacts"].items():
            integrity.check(version / name, record, full=True)
            total += record["bytes"]
        return {"version": version.name, "artifacts": len(manifest["artifacts"]), "bytes": total,
                "seconds": round(time.perf_counter() - started, 2)}

    def _open_store(self, version: Path, manifest: dict) -> ChunkStore:
        return ChunkStore.open([(version / "segments" / s["name"], s["chunks"], s["documents"])
                                for s in manifest["segments"]])

    def _load_version(self, version: Path | None, expected_model: str | None) -> LoadedIndex:
        manifest = self.read_manifest(version)
        model = manifest.get("embedding", {}).get("model")
        if expected_model is not None and model != expected_model:
            raise IndexMismatch(
                f"index was built with embedding model {model!r}, settings say {expected_model!r}: "
                f"{REBUILD_HINT} (or set RAG_EMBEDDING_MODEL={model})"
            )
        for name, record in manifest.get("artifacts", {}).items():
            integrity.check(version / name, record, full=False)
        segments = manifest["segments"]
        store = self._open_store(version, manifest)
        try:
            folders = [version / "segments" / s["name"] for s in segments]
            dim = segments[0]["dim"] if segments else int(manifest.get("embedding", {}).get("dim", 0))
            vectors = VectorFiles([(f / dense_index.VECTORS, s["chunks"])
                                   for f, s in zip(folders, segments, strict=True)], dim)
            starts = np.cumsum([0] + [s["chunks"] for s in segments])[:-1].tolist()
            bm25 = bm25_segments.Bm25Index.open(list(zip((f / "bm25" for f in folders), starts, strict=True)))
            dense = full_text = dense_file = dense_ids = None
            if manifest.get("dense", {}).get("store") == "milvus":
                dense, full_text = open_dense(self.root, self.options, manifest, store.chunk_ids())
            else:
                dense_file = open(version / dense_index.FILE, "rb")
                dense_ids = self._dense_ids(version, manifest["dense"])
        except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
            store.close()
            raise IndexCorrupt(f"cannot read the index at {version} ({exc}): {REBUILD_HINT}") from None
        counts = manifest.get("counts", {})
        if store.n_chunks != counts.get("chunks") or vectors.ntotal != store.n_chunks \
                or bm25.num_docs != store.n_chunks or (dense is not None and dense.ntotal != store.n_chunks):
            store.close()
            raise IndexCorrupt(f"{version}: {vectors.ntotal} vectors and {bm25.num_docs} BM25 rows for "
                               f"{store.n_chunks} chunks: {REBUILD_HINT}")
        return LoadedIndex(version, manifest, store, bm25, vectors, full_text, dense, dense_file, dense_ids)


def _matrix(vectors, rows: int, dim: int | None) -> np.ndarray:
    """`vectors` as a (rows, dim) float32 array (an empty list of chunks may come with an empty array of any shape)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if rows == 0:
        return np.zeros((0, int(dim or (vectors.shape[-1] if vectors.ndim == 2 else 0))), dtype=np.float32)
    if vectors.ndim == 2 and len(vectors) == rows:
        return vectors
    return vectors.reshape(rows, -1)
