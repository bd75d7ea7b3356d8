import math
import random

import numpy as np
import pytest

from rag.evaluation.metrics import (
    contains_answer,
    exact_match,
    mean_over_queries,
    mrr_at_k,
    ndcg_at_k,
    normalize_answer,
    percentile,
    recall_at_k,
    spans_overlap,
    token_f1,
)

# Three queries: graded hits at ranks 1 and 3, a single hit at rank 2, and a miss.
RUN = {
    "q1": ["d1", "d2", "d3"],
    "q2": ["d4", "d5"],
    "q3": ["d7"],
}
QRELS = {
    "q1": {"d1": 2, "d3": 1, "d9": 0},
    "q2": {"d5": 1},
    "q3": {"d8": 3},
}


def test_ndcg_at_10_by_hand():
    # q1: DCG = 2/log2(2) + 1/log2(4) = 2.5; ideal = 2/log2(2) + 1/log2(3).
    q1 = 2.5 / (2 + 1 / math.log2(3))
    q2 = (1 / math.log2(3)) / 1.0
    assert ndcg_at_k(RUN["q1"], QRELS["q1"], 10) == pytest.approx(q1)
    assert ndcg_at_k(RUN["q2"], QRELS["q2"], 10) == pytest.approx(q2)
    assert ndcg_at_k(RUN["q3"], QRELS["q3"], 10) == 0.0
    assert mean_over_queries(RUN, QRELS, ndcg_at_k, 10) == pytest.approx((q1 + q2) / 3)
    assert q1 == pytest.approx(0.9502344167898356)


def test_ndcg_gain_is_linear_and_cut_at_k():
    # Grade 3 at rank 2, grade 1 at rank 1: linear gain, not 2**g - 1.
    expected = (1 + 3 / math.log2(3)) / (3 + 1 / math.log2(3))
    assert ndcg_at_k(["b", "a"], {"a": 3, "b": 1}, 10) == pytest.approx(expected)
    # At k=1 the ideal DCG keeps only the best grade.
    assert ndcg_at_k(["b", "a"], {"a": 3, "b": 1}, 1) == pytest.approx(1 / 3)


def test_ndcg_without_relevant_docs_is_zero():
    assert ndcg_at_k(["a", "b"], {}, 10) == 0.0
    assert ndcg_at_k(["a", "b"], {"a": 0}, 10) == 0.0


def test_recall_and_mrr_by_hand():
    assert recall_at_k(RUN["q1"], QRELS["q1"], 10) == 1.0
    assert recall_at_k(RUN["q1"], QRELS["q1"], 2) == 0.5
    assert recall_at_k(RUN["q3"], QRELS["q3"], 10) == 0.0
    assert recall_at_k(["a"], {"a": 0}, 10) == 0.0
    assert mrr_at_k(RUN["q1"], QRELS["q1"], 10) == 1.0
    assert mrr_at_k(RUN["q2"], QRELS["q2"], 10) == 0.5
    assert mrr_at_k(RUN["q2"], QRELS["q2"], 1) == 0.0
    assert mean_over_queries(RUN, QRELS, recall_at_k, 10) == pytest.approx(2 / 3)
    assert mean_over_queries(RUN, QRELS, mrr_at_k, 10) == pytest.approx(0.5)


def test_duplicates_count_once_at_first_rank():
    # Deduplicated, "d2" is at rank 2 and inside k=2; counted naively it would be rank 3.
    assert mrr_at_k(["d1", "d1", "d2"], {"d2": 1}, 2) == 0.5
    assert recall_at_k(["d2", "d2", "d2"], {"d2": 1, "d3": 1}, 3) == 0.5
    assert ndcg_at_k(["d2", "d2"], {"d2": 1}, 10) == 1.0


def test_query_missing_from_run_scores_zero():
    run = {"q1": RUN["q1"]}
    assert mean_over_queries(run, QRELS, recall_at_k, 10) == pytest.approx(1 / 3)
    # Queries only in the run are ignored.
    run_extra = {**RUN, "q_extra": ["d1"]}
    assert mean_over_queries(run_extra, QRELS, mrr_at_k, 10) == pytest.approx(0.5)
    assert mean_over_queries(RUN, {}, mrr_at_k, 10) == 0.0


def test_k_must_be_positive():
    with pytest.raises(ValueError, match="k must be >= 1"):
        recall_at_k(["a"], {"a": 1}, 0)


def test_metrics_agree_with_ranx():
    from ranx import Qrels, Run, evaluate

    rng = random.Random(1234)
    docs = [f"d{i:03d}" for i in range(100)]
    run: dict[str, list[str]] = {}
    qrels: dict[str, dict[str, int]] = {}
    for q in range(50):
        query_id = f"q{q:02d}"
        run[query_id] = rng.sample(docs, len(docs))
        # Judged docs come from the whole pool plus a few never retrieved; grades 0..3.
        judged = rng.sample(docs + [f"x{q}_{i}" for i in range(5)], rng.randint(1, 15))
        grades = {doc_id: rng.randint(0, 3) for doc_id in judged}
        grades[judged[0]] = rng.randint(1, 3)  # at least one relevant doc per query
        qrels[query_id] = grades

    ranx_run = Run({q: {doc_id: float(len(ids) - rank) for rank, doc_id in enumerate(ids)} for q, ids in run.items()})
    ranx_qrels = Qrels(qrels)
    expected = evaluate(ranx_qrels, ranx_run, ["ndcg@10", "recall@100", "mrr@10"])

    assert mean_over_queries(run, qrels, ndcg_at_k, 10) == pytest.approx(expected["ndcg@10"], abs=1e-6)
    assert mean_over_queries(run, qrels, recall_at_k, 100) == pytest.approx(expected["recall@100"], abs=1e-6)
    assert mean_over_queries(run, qrels, mrr_at_k, 10) == pytest.approx(expected["mrr@10"], abs=1e-6)
    # The random run must not be trivially perfect or empty.
    assert 0.05 < expected["ndcg@10"] < 0.95


def test_spans_overlap_half_open():
    assert spans_overlap((0, 5), (4, 10))
    assert spans_overlap((4, 10), (0, 5))
    assert spans_overlap((2, 3), (0, 10))
    assert not spans_overlap((0, 5), (5, 10))  # touching ends share no character
    assert not spans_overlap((5, 10), (0, 5))
    assert not spans_overlap((3, 3), (0, 10))  # an empty span has no characters


def test_normalize_answer():
    assert normalize_answer("  The  Quick, brown fox!  ") == "quick brown fox"
    assert normalize_answer("An apple a day") == "apple day"
    assert normalize_answer("OpenAI\u2019s models") == "openais models"
    assert normalize_answer("OpenAI's models") == "openais models"
    assert normalize_answer("\u201cquoted\u201d") == normalize_answer('"quoted"') == "quoted"
    assert normalize_answer("multi-cloud") == "multicloud"
    assert normalize_answer("theater") == "theater"  # articles only as whole words


def test_exact_match():
    assert exact_match("April 27, 2026.", ["april 27 2026"]) == 1.0
    assert exact_match("On April 27, 2026", ["April 27, 2026"]) == 0.0
    assert exact_match("the Azure", ["AWS", "Azure"]) == 1.0
    assert exact_match("Azure", []) == 0.0


def test_token_f1():
    # prediction tokens: [azure, cloud]; gold: [microsoft, azure] -> P = R = 1/2.
    assert token_f1("the Azure cloud", ["Microsoft Azure"]) == pytest.approx(0.5)
    # Best gold wins: [priority, access] vs [priority, access, to, models] -> P=1, R=1/2.
    assert token_f1("priority access", ["nothing", "priority access to models"]) == pytest.approx(2 / 3)
    assert token_f1("Azure", ["AWS"]) == 0.0
    assert token_f1("Azure", []) == 0.0
    assert token_f1("the", ["a"]) == 1.0  # both normalise to empty (SQuAD v2)


def test_contains_answer():
    assert contains_answer("Details were disclosed on April 27, 2026.", ["April 27, 2026"]) == 1.0
    assert contains_answer("It is OpenAI\u2019s push for independence", ["OpenAI's push"]) == 1.0
    assert contains_answer("Microsoft Azure", ["AWS", "azure"]) == 1.0
    assert contains_answer("This is not known", ["no"]) == 0.0  # whole tokens only
    assert contains_answer("Azure", ["the"]) == 0.0  # empty after normalisation
    assert contains_answer("Azure", []) == 0.0


def test_percentile_matches_numpy():
    values = [12.0, 3.0, 7.5, 1.0, 40.0]
    for q in (0, 25, 50, 90, 95, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    # Sorted [1, 3, 7.5, 12, 40]: p90 sits at index 3.6 -> 12 + 0.6 * 28.
    assert percentile(values, 90) == pytest.approx(28.8)
    assert percentile([5.0], 99) == 5.0
    assert percentile([], 50) == 0.0
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_risk_coverage_ranks_by_confidence_and_its_area_and_accuracy_at_half() -> None:
    from rag.evaluation.metrics import accuracy_at_coverage, area_under_risk_coverage, risk_coverage

    points = risk_coverage([0.9, 0.2, 0.8, 0.1], [True, False, False, True])
    assert points == [(0.25, 1.0), (0.5, 0.5), (0.75, pytest.approx(1 / 3)), (1.0, 0.5)]
    assert area_under_risk_coverage(points) == pytest.approx((1 + 0.5 + 1 / 3 + 0.5) / 4)
    assert accuracy_at_coverage(points, 0.5) == 0.5
    perfect = risk_coverage([0.9, 0.8, 0.2, 0.1], [True, True, False, False])
    assert accuracy_at_coverage(perfect, 0.5) == 1.0


def test_expected_calibration_error_is_the_weighted_gap_per_bin() -> None:
    from rag.evaluation.metrics import expected_calibration_error

    assert expected_calibration_error([0.95, 0.95], [True, True]) == pytest.approx(0.05)
    # bin 0.9-1.0: mean 0.9, accuracy 0.5 -> gap 0.4 on half; bin 0.1-0.2: mean 0.1, accuracy 0 -> 0.1 on half
    assert expected_calibration_error([0.9, 0.9, 0.1, 0.1], [True, False, False, False]) == pytest.approx(0.25)
    assert expected_calibration_error([], []) == 0.0
