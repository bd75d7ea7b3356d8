"""Dense, BM25 and hybrid retrieval, reciprocal rank fusion, and the LangChain adapter."""

from __future__ import annotations

import numpy as np
import pytest

from rag.answer.integrations import RagRetriever
from rag.answer.retrieval import Ranked, Retriever, rrf
from rag.index.indexer import Indexer


def ranked(rows: list[int]) -> Ranked:
    return Ranked(np.array(rows), np.zeros(len(rows)))


def test_rrf_exact_scores_and_deterministic_ties() -> None:
    fused = rrf([ranked([3, 1, 2]), ranked([1, 4])], k=60)
    assert [row for row, _ in fused] == [1, 3, 4, 2]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)
    assert fused[1][1] == pytest.approx(1 / 61)
    assert fused[2][1] == pytest.approx(1 / 62)  # row 4: rank 2 of the second ranking
    assert fused[3][1] == pytest.approx(1 / 63)
    assert rrf([ranked([5]), ranked([7])], k=60) == [(5, pytest.approx(1 / 61)), (7, pytest.approx(1 / 61))]


@pytest.fixture(params=["faiss", "milvus"])
def retriever(request, corpus, settings, hash_embedder) -> Retriever:
    """The same index with its vectors in FAISS or in Milvus (Milvus Lite in the index dir): same results."""
    Indexer(settings.with_overrides(store=request.param), hash_embedder).index([corpus])
    return Retriever.open(settings.index_dir, hash_embedder)


def test_bm25_ranks_by_term_match(retriever: Retriever) -> None:
    hits = retriever.search("parrots mimic speech", k=3, mode="bm25")
    assert [h.chunk.source for h in hits] == ["sub/birds.txt"]  # only chunks sharing a term score
    assert hits[0].bm25_rank == 1 and hits[0].dense_rank is None


def test_dense_returns_k_hits_in_score_order(retriever: Retriever) -> None:
    hits = retriever.search("kittens open their eyes", k=4, mode="dense")
    assert hits[0].chunk.text == "Kittens open their eyes after about ten days."
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len(hits) == 4 and hits[0].dense_rank == 1


def test_hybrid_fuses_both_and_reports_ranks(retriever: Retriever) -> None:
    hits = retriever.search("Do dogs bark at strangers?", k=2)
    top = hits[0]
    assert top.chunk.source == "dogs.md"
    assert (top.dense_rank, top.bm25_rank) == (1, 1)
    assert top.score == pytest.approx(2 / 61)
    d = top.to_dict()
    assert set(d) == {
        "chunk_id",
        "doc_id",
        "source",
        "char_start",
        "char_end",
        "text",
        "score",
        "dense_rank",
        "bm25_rank",
        "page",
        "page_end",
        "section",
        "location",
    }


def test_spans_of_hits_point_into_their_documents(retriever: Retriever) -> None:
    docs = {d.id: d for d in retriever.index.documents}
    for h in retriever.search("cat dog parrot kitten crow", k=10):
        assert docs[h.chunk.doc_id].text[h.chunk.start : h.chunk.end] == h.chunk.text


def test_empty_and_stopword_queries(retriever: Retriever) -> None:
    assert retriever.search("   ") == []
    assert retriever.search("the of and", mode="bm25") == []
    with pytest.raises(ValueError):
        retriever.search("cats", mode="nope")


def test_langchain_retriever_returns_documents_with_spans(retriever: Retriever) -> None:
    lc = RagRetriever(retriever=retriever, k=2)
    docs = lc.invoke("Do dogs bark at strangers?")
    assert len(docs) == 2
    assert docs[0].metadata["source"] == "dogs.md"
    assert docs[0].id == docs[0].metadata["chunk_id"]
    start, end = docs[0].metadata["char_start"], docs[0].metadata["char_end"]
    doc = next(d for d in retriever.index.documents if d.id == docs[0].metadata["doc_id"])
    assert doc.text[start:end] == docs[0].page_content


# source filters ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["dense", "bm25"])
def test_a_source_filter_returns_the_unfiltered_ranking_restricted_to_the_matches(retriever, mode) -> None:
    query = "cats purr and dogs bark while parrots talk"
    everything = retriever.search(query, k=len(retriever), mode=mode)
    for globs in (["sub/*"], ["cats.txt", "dogs.md"], ["*.md"]):
        allowed = set(retriever.matching_sources(globs))
        expected = [h.chunk.id for h in everything if h.chunk.source in allowed][:3]
        hits = retriever.search(query, k=3, mode=mode, sources=globs)
        assert [h.chunk.id for h in hits] == expected and expected
        assert {h.chunk.source for h in hits} <= allowed


def test_hybrid_filter_and_a_filter_matching_nothing(retriever) -> None:
    hits = retriever.search("a dog can learn words", k=5, sources=["sub/*", "cats*"])
    assert hits and {h.chunk.source for h in hits} <= {"sub/birds.txt", "cats.txt"}
    assert retriever.matching_sources(["sub/*", "cats*"]) == ["cats.txt", "sub/birds.txt"]
    assert retriever.search("a dog can learn words", k=5, sources=["nothing/*"]) == []
    assert retriever.select(["cats*", "sub/*"]) is retriever.select(["sub/*", "cats*"])  # built once


def test_faiss_and_milvus_give_the_same_filtered_results(corpus, settings, hash_embedder, tmp_path) -> None:
    results = []
    for store in ("faiss", "milvus"):
        s = settings.with_overrides(index_dir=tmp_path / store, store=store)
        Indexer(s, hash_embedder).index([corpus])
        r = Retriever.open(s.index_dir, hash_embedder)
        results.append(
            [
                [(h.chunk.id, h.dense_rank, h.bm25_rank) for h in r.search(q, k=4, mode=m, sources=g)]
                for q in ("dogs bark", "parrots and cats")
                for m in ("hybrid", "dense", "bm25")
                for g in (["sub/*"], ["cats.txt", "*.md"])
            ]
        )
    assert results[0] == results[1] and any(results[0])
