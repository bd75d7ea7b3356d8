"""Chunk spans are exact, bounded in tokens, and respect paragraph and sentence boundaries."""

from __future__ import annotations

import pytest

from conftest import ARTICLE
from rag.index.chunking import Chunker
from rag.index.documents import normalize_text
from rag.index.embedding import HashEmbedder
from rag.text import paragraphs, sentences
from rag.types import Document

WORDS = HashEmbedder().token_offsets  # one token per whitespace-separated word


def words(n: int, start: int = 0) -> str:
    return " ".join(f"w{i}" for i in range(start, start + n))


def test_paragraph_and_sentence_spans_are_exact() -> None:
    text = "One two. Three four!\nFive six?\n\n  Seven eight.  "
    assert [text[s.start : s.end] for s in paragraphs(text)] == ["One two. Three four!\nFive six?", "Seven eight."]
    assert [text[s.start : s.end] for s in sentences(text, 0, 30)] == ["One two.", "Three four!", "Five six?"]


def test_sentence_end_after_closing_quote() -> None:
    text = "He said “stop.” Then left."
    assert [text[s.start : s.end] for s in sentences(text)] == ["He said “stop.”", "Then left."]


def test_small_paragraphs_pack_together_and_big_ones_break_at_paragraphs() -> None:
    text = f"{words(5)}.\n\n{words(5, 5)}.\n\n{words(12, 10)}."
    doc = Document.create("a.txt", "a", text)
    chunks = Chunker(WORDS, size=16, overlap=0).chunk(doc)
    assert [c.text for c in chunks] == [f"{words(5)}.\n\n{words(5, 5)}.", f"{words(12, 10)}."]


def test_overlap_carries_whole_sentences_within_a_paragraph() -> None:
    text = "One two three. Four five. Six seven eight. Nine ten eleven twelve."
    doc = Document.create("a.txt", "a", text)
    chunks = Chunker(WORDS, size=6, overlap=2).chunk(doc)
    assert [c.text for c in chunks] == [
        "One two three. Four five.",
        "Four five. Six seven eight.",
        "Nine ten eleven twelve.",
    ]


def test_overlong_sentence_is_cut_at_token_boundaries() -> None:
    text = words(25) + "."
    doc = Document.create("a.txt", "a", text)
    chunks = Chunker(WORDS, size=10).chunk(doc)
    assert [len(c.text.split()) for c in chunks] == [10, 10, 5]
    assert all(doc.text[c.start : c.end] == c.text for c in chunks)


def test_chunk_ids_are_stable_content_hashes() -> None:
    doc = Document.create("a.txt", "a", "a b c. d e f.")
    first = Chunker(WORDS, size=3).chunk(doc)
    again = Chunker(WORDS, size=3).chunk(Document.create("a.txt", "a", "a b c. d e f."))
    assert [c.id for c in first] == [c.id for c in again]
    assert len({c.id for c in first}) == 2


@pytest.mark.parametrize("size,overlap", [(32, 0), (64, 16), (192, 32), (254, 0)])
def test_real_article_spans_exact_and_within_model_limit(real_embedder, size: int, overlap: int) -> None:
    text = normalize_text(ARTICLE.read_text(encoding="utf-8"))
    doc = Document.create(ARTICLE.name, "article", text)
    chunks = Chunker(real_embedder.token_offsets, size, overlap).chunk(doc)
    assert all(doc.text[c.start : c.end] == c.text for c in chunks)
    counts = [len(t) for t in real_embedder.token_offsets([c.text for c in chunks])]
    assert max(counts) <= size
    # every sentence of the article is in some chunk, in order
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)
    # no chunk starts or ends inside a word
    assert all(c.text == c.text.strip() for c in chunks)


SENTENCE_TABLE = [
    (
        "Mr. Smith met Dr. Jones in the U.S. on Jan. 5. They talked.",
        ["Mr. Smith met Dr. Jones in the U.S. on Jan. 5.", "They talked."],
    ),
    ("The U.S. economy grew 3.5% in Q2. Prices rose.", ["The U.S. economy grew 3.5% in Q2.", "Prices rose."]),
    (
        "Revenue was $1.5 billion vs. $1.2 billion. Analysts cheered!",
        ["Revenue was $1.5 billion vs. $1.2 billion.", "Analysts cheered!"],
    ),
    ("E.g. this one. And i.e. that one.", ["E.g. this one.", "And i.e. that one."]),
    ("Prof. J. R. R. Tolkien wrote it. It sold well.", ["Prof. J. R. R. Tolkien wrote it.", "It sold well."]),
    ("See p. 5 and Fig. 2 for details. Next one.", ["See p. 5 and Fig. 2 for details.", "Next one."]),
    ("He said “Stop.” Then he left.", ["He said “Stop.”", "Then he left."]),
    (
        "A heading without a stop\nThe body starts here. It goes on.",
        ["A heading without a stop", "The body starts here.", "It goes on."],
    ),
    ("OpenAI’s push — café déjà vu. Über alles?  Yes.", ["OpenAI’s push — café déjà vu.", "Über alles?", "Yes."]),
]


@pytest.mark.parametrize(("text", "expected"), SENTENCE_TABLE)
def test_sentence_boundaries_know_abbreviations_and_keep_offsets(text: str, expected: list[str]) -> None:
    spans = sentences(text)
    assert [text[s.start : s.end] for s in spans] == expected


def test_sentences_of_a_slice_are_offsets_into_the_whole_text() -> None:
    text = "Skip this. Mr. Smith arrived. He sat."
    assert [text[s.start : s.end] for s in sentences(text, 11)] == ["Mr. Smith arrived.", "He sat."]
