"""The stock LangChain pipeline, timed for eval/bench.py: run with the interpreter of .venv-bench, not the project's.

`build` indexes a folder of .txt files the way the LangChain tutorials do (DirectoryLoader + TextLoader,
RecursiveCharacterTextSplitter(1000, 200), HuggingFaceEmbeddings, FAISS.from_documents, save_local);
`query` times the FAISS retriever over given texts and vectors. Each prints one JSON object on stdout.
It imports nothing from `rag` (langchain-huggingface cannot share the project's environment).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _embeddings(model: str, batch_size: int):
    from langchain_huggingface import HuggingFaceEmbeddings

    started = time.perf_counter()
    embeddings = HuggingFaceEmbeddings(
        model_name=model, model_kwargs={"device": "cpu"}, encode_kwargs={"batch_size": batch_size}
    )
    embeddings.embed_documents(["warm up the model", "and its first batch"])  # model load stays out of the timings
    return embeddings, time.perf_counter() - started


def build(args: argparse.Namespace) -> dict:
    import faiss  # noqa: F401  library imports stay out of the timing, as the project's do
    from langchain_community.document_loaders import DirectoryLoader, TextLoader
    from langchain_community.vectorstores import FAISS
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    embeddings, model_load = _embeddings(args.model, args.batch_size)
    started = time.perf_counter()
    docs = DirectoryLoader(
        args.corpus, glob="**/*.txt", loader_cls=TextLoader, loader_kwargs={"encoding": "utf-8"}
    ).load()
    loaded = time.perf_counter()
    splitter = RecursiveCharacterTextSplitter(chunk_size=args.chunk_size, chunk_overlap=args.chunk_overlap)
    splits = splitter.split_documents(docs)
    split = time.perf_counter()
    store = FAISS.from_documents(splits, embeddings)
    embedded = time.perf_counter()
    store.save_local(args.out)
    done = time.perf_counter()
    return {
        "documents": len(docs),
        "chunks": len(splits),
        "model_load_s": round(model_load, 3),
        "load_s": round(loaded - started, 3),
        "split_s": round(split - loaded, 3),
        "embed_index_s": round(embedded - split, 3),
        "save_s": round(done - embedded, 3),
        "seconds": round(done - started, 3),
        "splitter": f"RecursiveCharacterTextSplitter({args.chunk_size}, {args.chunk_overlap})",
    }


def query(args: argparse.Namespace) -> dict:
    import numpy as np
    from langchain_community.vectorstores import FAISS

    embeddings, model_load = _embeddings(args.model, args.batch_size)
    queries = json.loads(Path(args.queries).read_text(encoding="utf-8"))
    out = {}
    for size in args.sizes.split(","):
        folder = Path(args.data) / f"size-{size}"
        texts = [json.loads(line) for line in (folder / "texts.jsonl").read_text(encoding="utf-8").splitlines()]
        vectors = np.load(folder / "vectors.npy", allow_pickle=False)
        started = time.perf_counter()
        store = FAISS.from_embeddings(list(zip(texts, vectors.tolist(), strict=True)), embeddings)
        built = time.perf_counter() - started
        retriever = store.as_retriever(search_kwargs={"k": args.k})
        for q in queries[:10]:
            retriever.invoke(q)
        latencies, embed = [], []
        for q in queries:
            t0 = time.perf_counter()
            embeddings.embed_query(q)
            t1 = time.perf_counter()
            docs = retriever.invoke(q)
            latencies.append(time.perf_counter() - t1)
            embed.append(t1 - t0)
            assert len(docs) == min(args.k, len(texts))
        out[size] = {
            "chunks": len(texts),
            "build_s": round(built, 3),
            **_percentiles(latencies, "retriever"),
            **_percentiles(embed, "query_embed"),
        }
    return {"model_load_s": round(model_load, 3), "sizes": out}


def _percentiles(values: list[float], name: str) -> dict:
    ms = sorted(v * 1000 for v in values)
    q = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    return {f"{name}_p50_ms": round(q[49], 2), f"{name}_p95_ms": round(q[94], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="index a folder of .txt files, timed")
    b.add_argument("--corpus", required=True)
    b.add_argument("--out", required=True)
    q = sub.add_parser("query", help="time the FAISS retriever over prepared texts and vectors")
    q.add_argument("--data", required=True, help="folder with size-N/texts.jsonl and size-N/vectors.npy")
    q.add_argument("--sizes", required=True)
    q.add_argument("--queries", required=True, help="a JSON list of query strings")
    q.add_argument("--k", type=int, default=5)
    for p in (b, q):
        p.add_argument("--model", required=True, help="sentence-transformers model directory")
        p.add_argument("--batch-size", type=int, default=32)
        p.add_argument("--chunk-size", type=int, default=1000)
        p.add_argument("--chunk-overlap", type=int, default=200)
    args = parser.parse_args()
    result = build(args) if args.command == "build" else query(args)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
