"""Source-filter latency at 100k chunks: `Retriever.search(..., sources=GLOBS)` against the same search unfiltered.

A synthetic index written by rag.index.store to a temporary folder (no model): `--chunks` chunks spread over `--sources`
documents, random unit vectors of `--dim` dimensions in the `--dense-index` kind (flat: exact) and BM25 over random
words.
The filter is one glob matching 1% of the sources. Query vectors come from the hashing embedder, so the
timing is the search alone (dense, BM25, hybrid), k=5, one thread per query as in `rag serve`. Prints p50/p95 in
ms and a JSON line. A benchmark: it asserts nothing about speed. `python eval/bench_filter.py`.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np


def synthetic(chunks: int, sources: int, dim: int, folder: Path, dense_index: str = "flat", seed: int = 7):
    """Write the synthetic index to `folder` (rag.index.store, as `rag index` would) and open it."""
    from rag.index.dense_store import StoreOptions
    from rag.index.embedding import HashEmbedder
    from rag.index.store import IndexData, IndexStore
    from rag.types import Chunk, Document

    rng = random.Random(seed)
    words = [f"w{i}" for i in range(20_000)]
    per = chunks // sources
    documents, rows = [], []
    for s in range(sources):
        doc = Document.create(f"docs/d{s:05d}.txt", f"d{s}", "x")
        documents.append(doc)
        for c in range(per):
            text = " ".join(rng.choices(words, k=40))
            rows.append(Chunk(f"{s}-{c}", doc.id, doc.source, 0, 1, text))
    vectors = np.random.default_rng(seed).standard_normal((len(rows), dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    embedder = HashEmbedder(dim=dim)
    manifest = {"embedding": {"model": "hash", "dim": dim, "backend": embedder.backend}}
    store = IndexStore(folder, StoreOptions(dense_index=dense_index))
    with store.writer_lock():
        store.write(IndexData(documents, rows, vectors, manifest))
    return store.load(), embedder, words


def timed(fn, queries: list[str]) -> tuple[float, float]:
    times = []
    for q in queries:
        started = time.perf_counter()
        fn(q)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--sources", type=int, default=1_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--dense-index", default="flat", help="flat, hnsw or ivf-pq (default flat)")
    args = parser.parse_args()
    from rag.answer.retrieval import Retriever

    started = time.perf_counter()
    work = tempfile.TemporaryDirectory(prefix="bench-filter-")
    index, embedder, words = synthetic(args.chunks, args.sources, args.dim, Path(work.name), args.dense_index)
    built = time.perf_counter() - started
    retriever = Retriever(index, embedder)
    started = time.perf_counter()
    index.source_rows()  # the per-source table, read from the chunk store on the first filtered search
    load = time.perf_counter() - started
    glob = "docs/d0000[0-9].txt"  # ten sources: 1% of the default 1,000
    matched = retriever.matching_sources([glob])
    rng = random.Random(11)
    queries = [" ".join(rng.choices(words, k=6)) for _ in range(args.queries)]
    for q in queries[:5]:
        retriever.search(q, k=5, sources=[glob])  # warm up (and build the selection once)
    result = {
        "chunks": index.n_chunks,
        "dense_index": args.dense_index,
        "sources": args.sources,
        "filter": glob,
        "sources_matched": len(matched),
        "rows_matched": int(len(retriever.select([glob]).rows)),
        "build_s": round(built, 1),
        "per_source_table_ms": round(load * 1000, 1),
    }
    for mode in ("dense", "bm25", "hybrid"):
        for name, sources in (("unfiltered", None), ("filtered", [glob])):
            p50, p95 = timed(partial(retriever.search, k=5, mode=mode, sources=sources), queries)
            result[f"{mode}_{name}_ms"] = [round(p50, 2), round(p95, 2)]
            print(f"{mode:<7} {name:<10} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms")
    hits = retriever.search(queries[0], k=5, sources=[glob])
    assert all(h.chunk.source in matched for h in hits)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
