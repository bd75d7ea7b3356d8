import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT / "eval" / "seed_questions.jsonl"
SEEDS = ROOT / "seeds"
SOURCE = "openai-microsoft-partnership-2026.txt"


@pytest.fixture(scope="module")
def questions() -> list[dict]:
    lines = QUESTIONS.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="module")
def article() -> str:
    return (SEEDS / SOURCE).read_text(encoding="utf-8")


def paragraph_of(article: str, quote: str) -> int:
    paragraphs = re.split(r"\n\s*\n", article)
    found = [i for i, paragraph in enumerate(paragraphs) if quote in paragraph]
    assert len(found) == 1, f"quote not inside exactly one paragraph: {quote!r}"
    return found[0]


def test_ids_unique_and_fields_typed(questions):
    ids = [q["id"] for q in questions]
    assert len(ids) == len(set(ids))
    for q in questions:
        assert set(q) == {"id", "question", "answers", "answerable", "support"}
        assert re.fullmatch(r"q\d{2,}", q["id"])
        assert isinstance(q["question"], str) and q["question"].strip().endswith("?")
        assert isinstance(q["answerable"], bool)
        assert isinstance(q["answers"], list)
        assert all(isinstance(a, str) and a.strip() for a in q["answers"])
        assert isinstance(q["support"], list)
        for s in q["support"]:
            assert set(s) == {"source", "quote"}
            assert isinstance(s["source"], str) and isinstance(s["quote"], str)


def test_counts(questions):
    answerable = [q for q in questions if q["answerable"]]
    unanswerable = [q for q in questions if not q["answerable"]]
    assert len(questions) >= 40
    assert len(answerable) >= 30
    assert len(unanswerable) >= 10


def test_answerable_have_answers_and_exact_quotes(questions, article):
    for q in questions:
        if not q["answerable"]:
            continue
        assert q["answers"], q["id"]
        assert len(q["support"]) >= 1, q["id"]
        for s in q["support"]:
            assert s["source"] == SOURCE, q["id"]
            assert s["quote"] in article, f"{q['id']}: {s['quote']!r}"


def test_unanswerable_have_no_answers_or_support(questions):
    for q in questions:
        if not q["answerable"]:
            assert q["answers"] == [], q["id"]
            assert q["support"] == [], q["id"]


def test_some_questions_span_two_paragraphs(questions, article):
    multi = [q["id"] for q in questions if len({paragraph_of(article, s["quote"]) for s in q["support"]}) >= 2]
    assert len(multi) >= 3, multi


def test_article_uses_curly_apostrophes(article):
    # The quotes must keep the article's U+2019, not a straight apostrophe.
    assert "OpenAI\u2019s" in article and "OpenAI's" not in article
