"""`make bench`: this pipeline's speed against the raw encoder and the stock LangChain pipeline, in one run.

Measures, on the same machine and data: index build throughput (our `Indexer`, the raw encoder on our very
chunk texts, LangChain's splitter + HuggingFaceEmbeddings + FAISS run by eval/bench_langchain.py in
.venv-bench), re-indexing, query latency at growing index sizes (ours per mode, LangChain's FAISS
retriever), answer latency (local and extractive backends), peak RSS and `rag --help`. Writes bench.json
and bench.md under eval/reports/bench-<run>/. Each stage runs in its own process, so a peak RSS is that
stage's own. It is a benchmark, not a test: it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import (
    DEFAULT_SCIFACT,
    ROOT,
    ask,
    machine,
    percentiles,
    prepare_corpus,
    rag_serve,
    run_json,
    scifact_dir,
    synthetic_index,
    vm_mb,
)

BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
LANGCHAIN_NDCG = 0.674  # SciFact nDCG@10 of the stock LangChain pipeline (RecursiveCharacterTextSplitter(1000, 200))


# -- helpers ---------------------------------------------------------------------------------------------


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _worker(stage: str, spec: dict) -> dict:
    """Run one stage of this script in a fresh interpreter (its own peak RSS, its own model loads)."""
    spec_file = Path(spec["work"]) / f"spec-{stage}-{time.time_ns()}.json"
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    return run_json([sys.executable, str(Path(__file__).resolve()), "--worker", stage, str(spec_file)])


def _settings(spec: dict, index_dir: Path, backend: str):
    from rag.settings import Settings

    return Settings(
        index_dir=index_dir,
        embedding_backend=backend,
        batch_size=spec["batch_size"],
        chunk_size=spec["chunk_size"],
        chunk_overlap=spec["chunk_overlap"],
        model_cache_dir=Path(spec["model_cache_dir"]),
    )


def _warm_embedder(spec: dict, backend: str):
    from rag.index.embedding import embedder_for

    started = time.perf_counter()
    embedder = embedder_for(_settings(spec, Path(spec["work"]), backend))
    embedder.embed(["warm up the model", "and its first batch"])
    return embedder, time.perf_counter() - started


# -- stages (each runs in its own process) ----------------------------------------------------------------


def stage_build(spec: dict) -> dict:
    """A fresh build with a warm embedder, the same embedder on the chunk texts alone, then two re-indexes."""
    from rag.index.indexer import Indexer
    from rag.index.store import IndexStore

    backend = spec["backend"]
    corpus = Path(spec["work"]) / f"corpus-{backend}"
    shutil.copytree(spec["corpus"], corpus, dirs_exist_ok=True)  # its own copy: one file gets changed below
    embedder, model_load = _warm_embedder(spec, backend)
    import bm25s  # noqa: F401  library imports stay out of the timing, as LangChain's do
    import faiss  # noqa: F401

    settings = _settings(spec, Path(spec["work"]) / f"index-{backend}", backend)
    started = time.perf_counter()
    report = Indexer(settings, embedder).index([corpus])
    build = time.perf_counter() - started
    texts = list(dict.fromkeys(c.text for c in IndexStore(settings.index_dir).load().chunks))
    started = time.perf_counter()
    embedder.embed(texts)
    encode = time.perf_counter() - started
    rss_build = _peak_rss_mb()
    started = time.perf_counter()
    unchanged = Indexer(settings, embedder).index([corpus])
    unchanged_s = time.perf_counter() - started
    first = sorted(corpus.glob("*.txt"))[0]
    first.write_text(
        first.read_text(encoding="utf-8") + "\n\nAn added closing sentence changes this file.", encoding="utf-8"
    )
    started = time.perf_counter()
    one = Indexer(settings, embedder).index([corpus])
    one_s = time.perf_counter() - started
    return {
        "backend": backend,
        "documents": report.files_indexed,
        "chunks": report.chunks_total,
        "chunks_embedded": report.chunks_embedded,
        "unique_texts": len(texts),
        "model_load_s": round(model_load, 3),
        "build_s": round(build, 3),
        "encode_s": round(encode, 3),
        "unchanged_s": round(unchanged_s, 4),
        "unchanged_embedded": unchanged.chunks_embedded,
        "one_changed_s": round(one_s, 3),
        "one_changed_embedded": one.chunks_embedded,
        "index_dir": str(settings.index_dir),
        "peak_rss_mb": rss_build,
        "peak_rss_with_reindex_mb": _peak_rss_mb(),
    }


def stage_raw(spec: dict) -> dict:
    """sentence-transformers' own `encode` (PyTorch) on exactly the chunk texts of a built index."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    from rag.index.embedding import bundled_model_dir
    from rag.index.store import IndexStore

    texts = list(dict.fromkeys(c.text for c in IndexStore(spec["index_dir"]).load().chunks))
    started = time.perf_counter()
    model = SentenceTransformer(str(bundled_model_dir()), device="cpu", local_files_only=True)
    model.encode(["warm up the model", "and its first batch"], batch_size=spec["batch_size"], normalize_embeddings=True)
    model_load = time.perf_counter() - started
    started = time.perf_counter()
    model.encode(texts, batch_size=spec["batch_size"], normalize_embeddings=True, convert_to_numpy=True)
    encode = time.perf_counter() - started
    return {
        "texts": len(texts),
        "model_load_s": round(model_load, 3),
        "encode_s": round(encode, 3),
        "peak_rss_mb": _peak_rss_mb(),
    }


def stage_queries(spec: dict) -> dict:
    """Warm Retriever.search latency per mode at each size; the query embedding timed on its own too."""
    import numpy as np

    from rag.answer.retrieval import Retriever
    from rag.index.store import IndexStore

    backend = spec["backend"]
    embedder, _ = _warm_embedder(spec, backend)
    real = IndexStore(spec["index_dir"]).load()
    vectors = real.vectors()
    chunks, documents = list(real.chunks), list(real.documents)
    queries = json.loads(Path(spec["queries"]).read_text(encoding="utf-8"))
    out = {}
    for size in spec["sizes"]:
        data = synthetic_index(chunks, documents, vectors, size)
        data.manifest = {**real.manifest.info, "created_at": "synthetic"}
        store = IndexStore(Path(spec["work"]) / f"synthetic-{size}")
        started = time.perf_counter()
        with store.writer_lock():
            store.write(data)
        write_s = time.perf_counter() - started
        if spec.get("export_for_langchain"):
            folder = Path(spec["work"]) / "langchain-data" / f"size-{size}"
            folder.mkdir(parents=True, exist_ok=True)
            np.save(folder / "vectors.npy", data.vectors, allow_pickle=False)
            (folder / "texts.jsonl").write_text(
                "".join(json.dumps(c.text) + "\n" for c in data.chunks), encoding="utf-8"
            )
        started = time.perf_counter()
        retriever = Retriever.open(store.root, embedder)
        open_s = time.perf_counter() - started
        row = {"chunks": size, "write_s": round(write_s, 2), "open_s": round(open_s, 3)}
        embed = []
        for q in queries:
            t0 = time.perf_counter()
            embedder.embed([q])
            embed.append(time.perf_counter() - t0)
        row.update(percentiles(embed, "query_embed"))
        for mode in ("dense", "bm25", "hybrid"):
            for q in queries[:10]:
                retriever.search(q, k=5, mode=mode)
            latencies = []
            for q in queries:
                t0 = time.perf_counter()
                hits = retriever.search(q, k=5, mode=mode)
                latencies.append(time.perf_counter() - t0)
                assert len(hits) <= 5
            row.update(percentiles(latencies, mode))
        out[str(size)] = row
        del retriever, data
        shutil.rmtree(store.root, ignore_errors=True)
    return {"backend": backend, "queries": len(queries), "sizes": out, "peak_rss_mb": _peak_rss_mb()}


def stage_answers(spec: dict) -> dict:
    """RAG.stream over the seed questions: time to the first text piece and to the final Answer, per backend
    (a label and its settings: `local` beside the bundled model run as shipped, its baseline)."""
    from rag.answer.chain import RAG

    questions = [
        json.loads(line)["question"]
        for line in Path(spec["questions"]).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ][: spec["limit"]]
    out = {}
    for label, overrides in spec["backends"].items():
        started = time.perf_counter()
        rag = RAG.open(
            spec["index_dir"],
            embedding_backend=spec["backend"],
            model_cache_dir=Path(spec["model_cache_dir"]),
            **overrides,
        )
        rag.ask("What is this about?")  # loads the LLM and warms every path
        load = time.perf_counter() - started
        first, total, abstained = [], [], 0
        for q in questions:
            t0 = time.perf_counter()
            got = None
            for item in rag.stream(q):
                if isinstance(item, str) and got is None:
                    got = time.perf_counter() - t0
                if not isinstance(item, str):
                    abstained += item.abstained
            total.append(time.perf_counter() - t0)
            first.append(got if got is not None else total[-1])  # nothing streamed: the answer is the first token
        out[label] = {
            "questions": len(questions),
            "load_s": round(load, 2),
            "abstained": abstained,
            **percentiles(first, "first_token"),
            **percentiles(total, "total"),
        }
        del rag
    return {"backends": out, "peak_rss_mb": _peak_rss_mb()}


STAGES = {"build": stage_build, "raw": stage_raw, "queries": stage_queries, "answers": stage_answers}


# -- the orchestrating process ----------------------------------------------------------------------------


def rag_help_seconds(repeats: int = 5) -> float:
    script = Path(sys.executable).parent / "rag"
    cmd = [str(script), "--help"] if script.exists() else [sys.executable, "-m", "rag.cli", "--help"]
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        best = min(best, time.perf_counter() - started)
    return round(best, 3)


def index_seeds(work: Path, spec: dict, backend: str) -> Path:
    from rag.index.embedding import embedder_for
    from rag.index.indexer import Indexer

    settings = _settings(spec, work / "seeds-index", backend)
    Indexer(settings, embedder_for(settings)).index([ROOT / "seeds"])
    return settings.index_dir


def server_memory(index_dir: Path, questions: list[str], work: Path, local_questions: int) -> dict:
    """Start `rag serve`, send the bench questions to its API, and read the server's peak RSS (VmHWM)."""
    script = Path(sys.executable).parent / "rag"
    try:
        subprocess.run([str(script), "serve", "--help"], capture_output=True, check=True)
    except (subprocess.CalledProcessError, FileNotFoundError):
        return {"skipped": "`rag serve` is not available"}
    try:
        with rag_serve([str(script), "serve"], index_dir, "local", work / "server.log", 180) as (proc, base):
            ready_rss = vm_mb(proc.pid, "VmRSS")
            latencies = {"extractive": [], "local": []}
            for model, qs in (("rag-extractive", questions), ("rag-local", questions[:local_questions])):
                latencies[model.removeprefix("rag-")] += [ask(base, model, q) for q in qs]
            return {
                "rss_ready_mb": ready_rss,
                "peak_rss_mb": vm_mb(proc.pid, "VmHWM"),
                "requests": {k: len(v) for k, v in latencies.items()},
                **{k: v for name, lat in latencies.items() if lat for k, v in percentiles(lat, f"http_{name}").items()},
            }
    except RuntimeError as exc:
        return {"skipped": str(exc)}


def langchain_build(corpus: Path, work: Path, batch_size: int) -> dict:
    from rag.index.embedding import bundled_model_dir

    return run_json(
        [
            str(BENCH_PYTHON),
            str(ROOT / "eval" / "bench_langchain.py"),
            "build",
            "--corpus",
            str(corpus),
            "--out",
            str(work / "langchain-index"),
            "--model",
            str(bundled_model_dir()),
            "--batch-size",
            str(batch_size),
        ]
    )


def langchain_queries(work: Path, sizes: list[int], queries_file: Path, batch_size: int) -> dict:
    from rag.index.embedding import bundled_model_dir

    return run_json(
        [
            str(BENCH_PYTHON),
            str(ROOT / "eval" / "bench_langchain.py"),
            "query",
            "--data",
            str(work / "langchain-data"),
            "--sizes",
            ",".join(map(str, sizes)),
            "--queries",
            str(queries_file),
            "--model",
            str(bundled_model_dir()),
            "--batch-size",
            str(batch_size),
        ]
    )


def run(args: argparse.Namespace) -> Path:
    from rag.answer.llm import BUNDLED_GGUF, bundled_gguf
    from rag.settings import Settings

    defaults = Settings.from_env(os.environ)  # RAG_CHUNK_SIZE, RAG_EMBEDDING_BACKEND, ... apply here too
    backends = args.backends.split(",") if args.backends else [defaults.embedding_backend]
    default_backend = defaults.embedding_backend if defaults.embedding_backend in backends else backends[0]
    sizes = [int(s) for s in args.sizes.split(",")]
    run_name = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else ROOT / "eval" / "reports" / f"bench-{run_name}"
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    spec = {
        "work": str(work),
        "batch_size": defaults.batch_size,
        "model_cache_dir": str(defaults.model_cache_dir),
        "chunk_size": defaults.chunk_size,
        "chunk_overlap": defaults.chunk_overlap,
    }
    result: dict = {
        "run": run_name,
        "command": " ".join(["python eval/bench.py", *sys.argv[1:]]),
        "machine": machine(),
        "settings": {
            "chunk_size": defaults.chunk_size,
            "chunk_overlap": defaults.chunk_overlap,
            "batch_size": defaults.batch_size,
            "embedding_backend": defaults.embedding_backend,
        },
        "warm_up": "model load and library imports are excluded from every build and encode timing (each "
        "process loads its model and embeds two texts first); model load is reported as model_load_s",
    }

    def say(msg: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    try:
        result["rag_help_s"] = rag_help_seconds()
        say(f"rag --help: {result['rag_help_s']} s")
        corpus, queries = prepare_corpus(args.docs, work)
        queries_file = work / "queries.json"
        queries_file.write_text(json.dumps(queries[: args.queries]), encoding="utf-8")
        builds = {}
        for backend in backends:
            builds[backend] = _worker("build", {**spec, "corpus": str(corpus), "backend": backend})
            say(f"build {backend}: {builds[backend]['chunks']} chunks in {builds[backend]['build_s']} s")
        result["build"] = builds
        main_index = builds[default_backend]["index_dir"]
        result["raw_sentence_transformers"] = _worker("raw", {**spec, "index_dir": main_index})
        say(f"raw sentence-transformers: {result['raw_sentence_transformers']['encode_s']} s")
        if not args.skip_langchain:
            result["langchain_build"] = langchain_build(corpus, work, defaults.batch_size)
            say(f"langchain build: {result['langchain_build']['seconds']} s")
        result["queries"] = _worker(
            "queries",
            {
                **spec,
                "backend": default_backend,
                "index_dir": main_index,
                "sizes": sizes,
                "queries": str(queries_file),
                "export_for_langchain": not args.skip_langchain,
            },
        )
        say("queries: done")
        if not args.skip_langchain:
            result["langchain_queries"] = langchain_queries(work, sizes, queries_file, defaults.batch_size)
            say("langchain queries: done")
        if not args.skip_answers:
            seeds_index = index_seeds(work, spec, default_backend)
            answers_spec = {
                **spec,
                "backend": default_backend,
                "index_dir": str(seeds_index),
                "questions": str(ROOT / "eval" / "seed_questions.jsonl"),
                "limit": args.answer_questions,
                "backends": {
                    "extractive": {"backend": "extractive"},
                    "local": {"backend": "local"},  # the bundled model, converted to BUNDLED_RUN_AS
                    f"local, {BUNDLED_GGUF} as shipped": {"backend": "local", "llm_model_path": str(bundled_gguf())},
                },
            }
            result["answers"] = _worker("answers", answers_spec)
            say("answers: done")
            seed_questions = [
                json.loads(line)["question"]
                for line in (ROOT / "eval" / "seed_questions.jsonl").read_text(encoding="utf-8").splitlines()
                if line.strip()
            ]
            result["server"] = server_memory(
                seeds_index, seed_questions[: args.answer_questions], work, args.server_local_questions
            )
            say("server: done")
        if not args.skip_scale:  # eval/bench_scale.py, in its own process: Milvus Lite vs FAISS, Ray vs one process
            result["scale_out"] = run_json(
                [sys.executable, str(ROOT / "eval" / "bench_scale.py"), "--json"], timeout=4 * 3600
            )  # the dense index kinds up to 1M chunks take ~40 min
            say("scale-out: done")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["summary"] = summarize(result, default_backend)
    if "kinds" in result.get("scale_out", {}):
        import bench_scale

        bench_scale.plot(result["scale_out"], out / "scale.png")
    (out / "bench.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    (out / "bench.md").write_text(markdown(result, default_backend), encoding="utf-8")
    say(f"wrote {out / 'bench.json'} and {out / 'bench.md'}")
    return out


def local_speedups(answers: dict) -> dict:
    """`local` against the bundled GGUF as shipped, p50 ratios (above 1: ours is faster); both answered the same
    questions in one process, one after the other."""
    shipped = next((a for label, a in answers.items() if label.endswith("as shipped")), None)
    if shipped is None or "local" not in answers:
        return {}
    return {
        f"local_{m}_p50_speedup_over_shipped_gguf": round(shipped[f"{m}_p50_ms"] / answers["local"][f"{m}_p50_ms"], 2)
        for m in ("first_token", "total")
    }


def summarize(r: dict, default: str) -> dict:
    """The headline figures and ratios (throughput ratios: higher means ours is faster)."""
    s: dict = {"default_backend": default, "rag_help_s": r["rag_help_s"]}
    raw = r["raw_sentence_transformers"]
    raw_cps = raw["texts"] / raw["encode_s"]
    s["raw_sentence_transformers_chunks_per_s"] = round(raw_cps, 1)
    for backend, b in r["build"].items():
        cps = b["chunks"] / b["build_s"]
        s[f"build_{backend}_chunks_per_s"] = round(cps, 1)
        s[f"build_{backend}_docs_per_s"] = round(b["documents"] / b["build_s"], 2)
        s[f"encode_only_{backend}_chunks_per_s"] = round(b["unique_texts"] / b["encode_s"], 1)
        # pipeline overhead: the build against the same embedder on the same texts, in the same process
        s[f"build_{backend}_vs_own_encoder"] = round(cps / (b["unique_texts"] / b["encode_s"]), 3)
        s[f"build_{backend}_vs_raw_sentence_transformers"] = round(cps / raw_cps, 3)
        s[f"unchanged_reindex_{backend}_speedup"] = round(b["build_s"] / max(b["unchanged_s"], 1e-6), 1)
        s[f"one_changed_reindex_{backend}_speedup"] = round(b["build_s"] / max(b["one_changed_s"], 1e-6), 1)
        if "langchain_build" in r:
            lc = r["langchain_build"]
            # same files: the ratio of documents per second (chunk counts differ between the two splitters)
            s[f"build_{backend}_vs_langchain"] = round(lc["seconds"] / b["build_s"], 3)
    if "langchain_build" in r:
        lc = r["langchain_build"]
        s["langchain_build_docs_per_s"] = round(lc["documents"] / lc["seconds"], 2)
        s["langchain_build_chunks_per_s"] = round(lc["chunks"] / lc["seconds"], 1)
    s.update(local_speedups(r.get("answers", {}).get("backends", {})))
    q = r["queries"]["sizes"]
    for size, row in q.items():
        for mode in ("dense", "bm25", "hybrid"):
            s[f"{mode}_p50_ms@{size}"] = row[f"{mode}_p50_ms"]
        if "langchain_queries" in r:
            lq = r["langchain_queries"]["sizes"][size]
            s[f"langchain_faiss_p50_ms@{size}"] = lq["retriever_p50_ms"]
    return s


def markdown(r: dict, default: str) -> str:
    s = r["summary"]
    m = r["machine"]
    lines = [
        f"# Benchmark {r['run']}",
        "",
        f"`{r['command']}` on {m.get('cpu', '?')} ({m.get('cpus')} CPUs, {', '.join(m.get('simd', []))}), "
        f"load average at start {', '.join(f'{x:.1f}' for x in m.get('load_average_at_start', []))}. "
        f"Chunking {r['settings']['chunk_size']}/{r['settings']['chunk_overlap']} tokens, batch "
        f"{r['settings']['batch_size']}, default embedding backend `{default}`. {r['warm_up']}.",
        "",
        "## Index build",
        "",
        "| pipeline | docs | chunks | seconds | chunks/s | docs/s | model load s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for backend, b in r["build"].items():
        lines.append(
            f"| ours, `{backend}` | {b['documents']} | {b['chunks']} | {b['build_s']:.2f} | "
            f"{b['chunks'] / b['build_s']:.1f} | {b['documents'] / b['build_s']:.2f} | {b['model_load_s']:.1f} | "
            f"{b['peak_rss_mb']:.0f} |"
        )
    for backend, b in r["build"].items():
        lines.append(
            f"| encoder only, `{backend}` (same texts, same process) | | {b['unique_texts']} | {b['encode_s']:.2f} | "
            f"{b['unique_texts'] / b['encode_s']:.1f} | | | |"
        )
    raw = r["raw_sentence_transformers"]
    lines.append(
        f"| raw sentence-transformers `encode` (torch, same texts) | | {raw['texts']} | {raw['encode_s']:.2f} | "
        f"{raw['texts'] / raw['encode_s']:.1f} | | {raw['model_load_s']:.1f} | {raw['peak_rss_mb']:.0f} |"
    )
    if "langchain_build" in r:
        lc = r["langchain_build"]
        lines.append(
            f"| LangChain: {lc['splitter']} + HuggingFaceEmbeddings + FAISS + save_local | {lc['documents']} | "
            f"{lc['chunks']} | {lc['seconds']:.2f} | {lc['chunks'] / lc['seconds']:.1f} | "
            f"{lc['documents'] / lc['seconds']:.2f} | {lc['model_load_s']:.1f} | {lc['peak_rss_mb']:.0f} |"
        )
    lines += ["", "| ratio (throughput; > 1 means ours is faster) | value |", "|---|---|"]
    for backend in r["build"]:
        lines.append(
            f"| ours `{backend}` vs its own encoder on the same texts (pipeline overhead) | "
            f"{s[f'build_{backend}_vs_own_encoder']:.2f}× |"
        )
        lines.append(
            f"| ours `{backend}` vs raw sentence-transformers encode on the same texts | "
            f"{s[f'build_{backend}_vs_raw_sentence_transformers']:.2f}× |"
        )
        if f"build_{backend}_vs_langchain" in s:
            lines.append(
                f"| ours `{backend}` vs stock LangChain on the same files (docs/s) | "
                f"{s[f'build_{backend}_vs_langchain']:.2f}× |"
            )
    lines += [
        "",
        "## Re-index",
        "",
        "| backend | full build s | unchanged s (embedded) | speed-up | one file changed s (embedded) | speed-up |",
        "|---|---|---|---|---|---|",
    ]
    for backend, b in r["build"].items():
        lines.append(
            f"| `{backend}` | {b['build_s']:.2f} | {b['unchanged_s']:.3f} ({b['unchanged_embedded']}) | "
            f"{s[f'unchanged_reindex_{backend}_speedup']:.0f}× | "
            f"{b['one_changed_s']:.3f} ({b['one_changed_embedded']}) | "
            f"{s[f'one_changed_reindex_{backend}_speedup']:.0f}× |"
        )
    q = r["queries"]
    lines += [
        "",
        f"## Query latency (warm, {q['queries']} SciFact queries, k=5, `{q['backend']}` query embedding; ms)",
        "",
        "| chunks | query embed p50/p95 | dense p50/p95 | BM25 p50/p95 | hybrid p50/p95 "
        "| LangChain FAISS retriever p50/p95 |",
        "|---|---|---|---|---|---|",
    ]
    for size, row in q["sizes"].items():
        lc = r.get("langchain_queries", {}).get("sizes", {}).get(size)
        lc_cell = f"{lc['retriever_p50_ms']:.1f} / {lc['retriever_p95_ms']:.1f}" if lc else "—"
        lines.append(
            f"| {int(size):,} | {row['query_embed_p50_ms']:.1f} / {row['query_embed_p95_ms']:.1f} | "
            + " | ".join(f"{row[f'{m}_p50_ms']:.1f} / {row[f'{m}_p95_ms']:.1f}" for m in ("dense", "bm25", "hybrid"))
            + f" | {lc_cell} |"
        )
    lines.append(f"\nQuery process peak RSS {q['peak_rss_mb']:.0f} MB (largest size loaded).")
    if "answers" in r:
        lines += [
            "",
            "## Answer latency (seeds index, RAG.stream over eval/seed_questions.jsonl; seconds)",
            "",
            "| backend | questions | first token p50/p95 | total p50/p95 | abstained |",
            "|---|---|---|---|---|",
        ]
        for backend, a in r["answers"]["backends"].items():
            lines.append(
                f"| `{backend}` | {a['questions']} | "
                f"{a['first_token_p50_ms'] / 1000:.2f} / {a['first_token_p95_ms'] / 1000:.2f} | "
                f"{a['total_p50_ms'] / 1000:.2f} / {a['total_p95_ms'] / 1000:.2f} | {a['abstained']} |"
            )
        lines.append(f"\nAnswering process peak RSS {r['answers']['peak_rss_mb']:.0f} MB.")
        srv = r.get("server", {})
        if "peak_rss_mb" in srv:
            lines.append(
                f"`rag serve` (local backend, chat page mounted): RSS {srv['rss_ready_mb']:.0f} MB when ready, "
                f"peak {srv['peak_rss_mb']:.0f} MB after {srv['requests']} API requests."
            )
        elif srv:
            lines.append(f"Server: {srv.get('skipped')}.")
    if "scale_out" in r:
        import bench_scale

        lines += ["", bench_scale.markdown(r["scale_out"])]
    lines += ["", f"`rag --help`: {r['rag_help_s']:.2f} s (best of 5).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--docs", type=int, default=600, help="SciFact documents indexed for build throughput (default 600)"
    )
    parser.add_argument("--sizes", default="1000,10000,100000", help="index sizes for query latency, in chunks")
    parser.add_argument("--queries", type=int, default=200, help="queries timed per mode and size (default 200)")
    parser.add_argument(
        "--backends",
        default="",
        help="embedding backends to build with, comma-separated "
        "(default: the settings' default); the first or the default one is used for queries",
    )
    parser.add_argument("--answer-questions", type=int, default=1000, help="seed questions answered (default all)")
    parser.add_argument(
        "--server-local-questions",
        type=int,
        default=10,
        help="of those, how many the server answers with the local model (all go to extractive)",
    )
    parser.add_argument("--skip-langchain", action="store_true", help="skip the stock LangChain pipeline (.venv-bench)")
    parser.add_argument("--skip-answers", action="store_true", help="skip answer latency and server memory")
    parser.add_argument(
        "--skip-scale",
        action="store_true",
        help="skip eval/bench_scale.py (dense index kinds to 1M chunks, Milvus Lite vs FAISS, Ray)",
    )
    parser.add_argument("--out", help="report folder (default eval/reports/bench-<run>)")
    parser.add_argument("--data", help=f"the BEIR SciFact folder (default: $RAG_BENCH_DATA, else {DEFAULT_SCIFACT})")
    parser.add_argument("--worker", nargs=2, metavar=("STAGE", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        stage, spec_file = args.worker
        result = STAGES[stage](json.loads(Path(spec_file).read_text(encoding="utf-8")))
        sys.stdout.write(json.dumps(result) + "\n")
        return
    if not args.skip_langchain and not BENCH_PYTHON.exists():
        parser.error(f"{BENCH_PYTHON} is missing: `make bench` creates it (or pass --skip-langchain)")
    os.environ["RAG_BENCH_DATA"] = str(scifact_dir(args.data))  # checked once; eval/bench_scale.py reads it too
    out = run(args)
    sys.stdout.write((out / "bench.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
