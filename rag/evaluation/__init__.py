"""Evaluation: metrics, question-set runs, reports and BEIR benchmarks."""
