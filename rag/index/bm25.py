"""BM25 over segments on disk: raw term frequencies per segment, scored at query time with corpus-wide statistics.

Each segment folder holds `terms.sqlite` (term -> where its postings start, how many), `rows.npy` and `tf.npy`
(postings sorted by term, then row) and `doclen.npy` (tokens per chunk). Scores are bm25s's "lucene" BM25
(k1 1.5, b 0.75), computed in the same floating-point steps, so one segment or many, fresh or appended, a query
scores every chunk exactly as a bm25s index over the same texts would. Postings are read with pread, not
mapped: a query costs the bytes of its terms' postings, and the process keeps none of them. Tokens are
`rag.text.query_tokens`'s (bm25s's: lowercased words of two or more characters, English stopwords dropped,
Snowball stems).
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.errors import IndexCorrupt
from rag.index.npyio import PreadArray
from rag.text import _WORD, bm25_stopwords, stem  # _WORD: the pattern query_tokens splits words with

K1, B = 1.5, 0.75  # bm25s's defaults, which the index always used
BATCH = 10_000  # texts tokenised at a time (identical texts within a batch are tokenised once)
SAMPLE_STRIDE = 64  # `top` estimates its cut from every 64th row's score
CACHE_BYTES = 128 << 20  # weights of frequent tokens kept per open index (int64 row, float32 weight: 12 B a posting)
CACHE_MIN_POSTINGS = 10_000  # tokens with fewer postings are cheap to weigh again
REBUILD_HINT = "rebuild it with `rag index --rebuild`"


def tokenize_many(texts: Iterable[str]) -> Iterable[list[str]]:
    """`rag.text.query_tokens` of each text, lazily, stemming each distinct word of a batch once."""
    batch = []
    for text in texts:
        batch.append(text)
        if len(batch) == BATCH:
            yield from _tokenize_batch(batch)
            batch = []
    if batch:
        yield from _tokenize_batch(batch)


def _tokenize_batch(texts: list[str]) -> list[list[str]]:
    stop = bm25_stopwords()
    seen: dict[str, list[str]] = {}
    words = {}
    for text in texts:
        if text not in seen:
            seen[text] = [w for w in _WORD.findall(text.lower()) if w not in stop]
            for w in seen[text]:
                words[w] = None
    stems = dict(zip(words, stem(list(words)), strict=True))
    cache = {text: [stems[w] for w in ws] for text, ws in seen.items()}
    return [cache[text] for text in texts]


# -- writing ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentStats:
    """What the corpus-wide statistics need from one segment (recorded in the manifest)."""

    docs: int
    tokens: int  # sum of doclen
    terms: int
    postings: int

    def to_dict(self) -> dict:
        return {"docs": self.docs, "tokens": self.tokens, "terms": self.terms, "postings": self.postings}


def write_segment(folder: Path, texts: Iterable[str]) -> SegmentStats:
    """Tokenise `texts` (row i is text i) and write the segment's postings into `folder`."""
    return write_postings(folder, tokenize_many(texts))


def write_postings(folder: Path, token_lists: Iterable[Sequence[str]]) -> SegmentStats:
    folder.mkdir(parents=True, exist_ok=True)
    vocab: dict[str, int] = {}
    term_parts, tf_parts, row_parts, doclen = [], [], [], []
    for row, tokens in enumerate(token_lists):
        doclen.append(len(tokens))
        counts = Counter(tokens)
        term_parts.append(np.fromiter((vocab.setdefault(t, len(vocab)) for t in counts), np.int32, len(counts)))
        tf_parts.append(np.fromiter(counts.values(), np.int64, len(counts)))
        row_parts.append(np.full(len(counts), row, np.int32))
    terms = np.concatenate(term_parts) if term_parts else np.zeros(0, np.int32)
    tf = np.concatenate(tf_parts) if tf_parts else np.zeros(0, np.int64)
    rows = np.concatenate(row_parts) if row_parts else np.zeros(0, np.int32)
    del term_parts, tf_parts, row_parts
    order = np.argsort(terms, kind="stable")  # by term; rows stay ascending within a term
    return _save(
        folder,
        list(vocab),
        np.bincount(terms, minlength=len(vocab)),
        rows[order],
        tf[order],
        np.asarray(doclen, dtype=np.int32),
    )


def filter_segment(source: Path, folder: Path, drop: np.ndarray) -> SegmentStats:
    """Write into `folder` the postings of segment `source` without its (local, sorted) rows `drop`, the rows
    after each dropped one moved up: what `write_segment` makes of the remaining texts, nothing re-tokenised."""
    doclen = np.load(source / "doclen.npy", allow_pickle=False)
    rows = np.load(source / "rows.npy", allow_pickle=False)
    tf = np.load(source / "tf.npy", allow_pickle=False)
    db = sqlite3.connect(f"{(source / 'terms.sqlite').resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        table = db.execute("SELECT term, start, df FROM terms ORDER BY start").fetchall()
    finally:
        db.close()
    dropped = np.zeros(len(doclen), dtype=bool)
    dropped[drop] = True
    keep = ~dropped[rows]
    starts = np.fromiter((start for _, start, _ in table), np.int64, len(table))
    df = np.add.reduceat(keep, starts, dtype=np.int64) if len(table) else np.zeros(0, np.int64)
    rows = rows[keep]
    rows -= np.cumsum(dropped, dtype=rows.dtype)[rows]  # a kept row moves up by the dropped rows before it
    present = df > 0  # a term only the dropped rows had is gone, as from a fresh build
    return _save(
        folder,
        [t for (t, _, _), p in zip(table, present.tolist(), strict=True) if p],
        df[present],
        rows,
        tf[keep],
        doclen[~dropped],
    )


def _save(
    folder: Path, terms: list[str], df: np.ndarray, rows: np.ndarray, tf: np.ndarray, doclen: np.ndarray
) -> SegmentStats:
    """Write a segment's files: postings of term i at starts[i]..starts[i]+df[i] in `rows`/`tf`, rows ascending."""
    folder.mkdir(parents=True, exist_ok=True)
    starts = np.concatenate([[0], np.cumsum(df)[:-1]]) if len(terms) else np.zeros(0, np.int64)
    np.save(folder / "rows.npy", rows, allow_pickle=False)
    tf_dtype = np.uint16 if tf.size == 0 or tf.max() < 1 << 16 else np.uint32
    np.save(folder / "tf.npy", tf.astype(tf_dtype), allow_pickle=False)
    np.save(folder / "doclen.npy", doclen, allow_pickle=False)
    db = sqlite3.connect(folder / "terms.sqlite")
    try:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute(
            "CREATE TABLE terms (term TEXT PRIMARY KEY, start INTEGER NOT NULL, df INTEGER NOT NULL) WITHOUT ROWID"
        )
        db.executemany("INSERT INTO terms VALUES (?, ?, ?)", zip(terms, starts.tolist(), df.tolist(), strict=True))
        db.commit()
    finally:
        db.close()
    return SegmentStats(len(doclen), int(doclen.sum()), len(terms), int(len(rows)))


# -- reading ---------------------------------------------------------------------------------------------


class Bm25Segment:
    """One segment's term dictionary and postings; rows are local (0 .. docs-1)."""

    def __init__(self, folder: Path, first_row: int):
        self.folder = folder
        self.first_row = first_row
        self.doclen = np.load(folder / "doclen.npy", allow_pickle=False)
        self.rows = PreadArray(folder / "rows.npy")
        self.tf = PreadArray(folder / "tf.npy")
        self._db = sqlite3.connect(
            f"{(folder / 'terms.sqlite').resolve().as_uri()}?mode=ro&immutable=1", uri=True, check_same_thread=False
        )
        self._lock = threading.Lock()

    def lookup(self, terms: Sequence[str]) -> dict[str, tuple[int, int]]:
        """term -> (start, df) for the terms this segment has."""
        marks = ",".join("?" * len(terms))
        try:
            with self._lock:
                found = self._db.execute(
                    f"SELECT term, start, df FROM terms WHERE term IN ({marks})", list(terms)
                ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise IndexCorrupt(f"{self.folder}/terms.sqlite cannot be read ({exc}): {REBUILD_HINT}") from None
        return {term: (start, df) for term, start, df in found}

    def document_frequencies(self) -> list[tuple[str, int]]:
        try:
            with self._lock:
                return self._db.execute("SELECT term, df FROM terms").fetchall()
        except sqlite3.DatabaseError as exc:
            raise IndexCorrupt(f"{self.folder}/terms.sqlite cannot be read ({exc}): {REBUILD_HINT}") from None

    def postings(self, start: int, df: int) -> tuple[np.ndarray, np.ndarray]:
        return self.rows.read(start, df), self.tf.read(start, df)


class _LruCache:
    """A thread-safe least-recently-used map with a budget in bytes."""

    def __init__(self, budget: int):
        self.budget, self.used = budget, 0
        self._items: OrderedDict[str, tuple[object, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str):
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: str, value, size: int) -> None:
        with self._lock:
            if key in self._items or size > self.budget:
                return
            self._items[key] = (value, size)
            self.used += size
            while self.used > self.budget:
                _, (_, dropped) = self._items.popitem(last=False)
                self.used -= dropped


@dataclass(frozen=True)
class _Term:
    """A query token as the index has it: (segment, start, df) of its postings per segment, corpus-wide df, idf."""

    where: list[tuple[Bm25Segment, int, int]]
    df: int
    idf: np.float64


class Bm25Index:
    """BM25 over all segments of a version: `top(tokens, n)` and bm25s-compatible `get_scores(tokens)`."""

    def __init__(self, segments: list[Bm25Segment], k1: float = K1, b: float = B):
        self.segments = segments
        self.k1, self.b = k1, b
        self.num_docs = sum(len(s.doclen) for s in segments)
        lengths = np.concatenate([s.doclen for s in segments]) if segments else np.zeros(0, np.int32)
        # numpy's mean of the lengths, as bm25s computes it (a zero-chunk index keeps 1 to avoid 0/0)
        self.avg_doc_len = np.array(lengths, dtype=np.int64).mean() if len(lengths) else np.float64(1.0)
        # the part of each row's term-frequency component that depends only on its length, in bm25s's order
        self._norm = k1 * ((1 - b) + b * lengths.astype(np.float64) / self.avg_doc_len)
        self._vocab: tuple[dict[str, int], np.ndarray] | None = None
        self._cache = _LruCache(CACHE_BYTES)

    @classmethod
    def open(cls, folders: Sequence[tuple[Path, int]]) -> Bm25Index:
        try:
            return cls([Bm25Segment(folder, first) for folder, first in folders])
        except (OSError, ValueError) as exc:
            raise IndexCorrupt(f"cannot read the BM25 postings ({exc}): {REBUILD_HINT}") from None

    def _terms(self, tokens: Sequence[str]) -> dict[str, _Term]:
        """The distinct query tokens the index has, each with its postings' places and corpus-wide idf."""
        distinct = list(dict.fromkeys(tokens))
        found = [seg.lookup(distinct) for seg in self.segments] if distinct else []
        terms = {}
        for token in distinct:
            where = [(seg, *hit[token]) for seg, hit in zip(self.segments, found, strict=True) if token in hit]
            if where:
                df = sum(d for _, _, d in where)
                idf = np.float64(np.float32(math.log(1 + (self.num_docs - df + 0.5) / (df + 0.5))))
                terms[token] = _Term(where, df, idf)
        return terms

    def _weigh(self, seg: Bm25Segment, local: np.ndarray, tf: np.ndarray, idf: np.float64) -> np.ndarray:
        """The float32 scores of one token at `local` rows of `seg`, computed in bm25s's steps."""
        tf64 = tf.astype(np.float64)
        weights = tf64 / (self._norm[seg.first_row : seg.first_row + len(seg.doclen)][local] + tf64)
        weights *= idf
        return weights.astype(np.float32)

    def _weights(self, tokens: Sequence[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Per query token in order (tokens the index lacks dropped), per segment holding it: the rows the token
        occurs in (int64, ascending) and their float32 scores. A frequent token's are kept (LRU, at most
        CACHE_BYTES): they are the same for every query of this open version, and the costliest to make."""
        terms = self._terms(tokens)
        for token in tokens:
            if token not in terms:
                continue
            parts = self._cache.get(token)
            if parts is None:
                term = terms[token]
                parts = []
                for seg, start, d in term.where:
                    local, tf = seg.postings(start, d)
                    parts.append((local.astype(np.int64) + seg.first_row, self._weigh(seg, local, tf, term.idf)))
                if term.df >= CACHE_MIN_POSTINGS:
                    self._cache.put(token, parts, 12 * term.df)
            yield from parts

    def get_scores(self, tokens: Sequence[str]) -> np.ndarray:
        """Every row's BM25 score for the query tokens (float32, as bm25s's `get_scores`)."""
        scores = np.zeros(self.num_docs, dtype=np.float32)
        for rows, weights in self._weights(tokens):
            np.add.at(scores, rows, weights)  # a row occurs once per token: each score gets one float32 addition
        return scores

    def top(self, tokens: Sequence[str], n: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The `n` best rows with a positive score, by score then row; with `allowed` (sorted rows), only those."""
        if n <= 0 or not tokens:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        scores = self.get_scores(tokens)
        if allowed is not None:
            return self._top_of(scores, n, allowed[scores[allowed] > 0])
        # A common word gives most rows of a large index a score: rank only the rows at or above a cut that every
        # SAMPLE_STRIDE-th row's score puts a little below the n-th best (every scoring row if too few reach it).
        sample = scores[::SAMPLE_STRIDE]
        m = min(len(sample), 4 * (n // SAMPLE_STRIDE + 1))
        cut = -np.partition(-sample, m - 1)[m - 1] if m else 0
        rows = np.flatnonzero(scores >= cut) if cut > 0 else np.zeros(0, np.int64)
        if len(rows) < n:
            rows = np.flatnonzero(scores > 0)
        return self._top_of(scores, n, rows)

    @staticmethod
    def _top_of(scores: np.ndarray, n: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The n best of `rows` (ascending, scoring above 0) by score then row."""
        values = scores[rows]
        if len(rows) > n:  # the n best; of rows tied at the cut, the lowest (rows are ascending here)
            cut = -np.partition(-values, n - 1)[n - 1]
            above = np.flatnonzero(values > cut)
            part = np.concatenate([above, np.flatnonzero(values == cut)[: n - len(above)]])
            rows, values = rows[part], values[part]
        order = np.lexsort((rows, -values))  # by score, then row: deterministic ties
        return rows[order].astype(np.int64), values[order]

    # -- bm25s's attribute names for the corpus statistics (what rag.answer.evidence.Idf reads) ----------------------

    @property
    def vocab_dict(self) -> dict[str, int]:
        """term -> column in `scores["indptr"]`, over every segment (read on first use, then kept)."""
        return self._vocabulary()[0]

    @property
    def scores(self) -> dict:
        """{"indptr": cumulative document frequencies by column, "num_docs"}: np.diff(indptr) is each term's df."""
        return {"indptr": self._vocabulary()[1], "num_docs": self.num_docs}

    def _vocabulary(self) -> tuple[dict[str, int], np.ndarray]:
        if self._vocab is None:
            df: dict[str, int] = {}
            for seg in self.segments:
                for term, d in seg.document_frequencies():
                    df[term] = df.get(term, 0) + d
            self._vocab = (
                {term: i for i, term in enumerate(df)},
                np.concatenate([[0], np.cumsum(np.fromiter(df.values(), np.int64, len(df)))]),
            )
        return self._vocab
