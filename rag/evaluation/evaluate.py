"""Batch evaluation of question sets: run every question through the same chain users get, then score
retrieval, answers, citations, abstention and latency against gold quotes.

Relevance never depends on chunking: a retrieved chunk or a citation counts when its span overlaps a
gold quote's span in the same document. Writing the HTML report lives in `rag.evaluation.report`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.errors import RagError
from rag.evaluation.metrics import (
    accuracy_at_coverage,
    area_under_risk_coverage,
    contains_answer,
    exact_match,
    expected_calibration_error,
    mrr_at_k,
    ndcg_at_k,
    percentile,
    risk_coverage,
    spans_overlap,
    token_f1,
)
from rag.settings import Settings
from rag.types import Answer, Chunk, Hit

DEPTH = 10  # retrieval depth for MRR@10 and nDCG@10


@dataclass(frozen=True)
class GoldSpan:
    doc_id: str
    start: int
    end: int


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answers: tuple[str, ...]
    answerable: bool
    support: tuple[dict, ...]


def eval_index_dir(corpus: Path, settings: Settings, cache: Path) -> Path:
    """Where `rag eval` indexes `corpus`: a folder under `cache` keyed by everything that changes the vectors
    (every file's name and bytes, the chunking, the embedding model and backend, the index format), never the
    live index."""
    from rag.index.documents import discover
    from rag.index.store import FORMAT_VERSION

    digest = hashlib.sha256()
    for file in discover([corpus])[0]:
        try:
            content = hashlib.sha256(file.path.read_bytes()).hexdigest()
        except OSError:
            content = "unreadable"  # the indexer skips it and says why
        digest.update(f"{file.source}\0{content}\n".encode())
    digest.update(
        f"{settings.chunk_size}|{settings.chunk_overlap}|{settings.embedding_model}|"
        f"{settings.embedding_backend}|{FORMAT_VERSION}".encode()
    )
    return cache / f"corpus-{corpus.resolve().name}-{digest.hexdigest()[:12]}"


def load_questions(path: Path) -> list[Question]:
    """Parse a JSONL question set, with the line number in every error."""
    questions, seen = [], set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise RagError(f"cannot read {path}: {exc.strerror}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            q = Question(
                str(row["id"]),
                row["question"],
                tuple(row.get("answers", [])),
                bool(row["answerable"]),
                tuple(row.get("support", [])),
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise RagError(f"{path}:{n}: not a question record ({exc})") from None
        if q.id in seen:
            raise RagError(f"{path}:{n}: duplicate id {q.id!r}")
        seen.add(q.id)
        questions.append(q)
    if not questions:
        raise RagError(f"{path} holds no questions")
    return questions


def by_source(questions: Sequence[Question]) -> dict[str, list[Question]]:
    """Questions grouped by the source their support quotes come from. A question without support (an
    unanswerable one) goes with the question before it, as SQuAD lists its questions article by article."""
    groups: dict[str, list[Question]] = {}
    current = ""
    for q in questions:
        current = q.support[0]["source"] if q.support else current
        groups.setdefault(current, []).append(q)
    return groups


def gold_spans(question: Question, documents: dict[str, tuple[str, str]]) -> list[GoldSpan]:
    """Locate each support quote in its source document (documents: source -> (doc_id, text))."""
    spans = []
    for item in question.support:
        source, quote = item["source"], item["quote"]
        if source not in documents:
            raise RagError(f"question {question.id}: source {source!r} is not in the index")
        doc_id, text = documents[source]
        for candidate in (quote, " ".join(quote.split())):  # as written, or whitespace-normalised like the text
            start = text.find(candidate)
            if start >= 0:
                spans.append(GoldSpan(doc_id, start, start + len(candidate)))
                break
        else:
            raise RagError(f"question {question.id}: quote not found in {source}: {quote[:60]!r}")
    return spans


def _overlaps(doc_id: str, start: int, end: int, gold: Sequence[GoldSpan]) -> bool:
    return any(g.doc_id == doc_id and spans_overlap((start, end), (g.start, g.end)) for g in gold)


def relevant_chunks(chunks: Sequence[Chunk], gold: Sequence[GoldSpan]) -> dict[str, int]:
    """Qrels for a question: every chunk of the index whose span overlaps a gold quote."""
    return {c.id: 1 for c in chunks if _overlaps(c.doc_id, c.start, c.end, gold)}


def score_question(
    q: Question,
    answer: Answer,
    ranked: Sequence[Hit],
    gold: Sequence[GoldSpan],
    qrels: dict[str, int],
    k: int,
    latency: float,
) -> dict:
    """One question's verdicts: retrieval (answerable only), answer, citations, abstention.

    recall@k is the share of gold quotes overlapped by a top-k chunk; MRR@10 and nDCG@10 rank chunks
    against `qrels` (binary relevance).
    """
    record: dict = {"id": q.id, "answerable": q.answerable, "abstained": answer.abstained, "latency": round(latency, 4)}
    if q.answerable:
        covered = [any(_overlaps(h.chunk.doc_id, h.chunk.start, h.chunk.end, [g]) for h in ranked[:k]) for g in gold]
        ids = [h.chunk.id for h in ranked]
        record.update(
            {
                "recall@k": sum(covered) / len(gold) if gold else 0.0,
                "mrr@10": mrr_at_k(ids, qrels, DEPTH),
                "ndcg@10": ndcg_at_k(ids, qrels, DEPTH),
                "exact_match": 0.0 if answer.abstained else exact_match(answer.text, q.answers),
                "token_f1": 0.0 if answer.abstained else token_f1(answer.text, q.answers),
                "contains_answer": 0.0 if answer.abstained else contains_answer(answer.text, q.answers),
            }
        )
        cites = [_overlaps(c.doc_id, c.char_start, c.char_end, gold) for c in answer.citations]
        record["citation_precision"] = sum(cites) / len(cites) if cites else None
        record["citation_recall"] = (
            sum(any(_overlaps(c.doc_id, c.char_start, c.char_end, [g]) for c in answer.citations) for g in gold)
            / len(gold)
            if gold
            else 0.0
        )
    record["passed"] = (
        (not answer.abstained and record.get("contains_answer", 0.0) == 1.0) if q.answerable else answer.abstained
    )
    return record


def summarise(records: list[dict], backend: str, model: str) -> dict:
    answerable = [r for r in records if r["answerable"]]
    unanswerable = [r for r in records if not r["answerable"]]

    def mean(key: str, rows: list[dict]) -> float | None:
        values = [r[key] for r in rows if r.get(key) is not None]
        return round(sum(values) / len(values), 4) if values else None

    latencies = [r["latency"] for r in records]
    # when the first answer text reached the user (streamed drafts, or the extractive answer); abstentions have none
    first_text = [t for r in records if (t := (r.get("timings") or {}).get("first_text")) is not None]
    answered = [r for r in records if not r["abstained"]]
    confidences = [r["confidence"] for r in records]
    would_be = [r["would_be_correct"] for r in records]
    curve = risk_coverage(confidences, would_be)
    return {
        "backend": backend,
        "model": model,
        "questions": len(records),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "retrieval": {m: mean(m, answerable) for m in ("recall@k", "mrr@10", "ndcg@10")},
        "answer": {m: mean(m, answerable) for m in ("exact_match", "token_f1", "contains_answer")},
        "citations": {
            "precision": mean("citation_precision", answerable),
            "recall": mean("citation_recall", answerable),
        },
        "abstention_rate": round(sum(r["abstained"] for r in unanswerable) / len(unanswerable), 4)
        if unanswerable
        else None,
        "false_abstention_rate": round(sum(r["abstained"] for r in answerable) / len(answerable), 4)
        if answerable
        else None,
        "latency": {
            "p50": round(percentile(latencies, 50), 4),
            "p95": round(percentile(latencies, 95), 4),
            "first_text_p50": round(percentile(first_text, 50), 4) if first_text else None,
            "first_text_p95": round(percentile(first_text, 95), 4) if first_text else None,
        },
        # answers the model wrote, but verification kept none of (or lost the answer phrase): extractive instead
        "fallback_rate": round(sum(r["fallback"] is not None for r in answered) / len(answered), 4)
        if answered
        else None,
        "passed": sum(r["passed"] for r in records),
        # selective answering: confidence ranks every question's (would-be) answer; unanswerable ones are wrong
        "selective": {
            "area": round(area_under_risk_coverage(curve), 4),
            "accuracy_at_50": round(accuracy_at_coverage(curve, 0.5), 4),
            "ece": round(expected_calibration_error(confidences, would_be), 4),
            "curve": [[round(c, 4), round(a, 4)] for c, a in curve],
        },
    }


def run_eval(rag, questions: list[Question], k: int, progress: Callable | None = None) -> tuple[list[dict], dict]:
    """Ask every question with `rag` (a `rag.answer.chain.RAG`); return per-question records and the summary."""
    documents = {d.source: (d.id, d.text) for d in rag.retriever.index.documents}
    records = []
    for q in progress(questions) if progress else questions:
        gold = gold_spans(q, documents)
        started = time.perf_counter()
        answer = rag.ask(q.question, k=k)
        latency = time.perf_counter() - started
        would_be = _would_be(rag, q.question, k, answer)
        ranked = rag.retriever.search(answer.standalone_query, k=max(DEPTH, k), mode=rag.settings.mode)
        qrels = relevant_chunks(rag.retriever.index.chunks, gold)
        record = score_question(q, answer, ranked, gold, qrels, k, latency)
        record.update(
            {
                "confidence": round(answer.confidence, 4),
                "fallback": answer.fallback,
                "short": answer.short.quote if answer.short else None,
                "would_be_correct": bool(q.answerable and would_be and contains_answer(would_be, q.answers) == 1.0),
                "backend": rag.backend_name,
                "question": q.question,
                "answer": answer.text,
                "draft": answer.draft,
                "gold_answers": list(q.answers),
                "citations": [c.to_dict() for c in answer.citations],
                "statements": [st.to_dict() for st in answer.statements],
                "retrieved": [
                    {
                        "chunk_id": h.chunk.id,
                        "source": h.chunk.source,
                        "char_start": h.chunk.start,
                        "char_end": h.chunk.end,
                        "location": h.chunk.location.label,
                        "score": h.score,
                    }
                    for h in ranked[:k]
                ],
                "timings": answer.timings,
            }
        )
        records.append(record)
    return records, summarise(records, rag.backend_name, rag.model_name)


def _would_be(rag, question: str, k: int, answer: Answer) -> str:
    """What `rag` would have answered without the abstention threshold, for the risk-coverage curve: the answer
    itself, the withheld extractive answer an abstention carries, or (LLM backends) a second ask."""
    if not answer.abstained:
        return answer.text
    if rag.backend is None or not answer.passages:
        return answer.draft
    again = rag.ask(question, k=k, min_confidence=0.0)
    return "" if again.abstained else again.text
