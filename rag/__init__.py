"""rag: cited-answer question answering over your documents.

The public names are re-exported lazily, so `import rag` (and `rag --help`) loads no model libraries; the
`TYPE_CHECKING` imports below show the same names to type checkers and editors and never run.
"""

from importlib import import_module

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing; type checkers take any such name as True
if TYPE_CHECKING:
    from rag.answer.chain import RAG
    from rag.answer.integrations import RagRetriever
    from rag.answer.retrieval import Retriever
    from rag.index.embedding import HashEmbedder, SentenceTransformerEmbedder, make_embedder
    from rag.index.indexer import Indexer
    from rag.index.store import IndexStore
    from rag.settings import Settings
    from rag.types import Answer, Chunk, Citation, Document, Hit, IndexReport, Skipped

__all__ = [
    "RAG",
    "Answer",
    "Chunk",
    "Citation",
    "Document",
    "HashEmbedder",
    "Hit",
    "IndexReport",
    "IndexStore",
    "Indexer",
    "RagRetriever",
    "Retriever",
    "SentenceTransformerEmbedder",
    "Settings",
    "Skipped",
    "make_embedder",
]
_EXPORTS = {  # name -> the module it is loaded from on first use; the same pairs as the imports above
    "RAG": "rag.answer.chain",
    "HashEmbedder": "rag.index.embedding",
    "SentenceTransformerEmbedder": "rag.index.embedding",
    "make_embedder": "rag.index.embedding",
    "Indexer": "rag.index.indexer",
    "RagRetriever": "rag.answer.integrations",
    "Retriever": "rag.answer.retrieval",
    "Settings": "rag.settings",
    "IndexStore": "rag.index.store",
    "Answer": "rag.types",
    "Chunk": "rag.types",
    "Citation": "rag.types",
    "Document": "rag.types",
    "Hit": "rag.types",
    "IndexReport": "rag.types",
    "Skipped": "rag.types",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'rag' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
