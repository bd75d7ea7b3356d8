"""Checks for the question sets written in a reader's words: the judge sets that `python eval/fit_calibration.py
--cross-source` judges and no fit uses (eval/normans_reader_questions.jsonl on the SQuAD 2.0 article *Normans*;
eval/judge/*_reader_questions.jsonl on invented news articles under eval/judge/), and the reader's training set
(eval/train/, fitted on by eval/fit_reader.py only).

*Normans* is not in the repository (it is read in place from ../shared/data/squad2), so for that set these checks
need only the file: the schema, the counts, and that each quote holds one of its answers; the fitting script checks
that every quote is verbatim in the article before it judges anything. The invented articles are in the repository,
so their sets' quotes are checked against them here too, and no question may copy six words of them.
"""

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from rag.evaluation.evaluate import Question
from tests.conftest import eval_script

ROOT = Path(__file__).resolve().parents[1]
JUDGE = ROOT / "eval" / "judge"
TRAIN = ROOT / "eval" / "train"
# name: (questions, the folder of the articles they ask about (None: not in the repository), at least this many
# answerable and unanswerable questions, their ids' form)
SETS = {
    "normans": (ROOT / "eval" / "normans_reader_questions.jsonl", None, 40, 20, r"h\d\d"),
    "harbor": (JUDGE / "harbor_reader_questions.jsonl", JUDGE / "corpus", 20, 10, r"h\d\d"),
    "news": (JUDGE / "news_reader_questions.jsonl", JUDGE / "news", 60, 30, r"h\d\d"),
    "news2": (JUDGE / "news2_reader_questions.jsonl", JUDGE / "news2", 60, 30, r"h\d\d"),
    # the reader's training set (eval/fit_reader.py): the same checks, ids "article/hNN" (reader-worded) and
    # "article/vNN" (short and vague, leaning on the article's context, as `make run`'s example does)
    "train": (TRAIN / "questions.jsonl", TRAIN / "corpus", 1040, 520, r"[a-z-]+/[hv]\d\d"),
    # 24 invented articles, retrieved over together: ids "article/hNN"
    "wide": (JUDGE / "wide_reader_questions.jsonl", JUDGE / "wide", 480, 240, r"[a-z-]+/h\d\d"),
}
ROWS = [
    {**json.loads(line), "_set": name}
    for name, (path, *_) in SETS.items()
    for line in path.read_text(encoding="utf-8").splitlines()
    if line.strip()
]
IDS = [f"{r['_set']}-{r['id']}" for r in ROWS]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower().replace("\u2019", "'").replace("'", ""))


@pytest.mark.parametrize("name", SETS)
def test_counts_and_ids(name):
    _, _, answerable, unanswerable, form = SETS[name]
    rows = [r for r in ROWS if r["_set"] == name]
    assert all(re.fullmatch(form, r["id"]) for r in rows)
    assert len({r["id"] for r in rows}) == len(rows)
    assert sum(r["answerable"] for r in rows) >= answerable
    assert sum(not r["answerable"] for r in rows) >= unanswerable


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_row(row):
    _, corpus, *_ = SETS[row["_set"]]
    assert set(row) - {"_set"} == {"id", "question", "answers", "answerable", "support"}
    assert row["question"].strip().endswith("?")
    if not row["answerable"]:
        assert row["answers"] == [] and row["support"] == []
        return
    assert row["answers"] and all(isinstance(a, str) and a.strip() for a in row["answers"])
    assert row["support"] and all(set(s) == {"source", "quote"} for s in row["support"])
    quotes = [s["quote"] for s in row["support"]]
    assert any(a.lower() in q.lower() for a in row["answers"] for q in quotes), "no quote holds an answer"
    assert not any(re.search(r"\n\s*\n", q) for q in quotes), "a quote lies inside one paragraph"
    if corpus is None:
        assert all(s["source"] == "Normans.txt" for s in row["support"])
        return
    for s in row["support"]:
        article = corpus / s["source"]
        assert article.is_file(), f"no article {s['source']} in {corpus}"
        assert s["quote"] in article.read_text(encoding="utf-8"), "every quote is verbatim in its article"


@pytest.mark.parametrize("name", [name for name, (_, corpus, *_) in SETS.items() if corpus is not None])
def test_no_question_copies_its_articles(name):
    """Six words in a row from an article would make a question a lookup, not a reader's question. A question whose
    id names its article ("article/hNN") is checked against that article (another may share a common phrase)."""
    _, corpus, *_ = SETS[name]
    grams = {}
    for article in corpus.glob("*.txt"):
        text = _words(article.read_text(encoding="utf-8"))
        grams[article.stem] = {tuple(text[i : i + 6]) for i in range(len(text) - 5)}
    every = set().union(*grams.values())
    for row in (r for r in ROWS if r["_set"] == name):
        q = _words(row["question"])
        own = grams[row["id"].split("/")[0]] if "/" in row["id"] else every
        assert not any(tuple(q[i : i + 6]) in own for i in range(len(q) - 5)), row["id"]


def _articles(folder: Path) -> set[str]:
    return {a.read_text(encoding="utf-8") for a in folder.glob("*.txt")}


def test_no_article_is_both_trained_on_and_judged():
    """The reader's training articles are none of the judge sets' or the seed's, by text or by name."""
    judges = (JUDGE / "corpus", JUDGE / "news", JUDGE / "news2", JUDGE / "wide", ROOT / "seeds")
    trained = {a.read_text(encoding="utf-8") for a in (TRAIN / "corpus").glob("*.txt")}
    judged = {a.read_text(encoding="utf-8") for d in judges for a in d.glob("*.txt")}
    assert trained and judged and not trained & judged
    names = {a.name for a in (TRAIN / "corpus").glob("*.txt")} & {a.name for d in judges for a in d.glob("*.txt")}
    assert not names, f"an article name is both trained on and judged: {names}"


def test_a_quote_missing_from_the_article_stops_the_fit(tmp_path):
    fit = eval_script("fit_calibration")
    (tmp_path / "Normans.txt").write_text("Rollo led the Norse settlers.\n", encoding="utf-8")
    good = Question("h01", "Who led them?", ("Rollo",), True, ({"source": "Normans.txt", "quote": "Rollo led"},))
    assert fit.supported([good], tmp_path) == [good]
    bad = Question("h02", "Who led them?", ("Rollo",), True, ({"source": "Normans.txt", "quote": "Rollo, who led"},))
    with pytest.raises(SystemExit, match="h02: its support quote is not in"):
        fit.supported([good, bad], tmp_path)


def test_a_judge_set_is_never_fitted_on(monkeypatch):
    """Each calibration source is judged fitted on the others; the judge set fitted on all of them, never on itself."""
    fit = eval_script("fit_calibration")
    fitted_on = []

    def fake_fit(rows, selectors, rerank=False):
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


def test_the_reranking_fit_puts_weight_where_the_labels_follow() -> None:
    """eval/fit_calibration.py's conditional logit: of two scores for each question's few sentences, the one that
    picks out the labelled sentence gets the weight."""
    import numpy as np

    fit = eval_script("fit_calibration")
    rng = np.random.default_rng(0)
    groups = []
    for _ in range(200):
        x = rng.normal(size=(4, 2))
        groups.append((x, np.arange(4) == int(np.argmax(x[:, 0] + 0.3 * rng.normal(size=4)))))
    reader, sentence = fit.conditional_logit(groups)
    assert reader > 1.0 and abs(sentence) < 0.3 * reader
    swapped = fit.conditional_logit([(x[:, ::-1], labels) for x, labels in groups])
    assert swapped[1] > 1.0 and abs(swapped[0]) < 0.3 * swapped[1]
    # a group with no labelled sentence says nothing
    assert np.allclose(fit.conditional_logit([*groups, (np.ones((4, 2)), np.zeros(4, bool))]), (reader, sentence))
