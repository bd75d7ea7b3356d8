"""Checks for eval/normans_reader_questions.jsonl: questions in a reader's words on the SQuAD 2.0 article *Normans*,
which `python eval/fit_calibration.py --cross-source` judges and no fit uses.

The article itself is not in the repository (it is read in place from ../shared/data/squad2), so these checks need
only the file: the schema, the counts, and that each quote holds one of its answers. The fitting script checks that
every quote is verbatim in the article before it judges anything.
"""

import importlib.util
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from rag.evaluation.evaluate import Question

ROOT = Path(__file__).resolve().parents[1]
PATH = ROOT / "eval" / "normans_reader_questions.jsonl"
ROWS = [json.loads(line) for line in PATH.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_counts_and_ids():
    ids = [r["id"] for r in ROWS]
    assert ids == [f"h{n:02d}" for n in range(1, len(ROWS) + 1)]
    assert sum(r["answerable"] for r in ROWS) >= 40
    assert sum(not r["answerable"] for r in ROWS) >= 20


@pytest.mark.parametrize("row", ROWS, ids=[r["id"] for r in ROWS])
def test_row(row):
    assert set(row) == {"id", "question", "answers", "answerable", "support"}
    assert row["question"].strip().endswith("?")
    if not row["answerable"]:
        assert row["answers"] == [] and row["support"] == []
        return
    assert row["answers"] and all(isinstance(a, str) and a.strip() for a in row["answers"])
    assert [set(s) for s in row["support"]] == [{"source", "quote"}]
    quote = row["support"][0]["quote"].lower()
    assert row["support"][0]["source"] == "Normans.txt"
    assert any(a.lower() in quote for a in row["answers"]), "the quote holds none of the answers"
    assert not re.search(r"\n\s*\n", quote), "a quote lies inside one paragraph"


def _fit_module():
    spec = importlib.util.spec_from_file_location("fit_calibration", ROOT / "eval" / "fit_calibration.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_quote_missing_from_the_article_stops_the_fit(tmp_path):
    fit = _fit_module()
    (tmp_path / "Normans.txt").write_text("Rollo led the Norse settlers.\n", encoding="utf-8")
    good = Question("h01", "Who led them?", ("Rollo",), True, ({"source": "Normans.txt", "quote": "Rollo led"},))
    assert fit.supported([good], tmp_path) == [good]
    bad = Question("h02", "Who led them?", ("Rollo",), True, ({"source": "Normans.txt", "quote": "Rollo, who led"},))
    with pytest.raises(SystemExit, match="h02: its support quote is not in"):
        fit.supported([good, bad], tmp_path)


def test_a_judge_set_is_never_fitted_on(monkeypatch):
    """Each calibration source is judged fitted on the others; the judge set fitted on all of them, never on itself."""
    fit = _fit_module()
    fitted_on = []

    def fake_fit(rows, selectors):
        fitted_on.append(sorted({r["set"] for r in rows}))
        return SimpleNamespace(min_confidence=0.5), {}

    monkeypatch.setattr(fit, "fit", fake_fit)
    monkeypatch.setattr(
        fit, "evidence_of", lambda rows, selectors, c: [SimpleNamespace(confidence=r["c"]) for r in rows]
    )
    monkeypatch.setattr(fit, "correct", lambda ev, c, q: q.answerable)
    rows = [
        {"set": name, "q": SimpleNamespace(answerable=answerable), "c": c}
        for name in ("squad", "seed", "reader")
        for answerable, c in ((True, 0.9), (True, 0.2), (False, 0.1))
    ]
    out = fit.cross_source(rows, [None] * len(rows), judges=("reader",))
    assert fitted_on == [["seed"], ["squad"], ["seed", "squad"]]
    assert out["reader"]["answered_right"] == 1 and out["reader"]["unanswerable_abstained"] == "1 of 1"
