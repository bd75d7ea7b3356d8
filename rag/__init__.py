"""rag: cited-answer question answering over your documents.

The public names are re-exported lazily, so `import rag` (and `rag --help`) loads no model libraries.
"""

from importlib import import_module

_EXPORTS = {
    "Settings": "rag.settings",
    "Document": "rag.types", "Chunk": "rag.types", "Hit": "rag.types", "IndexReport": "rag.types",
    "Skipped": "rag.types",
    "Indexer": "rag.indexer",
    "RAG": "rag.chain", "Answer": "rag.types", "Citation": "rag.types",
    "Retriever": "rag.retrieval",
    "IndexStore": "rag.store",
    "RagRetriever": "rag.integrations",
    "make_embedder": "rag.embedding", "HashEmbedder": "rag.embedding",
    "SentenceTransformerEmbedder": "rag.embedding",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'rag' has no attribute {name!r}")
