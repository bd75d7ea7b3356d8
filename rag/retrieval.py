"""Hybrid retrieval: dense (FAISS inner product on unit vectors) and BM25, fused by reciprocal rank.

`Retriever.open(index_dir)` loads a verified index once and serves any number of queries; the
embedding model is the one the index was built with. Answer generation lives elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.embedding import Embedder, make_embedder
from rag.settings import MODES
from rag.store import IndexStore, LoadedIndex, bm25_tokens
from rag.types import Hit

CANDIDATES = 50  # per retriever, before fusion


@dataclass(frozen=True)
class Ranked:
    """Rows of the index in rank order with each row's score."""

    rows: np.ndarray
    scores: np.ndarray


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
        self.index = index
        self.embedder = embedder
        self.rrf_k = rrf_k

    @classmethod
    def open(cls, index_dir: Path | str, embedder: Embedder | None = None, rrf_k: int = 60) -> Retriever:
        """Open the index at `index_dir`; without an embedder, the model recorded in the index is used."""
        store = IndexStore(index_dir)
        if embedder is None:
            embedder = make_embedder(store.read_manifest()["embedding"]["model"])
        return cls(store.load(expected_model=embedder.name), embedder, rrf_k)

    def __len__(self) -> int:
        return len(self.index.chunks)

    def dense(self, query: str, n: int) -> Ranked:
        n = min(n, len(self))
        if n == 0:
            return Ranked(np.zeros(0, np.int64), np.zeros(0, np.float32))
        scores, rows = self.index.dense.search(self.embedder.embed([query]), n)
        keep = rows[0] >= 0
        return Ranked(rows[0][keep], scores[0][keep])

    def bm25(self, query: str, n: int) -> Ranked:
        tokens = bm25_tokens([query], return_ids=False)[0]
        if not tokens or len(self) == 0:
            return Ranked(np.zeros(0, np.int64), np.zeros(0, np.float32))
        scores = self.index.bm25.get_scores(tokens)
        n = min(n, int(np.count_nonzero(scores > 0)))
        if n == 0:
            return Ranked(np.zeros(0, np.int64), np.zeros(0, np.float32))
        top = np.argpartition(-scores, n - 1)[:n]
        order = np.lexsort((top, -scores[top]))  # by score, then row: deterministic ties
        return Ranked(top[order], scores[top[order]])

    def search(self, query: str, k: int = 5, mode: str = "hybrid") -> list[Hit]:
        """The top `k` chunks for `query` by `mode` (hybrid, dense or bm25)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not query.strip():
            return []
        n = max(k, CANDIDATES)
        dense = self.dense(query, n) if mode in ("hybrid", "dense") else None
        bm25 = self.bm25(query, n) if mode in ("hybrid", "bm25") else None
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
