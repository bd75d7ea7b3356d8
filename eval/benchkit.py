"""What eval/bench.py and eval/bench_scale.py both use: where SciFact is, the corpus and the synthetic sizes grown
from it, percentiles, worker processes that answer in JSON, and a `rag serve` to measure. No figures of its own."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SCIFACT = ROOT.parent / "shared" / "data" / "scifact"  # CC BY-NC: read from beside the repo, never committed


def scifact_dir(explicit: str | None = None) -> Path:
    """The SciFact folder: --data, else RAG_BENCH_DATA, else ../shared/data/scifact beside the repository.
    Exits with a message saying where to put it when it is not there."""
    folder = Path(explicit or os.environ.get("RAG_BENCH_DATA") or DEFAULT_SCIFACT)
    if not (folder / "corpus.jsonl").is_file() or not (folder / "queries.jsonl").is_file():
        sys.exit(
            f"SciFact is not at {folder}: put the BEIR SciFact folder (corpus.jsonl, queries.jsonl, "
            f"qrels/test.tsv; BEIR's scifact.zip) at {DEFAULT_SCIFACT}, or point RAG_BENCH_DATA or --data "
            "at it. It is CC BY-NC: keep it out of the repository."
        )
    return folder


def percentiles(values: list[float], name: str) -> dict:
    ms = sorted(v * 1000 for v in values)
    q = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    return {f"{name}_p50_ms": round(q[49], 2), f"{name}_p95_ms": round(q[94], 2)}


def run_json(cmd: list[str], env: dict | None = None, timeout: float = 3600) -> dict:
    """Run a worker process and parse the JSON object on its last stdout line."""
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def prepare_corpus(n_docs: int, work: Path, folder: Path | None = None) -> tuple[Path, list[str]]:
    from rag.evaluation.beir import BeirData, load_beir, mirror_corpus

    data = load_beir(folder or scifact_dir())
    ids = list(data.corpus)[:n_docs]
    subset = BeirData({i: data.corpus[i] for i in ids}, data.queries, data.qrels)
    return mirror_corpus(subset, work / "corpus"), list(data.queries.values())


def synthetic_index(chunks, documents, vectors, size: int, seed: int = 0):
    """`size` chunks: the real ones, then copies with fresh ids whose vectors are the real ones plus noise
    (renormalised; cosine to the original about 0.9), so FAISS, BM25 and fusion work at scale."""
    import numpy as np

    from rag.index.store import IndexData
    from rag.types import Chunk, Document, content_hash

    rng = np.random.default_rng(seed)
    chunks, documents = list(chunks), list(documents)  # an index's views read from disk: one pass each
    docs = {d.id: d for d in documents}
    out_chunks, out_docs, rows = [], {}, []
    for i in range(size):
        base, copy = chunks[i % len(chunks)], i // len(chunks)
        rows.append(i % len(chunks))
        if copy == 0:
            out_chunks.append(base)
            out_docs.setdefault(base.doc_id, docs[base.doc_id])
            continue
        doc = docs[base.doc_id]
        doc_id = content_hash(doc.id, str(copy))
        out_docs.setdefault(doc_id, Document(doc_id, f"copy{copy}/{doc.source}", doc.title, doc.text))
        out_chunks.append(
            Chunk(
                content_hash(base.id, str(copy)), doc_id, f"copy{copy}/{base.source}", base.start, base.end, base.text
            )
        )
    out = vectors[rows].copy()
    copies = np.arange(size) >= len(chunks)
    out[copies] += rng.normal(0, 0.45 / np.sqrt(out.shape[1]), (int(copies.sum()), out.shape[1])).astype(np.float32)
    out[copies] /= np.linalg.norm(out[copies], axis=1, keepdims=True)  # the real rows stay as they were
    return IndexData(list(out_docs.values()), out_chunks, out.astype(np.float32), {"embedding": {"synthetic": True}})


@contextlib.contextmanager
def rag_serve(
    command: list[str], index_dir: Path, backend: str, log_path: Path, seconds: float, **env_extra: str
) -> Iterator[tuple[subprocess.Popen, str]]:
    """`rag serve` on `index_dir` on a free port, once its /health answers: (process, base URL); stopped on exit.
    RuntimeError with the end of its log if it does not start within `seconds`."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "RAG_INDEX_DIR": str(index_dir),
        "RAG_PORT": str(port),
        "RAG_BACKEND": backend,
        "RAG_HOST": "127.0.0.1",
        **env_extra,
    }
    env.pop("RAG_AUTH", None)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.time() + seconds
            while True:
                try:
                    with urllib.request.urlopen(base + "/health", timeout=10) as r:
                        if r.status == 200:
                            break
                except OSError:
                    if proc.poll() is not None or time.time() > deadline:
                        raise RuntimeError(f"server did not start: {log_path.read_text()[-500:]}") from None
                    time.sleep(0.5)
            yield proc, base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def ask(base: str, model: str, question: str) -> float:
    """One question to the server's OpenAI-compatible API; the seconds until the whole answer came back."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": question}]}).encode()
    req = urllib.request.Request(base + "/v1/chat/completions", body, {"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(req, timeout=300) as r:
        json.loads(r.read())
    return time.perf_counter() - started


def vm_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def machine() -> dict:
    from rag.evaluation.machine import cpu

    info = {"python": platform.python_version(), "platform": platform.platform(), **cpu()}
    try:
        info["load_average_at_start"] = os.getloadavg()
    except OSError:
        pass
    import importlib.metadata as md

    info["versions"] = {}
    for pkg in ("torch", "sentence-transformers", "transformers", "onnxruntime", "faiss-cpu", "bm25s"):
        try:
            info["versions"][pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return info
