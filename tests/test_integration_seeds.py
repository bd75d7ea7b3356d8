"""The real bundled embedder on the real seed article: indexing, spans, and retrieval quality."""

from __future__ import annotations

import pytest

from conftest import SEEDS
from rag.answer.retrieval import Retriever
from rag.index.indexer import Indexer
from rag.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def seeds_retriever(tmp_path_factory, real_embedder) -> Retriever:
    settings = Settings(index_dir=tmp_path_factory.mktemp("seeds") / "index")
    report = Indexer(settings, real_embedder).index([SEEDS])
    assert report.files_indexed == 1 and report.chunks_embedded == report.chunks_total > 1
    return Retriever.open(settings.index_dir, real_embedder)


def test_exclusive_rights_question_ranks_the_first_paragraph_first(seeds_retriever: Retriever) -> None:
    for mode in ("hybrid", "dense", "bm25"):
        top = seeds_retriever.search("Does Microsoft keep exclusive rights?", k=3, mode=mode)[0]
        assert top.chunk.start == 0, mode
        assert "no longer hold exclusive rights" in top.chunk.text


def test_reworded_question_finds_the_azure_paragraph(seeds_retriever: Retriever) -> None:
    for mode in ("hybrid", "dense"):
        top = seeds_retriever.search("Which company hosts OpenAI's training workloads?", k=1, mode=mode)[0]
        assert "Azure continues to serve as a core infrastructure layer" in top.chunk.text, mode


def test_real_index_spans_and_vectors(seeds_retriever: Retriever, real_embedder) -> None:
    docs = {d.id: d for d in seeds_retriever.index.documents}
    vectors = seeds_retriever.index.vectors()
    for row, chunk in enumerate(seeds_retriever.index.chunks):
        assert docs[chunk.doc_id].text[chunk.start : chunk.end] == chunk.text
        assert len(real_embedder.token_offsets([chunk.text])[0]) <= 192
        assert abs(float((vectors[row] ** 2).sum()) - 1.0) < 1e-5
    again = real_embedder.embed([seeds_retriever.index.chunks[0].text])[0]
    assert float(again @ vectors[0]) > 0.9999


def test_unchanged_reindex_embeds_nothing_with_the_real_model(tmp_path, real_embedder) -> None:
    settings = Settings(index_dir=tmp_path / "index")
    first = Indexer(settings, real_embedder).index([SEEDS])
    second = Indexer(settings, real_embedder).index([SEEDS])
    assert first.chunks_embedded > 0 and second.chunks_embedded == 0 and not second.changed
