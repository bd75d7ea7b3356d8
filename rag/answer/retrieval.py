"""Hybrid retrieval: dense (FAISS: exact, hnsw or ivf-pq) and BM25, fused by reciprocal rank.

`Retriever.open(index_dir)` loads a verified index once and serves any number of queries; the
embedding model is the one the index was built with. A search may be restricted to sources matching globs:
the allowed rows come from a per-source table read once from the chunk store, the dense store skips the other
rows itself (rag.index.dense; Milvus filters on its `source` field) and BM25 scores only the allowed rows. Answer
generation lives elsewhere.
"""

from __future__ import annotations

import fnmatch
import functools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.errors import IndexMismatch
from rag.index.dense_store import StoreOptions
from rag.index.embedding import Embedder, compatible_backends, make_embedder
from rag.index.store import REBUILD_HINT, IndexStore, LoadedIndex
from rag.settings import MODES
from rag.text import query_tokens
from rag.types import Hit

CANDIDATES = 50  # per retriever, before fusion
# Hybrid search scores BM25 in a thread beside the query embedding and dense search from this many chunks on: BM25
# took 6.5 ms at 1M chunks, but 0.3 ms at 100k, where handing it to a thread costs about as much (bench_filter.py).
PARALLEL_BM25_ROWS = 200_000


@dataclass(frozen=True)
class Ranked:
    """Rows of the index in rank order with each row's score."""

    rows: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class Selection:
    """The part of the index a filtered search may return: the matching sources and their rows (sorted).

    Dense stores take it as it is: FAISS (rag.index.dense) skips every row not in `rows`, Milvus filters on
    `sources`."""

    sources: tuple[str, ...]
    rows: np.ndarray  # int64


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
        built = index.manifest.backend
        if not compatible_backends(built, getattr(embedder, "backend", None)):
            raise IndexMismatch(
                f"index vectors were made by the {built} embedding backend, settings say "
                f"{embedder.backend}: {REBUILD_HINT} (or set RAG_EMBEDDING_BACKEND={built})"
            )
        self.index = index
        self.embedder = embedder
        self.rrf_k = rrf_k
        self._selections: dict[tuple[str, ...], Selection] = {}
        self._bm25_threads: ThreadPoolExecutor | None = None
        _one_thread_per_query()
        index.dense.warm_up()  # read the dense index now: the first query should not pay for it

    @classmethod
    def open(
        cls,
        index_dir: Path | str,
        embedder: Embedder | None = None,
        rrf_k: int = 60,
        options: StoreOptions | None = None,
    ) -> Retriever:
        """Open the index at `index_dir`; without an embedder, the model recorded in the index is used.

        `options` reach the vector store (a Milvus address override and token); the index says which store it is.
        """
        store = IndexStore(index_dir, options)
        if embedder is None:
            built = store.read_manifest()
            embedder = make_embedder(built.model, backend=built.backend or "torch")
        return cls(store.load(expected_model=embedder.name), embedder, rrf_k)

    def __len__(self) -> int:
        return self.index.n_chunks

    def matching_sources(self, globs: Sequence[str]) -> list[str]:
        """The indexed sources (names as search shows them) that match any of `globs` (fnmatch, case-sensitive;
        a name without wildcards matches itself)."""
        return [s for s in self.index.source_rows() if any(fnmatch.fnmatchcase(s, g) for g in globs)]

    def select(self, globs: Sequence[str]) -> Selection:
        """The sources and rows `globs` allow; cached, so a repeated filter costs nothing to build."""
        key = tuple(sorted(set(globs)))
        if key not in self._selections:
            sources = self.matching_sources(key)
            table = self.index.source_rows()
            rows = np.sort(np.concatenate([table[s] for s in sources])) if sources else np.zeros(0, np.int64)
            if len(self._selections) > 64:
                self._selections.clear()
            self._selections[key] = Selection(tuple(sources), rows.astype(np.int64))
        return self._selections[key]

    def _threads(self) -> ThreadPoolExecutor:
        if self._bm25_threads is None:
            self._bm25_threads = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="bm25")
        return self._bm25_threads

    def dense(self, query: str, n: int, selection: Selection | None = None) -> Ranked:
        n = min(n, len(self) if selection is None else len(selection.rows))
        if n == 0:
            return Ranked(np.zeros(0, np.int64), np.zeros(0, np.float32))
        scores, rows = self.index.dense.search(self.embedder.embed([query]), n, selection)
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
        return Ranked(*self.index.bm25.top(tokens, n, selection.rows if selection is not None else None))

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
        if mode == "hybrid" and len(self) >= PARALLEL_BM25_ROWS:  # numpy, SQLite and pread release the GIL
            pending = self._threads().submit(self.bm25, query, n, selection)
            dense = self.dense(query, n, selection)
            bm25 = pending.result()
        else:
            dense = self.dense(query, n, selection) if mode in ("hybrid", "dense") else None
            bm25 = self.bm25(query, n, selection) if mode in ("hybrid", "bm25") else None
        dense_rank = {row: r for r, row in enumerate(dense.rows.tolist(), 1)} if dense else {}
        bm25_rank = {row: r for r, row in enumerate(bm25.rows.tolist(), 1)} if bm25 else {}
        if mode == "hybrid":
            scored = rrf([dense, bm25], self.rrf_k)
        else:
            ranked = dense if mode == "dense" else bm25
            scored = list(zip(ranked.rows.tolist(), ranked.scores.tolist(), strict=True))
        chunks = self.index.chunks_by_rows([row for row, _ in scored[:k]])
        return [
            Hit(chunk, float(score), dense_rank.get(row), bm25_rank.get(row))
            for chunk, (row, score) in zip(chunks, scored[:k], strict=True)
        ]
