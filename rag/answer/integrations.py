"""LangChain adapters over the library: a `BaseRetriever` returning LangChain `Document`s, and the
answering pipeline as a `Runnable`.

Metadata carries the source file and the exact character span of each chunk. Nothing here retrieves or
answers on its own; it delegates to `rag.answer.retrieval.Retriever` and `rag.answer.chain.RAG`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableConfig

from rag.types import Hit

__all__ = ["AnswerRunnable", "RagRetriever"]


def hit_to_langchain(hit: Hit) -> LCDocument:
    meta = hit.to_dict()
    text = meta.pop("text")
    return LCDocument(page_content=text, metadata=meta, id=hit.chunk.id)


class RagRetriever(BaseRetriever):
    """`RagRetriever(retriever=Retriever.open("index"), k=5, mode="hybrid")` for use in any LCEL chain."""

    retriever: Any
    k: int = 5
    mode: str = "hybrid"
    sources: list[str] | None = None  # globs over document names: search only matching documents

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[LCDocument]:
        k = kwargs.get("k", self.k)
        return [hit_to_langchain(h) for h in self.retriever.search(query, k=k, mode=self.mode, sources=self.sources)]


class AnswerRunnable(Runnable):
    """The RAG pipeline as an LCEL Runnable; `stream` yields text pieces, then the final `Answer`."""

    def __init__(self, rag: Any):
        self.rag = rag

    @staticmethod
    def _args(value: Any) -> dict:
        if isinstance(value, str):
            return {"question": value}
        if isinstance(value, dict) and isinstance(value.get("question"), str):
            return {
                "question": value["question"],
                "history": value.get("history"),
                "k": value.get("k"),
                "sources": value.get("sources"),
            }
        raise TypeError('input must be a question string or {"question": str, "history": [...]}')

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._call_with_config(lambda value: self.rag.ask(**self._args(value)), input, config)

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        yield from self.rag.stream(**self._args(input))
