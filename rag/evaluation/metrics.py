"""Metric functions: retrieval (recall/MRR/nDCG@k), answer scores and latency percentiles.

Pure functions over ids, strings and numbers, following trec_eval/BEIR for retrieval and
SQuAD for answers. No I/O and no project imports: turning an index's hits into runs and
qrels, and answers into predictions, is the evaluator's job.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "recall_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "mean_over_queries",
    "spans_overlap",
    "normalize_answer",
    "exact_match",
    "token_f1",
    "contains_answer",
    "percentile",
    "risk_coverage",
    "area_under_risk_coverage",
    "accuracy_at_coverage",
    "expected_calibration_error",
]

RetrievalMetric = Callable[[Sequence[str], Mapping[str, int], int], float]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ASCII_PUNCTUATION = frozenset(string.punctuation)


def _top_k(ranked_ids: Sequence[str], k: int) -> list[str]:
    """The first k distinct ids; a repeated id keeps its first rank."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    seen: set[str] = set()
    top: list[str] = []
    for doc_id in ranked_ids:
        if doc_id not in seen:
            seen.add(doc_id)
            top.append(doc_id)
            if len(top) == k:
                break
    return top


def recall_at_k(ranked_ids: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    """Fraction of relevant ids (grade > 0) found in the top k; 0.0 if none are relevant."""
    relevant = {doc_id for doc_id, grade in qrels.items() if grade > 0}
    if not relevant:
        return 0.0
    found = sum(1 for doc_id in _top_k(ranked_ids, k) if doc_id in relevant)
    return found / len(relevant)


def mrr_at_k(ranked_ids: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    """Reciprocal rank of the first relevant id within the top k, else 0.0."""
    for rank, doc_id in enumerate(_top_k(ranked_ids, k), start=1):
        if qrels.get(doc_id, 0) > 0:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked_ids: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    """nDCG@k with linear gain (the grade) and log2(rank + 1) discount, as trec_eval and BEIR.

    The ideal ranking is the qrels' positive grades sorted high to low; 0.0 without any.
    """
    dcg = sum(
        max(qrels.get(doc_id, 0), 0) / math.log2(rank + 1) for rank, doc_id in enumerate(_top_k(ranked_ids, k), start=1)
    )
    ideal = sorted((grade for grade in qrels.values() if grade > 0), reverse=True)[:k]
    idcg = sum(grade / math.log2(rank + 1) for rank, grade in enumerate(ideal, start=1))
    return dcg / idcg if idcg > 0 else 0.0


def mean_over_queries(
    run: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    metric: RetrievalMetric,
    k: int,
) -> float:
    """Average `metric` over the queries in qrels; a query missing from the run scores 0."""
    if not qrels:
        return 0.0
    total = sum(metric(run.get(query_id, ()), judged, k) for query_id, judged in qrels.items())
    return total / len(qrels)


def spans_overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """True when half-open character spans [start, end) share at least one character."""
    return max(a[0], b[0]) < min(a[1], b[1])


def normalize_answer(s: str) -> str:
    """SQuAD normalisation: lowercase, drop punctuation and articles, collapse whitespace.

    Punctuation is ASCII punctuation plus every Unicode punctuation character, so curly
    quotes and apostrophes are dropped exactly like straight ones ("OpenAI’s" == "OpenAI's").
    """
    lowered = s.lower()
    kept = "".join(
        ch for ch in lowered if ch not in _ASCII_PUNCTUATION and not unicodedata.category(ch).startswith("P")
    )
    return " ".join(_ARTICLES.sub(" ", kept).split())


def exact_match(prediction: str, golds: Iterable[str]) -> float:
    """1.0 if the normalised prediction equals any normalised gold, else 0.0."""
    predicted = normalize_answer(prediction)
    return max((float(predicted == normalize_answer(g)) for g in golds), default=0.0)


def _f1(predicted_tokens: list[str], gold_tokens: list[str]) -> float:
    if not predicted_tokens or not gold_tokens:
        # SQuAD v2: two empty answers agree, an empty and a non-empty one do not.
        return float(predicted_tokens == gold_tokens)
    common = sum((Counter(predicted_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision = common / len(predicted_tokens)
    recall = common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, golds: Iterable[str]) -> float:
    """Best bag-of-tokens F1 between the normalised prediction and any gold."""
    predicted = normalize_answer(prediction).split()
    return max((_f1(predicted, normalize_answer(g).split()) for g in golds), default=0.0)


def contains_answer(prediction: str, golds: Iterable[str]) -> float:
    """1.0 if any normalised gold occurs in the normalised prediction, else 0.0.

    Matches whole tokens only, so gold "no" is not found inside "not"; a gold that
    normalises to nothing never matches.
    """
    padded = f" {normalize_answer(prediction)} "
    for gold in golds:
        needle = normalize_answer(gold)
        if needle and f" {needle} " in padded:
            return 1.0
    return 0.0


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation, like numpy.percentile.

    0.0 for empty input.
    """
    data = np.asarray(list(values), dtype=float)
    if data.size == 0:
        return 0.0
    if not 0 <= q <= 100:
        raise ValueError(f"q must be between 0 and 100, got {q}")
    return float(np.percentile(data, q))


def risk_coverage(confidences: Sequence[float], correct: Sequence[bool]) -> list[tuple[float, float]]:
    """Selective answering: answer the questions in order of falling confidence; after each one, the share
    answered (coverage) and the accuracy of what was answered. Ties keep their input order."""
    order = sorted(range(len(confidences)), key=lambda i: -confidences[i])
    points, right = [], 0
    for n, i in enumerate(order, start=1):
        right += bool(correct[i])
        points.append((n / len(order), right / n))
    return points


def area_under_risk_coverage(points: Sequence[tuple[float, float]]) -> float:
    """The mean accuracy over every coverage level: 1.0 when confidence ranks all right answers first and
    they are all right; the overall accuracy when confidence carries no information."""
    return sum(acc for _, acc in points) / len(points) if points else 0.0


def accuracy_at_coverage(points: Sequence[tuple[float, float]], coverage: float) -> float:
    """Accuracy of the most confident `coverage` share of the questions."""
    return next((acc for cov, acc in points if cov >= coverage - 1e-9), 0.0)


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """ECE: over equal-width confidence bins, the gap between mean confidence and accuracy, weighted by size."""
    if not confidences:
        return 0.0
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [i for i, c in enumerate(confidences) if lo <= c < hi or (b == bins - 1 and c == 1.0)]
        if members:
            gap = abs(
                sum(confidences[i] for i in members) / len(members)
                - sum(bool(correct[i]) for i in members) / len(members)
            )
            total += gap * len(members) / len(confidences)
    return total
