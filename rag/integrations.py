"""LangChain adapters over the library: a `BaseRetriever` returning LangChain `Document`s.

Metadata carries the source file and the exact character span of each chunk. Nothing here retrieves
on its own; it delegates to `rag.retrieval.Retriever`.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever

from rag.types import Hit


def hit_to_langchain(hit: Hit) -> LCDocument:
    meta = hit.to_dict()
    text = meta.pop("text")
    return LCDocument(page_content=text, metadata=meta, id=hit.chunk.id)


class RagRetriever(BaseRetriever):
    """`RagRetriever(retriever=Retriever.open("index"), k=5, mode="hybrid")` for use in any LCEL chain."""

    retriever: Any
    k: int = 5
    mode: str = "hybrid"

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                **kwargs: Any) -> list[LCDocument]:
        k = kwargs.get("k", self.k)
        return [hit_to_langchain(h) for h in self.retriever.search(query, k=k, mode=self.mode)]
