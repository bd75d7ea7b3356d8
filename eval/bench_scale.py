"""Scale-out figures: Milvus Lite vs FAISS query latency at growing index sizes, and a Ray build vs a
single-process build, on this machine.

Builds a real index of `--docs` SciFact abstracts once (single process, warm model), then the same corpus
with embedding as a Ray Data job on a local Ray instance (`--ray-workers` workers) and checks the two
indexes are the same. For each size in `--sizes` the real chunks are grown synthetically (eval/bench.py's
`synthetic_index`) and written to both stores; the store's own dense search (k=50, query vectors given) and
end-to-end hybrid `Retriever.search` (k=5) are timed, and the two stores' dense rankings are compared. Run by
eval/bench.py (`make bench`), or alone: `python eval/bench_scale.py`. A benchmark: it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (eval/bench.py: corpus, synthetic sizes, percentiles)


def build_figures(docs: int, workers: int, work: Path) -> tuple[dict, Path]:
    """Single-process vs Ray build of the same corpus: seconds, chunks/s, and whether the indexes agree."""
    import numpy as np

    from rag.distributed import RayEmbedder
    from rag.embedding import embedder_for
    from rag.indexer import Indexer
    from rag.settings import Settings
    from rag.store import IndexStore

    corpus, _ = bench.prepare_corpus(docs, work)
    single = Settings(index_dir=work / "single")
    embedder = embedder_for(single)
    embedder.embed(["warm up the model", "and its first batch"])  # model load excluded, as in bench.py
    started = time.perf_counter()
    report = Indexer(single, embedder).index([corpus])
    single_s = time.perf_counter() - started

    import ray

    started = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray_init_s = time.perf_counter() - started
    try:
        ray_embedder = RayEmbedder(embedder_for(single), address=None, workers=workers)
        on_ray = single.with_overrides(index_dir=work / "ray")
        started = time.perf_counter()
        Indexer(on_ray, ray_embedder).index([corpus])
        ray_s = time.perf_counter() - started
    finally:
        ray.shutdown()
    a, b = IndexStore(single.index_dir).load(), IndexStore(on_ray.index_dir).load()
    chunks = report.chunks_embedded
    return {
        "documents": report.files_indexed, "chunks": report.chunks_total, "chunks_embedded": chunks,
        "single_process_s": round(single_s, 2), "single_process_chunks_per_s": round(chunks / single_s, 1),
        "ray_workers": workers, "ray_workers_used": len(ray_embedder.last_workers), "ray_init_s": round(ray_init_s, 2),
        "ray_build_s": round(ray_s, 2), "ray_chunks_per_s": round(chunks / ray_s, 1),
        "same_chunk_ids": [c.id for c in a.chunks] == [c.id for c in b.chunks],
        "max_vector_diff": float(np.abs(a.vectors() - b.vectors()).max()),
        "note": "ray_build_s includes each worker loading the model; the single-process model was loaded before timing",
    }, single.index_dir


def query_figures(index_dir: Path, sizes: list[int], n_queries: int, work: Path) -> dict:
    """Per size and store: write seconds, dense search p50/p95 (the store alone), hybrid search p50/p95."""
    import numpy as np

    from rag.embedding import embedder_for
    from rag.milvus_store import StoreOptions
    from rag.retrieval import CANDIDATES, Retriever
    from rag.settings import Settings
    from rag.store import IndexStore

    embedder = embedder_for(Settings())
    real = IndexStore(index_dir).load()
    vectors = real.vectors()
    _, queries = bench.prepare_corpus(0, work / "q")
    queries = queries[:n_queries]
    query_vectors = embedder.embed(queries)
    out = {}
    for size in sizes:
        data = bench.synthetic_index(real.chunks, real.documents, vectors, size)
        data.manifest = {**real.manifest, "created_at": "synthetic"}
        row, rankings = {"chunks": size}, {}
        for kind in ("faiss", "milvus"):
            store = IndexStore(work / f"{kind}-{size}", StoreOptions(store=kind))
            started = time.perf_counter()
            with store.writer_lock():
                store.write(data)
            write_s = time.perf_counter() - started
            started = time.perf_counter()
            retriever = Retriever.open(store.root, embedder)
            open_s = time.perf_counter() - started
            dense, hybrid, ranked = [], [], []
            for i, q in enumerate(queries):
                qv = query_vectors[i:i + 1]
                t0 = time.perf_counter()
                _, rows = retriever.index.dense.search(qv, CANDIDATES)
                dense.append(time.perf_counter() - t0)
                ranked.append(rows[0][:10].tolist())
                t0 = time.perf_counter()
                retriever.search(q, k=5, mode="hybrid")
                hybrid.append(time.perf_counter() - t0)
            rankings[kind] = ranked
            row[kind] = {"write_s": round(write_s, 2), "open_s": round(open_s, 2),
                         **bench._percentiles(dense, "dense_search"), **bench._percentiles(hybrid, "hybrid")}
            del retriever
            if kind == "milvus":
                from milvus_lite import server_manager_instance

                server_manager_instance.release_server(str(store.root / "milvus.db"))
            shutil.rmtree(store.root, ignore_errors=True)
        row["same_top10"] = round(float(np.mean([f == m for f, m in zip(rankings["faiss"], rankings["milvus"],
                                                                        strict=True)])), 3)
        out[str(size)] = row
    return {"queries": len(queries), "k_dense": CANDIDATES, "sizes": out}


def run(docs: int, sizes: list[int], n_queries: int, workers: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="rag-bench-scale-"))
    try:
        build, index_dir = build_figures(docs, workers, work)
        queries = query_figures(index_dir, sizes, n_queries, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"machine": bench.machine(), "build": build, "queries": queries}


def markdown(r: dict) -> str:
    b, q = r["build"], r["queries"]
    lines = ["## Scale-out: Milvus Lite vs FAISS, Ray vs one process", "",
             f"Query latency ({q['queries']} SciFact queries; dense = the store's own search for the top "
             f"{q['k_dense']} with the query vector given; hybrid = `Retriever.search`, k=5, query embedding "
             "included):", "",
             "| chunks | store | write s | dense p50 ms | dense p95 ms | hybrid p50 ms | hybrid p95 ms | same top-10 |",
             "|---|---|---|---|---|---|---|---|"]
    for size, row in q["sizes"].items():
        for kind in ("faiss", "milvus"):
            s = row[kind]
            same = f"{row['same_top10']:.3f}" if kind == "milvus" else ""
            lines.append(f"| {int(size):,} | {kind} | {s['write_s']} | {s['dense_search_p50_ms']} | "
                         f"{s['dense_search_p95_ms']} | {s['hybrid_p50_ms']} | {s['hybrid_p95_ms']} | {same} |")
    lines += ["", f"Build of {b['documents']} SciFact abstracts ({b['chunks']} chunks):", "",
              "| build | seconds | chunks/s |", "|---|---|---|",
              f"| single process (warm model) | {b['single_process_s']} | {b['single_process_chunks_per_s']} |",
              f"| Ray Data, {b['ray_workers']} local workers (+{b['ray_init_s']} s Ray start) | {b['ray_build_s']} | "
              f"{b['ray_chunks_per_s']} |", "",
              f"Same chunk ids: {b['same_chunk_ids']}; largest vector difference {b['max_vector_diff']:.2e}; "
              f"workers that embedded: {b['ray_workers_used']}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=300, help="SciFact documents built both ways (default 300)")
    parser.add_argument("--sizes", default="10000,100000", help="index sizes for query latency, in chunks")
    parser.add_argument("--queries", type=int, default=100, help="queries timed per store and size (default 100)")
    parser.add_argument("--ray-workers", type=int, default=2, help="local Ray workers (default 2)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    args = parser.parse_args()
    bench.scifact_dir()  # says where to put SciFact when it is missing
    result = run(args.docs, [int(s) for s in args.sizes.split(",")], args.queries, args.ray_workers)
    sys.stdout.write(json.dumps(result) + "\n" if args.json else markdown(result))


if __name__ == "__main__":
    main()
