"""Scale figures on this machine: each dense index kind from 10k to 1M chunks, Milvus Lite vs FAISS, Ray vs one process.

Builds a real index of `--docs` SciFact abstracts once (single process, warm model). Dense index kinds (`--kinds`,
`--kind-sizes`): the real chunks are grown synthetically to each size (eval/benchkit.py's `synthetic_index`: real
texts repeated with fresh ids and perturbed vectors, so no embedding run is needed) and, per kind, measured:
the write, hybrid / dense / BM25 query latency (warm), dense recall@10 against exact search on the same queries,
opening the index and answering the first query in a fresh process (page cache warm, and cold: the index files
dropped from it with posix_fadvise), the RSS of `rag serve` with the index open, and adding 1,000 chunks. The first
kind is written whole; each next kind re-indexes the same stored vectors (segments kept). Milvus vs FAISS (`--sizes`)
and a Ray Data build (`--ray-workers`) as before. Run by eval/bench.py (`make bench`), or alone:
`python eval/bench_scale.py --out DIR` (writes scale.json, scale.md and scale.png). A benchmark: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchkit


def build_single(docs: int, work: Path) -> Path:
    """The real index the synthetic sizes grow from (default settings, one process)."""
    from rag.index.embedding import embedder_for
    from rag.index.indexer import Indexer
    from rag.settings import Settings

    corpus, _ = benchkit.prepare_corpus(docs, work)
    single = Settings(index_dir=work / "single")
    Indexer(single, embedder_for(single)).index([corpus])
    return single.index_dir


def build_figures(docs: int, workers: int, work: Path) -> tuple[dict, Path]:
    """Single-process vs Ray build of the same corpus: seconds, chunks/s, and whether the indexes agree."""
    import numpy as np

    from rag.index.distributed import RayEmbedder
    from rag.index.embedding import embedder_for
    from rag.index.indexer import Indexer
    from rag.index.store import IndexStore
    from rag.settings import Settings

    corpus, _ = benchkit.prepare_corpus(docs, work)
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
        "documents": report.files_indexed,
        "chunks": report.chunks_total,
        "chunks_embedded": chunks,
        "single_process_s": round(single_s, 2),
        "single_process_chunks_per_s": round(chunks / single_s, 1),
        "ray_workers": workers,
        "ray_workers_used": len(ray_embedder.last_workers),
        "ray_init_s": round(ray_init_s, 2),
        "ray_build_s": round(ray_s, 2),
        "ray_chunks_per_s": round(chunks / ray_s, 1),
        "same_chunk_ids": [c.id for c in a.chunks] == [c.id for c in b.chunks],
        "max_vector_diff": float(np.abs(a.vectors() - b.vectors()).max()),
        "note": "ray_build_s includes each worker loading the model; the single-process model was loaded before timing",
    }, single.index_dir


@dataclass
class Grown:
    """The real index the synthetic sizes grow from, and the bench queries with their vectors."""

    embedder: object
    manifest: dict
    chunks: list
    documents: list
    vectors: object  # np.ndarray
    queries: list[str]
    query_vectors: object  # np.ndarray

    @classmethod
    def load(cls, index_dir: Path, n_queries: int, work: Path) -> Grown:
        from rag.index.embedding import embedder_for
        from rag.index.store import IndexStore
        from rag.settings import Settings

        embedder = embedder_for(Settings())
        real = IndexStore(index_dir).load()
        _, queries = benchkit.prepare_corpus(0, work / "q")
        queries = queries[:n_queries]
        return cls(
            embedder,
            real.manifest.info,
            list(real.chunks),
            list(real.documents),
            real.vectors(),
            queries,
            embedder.embed(queries),
        )

    def synthetic(self, size: int):
        """`size` chunks grown from the real ones (eval/benchkit.py's synthetic_index)."""
        data = benchkit.synthetic_index(self.chunks, self.documents, self.vectors, size)
        data.manifest = {**self.manifest, "created_at": "synthetic"}
        return data


def query_figures(index_dir: Path, sizes: list[int], n_queries: int, work: Path) -> dict:
    """Per size and store: write seconds, dense search p50/p95 (the store alone), hybrid search p50/p95."""
    import numpy as np

    from rag.answer.retrieval import CANDIDATES, Retriever
    from rag.index.dense_store import StoreOptions
    from rag.index.store import IndexStore

    base = Grown.load(index_dir, n_queries, work)
    embedder, queries, query_vectors = base.embedder, base.queries, base.query_vectors
    out = {}
    for size in sizes:
        data = base.synthetic(size)
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
                qv = query_vectors[i : i + 1]
                t0 = time.perf_counter()
                _, rows = retriever.index.dense.search(qv, CANDIDATES)
                dense.append(time.perf_counter() - t0)
                ranked.append(rows[0][:10].tolist())
                t0 = time.perf_counter()
                retriever.search(q, k=5, mode="hybrid")
                hybrid.append(time.perf_counter() - t0)
            rankings[kind] = ranked
            row[kind] = {
                "write_s": round(write_s, 2),
                "open_s": round(open_s, 2),
                **benchkit.percentiles(dense, "dense_search"),
                **benchkit.percentiles(hybrid, "hybrid"),
            }
            del retriever
            if kind == "milvus":
                from milvus_lite import server_manager_instance

                server_manager_instance.release_server(str(store.root / "milvus.db"))
            shutil.rmtree(store.root, ignore_errors=True)
        row["same_top10"] = round(
            float(np.mean([f == m for f, m in zip(rankings["faiss"], rankings["milvus"], strict=True)])), 3
        )
        out[str(size)] = row
    return {"queries": len(queries), "k_dense": CANDIDATES, "sizes": out}


KINDS = ("flat", "hnsw", "ivf-pq")
TARGETS = {
    "hybrid_p50_ms": 20,
    "hybrid_p95_ms": 50,
    "recall_at_10": 0.95,
    "open_first_query_s": 3.0,
    "serve_rss_mb": 2048,
    "append_1000_s": 10,
}  # at 1M chunks (issue 15)


def _subset(data, n: int, docs_by_id: dict):
    """The first `n` rows of a synthetic index, with the documents they cite."""
    from rag.index.store import IndexData

    chunks = data.chunks[:n]
    docs = [docs_by_id[d] for d in dict.fromkeys(c.doc_id for c in chunks)]
    return IndexData(docs, chunks, data.vectors[:n], data.manifest)


def _exact_top10(vectors, query_vectors):
    """Exact top-10 rows per query (the ground truth recall is measured against), in 100k-row slices."""
    import numpy as np

    best_s = np.full((len(query_vectors), 0), -np.inf, np.float32)
    best_r = np.zeros((len(query_vectors), 0), np.int64)
    for start in range(0, len(vectors), 100_000):
        scores = query_vectors @ vectors[start : start + 100_000].T
        s = np.concatenate([best_s, scores], axis=1)
        r = np.concatenate([best_r, np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)], axis=1)
        top = np.argsort(-s, axis=1, kind="stable")[:, :10]
        best_s, best_r = np.take_along_axis(s, top, 1), np.take_along_axis(r, top, 1)
    return best_r


def _du_mb(folder: Path) -> float:
    """Disk use of one version dir (a file linked from another version counts here too)."""
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6, 1)


def open_worker(index_dir: str, cold: bool) -> dict:
    """In a fresh process: load the model, then open the index and answer one hybrid query (the timed part)."""
    import os

    from rag.answer.retrieval import Retriever
    from rag.index.embedding import embedder_for
    from rag.index.store import IndexStore
    from rag.settings import Settings

    started = time.perf_counter()
    embedder = embedder_for(Settings())
    embedder.embed(["warm up the model"])
    model_s = time.perf_counter() - started
    if cold:  # drop the index's files from the page cache (clean pages: they were fsynced when written)
        for path in IndexStore(index_dir).current().rglob("*"):
            if path.is_file():
                fd = os.open(path, os.O_RDONLY)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                os.close(fd)
    started = time.perf_counter()
    retriever = Retriever.open(index_dir, embedder)
    open_s = time.perf_counter() - started
    hits = retriever.search("What causes inflammation of the airways in asthma?", k=5)
    total = time.perf_counter() - started
    return {
        "model_load_s": round(model_s, 2),
        "open_s": round(open_s, 3),
        "open_first_query_s": round(total, 3),
        "hits": len(hits),
        "rss_mb": round(benchkit.vm_mb(os.getpid(), "VmRSS"), 1),
        "hwm_mb": round(benchkit.vm_mb(os.getpid(), "VmHWM"), 1),
    }


def serve_rss(index_dir: Path, questions: list[str], work: Path) -> dict:
    """`rag serve` (extractive backend, chat page mounted) on the index: RSS when ready and after `questions`."""
    try:
        with benchkit.rag_serve(
            [sys.executable, "-m", "rag.cli", "serve"],
            index_dir,
            "extractive",
            work / "serve.log",
            300,
            PYTHONPATH=str(benchkit.ROOT),
        ) as (proc, base):
            ready = benchkit.vm_mb(proc.pid, "VmRSS")
            latencies = [benchkit.ask(base, "rag", q) for q in questions]
            return {
                "serve_rss_ready_mb": ready,
                "serve_rss_mb": benchkit.vm_mb(proc.pid, "VmRSS"),
                "serve_hwm_mb": benchkit.vm_mb(proc.pid, "VmHWM"),
                "serve_requests": len(questions),
                **benchkit.percentiles(latencies, "serve_answer"),
            }
    except RuntimeError as exc:
        return {"skipped": str(exc)}


def measure_kind(root: Path, embedder, queries: list[str], query_vectors, truth, work: Path, serve: bool) -> dict:
    """Query latency, recall@10 against `truth`, fresh-process open (cold, warm) and `rag serve` RSS of one index."""
    import gc

    import numpy as np

    from rag.answer.retrieval import CANDIDATES, Retriever

    fig: dict = {}
    for cold in (True, False):
        got = benchkit.run_json(
            [sys.executable, str(Path(__file__).resolve()), "--open-worker", str(root), *(["--cold"] if cold else [])]
        )
        prefix = "cold_" if cold else ""
        fig.update(
            {
                f"{prefix}open_first_query_s": got["open_first_query_s"],
                f"{prefix}open_s": got["open_s"],
                f"{prefix}open_rss_mb": got["rss_mb"],
            }
        )
        fig["model_load_s"] = got["model_load_s"]
    retriever = Retriever.open(root, embedder)
    for q in queries[:10]:
        retriever.search(q, k=5)
    dense, found = [], []
    for i in range(len(queries)):
        t0 = time.perf_counter()
        _, rows = retriever.index.dense.search(query_vectors[i : i + 1], CANDIDATES)
        dense.append(time.perf_counter() - t0)
        found.append(rows[0][:10].tolist())
    overlap = [len(set(f) & set(t.tolist())) / 10 for f, t in zip(found, truth, strict=True)]
    fig["recall_at_10"] = round(float(np.mean(overlap)), 4)
    fig.update(benchkit.percentiles(dense, "dense_search"))
    for mode in ("bm25", "hybrid"):
        latencies = []
        for q in queries:
            t0 = time.perf_counter()
            retriever.search(q, k=5, mode=mode)
            latencies.append(time.perf_counter() - t0)
        fig.update(benchkit.percentiles(latencies, mode))
    del retriever
    gc.collect()
    if serve:
        fig.update(serve_rss(root, queries[:20], work))
    return fig


def kind_figures(
    index_dir: Path, sizes: list[int], kinds: list[str], n_queries: int, work: Path, serve: bool = True
) -> dict:
    """Per size and dense index kind: write, latency, recall@10, open, serve RSS, adding 1,000 chunks."""
    import gc

    from rag.index.dense_store import StoreOptions
    from rag.index.store import IndexStore

    base = Grown.load(index_dir, n_queries, work)
    embedder, queries, query_vectors = base.embedder, base.queries, base.query_vectors
    texts = [base.chunks[i % len(base.chunks)].text for i in range(1000)]
    started = time.perf_counter()
    embedder.embed(texts)
    embed_1000 = time.perf_counter() - started
    out = {"queries": len(queries), "kinds": kinds, "embed_1000_s": round(embed_1000, 1), "sizes": {}}
    for size in sizes:
        data = base.synthetic(size + 1000 * len(kinds))
        docs_by_id = {d.id: d for d in data.documents}
        root, n, row = work / f"kinds-{size}", size, {}
        for i, kind in enumerate(kinds):
            store = IndexStore(root, StoreOptions(dense_index=kind), append_min_rows=0)
            current = _subset(data, n, docs_by_id)
            started = time.perf_counter()
            with store.writer_lock():
                store.write(current)
            fig = {
                "chunks": n,
                "write_s": round(time.perf_counter() - started, 2),
                "write": "whole index" if i == 0 else "dense index only (the same stored vectors)",
                "disk_mb": _du_mb(store.current()),
            }
            del current
            gc.collect()
            truth = _exact_top10(data.vectors[:n], query_vectors)
            fig.update(measure_kind(root, embedder, queries, query_vectors, truth, work, serve))
            new = data.chunks[n : n + 1000]
            new_docs = [docs_by_id[d] for d in dict.fromkeys(c.doc_id for c in new)]
            started = time.perf_counter()
            with store.writer_lock():
                version = store.append(new_docs, new, data.vectors[n : n + 1000])
            fig["append_1000_s"] = round(time.perf_counter() - started, 2)
            fig["segments_after_append"] = len(json.loads((version / "manifest.json").read_text())["segments"])
            n += 1000
            row[kind] = fig
            print(f"[bench_scale] {size:,} {kind}: {fig}", file=sys.stderr, flush=True)
        shutil.rmtree(root, ignore_errors=True)
        out["sizes"][str(size)] = row
        del data, docs_by_id
        gc.collect()
    return out


def plot(result: dict, path: Path) -> None:
    """The cost curves, 10k to 1M, one line per dense index kind, the issue's targets dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = result["kinds"]
    sizes = sorted(int(s) for s in k["sizes"])
    panels = [
        ("hybrid query p50 / p95 (ms, warm)", ["hybrid_p50_ms", "hybrid_p95_ms"], [20, 50]),
        ("dense recall@10 vs exact", ["recall_at_10"], [0.95]),
        ("open + first query (s, fresh process; cold, warm)", ["cold_open_first_query_s", "open_first_query_s"], [3]),
        ("RSS of rag serve (MB)", ["serve_rss_mb"], [2048]),
        ("adding 1,000 chunks (s, embedding excluded)", ["append_1000_s"], [10]),
        ("write (s) / disk (GB)", ["write_s", "disk_gb"], []),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    colours = {"flat": "tab:blue", "hnsw": "tab:orange", "ivf-pq": "tab:green"}
    for ax, (title, keys, targets) in zip(axes.flat, panels, strict=True):
        for kind in k["kinds"]:
            for key, style in zip(keys, ("-o", "--s"), strict=False):
                ys = []
                for size in sizes:
                    f = k["sizes"][str(size)][kind]
                    ys.append(f.get("disk_mb", 0) / 1000 if key == "disk_gb" else f.get(key, float("nan")))
                ax.plot(sizes, ys, style, color=colours.get(kind), label=f"{kind} {key}" if len(keys) > 1 else kind)
        for t in targets:
            ax.axhline(t, color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("chunks")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    m = result["machine"]
    fig.suptitle(
        f"Dense index kinds at scale ({m.get('cpu', '?')}, {m.get('cpus')} CPUs); dotted: targets at 1M", fontsize=11
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="rag-bench-scale-"))
    result: dict = {"machine": benchkit.machine(), "command": " ".join(["python eval/bench_scale.py", *sys.argv[1:]])}
    try:
        if args.skip_ray:
            index_dir = build_single(args.docs, work)
        else:
            result["build"], index_dir = build_figures(args.docs, args.ray_workers, work)
        if args.kind_sizes:
            result["kinds"] = kind_figures(
                index_dir, _ints(args.kind_sizes), args.kinds.split(","), args.queries, work, serve=not args.no_serve
            )
        if not args.skip_milvus:
            result["queries"] = query_figures(index_dir, _ints(args.sizes), args.queries, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _ints(text: str) -> list[int]:
    return [int(s.replace("_", "")) for s in text.split(",") if s]


def _pair(f: dict, a: str, b: str, fmt: str = "{:.1f}") -> str:
    return " / ".join(fmt.format(f[k]) if k in f else "—" for k in (a, b))


def kinds_markdown(r: dict, plot_name: str | None = "scale.png") -> list[str]:
    k = r["kinds"]
    sizes = sorted(int(s) for s in k["sizes"])
    m = r["machine"]
    lines = [
        "## Dense index kinds, 10k to 1M chunks",
        "",
        f"`{r.get('command', 'python eval/bench_scale.py')}` on {m.get('cpu', '?')} ({m.get('cpus')} CPUs, "
        f"{', '.join(m.get('simd', []))}), load average at start "
        f"{', '.join(f'{x:.1f}' for x in m.get('load_average_at_start', []))}. Synthetic indexes: the real "
        f"SciFact chunks repeated with fresh ids and perturbed vectors; {k['queries']} SciFact queries, warm; "
        "hybrid and BM25 "
        "are `Retriever.search` (k=5, query embedding included), dense is the index's own search for the top 50 "
        "with the query vector given; recall@10 is against exact search over the same vectors; open + first query "
        "runs in a fresh process after the model is loaded, with the index files dropped from the page cache "
        "(cold) and in it (warm); `rag serve` runs the extractive backend with the chat page mounted, RSS after "
        f"20 answers. Adding 1,000 chunks excludes their embedding ({k['embed_1000_s']} s for 1,000 chunk texts "
        "with the default `onnx-int8` embedder here).",
        "",
    ]
    if plot_name:
        lines += [f"![cost curves per dense index kind]({plot_name})", ""]
    for kind in k["kinds"]:
        head = " | ".join(f"{s:,}" for s in sizes)
        lines += [f"### `{kind}`", "", f"| figure | {head} | target at 1M |", "|---" * (len(sizes) + 2) + "|"]
        rows = [
            ("hybrid query p50 / p95 ms", lambda f: _pair(f, "hybrid_p50_ms", "hybrid_p95_ms"), "≤ 20 / ≤ 50"),
            (
                "dense search alone p50 / p95 ms",
                lambda f: _pair(f, "dense_search_p50_ms", "dense_search_p95_ms", "{:.2f}"),
                "",
            ),
            ("BM25 p50 / p95 ms", lambda f: _pair(f, "bm25_p50_ms", "bm25_p95_ms"), ""),
            ("dense recall@10 vs exact", lambda f: f"{f['recall_at_10']:.3f}", "≥ 0.95"),
            (
                "open + first query s, cold / warm",
                lambda f: _pair(f, "cold_open_first_query_s", "open_first_query_s", "{:.2f}"),
                "≤ 3",
            ),
            (
                "RSS of `rag serve` MB (peak)",
                lambda f: f"{f['serve_rss_mb']:.0f} ({f['serve_hwm_mb']:.0f})" if "serve_rss_mb" in f else "—",
                "≤ 2,048",
            ),
            ("RSS of a fresh process after open + first query MB", lambda f: f"{f['open_rss_mb']:.0f}", ""),
            ("adding 1,000 chunks s", lambda f: f"{f['append_1000_s']:.2f}", "≤ 10 + embedding"),
            ("write s", lambda f: f"{f['write_s']:.1f}", ""),
            ("disk MB", lambda f: f"{f['disk_mb']:,.0f}", ""),
        ]
        for name, cell, target in rows:
            cells = " | ".join(cell(k["sizes"][str(s)][kind]) for s in sizes)
            lines.append(f"| {name} | {cells} | {target} |")
        first = k["sizes"][str(sizes[0])][kind]
        lines += ["", f"Write: {first['write']}.", ""]
    return lines


def markdown(r: dict, plot_name: str | None = "scale.png") -> str:
    lines: list[str] = []
    if "kinds" in r:
        lines += kinds_markdown(r, plot_name)
    if "queries" in r:
        q = r["queries"]
        lines += [
            "## Scale-out: Milvus Lite vs FAISS",
            "",
            f"Query latency ({q['queries']} SciFact queries; dense = the store's own search for the top "
            f"{q['k_dense']} with the query vector given; hybrid = `Retriever.search`, k=5, query embedding "
            "included):",
            "",
            "| chunks | store | write s | dense p50 ms | dense p95 ms | hybrid p50 ms | hybrid p95 ms | same top-10 |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for size, row in q["sizes"].items():
            for kind in ("faiss", "milvus"):
                s = row[kind]
                same = f"{row['same_top10']:.3f}" if kind == "milvus" else ""
                lines.append(
                    f"| {int(size):,} | {kind} | {s['write_s']} | {s['dense_search_p50_ms']} | "
                    f"{s['dense_search_p95_ms']} | {s['hybrid_p50_ms']} | {s['hybrid_p95_ms']} | {same} |"
                )
        lines.append("")
    if "build" in r:
        b = r["build"]
        lines += [
            "## Scale-out: Ray vs one process",
            "",
            f"Build of {b['documents']} SciFact abstracts ({b['chunks']} chunks):",
            "",
            "| build | seconds | chunks/s |",
            "|---|---|---|",
            f"| single process (warm model) | {b['single_process_s']} | {b['single_process_chunks_per_s']} |",
            f"| Ray Data, {b['ray_workers']} local workers (+{b['ray_init_s']} s Ray start) "
            f"| {b['ray_build_s']} | "
            f"{b['ray_chunks_per_s']} |",
            "",
            f"Same chunk ids: {b['same_chunk_ids']}; largest vector difference {b['max_vector_diff']:.2e}; "
            f"workers that embedded: {b['ray_workers_used']}.",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=300, help="SciFact documents indexed for real (default 300)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="dense index kinds measured (default all)")
    parser.add_argument(
        "--kind-sizes",
        default="10000,100000,1000000",
        help='index sizes for the dense index kinds, in chunks ("" skips them)',
    )
    parser.add_argument("--sizes", default="10000,100000", help="index sizes for Milvus vs FAISS, in chunks")
    parser.add_argument("--queries", type=int, default=200, help="queries timed per index (default 200)")
    parser.add_argument("--ray-workers", type=int, default=2, help="local Ray workers (default 2)")
    parser.add_argument("--skip-ray", action="store_true", help="build the real index in one process only")
    parser.add_argument("--skip-milvus", action="store_true", help="skip Milvus Lite vs FAISS")
    parser.add_argument("--no-serve", action="store_true", help="skip the `rag serve` RSS per index")
    parser.add_argument("--out", help="also write scale.json, scale.md and scale.png to this folder")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    parser.add_argument(
        "--data", help=f"the BEIR SciFact folder (default: $RAG_BENCH_DATA, else {benchkit.DEFAULT_SCIFACT})"
    )
    parser.add_argument("--open-worker", help=argparse.SUPPRESS)
    parser.add_argument("--cold", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.open_worker:
        sys.stdout.write(json.dumps(open_worker(args.open_worker, args.cold)) + "\n")
        return
    os.environ["RAG_BENCH_DATA"] = str(benchkit.scifact_dir(args.data))  # says where to put SciFact when it is missing
    result = run(args)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "scale.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
        if "kinds" in result:
            plot(result, out / "scale.png")
        (out / "scale.md").write_text(markdown(result), encoding="utf-8")
    sys.stdout.write(json.dumps(result) + "\n" if args.json else markdown(result))


if __name__ == "__main__":
    main()
