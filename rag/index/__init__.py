"""Indexing: documents, chunking, embedding, the stores on disk and the indexer."""
