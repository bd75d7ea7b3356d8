"""Chunk texts, chunk metadata and document texts on disk, in one SQLite file per segment, read on demand.

A version's rows are numbered across its segments in order; `ChunkStore` answers "these rows", "this document",
"every chunk" without reading anything at open time, so opening a million-chunk index costs what opening a
few files costs. The files are immutable once written (opened read-only with SQLite's `immutable` flag),
which is what lets versions share them. Checksums and the version swap are the store's (rag.index.store) business.
"""

from __future__ import annotations

import bisect
import json
import sqlite3
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from rag.errors import IndexCorrupt
from rag.types import Chunk, Document

REBUILD_HINT = "rebuild it with `rag index --rebuild`"
FILE = "chunks.sqlite"
PAGE = 1000  # rows per query when streaming
_CHUNK_COLUMNS = "row, id, doc_id, source, char_start, char_end, text, page, page_end, section"
_DOCUMENT_COLUMNS = "id, source, title, text, pages, headings"
_SCHEMA = """
CREATE TABLE chunks (row INTEGER PRIMARY KEY, id TEXT NOT NULL, doc_id TEXT NOT NULL, source TEXT NOT NULL,
                     char_start INTEGER NOT NULL, char_end INTEGER NOT NULL, text TEXT NOT NULL,
                     page INTEGER, page_end INTEGER, section TEXT NOT NULL);
CREATE TABLE documents (pos INTEGER PRIMARY KEY, id TEXT NOT NULL, source TEXT NOT NULL, title TEXT NOT NULL,
                        text TEXT NOT NULL, pages TEXT NOT NULL, headings TEXT NOT NULL);
CREATE TABLE runs (start INTEGER PRIMARY KEY, stop INTEGER NOT NULL, doc_id TEXT NOT NULL, source TEXT NOT NULL);
"""
_INDEXES = "CREATE UNIQUE INDEX chunk_ids ON chunks(id); CREATE UNIQUE INDEX document_ids ON documents(id);"


def write_segment(path: Path, documents: Iterable[Document], chunks: Iterable[Chunk]) -> tuple[int, int]:
    """Write one segment's documents and chunks (local rows 0..n-1 in the given order); returns their counts.

    `runs` records each stretch of consecutive rows of one document, so the rows of a source or a document are
    known without reading the chunks (a document's chunks are written together, so usually one run each)."""
    db = sqlite3.connect(path)
    runs: list[list] = []

    def rows():
        for row, c in enumerate(chunks):
            if runs and runs[-1][1] == row and runs[-1][2] == c.doc_id:
                runs[-1][1] = row + 1
            else:
                runs.append([row, row + 1, c.doc_id, c.source])
            yield row, c.id, c.doc_id, c.source, c.start, c.end, c.text, c.page, c.page_end, c.section

    try:
        db.execute("PRAGMA journal_mode=OFF")  # a fresh file in a temp dir: the version swap is the transaction
        db.execute("PRAGMA synchronous=OFF")  # the store fsyncs the finished file
        db.executescript(_SCHEMA)
        db.executemany(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    pos,
                    d.id,
                    d.source,
                    d.title,
                    d.text,
                    json.dumps(list(d.pages)),
                    json.dumps([list(h) for h in d.headings], ensure_ascii=False),
                )
                for pos, d in enumerate(documents)
            ),
        )
        db.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows())
        db.executemany("INSERT INTO runs VALUES (?, ?, ?, ?)", runs)
        db.executescript(_INDEXES)
        db.commit()
        n_docs = db.execute("SELECT count(*) FROM documents").fetchone()[0]
        n_chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
    except sqlite3.IntegrityError as exc:
        raise ValueError(f"duplicate chunk or document id in one segment ({exc})") from None
    finally:
        db.close()
    return n_docs, n_chunks


def filter_segment(source: Path, path: Path, drop_rows: np.ndarray, drop_documents: Collection[str]) -> tuple[int, int]:
    """Write to `path` segment `source` without its (local, sorted) rows `drop_rows` and the documents
    `drop_documents`, rows renumbered in order; returns the counts, as `write_segment`."""
    old = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        runs = old.execute("SELECT start, stop, doc_id, source FROM runs ORDER BY start").fetchall()
    finally:
        old.close()
    db = sqlite3.connect(path.resolve().as_uri(), uri=True)  # a URI connection, so ATTACH takes a URI too
    try:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.executescript(_SCHEMA)
        db.execute("ATTACH DATABASE ? AS old", (f"{source.resolve().as_uri()}?mode=ro&immutable=1",))
        db.execute("CREATE TEMP TABLE drop_rows (row INTEGER PRIMARY KEY)")
        db.executemany("INSERT INTO drop_rows VALUES (?)", ((int(r),) for r in drop_rows))
        db.execute("CREATE TEMP TABLE drop_documents (id TEXT PRIMARY KEY)")
        db.executemany("INSERT INTO drop_documents VALUES (?)", ((d,) for d in drop_documents))
        db.execute(
            f"INSERT INTO documents SELECT row_number() OVER (ORDER BY pos) - 1, {_DOCUMENT_COLUMNS} "
            "FROM old.documents WHERE id NOT IN (SELECT id FROM drop_documents) ORDER BY pos"
        )
        columns = _CHUNK_COLUMNS.removeprefix("row, ")
        db.execute(
            f"INSERT INTO chunks SELECT row_number() OVER (ORDER BY row) - 1, {columns} "
            "FROM old.chunks WHERE row NOT IN (SELECT row FROM drop_rows) ORDER BY row"
        )
        db.executemany("INSERT INTO runs VALUES (?, ?, ?, ?)", _kept_runs(runs, np.asarray(drop_rows, np.int64)))
        db.executescript(_INDEXES)
        db.commit()
        n_docs = db.execute("SELECT count(*) FROM documents").fetchone()[0]
        n_chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        db.execute("DETACH DATABASE old")
    finally:
        db.close()
    return n_docs, n_chunks


def _kept_runs(runs: list[tuple], drop: np.ndarray) -> list[list]:
    """The runs of rows left when the sorted rows `drop` go and the rest move up."""
    kept: list[list] = []
    for start, stop, doc_id, source in runs:
        before, through = np.searchsorted(drop, [start, stop]).tolist()
        if stop - start > through - before:
            start, stop = start - before, stop - through
            if kept and kept[-1][1] == start and kept[-1][2] == doc_id:
                kept[-1][1] = stop
            else:
                kept.append([start, stop, doc_id, source])
    return kept


def _chunk(row: tuple) -> Chunk:
    return Chunk(*row[1:])


def _document(row: tuple) -> Document:
    doc_id, source, title, text, pages, headings = row
    return Document.from_dict(
        {
            "id": doc_id,
            "source": source,
            "title": title,
            "text": text,
            "pages": json.loads(pages),
            "headings": json.loads(headings),
        }
    )


class Segment:
    """One read-only SQLite segment; rows are local. Safe to share between threads."""

    def __init__(self, path: Path, first_row: int, n_chunks: int, n_documents: int):
        self.path, self.first_row, self.n_chunks, self.n_documents = path, first_row, n_chunks, n_documents
        self._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True, check_same_thread=False)
        self._lock = threading.Lock()

    def query(self, sql: str, args: Sequence = ()) -> list[tuple]:
        try:
            with self._lock:
                return self._db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise IndexCorrupt(f"{self.path} cannot be read ({exc}): {REBUILD_HINT}") from None

    def close(self) -> None:
        self._db.close()


class ChunkStore:
    """The chunks and documents of one version, across its segments, fetched by row or id on demand."""

    def __init__(self, segments: list[Segment]):
        self.segments = segments
        self._starts = [s.first_row for s in segments]
        self.n_chunks = sum(s.n_chunks for s in segments)
        self.n_documents = sum(s.n_documents for s in segments)

    @classmethod
    def open(cls, folders: Sequence[tuple[Path, int, int]]) -> ChunkStore:
        """`folders`: (segment folder, chunks, documents) in row order."""
        segments, first = [], 0
        try:
            for folder, n_chunks, n_docs in folders:
                segments.append(Segment(folder / FILE, first, n_chunks, n_docs))
                first += n_chunks
        except sqlite3.Error as exc:
            raise IndexCorrupt(f"cannot open the chunk store ({exc}): {REBUILD_HINT}") from None
        return cls(segments)

    def close(self) -> None:
        for s in self.segments:
            s.close()

    def _segment(self, row: int) -> Segment:
        if not 0 <= row < self.n_chunks:
            raise IndexError(f"row {row} out of range 0..{self.n_chunks - 1}")
        return self.segments[bisect.bisect_right(self._starts, row) - 1]

    def chunks_by_rows(self, rows: Sequence[int]) -> list[Chunk]:
        """The chunks at `rows`, in that order (one query per segment touched)."""
        wanted: dict[int, list[int]] = {}
        for row in rows:
            wanted.setdefault(id(seg := self._segment(int(row))), []).append(int(row) - seg.first_row)
        found: dict[int, Chunk] = {}
        for seg in self.segments:
            local = wanted.get(id(seg))
            for start in range(0, len(local or ()), 900):  # SQLite's limit on bound parameters
                part = local[start : start + 900]
                marks = ",".join("?" * len(part))
                for r in seg.query(f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE row IN ({marks})", part):
                    found[seg.first_row + r[0]] = _chunk(r)
        try:
            return [found[int(row)] for row in rows]
        except KeyError as exc:
            raise IndexCorrupt(f"chunk row {exc} is missing from the chunk store: {REBUILD_HINT}") from None

    def chunk(self, row: int) -> Chunk:
        return self.chunks_by_rows([row])[0]

    def iter_chunks(self, start: int = 0, stop: int | None = None) -> Iterator[Chunk]:
        """Chunks of rows start..stop-1 in row order, read a page at a time."""
        stop = self.n_chunks if stop is None else min(stop, self.n_chunks)
        for seg in self.segments:
            lo, hi = max(start - seg.first_row, 0), min(stop - seg.first_row, seg.n_chunks)
            while lo < hi:
                page = seg.query(
                    f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE row >= ? AND row < ? ORDER BY row",
                    (lo, min(lo + PAGE, hi)),
                )
                if len(page) != min(PAGE, hi - lo):
                    raise IndexCorrupt(f"{seg.path} lacks rows {lo}..{min(lo + PAGE, hi) - 1}: {REBUILD_HINT}")
                yield from map(_chunk, page)
                lo += PAGE

    def chunk_ids(self) -> list[str]:
        """Every chunk id in row order."""
        return [r[0] for seg in self.segments for r in seg.query("SELECT id FROM chunks ORDER BY row")]

    def rows_of(self, ids: Sequence[str]) -> dict[str, int]:
        """id -> row for the given chunk ids that are in the store."""
        out = {}
        for seg in self.segments:
            for start in range(0, len(ids), 900):
                part = list(ids[start : start + 900])
                marks = ",".join("?" * len(part))
                for chunk_id, row in seg.query(f"SELECT id, row FROM chunks WHERE id IN ({marks})", part):
                    out[chunk_id] = seg.first_row + row
        return out

    def document(self, doc_id: str) -> Document | None:
        for seg in self.segments:
            found = seg.query(f"SELECT {_DOCUMENT_COLUMNS} FROM documents WHERE id = ?", (doc_id,))
            if found:
                return _document(found[0])
        return None

    def has_document(self, doc_id: str) -> bool:
        return any(seg.query("SELECT 1 FROM documents WHERE id = ?", (doc_id,)) for seg in self.segments)

    def rows_of_documents(self, doc_ids: Collection[str]) -> np.ndarray:
        """The sorted rows of every chunk of the documents `doc_ids` (from the runs: no chunk is read)."""
        parts = [np.arange(a, b, dtype=np.int64) for a, b, doc_id, _ in self.runs() if doc_id in doc_ids]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def runs(self) -> list[tuple[int, int, str, str]]:
        """(start, stop, doc_id, source) for each stretch of consecutive rows of one document, in row order."""
        return [
            (seg.first_row + a, seg.first_row + b, doc_id, source)
            for seg in self.segments
            for a, b, doc_id, source in seg.query("SELECT start, stop, doc_id, source FROM runs ORDER BY start")
        ]

    def iter_documents(self) -> Iterator[Document]:
        for seg in self.segments:
            pos = -1
            while True:
                page = seg.query(
                    f"SELECT pos, {_DOCUMENT_COLUMNS} FROM documents WHERE pos > ? ORDER BY pos LIMIT ?", (pos, PAGE)
                )
                if not page:
                    break
                yield from (_document(r[1:]) for r in page)
                pos = page[-1][0]

    def document_ids(self) -> list[str]:
        return [r[0] for seg in self.segments for r in seg.query("SELECT id FROM documents ORDER BY pos")]


class _View(Sequence):
    """A read-only sequence over the store, never loaded whole; equal to any sequence with the same items."""

    noun = "items"

    def __init__(self, store: ChunkStore):
        self._store = store

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and len(other) == len(self) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{len(self)} {self.noun}>"


class ChunkView(_View):
    """`index.chunks`: len, [row], slices and iteration in row order."""

    noun = "chunks"

    def __len__(self) -> int:
        return self._store.n_chunks

    def __getitem__(self, item):
        if isinstance(item, slice):
            return self._store.chunks_by_rows(range(*item.indices(len(self))))
        row = item + len(self) if item < 0 else item
        return self._store.chunk(row)

    def __iter__(self) -> Iterator[Chunk]:
        return self._store.iter_chunks()


class DocumentView(_View):
    """`index.documents`: the documents in the order they were written, fetched from the store on demand."""

    noun = "documents"

    def __len__(self) -> int:
        return self._store.n_documents

    def __getitem__(self, item):
        if isinstance(item, slice):
            return list(self)[item]
        n = len(self)
        item = item + n if item < 0 else item
        if not 0 <= item < n:
            raise IndexError(item)
        for i, doc in enumerate(self):  # by position: rare (callers look documents up by id)
            if i == item:
                return doc
        raise IndexError(item)

    def __iter__(self) -> Iterator[Document]:
        return self._store.iter_documents()


class DocumentTexts(Mapping):
    """doc_id -> document text, looked up on demand (what citations check quotes against)."""

    def __init__(self, store: ChunkStore):
        self._store = store

    def __getitem__(self, doc_id: str) -> str:
        doc = self._store.document(doc_id)
        if doc is None:
            raise KeyError(doc_id)
        return doc.text

    def __contains__(self, doc_id) -> bool:
        return isinstance(doc_id, str) and self._store.has_document(doc_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self._store.document_ids())

    def __len__(self) -> int:
        return self._store.n_documents


class DocumentsById(DocumentTexts):
    """doc_id -> Document (with its page and heading markers), looked up on demand (what citations locate with)."""

    def __getitem__(self, doc_id: str) -> Document:
        doc = self._store.document(doc_id)
        if doc is None:
            raise KeyError(doc_id)
        return doc
