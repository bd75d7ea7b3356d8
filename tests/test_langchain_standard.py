"""LangChain's own standard test suite for retrievers, run against `RagRetriever` over a real seeds index."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import pytest
from langchain_tests.integration_tests import RetrieversIntegrationTests

from conftest import SEEDS
from rag.answer.integrations import RagRetriever
from rag.answer.retrieval import Retriever
from rag.index.embedding import SentenceTransformerEmbedder
from rag.index.indexer import Indexer
from rag.settings import Settings

pytestmark = pytest.mark.integration


@functools.cache
def seeds_retriever(store: str = "faiss") -> Retriever:
    """Built once per store (the suite constructs the retriever from properties, not fixtures)."""
    index_dir = Path(tempfile.mkdtemp(prefix="rag-lc-")) / "index"
    embedder = SentenceTransformerEmbedder()
    Indexer(Settings(index_dir=index_dir, chunk_size=64, chunk_overlap=0, store=store), embedder).index([SEEDS])
    return Retriever.open(index_dir, embedder)


class TestRagRetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[RagRetriever]:
        return RagRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"retriever": seeds_retriever()}

    @property
    def retriever_query_example(self) -> str:
        return "Does Microsoft keep exclusive rights?"


class TestRagRetrieverStandardMilvus(TestRagRetrieverStandard):
    """The same suite with the vectors in a Milvus collection (Milvus Lite, started in this process)."""

    @property
    def retriever_constructor_params(self) -> dict:
        return {"retriever": seeds_retriever("milvus")}
