"""The HTML report: data is escaped by the template engine, and the page keeps its tables and plots."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

from conftest import write_corpus
from rag.cli import app
from rag.evaluation.report import render_html, write_report

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def record(qid: str, question: str, passed: bool, backend: str = "extractive", latency: float = 0.2) -> dict:
    return {
        "id": qid,
        "question": question,
        "answer": f"answer to {question}",
        "abstained": False,
        "passed": passed,
        "backend": backend,
        "latency": latency,
        "answerable": True,
        "token_f1": 0.5,
        "recall@k": 1.0,
    }


def summary(backend: str) -> dict:
    return {
        "backend": backend,
        "model": "m",
        "retrieval": {"recall@k": 1.0, "mrr@10": 0.5, "ndcg@10": 0.75},
        "answer": {"token_f1": 0.5, "contains_answer": 1.0},
        "citations": {"precision": None, "recall": 1.0},
        "abstention_rate": None,
        "false_abstention_rate": 0.0,
        "latency": {"p50": 0.2, "p95": 0.3},
    }


def test_markup_in_ids_questions_answers_and_names_is_shown_as_text(tmp_path) -> None:
    records = [
        record(SCRIPT, f"Why {SCRIPT}?", passed=True),
        record("q2", "<b>bold</b> question", passed=False),
        record("q3", "plain", passed=True, backend=f"b{SCRIPT}"),
    ]
    page = render_html(records, [summary("extractive"), summary(f"b{SCRIPT}")], {"run": SCRIPT, "k": 3})
    assert "<script" not in page.lower() and "<b>" not in page
    assert page.count(ESCAPED) >= 5  # id, question, answer, backend name (tables and plots), run
    assert "&lt;b&gt;bold&lt;/b&gt; question" in page
    assert page.count("<svg") == 2 and page.count("<table>") == 2
    rows = re.findall(r'<tr class="(pass|fail)">', page)
    assert rows == ["fail", "pass", "pass"]  # failures first
    assert "<td>1.000</td><td>0.500</td><td>0.750</td>" in page  # the summary's metric cells


def test_rag_eval_with_a_planted_question_set_writes_an_inert_report(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the eval index is cached under ./eval/.cache
    corpus = write_corpus(tmp_path / "corpus", {"cats.txt": "Cats sleep sixteen hours a day."})
    planted = {
        "id": f"q{SCRIPT}",
        "question": f"How long do cats sleep? {SCRIPT}",
        "answers": ["sixteen hours"],
        "answerable": True,
        "support": [{"source": "cats.txt", "quote": "Cats sleep sixteen hours a day."}],
    }
    qfile = tmp_path / "q.jsonl"
    qfile.write_text(json.dumps(planted) + "\n")
    out = tmp_path / "report"
    result = CliRunner().invoke(
        app,
        ["eval", str(qfile), "--corpus", str(corpus), "--backend", "extractive", "--out", str(out), "--json"],
        env={"RAG_EMBEDDING_MODEL": "hash", "RAG_CHUNK_SIZE": "16", "RAG_CHUNK_OVERLAP": "0"},
    )
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert "<script" not in page.lower()
    assert f"<td>q{ESCAPED}</td>" in page and f"How long do cats sleep? {ESCAPED}" in page
    assert json.loads((out / "results.jsonl").read_text())["id"] == f"q{SCRIPT}"  # the data itself is kept as is


def test_write_report_writes_the_three_files(tmp_path) -> None:
    out = write_report(tmp_path / "r", [record("q1", "plain", passed=True)], [summary("extractive")], {"run": "x"})
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "results.jsonl", "summary.json"]
    assert json.loads((out / "summary.json").read_text())["backends"][0]["backend"] == "extractive"
