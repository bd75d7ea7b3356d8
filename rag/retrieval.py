"""Hybrid retrieval: dense (FAISS inner product on unit vectors) and BM25, fused by reciprocal rank.

`Retriever.open(index_dir)` loads a verified index once and serves any number of queries; the
embedding model is the one the index was built with. A search may be restricted to sources matching globs:
the allowed rows come from a per-source table built once at load, FAISS skips the other rows itself (an ID
selector), BM25 scores are masked with numpy, and Milvus filters on its `source` field. Answer generation
lives elsewhere.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.embedding import Embedder, compatible_backends, make_embedder
from rag.errors import IndexMismatch
from rag.settings import MODES
from rag.milvus_store import StoreOptions
from rag.store import REBUILD_HINT, IndexStore, LoadedIndex
from rag.text import query_tokens
from rag.types import Hit

CANDIDATES = 50  # per retriever, before fusion


@dataclass(frozen=True)
class Ranked:
    """Rows of the index in rank order with each row's score."""

    rows: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class Selection:
    """The part of the index a filtered search may return: the matching sources and their rows (sorted)."""

    sources: tuple[str, ...]
    rows: np.ndarray  # int64

    def faiss_params(self, index):
        """Search parameters that make FAISS skip every other row (flat, IVF and HNSW indexes alike)."""
        import faiss

        selector = faiss.IDSelectorBatch(self.rows)
        ivf = faiss.try_extract_index_ivf(index) if hasattr(faiss, "try_extract_index_ivf") else None
        if ivf is not None:
            params = faiss.SearchParametersIVF(sel=selector, nprobe=ivf.nprobe)
        elif isinstance(index, faiss.IndexHNSW):
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=index.hnsw.efSearch)
        else:
            params = faiss.SearchParameters(sel=selector)
        params._selector = selector  # the SWIG object does not own it: keep it alive with the params
        return params


@functools.cache
def _one_thread_per_query() -> None:
    """One query scans the flat FAISS index on one thread. With OpenMP's default team on a small machine the
    threads spin against each other and the embedder: measured 60 ms against 10 ms at 100k chunks on 2 cores.
    Concurrent queries (the server's threads) still use every core."""
    import faiss

    faiss.omp_set_num_threads(1)


def rrf(rankings: list[Ranked], k: int = 60) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: score(row) = sum over rankings of 1 / (k + rank), rank starting at 1.

    Ties are broken by row number so the result is deterministic.
    """
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, row in enumerate(ranking.rows.tolist(), start=1):
            fused[row] = fused.get(row, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


class Retriever:
    """Searches one loaded index version."""

    def __init__(self, index: LoadedIndex, embedder: Embedder, rrf_k: int = 60):
        built = index.manifest.get("embedding", {}).get("backend")
        if not compatible_backends(built, getattr(embedder, "backend", None)):
            raise IndexMismatch(f"index vectors were made by the {built} embedding backend, settings say "
                                f"{embedder.backend}: {REBUILD_HINT} (or set RAG_EMBEDDING_BACKEND={built})")
        self.index = index
        self.embedder = embedder
        self.rrf_k = rrf_k
        self._rows_of = _rows_by_source([c.source for c in index.chunks])
        self._selections: dict[tuple[str, ...], Selection] = {}
        _one_thread_per_query()

    @classmethod
    def open(cls, index_dir: Path | str, embedder: Embedder | None = None, rrf_k: int = 60,
             options: StoreOptions | None = None) -> Retriever:
        """Open the index at `index_dir`; without an embedder, the model recorded in the index is used.

        `options` reach the vector store (a Milvus address override and token); the index says which store it is.
        """
        store = IndexStore(index_dir, options)
        if embedder is None:
            built = store.read_manifest()["embedding"]
            embedder = make_embedder(built["model"], backend=built.get("backend", "torch"))
        return cls(store.load(expected_model=embedder.name), embedder, rrf_k)

    def __len__(self) -> int:
        return len(self.index.chunks)

    def matching_sources(self, globs: Sequence[str]) -> list[str]:
        """The indexed sources (names as search shows them) that match any of `globs` (fnmatch, case-sensitive;
        a name without wildcards matches itself)."""
        return [s for s in self._rows_of if any(fnmatch.fnmatchcase(s, g) for g in globs)]

    def select(self, globs: Sequence[str]) -> Selection:
        """The sources and rows `globs` allow; cached, so a repeated filter costs nothing to build."""
        key = tuple(sorted(set(globs)))
        if key not in self._selections:
            sources = self.matching_sources(key)
            rows = np.sort(np.concatenate([self._rows_of[s] for s in sources])) if sources else np.zeros(0, np.int64)
            if len(self._selections) > 64:
                self._selections.clear()
            self._selections[key] = Selection(tuple(sources), rows.astype(np.int64))
        return self._selections[key]

    def dense(self, query: str, n: int, selection: Selection | None = None) -> Ranked:
        n = min(n, len(self) if selection is None else len(selection.rows))
        if n == 0:
            return Ranked(np.zeros(0, np.int64), np.zeros(0, np.float32))
        vector = self.embedder.embed([query])
        store = self.index.dense
        if selection is None:
            scores, rows = store.search(vector, n)
        elif hasattr(store, "search_sources"):  # a store that filters by source itself (Milvus)
            scores, rows = store.search_sources(vector, n, selection.sources)
        else:
            scores, rows = store.search(vector, n, params=selection.faiss_params(store))
        keep = rows[0] >= 0
        rows, scores = rows[0][keep], scores[0][keep]
        order = np.lexsort((rows, -scores))  # equal scores by row, whichever store found them
        return Ranked(rows[order], scores[order])

    def bm25(self, query: str, n: int, selection: Selection | None = None) -> Ranked:
        tokens = query_tokens(query)
        if not tokens or len(self) == 0 or (selection is not None and not len(selection.rows)):
            return Ranked(np.zeros(0, np.int64), np.zeros(0, np.float32))
        if self.index.full_text is not None:  # BM25 computed by the vector store (Milvus full-text search)
            return Ranked(*self.index.full_text.search(query, n, selection.sources if selection else None))
        scores = self.index.bm25.get_scores(tokens)
        if selection is None:
            rows = np.flatnonzero(scores > 0)  # usually a small part of a large index: rank only those
        else:
            rows = selection.rows[scores[selection.rows] > 0]
        values = scores[rows]
        if len(rows) > n:
            part = np.argpartition(-values, n - 1)[:n]
            rows, values = rows[part], values[part]
        order = np.lexsort((rows, -values))  # by score, then row: deterministic ties
        return Ranked(rows[order], values[order])

    def search(self, query: str, k: int = 5, mode: str = "hybrid", sources: Sequence[str] | None = None) -> list[Hit]:
        """The top `k` chunks for `query` by `mode` (hybrid, dense or bm25); with `sources` (globs), only chunks
        of matching sources (none match: no hits)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not query.strip():
            return []
        selection = self.select(sources) if sources else None
        if selection is not None and not len(selection.rows):
            return []
        n = max(k, CANDIDATES)
        dense = self.dense(query, n, selection) if mode in ("hybrid", "dense") else None
        bm25 = self.bm25(query, n, selection) if mode in ("hybrid", "bm25") else None
        dense_rank = {row: r for r, row in enumerate(dense.rows.tolist(), 1)} if dense else {}
        bm25_rank = {row: r for r, row in enumerate(bm25.rows.tolist(), 1)} if bm25 else {}
        if mode == "hybrid":
            scored = rrf([dense, bm25], self.rrf_k)
        else:
            ranked = dense if mode == "dense" else bm25
            scored = list(zip(ranked.rows.tolist(), ranked.scores.tolist(), strict=True))
        return [
            Hit(self.index.chunks[row], float(score), dense_rank.get(row), bm25_rank.get(row))
            for row, score in scored[:k]
        ]


def _rows_by_source(sources: list[str]) -> dict[str, np.ndarray]:
    """Each source's chunk rows, built once per loaded index with one stable sort (no per-query work)."""
    if not sources:
        return {}
    names, inverse = np.unique(np.asarray(sources, dtype=object), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(names) + 1))
    return {str(name): order[bounds[i]:bounds[i + 1]].astype(np.int64) for i, name in enumerate(names)}
