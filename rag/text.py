"""Text units shared by indexing, retrieval and answering: paragraphs, sentences, words and their stems.

One place owns word splitting, English stopwords and Snowball stemming (a stemmer per thread: PyStemmer
objects are not thread-safe) and sentence boundaries (Bling Fire's segmenter, which keeps character offsets
and knows abbreviations such as "Mr.", "U.S." and "Jan."; a line break always ends a sentence). Nothing
here knows about chunks, indexes or answers.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass

SEGMENTER = "blingfire-1"  # recorded with the chunking settings: a new segmenter re-chunks old indexes
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_WORD = re.compile(r"(?u)\b\w\w+\b")  # bm25s's token pattern: words of two or more characters
_POSSESSIVE = re.compile(r"[’']s\b")
_local = threading.local()
# Where a sentence divides into clauses: a comma, semicolon or dash not inside a number ("April 27, 2026").
CLAUSE_BREAK = re.compile(r"(?<!\d),\s+|,\s+(?!\d)|;\s+|\s+[—–]\s+|\s+-\s+")


@dataclass(frozen=True)
class Span:
    start: int
    end: int


def paragraphs(text: str) -> list[Span]:
    """Spans of the blank-line-separated paragraphs, whitespace trimmed."""
    spans, pos = [], 0
    for brk in [*_PARAGRAPH_BREAK.finditer(text), None]:
        end = brk.start() if brk else len(text)
        span = _trim(text, pos, end)
        if span:
            spans.append(span)
        pos = brk.end() if brk else end
    return spans


def sentences(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Spans of the sentences in text[start:end], whitespace trimmed, as offsets into `text`."""
    from blingfire import text_to_sentences_and_offsets

    end = len(text) if end is None else end
    spans = []
    line_start = start
    while line_start < end:
        line_end = text.find("\n", line_start, end)
        line_end = end if line_end < 0 else line_end
        line = text[line_start:line_end]
        if line.strip():
            _, offsets = text_to_sentences_and_offsets(line)
            for a, b in offsets or [(0, len(line))]:
                span = _trim(text, line_start + a, line_start + b)
                if span:
                    spans.append(span)
        line_start = line_end + 1
    return spans


def clauses(text: str) -> list[Span]:
    """Spans of the clauses of one sentence (split at commas, semicolons and dashes, numbers kept whole)."""
    spans, pos = [], 0
    for brk in [*CLAUSE_BREAK.finditer(text), None]:
        span = _trim(text, pos, brk.start() if brk else len(text))
        if span:
            spans.append(span)
        pos = brk.end() if brk else len(text)
    return spans


def _trim(text: str, start: int, end: int) -> Span | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Span(start, end) if end > start else None


# Function words that carry no content when matching a question to a sentence (question words, auxiliaries,
# pronouns, common prepositions), on top of the short Lucene list BM25 uses for its index.
_FUNCTION_WORDS = frozenset(
    """a an the and or but if then of to in on at by for with from as is are was were be been
being it its this that these those there their they them he she his her we our you your i me my do does did
done has have had having not no yes can could will would shall should may might must what which who whom whose
when where why how than so such into about over under also more most other some any each all both only own
same too very just while during before after again further once here out up down off per via
many much""".split()
)


@functools.cache
def bm25_stopwords() -> frozenset[str]:
    """The stopwords of the BM25 index (bm25s's English list): queries must drop exactly these."""
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


@functools.cache
def stopwords() -> frozenset[str]:
    """Words that are not content words: the BM25 list plus function words."""
    return bm25_stopwords() | _FUNCTION_WORDS


def stem(words: Sequence[str]) -> list[str]:
    """Snowball English stems, with this thread's own stemmer."""
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        import Stemmer

        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return stemmer.stemWords(list(words))


def words(text: str) -> list[str]:
    """Lowercased words of two or more characters, in order (possessive 's dropped)."""
    return _WORD.findall(_POSSESSIVE.sub("", text.lower()))


def query_tokens(text: str) -> list[str]:
    """BM25 tokens: words minus the BM25 stopwords, stemmed. The index is built with `bm25_tokens`, which agrees."""
    stop = bm25_stopwords()
    return stem([w for w in _WORD.findall(text.lower()) if w not in stop])


def written_words(text: str) -> list[str]:
    """The content words of a text as written (lowercased, not stemmed), in order, repeats kept."""
    stop = stopwords()
    return [w for w in words(text) if w not in stop]


def content_tokens(text: str) -> list[str]:
    """The stemmed content words of a text in order, repeats kept (hosting -> host, OpenAI's -> openai)."""
    return stem(written_words(text))


def content_words(text: str) -> set[str]:
    """The set of `content_tokens`."""
    return set(content_tokens(text))


def bm25_tokens(texts: list[str], return_ids: bool = True):
    """bm25s tokens for an index build: the same words, stopwords and stems as `query_tokens`."""
    import bm25s
    import Stemmer

    return bm25s.tokenize(
        texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), return_ids=return_ids, show_progress=False
    )


_ENTITY = re.compile(r"(?<![.!?]\s)(?<!^)\b(?:[A-Z][\w’'-]+|\d[\d,.%]*)")


def entities(text: str) -> set[str]:
    """Numbers and capitalised words not at a sentence start, possessive 's dropped: the names and figures a
    question asks about, and what a model tends to invent."""
    found = set()
    for span in sentences(text):
        sentence = text[span.start : span.end]
        found.update(
            re.sub(r"[’']s$", "", m.group(0).rstrip(".,%")) for m in _ENTITY.finditer(sentence) if m.start() > 0
        )
    return {f for f in found if f and f.lower() not in stopwords()}
