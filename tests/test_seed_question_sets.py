"""Checks for the reader-written seed question sets: eval/seed_questions_heldout.jsonl (held out: never used
in fitting), eval/seed_questions_heldout2.jsonl (a second held-out set, written later, before any run on it, so
no decision saw its results) and eval/seed_questions_dev.jsonl (the first held-out set, inspected while
building the answer step and since moved into the calibration split).

Fast, model-free: validates schema, counts, that support quotes are verbatim
single-paragraph substrings of the article, that gold answers occur in the
article, and that questions are not copied from the article's sentences.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETS = ("seed_questions_heldout.jsonl", "seed_questions_heldout2.jsonl", "seed_questions_dev.jsonl")
ARTICLE_NAME = "openai-microsoft-partnership-2026.txt"
ARTICLE = ROOT / "seeds" / ARTICLE_NAME
KEYS = {"id", "question", "answers", "answerable", "support"}
NGRAM = 8


def _load(name):
    rows = []
    with (ROOT / "eval" / name).open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rows.append({**json.loads(line), "_set": name})
    return rows


ROWS = [row for name in SETS for row in _load(name)]
TEXT = ARTICLE.read_text(encoding="utf-8")
PARAGRAPHS = [p for p in re.split(r"\n\s*\n", TEXT) if p.strip()]


def _words(s):
    return re.findall(r"[a-z0-9]+", s.lower().replace("\u2019", "'").replace("'", ""))


def _ids(rows):
    return [f"{r['_set'].split('_')[-1].split('.')[0]}-{r.get('id', '?')}" for r in rows]


@pytest.mark.parametrize("name", SETS)
def test_ids_unique_and_well_formed(name):
    ids = [r["id"] for r in ROWS if r["_set"] == name]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"h\d{2}", i) for i in ids), ids


@pytest.mark.parametrize("row", ROWS, ids=_ids(ROWS))
def test_schema(row):
    assert set(row) - {"_set"} == KEYS
    assert isinstance(row["question"], str) and row["question"].strip().endswith("?")
    assert isinstance(row["answers"], list)
    assert isinstance(row["answerable"], bool)
    assert isinstance(row["support"], list)


@pytest.mark.parametrize("name", SETS)
def test_counts(name):
    rows = [r for r in ROWS if r["_set"] == name]
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    assert len(rows) >= 30
    assert len(answerable) >= 20
    assert len(unanswerable) >= 10


@pytest.mark.parametrize("row", [r for r in ROWS if r["answerable"]], ids=_ids([r for r in ROWS if r["answerable"]]))
def test_answerable_support_and_answers(row):
    assert len(row["answers"]) >= 1
    assert len(row["support"]) >= 1
    for sup in row["support"]:
        assert set(sup) == {"source", "quote"}
        assert sup["source"] == ARTICLE_NAME
        quote = sup["quote"]
        assert quote.strip(), "empty quote"
        assert quote in TEXT, f"quote not verbatim in article: {quote!r}"
        hits = [p for p in PARAGRAPHS if quote in p]
        assert len(hits) == 1, f"quote must lie inside exactly one paragraph: {quote!r}"
    lower = TEXT.lower()
    for ans in row["answers"]:
        assert isinstance(ans, str) and ans.strip()
        assert ans.lower() in lower, f"gold answer not in article: {ans!r}"


@pytest.mark.parametrize(
    "row", [r for r in ROWS if not r["answerable"]], ids=_ids([r for r in ROWS if not r["answerable"]])
)
def test_unanswerable_empty(row):
    assert row["answers"] == []
    assert row["support"] == []


def test_questions_not_copied_from_article():
    art = _words(TEXT)
    grams = {tuple(art[i : i + NGRAM]) for i in range(len(art) - NGRAM + 1)}
    copied = []
    for row in ROWS:
        q = _words(row["question"])
        for i in range(len(q) - NGRAM + 1):
            if tuple(q[i : i + NGRAM]) in grams:
                copied.append((row["_set"], row["id"], " ".join(q[i : i + NGRAM])))
                break
    assert not copied, copied
