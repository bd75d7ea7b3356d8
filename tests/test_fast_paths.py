"""The speed-ups must not change results: BM25 query tokens, BM25 top-n ranking, and the embedding-backend
bookkeeping that keeps int8 and fp32 vectors apart."""

from __future__ import annotations

import numpy as np
import pytest

from rag.answer.retrieval import Retriever
from rag.errors import IndexMismatch
from rag.index.embedding import HashEmbedder, compatible_backends
from rag.index.indexer import Indexer
from rag.index.store import IndexStore
from rag.text import bm25_tokens, query_tokens

QUERIES = [
    "Does Microsoft keep exclusive rights?",
    "",
    "a",
    "The THE the of",
    "running runs ran runner",
    "Héllo wörld ÉCOLE naïve café",
    "don't won't U.S.A. 3.5% co-operation",
    "日本語 テキスト",
    "0-dimensional biomaterials show inductive properties.",
    "x" * 40,
]


@pytest.mark.parametrize("query", QUERIES)
def test_query_tokens_equal_bm25s_tokenizer(query: str) -> None:
    assert query_tokens(query) == bm25_tokens([query], return_ids=False)[0]


def test_bm25_ranking_equals_a_full_sort(corpus, settings, hash_embedder) -> None:
    Indexer(settings, hash_embedder).index([corpus])
    retriever = Retriever.open(settings.index_dir, hash_embedder)
    for query in ("cats sleep", "dogs bark strangers", "parrots crows tools speech", "nothing matches zzz"):
        scores = retriever.index.bm25.get_scores(query_tokens(query))
        expected = sorted((row for row in range(len(scores)) if scores[row] > 0), key=lambda r: (-scores[r], r))
        for n in (1, 2, 50):
            ranked = retriever.bm25(query, n)
            assert ranked.rows.tolist() == expected[:n]
            assert ranked.scores.tolist() == pytest.approx([scores[r] for r in expected[:n]])


def test_backend_compatibility() -> None:
    assert compatible_backends("torch", "onnx") and compatible_backends("onnx", "torch")
    assert not compatible_backends("torch", "onnx-int8") and not compatible_backends("onnx-int8", "onnx")
    assert compatible_backends(None, "onnx-int8")  # an index from before backends were recorded is trusted


class _Int8Hash(HashEmbedder):
    """The hashing embedder posing as another vector family."""

    def __init__(self) -> None:
        super().__init__()
        self.backend = "onnx-int8"


def test_backend_change_reembeds_and_mismatch_is_refused(corpus, settings) -> None:
    fp32 = HashEmbedder()
    fp32.backend = "torch"
    Indexer(settings, fp32).index([corpus])
    int8 = _Int8Hash()
    report = Indexer(settings, int8).index([corpus])
    assert report.changed and int8.calls == report.chunks_embedded == report.chunks_total > 0
    assert IndexStore(settings.index_dir).load().manifest.embedding["backend"] == "onnx-int8"
    with pytest.raises(IndexMismatch, match="rebuild"):
        Retriever.open(settings.index_dir, fp32)
    assert Indexer(settings, _Int8Hash()).index([corpus]).changed is False  # same backend: nothing to do
    assert len(Retriever.open(settings.index_dir, int8).search("cats", k=2)) == 2
    assert np.isfinite(Retriever.open(settings.index_dir, int8).search("cats", k=1)[0].score)


def test_hybrid_results_equal_the_previous_implementation(corpus, settings, hash_embedder) -> None:
    """bm25s + an exact FAISS index + RRF over the same chunks (what format 1 did) gives the same hits and scores."""
    import bm25s
    import faiss

    from rag.answer.retrieval import Ranked, rrf

    Indexer(settings, hash_embedder).index([corpus])
    retriever = Retriever.open(settings.index_dir, hash_embedder)
    chunks = list(retriever.index.chunks)
    vectors = hash_embedder.embed([c.text for c in chunks])
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    old_bm25 = bm25s.BM25()
    old_bm25.index(bm25_tokens([c.text for c in chunks]), show_progress=False)
    for query in ("cats sleep", "Do dogs bark at strangers?", "parrots crows tools speech", "kittens eyes days"):
        scores, rows = flat.search(hash_embedder.embed([query]), len(chunks))
        order = np.lexsort((rows[0], -scores[0]))  # equal scores by row, as retrieval ranks them
        dense = Ranked(rows[0][order], scores[0][order])
        tokens = [t for t in query_tokens(query) if t in old_bm25.vocab_dict]
        s = old_bm25.get_scores(tokens) if tokens else np.zeros(len(chunks), np.float32)
        order = sorted((r for r in range(len(s)) if s[r] > 0), key=lambda r: (-s[r], r))
        bm25 = Ranked(np.array(order, dtype=np.int64), s[order])
        for mode, expected in (
            ("dense", list(zip(dense.rows.tolist(), dense.scores.tolist(), strict=True))),
            ("bm25", list(zip(bm25.rows.tolist(), bm25.scores.tolist(), strict=True))),
            ("hybrid", rrf([dense, bm25])),
        ):
            hits = retriever.search(query, k=3, mode=mode)
            assert [h.chunk for h in hits] == [chunks[r] for r, _ in expected[:3]]
            assert [h.score for h in hits] == pytest.approx([score for _, score in expected[:3]])
