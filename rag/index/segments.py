"""One segment of an index version: a folder holding a run of rows as a chunk store, their vectors and their
BM25 postings. A segment is written once and never changed; rows leave it by filtering it into a new one. Which
segments a version has, and the version swap, are rag.index.store's business."""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np

from rag.index import bm25, chunkstore, dense
from rag.types import Chunk, Document


def write(version_dir: Path, documents: Sequence[Document], chunks: Sequence[Chunk], vectors: np.ndarray) -> dict:
    """One new segment folder under `version_dir`/segments: chunk store, vectors, BM25 postings."""
    name = f"s{time.time_ns()}-{os.urandom(3).hex()}"
    folder = version_dir / "segments" / name
    folder.mkdir(parents=True)
    n_docs, n_chunks = chunkstore.write_segment(folder / chunkstore.FILE, documents, chunks)
    np.save(folder / dense.VECTORS, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
    stats = bm25.write_segment(folder / "bm25", (c.text for c in chunks))
    return {
        "name": name,
        "chunks": n_chunks,
        "documents": n_docs,
        "dim": int(vectors.shape[1]),
        "bm25": stats.to_dict(),
    }


def filter(folder: Path, version_dir: Path, drop_rows: np.ndarray, drop_documents: Collection[str], dim: int) -> dict:
    """A new segment under `version_dir`/segments: segment `folder` without its local rows `drop_rows` and the
    documents `drop_documents`, its files filtered (no text is re-tokenised, no vector re-embedded)."""
    name = f"s{time.time_ns()}-{os.urandom(3).hex()}"
    out = version_dir / "segments" / name
    out.mkdir(parents=True)
    n_docs, n_chunks = chunkstore.filter_segment(
        folder / chunkstore.FILE, out / chunkstore.FILE, drop_rows, drop_documents
    )
    dense.filter_vectors(folder / dense.VECTORS, out / dense.VECTORS, drop_rows)
    stats = bm25.filter_segment(folder / "bm25", out / "bm25", drop_rows)
    return {"name": name, "chunks": n_chunks, "documents": n_docs, "dim": dim, "bm25": stats.to_dict()}
