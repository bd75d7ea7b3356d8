"""BEIR benchmarks with the project's own pipeline: index a BEIR folder, search every query, score the run.

The corpus is mirrored as one text file per document (title, blank line, text) in a cache folder and
indexed incrementally there, so a second run only searches. A document is scored by its best chunk.
The metric definitions live in `rag.evaluation.metrics`; answering is not involved.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rag.answer.retrieval import Retriever
from rag.errors import RagError
from rag.evaluation.metrics import mean_over_queries, mrr_at_k, ndcg_at_k, recall_at_k
from rag.index.dense_store import StoreOptions
from rag.index.embedding import Embedder
from rag.index.indexer import Indexer
from rag.settings import Settings

__all__ = ["BeirData", "load_beir", "mirror_corpus", "document_run", "score", "evaluate_beir"]

DEPTH = 100  # documents ranked per query (recall@100)


@dataclass(frozen=True)
class BeirData:
    corpus: dict[str, tuple[str, str]]  # doc id -> (title, text)
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load_beir(folder: Path, split: str = "test") -> BeirData:
    """Read corpus.jsonl, queries.jsonl and qrels/<split>.tsv; only queries with judgements are kept."""
    try:
        corpus = {}
        with open(folder / "corpus.jsonl", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                corpus[str(row["_id"])] = (row.get("title") or "", row.get("text") or "")
        qrels: dict[str, dict[str, int]] = {}
        with open(folder / "qrels" / f"{split}.tsv", encoding="utf-8") as f:
            for n, line in enumerate(f):
                parts = line.rstrip("\n").split("\t")
                if n == 0 and not parts[-1].lstrip("-").isdigit():
                    continue  # header
                qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
        queries = {}
        with open(folder / "queries.jsonl", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                if str(row["_id"]) in qrels:
                    queries[str(row["_id"])] = row["text"]
    except FileNotFoundError as exc:
        raise RagError(f"{folder} is not a BEIR folder: {exc.filename} is missing") from None
    except (json.JSONDecodeError, KeyError, IndexError, ValueError) as exc:
        raise RagError(f"{folder}: malformed BEIR data ({exc})") from None
    return BeirData(corpus, queries, qrels)


def mirror_corpus(data: BeirData, target: Path) -> Path:
    """One `<id>.txt` per document; files already holding the same text are left alone (mtime kept)."""
    target.mkdir(parents=True, exist_ok=True)
    for doc_id, (title, text) in data.corpus.items():
        path = target / f"{_safe(doc_id)}.txt"
        body = f"{title}\n\n{text}" if title else text
        if not path.exists() or path.read_text(encoding="utf-8") != body:
            path.write_text(body, encoding="utf-8")
    return target


def _safe(doc_id: str) -> str:
    if doc_id.replace("-", "").replace("_", "").isalnum():
        return doc_id
    return hashlib.sha256(doc_id.encode()).hexdigest()[:24]


def document_run(
    retriever: Retriever, queries: dict[str, str], mode: str, depth: int = DEPTH, progress: Callable | None = None
) -> dict[str, list[str]]:
    """For each query, document ids ranked by their best chunk (`depth` documents)."""
    source_to_id = {}
    run: dict[str, list[str]] = {}
    items = list(queries.items())
    for qid, text in progress(items) if progress else items:
        ranked: list[str] = []
        for hit in retriever.search(text, k=3 * depth, mode=mode):
            doc = source_to_id.setdefault(hit.chunk.source, hit.chunk.source.removesuffix(".txt"))
            if doc not in ranked:
                ranked.append(doc)
            if len(ranked) == depth:
                break
        run[qid] = ranked
    return run


def score(run: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    return {
        "ndcg@10": round(mean_over_queries(run, qrels, ndcg_at_k, 10), 4),
        "recall@100": round(mean_over_queries(run, qrels, recall_at_k, 100), 4),
        "mrr@10": round(mean_over_queries(run, qrels, mrr_at_k, 10), 4),
    }


def evaluate_beir(
    folder: Path,
    settings: Settings,
    embedder: Embedder,
    modes: list[str],
    split: str = "test",
    whole_docs: bool = False,
    cache: Path | None = None,
    progress: bool = False,
) -> dict:
    """Index (or reuse) the corpus, run every judged query in each mode, and score the runs."""
    data = load_beir(folder, split)
    backend = getattr(embedder, "backend", "torch")
    spec = (
        f"{folder.resolve()}|{embedder.name}|{whole_docs}|{settings.chunk_size}|"
        f"{settings.chunk_overlap}{'' if backend == 'torch' else '|' + backend}"
    )
    key = hashlib.sha256(spec.encode()).hexdigest()[:10]
    cache = cache or Path("eval/.cache")
    root = cache / f"beir-{folder.name}-{key}"
    corpus_dir = mirror_corpus(data, root / "corpus")
    index_settings = settings.with_overrides(index_dir=root / "index")
    started = time.perf_counter()
    report = Indexer(index_settings, embedder, whole_documents=whole_docs).index([corpus_dir], progress=progress)
    index_seconds = time.perf_counter() - started
    retriever = Retriever.open(index_settings.index_dir, embedder, settings.rrf_k, StoreOptions.from_settings(settings))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = lambda items: tqdm(items, desc="queries", unit="q", leave=False)  # noqa: E731
    results = {}
    for mode in modes:
        started = time.perf_counter()
        run = document_run(retriever, data.queries, mode, progress=bar)
        results[mode] = {**score(run, data.qrels), "seconds": round(time.perf_counter() - started, 2)}
    return {
        "dataset": folder.name,
        "split": split,
        "queries": len(data.queries),
        "documents": len(data.corpus),
        "chunks": report.chunks_total,
        "chunks_embedded": report.chunks_embedded,
        "index_seconds": round(index_seconds, 1),
        "whole_docs": whole_docs,
        "embedding_model": embedder.name,
        "embedding_backend": backend,
        "chunking": (
            "whole documents" if whole_docs else f"{settings.chunk_size} tokens, overlap {settings.chunk_overlap}"
        ),
        "modes": results,
    }
