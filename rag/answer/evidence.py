"""Evidence selection, shared by every backend: score each sentence of the retrieved passages against the
question, rank them with the fitted sentence model, and say how likely the best of them answers it.

Features of a sentence: embedding cosine with the question, BM25 over the sentence with the corpus's IDF,
the share of question words it holds, whether it holds the kind of thing the question asks for (a date for
"when", a number for "how many", a name for "who"/"where"/"which ...") that the question does not already
contain, and its passage's rank. Weights, the confidence calibrator and the cut-offs come from
`rag.answer.calibration`; this module holds none. Generation and claim verification live elsewhere.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rag.answer import reader as reader_model
from rag.answer.calibration import Calibration, logit
from rag.index.embedding import Embedder, TokenCache, TokenVectors
from rag.text import clauses, content_tokens, content_words, entities, sentences, stem, stopwords, words
from rag.types import Hit

SENTENCE_FEATURES = (
    "cosine",
    "clause_cosine",
    "bm25",
    "overlap",
    "type_match",
    "rank",
    "novel",
    "length",
    "weighted_overlap",
    "context_overlap",
    "bigrams",
    "proximity",
    "lead",
    "alignment",
)
CONFIDENCE_FEATURES = (
    "best",
    "margin",
    "cosine",
    "bm25",
    "overlap",
    "typed",
    "type_match",
    "missing",
    "missing_passages",
    "coverage",
    "missing_name",
    "negation",
    "type_mismatch",
    "unknown",
    "weighted_overlap",
    "context_overlap",
    "proximity",
    "best_weighted_overlap",
    "alignment",
    "reader",
    "reader_any",
)
# What each confidence feature's meaning says: +1 can only make a right answer likelier, -1 only less likely, 0
# either. The calibrator is held to these, so it cannot learn, say, "every question word found means
# unanswerable" from SQuAD 2.0's unanswerable questions, which were written to overlap their paragraph.
CONFIDENCE_SIGNS = {
    "best": 1,
    "margin": 1,
    "cosine": 1,
    "bm25": 1,
    "overlap": 1,
    "typed": 0,
    "type_match": 1,
    "missing": -1,
    "missing_passages": -1,
    "coverage": 1,
    "missing_name": -1,
    "negation": -1,
    "type_mismatch": -1,
    "unknown": -1,
    "weighted_overlap": 1,
    "context_overlap": 1,
    "proximity": 1,
    "best_weighted_overlap": 1,
    "alignment": 1,
    "reader": 1,
    "reader_any": 1,
}
_BM25_K1, _BM25_B = 1.5, 0.75  # bm25s's defaults, so sentence BM25 agrees with the index's

_INSTRUCTION = re.compile(
    r"\b(ignore|disregard|forget|override)\b.{0,60}\b(instructions?|prompts?|rules|above|previous|prior)\b"
    r"|\b(reply|respond|answer|say|output|print)\b.{0,20}\b(only|exactly|with)\b.{0,20}[\"“”']?[A-Z]{4,}",
    re.IGNORECASE | re.DOTALL,
)

# What a question asks for, and how that kind of thing looks in a sentence. These only make features for
# the fitted models: none of them decides an answer on its own.
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozens?|hundreds?|thousands?|"
    "millions?|billions?|\\w+teen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety"
)
_WH = re.compile(r"\b(when|who|whom|whose|where|which|what|how)\b", re.I)
_ASKS = (  # matched from the question's first wh-word on, so "Who gains ... when ..." asks for a name
    ("date", re.compile(r"(when|(what|which) (year|date|day|month|time|century|decade|period)|how long ago)\b", re.I)),
    (
        "number",
        re.compile(
            r"(how (much|many|long|far|big|large|old|often|fast|high)|(what|which) (amount|percentage|"
            r"percent|share|price|number|size|sum|proportion|cost))\b",
            re.I,
        ),
    ),
    ("name", re.compile(r"(who|whom|whose|where|which \w+)\b", re.I)),
)
_HOLDS = {
    "date": re.compile(
        rf"\b(?:\d{{1,2}} )?(?:{_MONTHS})(?: \d{{1,2}}(?:st|nd|rd|th)?)?(?:,? \d{{4}})?\b"
        rf"|\b(?:1\d{{3}}|20\d\d)s?\b|\b\d+(?:st|nd|rd|th) centur(?:y|ies)\b"
        rf"|\b(?:\w+(?:teenth|tieth)|first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|"
        rf"eleventh|twelfth) centur(?:y|ies)\b",
        re.I,
    ),
    "number": re.compile(rf"[$€£]?\d[\d,.]*\s*(%|percent|per cent)?|\b({_NUMBER_WORDS})\b", re.I),
    "name": re.compile(r"\b[A-Z][\w’'&.-]*(?:\s+(?:(?:of|de|du|von|van|the|and|for)\s+)?[A-Z][\w’'&.-]*)*"),
}


NEGATION = re.compile(r"\b(not|no|never|none|nor|without|n't|cannot)\b|n’t\b|n't\b", re.I)


def question_type(question: str) -> str:
    """What the question asks for: "date", "number", "name", or "" when it is not one of those."""
    wh = _WH.search(question)
    if wh is None:
        return ""
    for kind, asks in _ASKS:
        if asks.match(question, wh.start()):
            return kind
    return ""


def is_instruction(text: str) -> bool:
    """Does this passage sentence try to instruct the model (indirect prompt injection)?"""
    return bool(_INSTRUCTION.search(text))


_CLOSING = re.compile(r"[.!?:;…\"”’')\]]$")


def is_heading(text: str, start: int, end: int) -> bool:
    """Is text[start:end] a heading rather than a sentence: a line of its own, without closing punctuation, marked
    with "#" or in title case (every word of four or more letters capitalised, at most 12 words)?"""
    line = text[start:end]
    alone = text[:start].rstrip(" \t").endswith("\n") or not text[:start].strip()
    alone = alone and (text[end:].lstrip(" \t").startswith("\n") or not text[end:].strip())
    if not alone or _CLOSING.search(line):
        return False
    long = [w for w in line.split() if sum(c.isalpha() for c in w) >= 4]
    return line.startswith("#") or (len(line.split()) <= 12 and len(long) >= 2 and all(w[0].isupper() for w in long))


def answer_candidates(sentence: str, kind: str, question: str) -> list[tuple[int, int]]:
    """Spans of `sentence` holding the kind of thing asked for that the question does not already name.

    A capitalised word that opens the sentence counts as a name only when it is not a common word."""
    if kind not in _HOLDS:
        return []
    asked = content_words(question)
    spans = []
    for m in _HOLDS[kind].finditer(sentence):
        text = m.group(0).strip(" ,.;:")
        if not text or (kind == "name" and m.start() == 0 and " " not in text and text.lower() in _common()):
            continue
        named = content_words(text)
        if named and named <= asked:
            continue  # the question already says it
        start = m.start() + m.group(0).index(text)
        spans.append((start, start + len(text)))
    return spans


@functools.cache
def _common() -> frozenset[str]:
    return stopwords() | {"despite", "rather", "however", "for", "at", "by", "as", "after", "before", "in"}


@dataclass(frozen=True)
class PassageSentence:
    n: int  # 1-based passage number
    hit: Hit
    start: int  # offsets in the source document
    end: int
    text: str
    heading: bool = False  # a heading line, which gives context to the sentences under it but answers nothing


def passage_sentences(hits: Sequence[Hit]) -> list[PassageSentence]:
    """Every sentence of every passage as an exact document span; instruction-like sentences are left out."""
    out = []
    for n, hit in enumerate(hits, 1):
        chunk = hit.chunk
        for span in sentences(chunk.text):
            text = chunk.text[span.start : span.end]
            if not is_instruction(text):
                heading = is_heading(chunk.text, span.start, span.end)
                out.append(PassageSentence(n, hit, chunk.start + span.start, chunk.start + span.end, text, heading))
    return out


@dataclass(frozen=True)
class ScoredSentence:
    sentence: PassageSentence
    probability: float  # fitted P(this sentence holds the answer)
    features: dict[str, float]


@dataclass(frozen=True)
class Evidence:
    """The question's passage sentences, best first, and the calibrated confidence that the best answer it."""

    question: str
    kind: str  # what the question asks for ("date", "number", "name" or "")
    ranked: tuple[ScoredSentence, ...]
    confidence: float
    features: dict[str, float]  # the confidence model's inputs

    @property
    def best(self) -> ScoredSentence | None:
        return self.ranked[0] if self.ranked else None


class Idf:
    """Inverse document frequencies of BM25 tokens over the index's chunks (Lucene's formula, as bm25s)."""

    def __init__(self, bm25):
        vocab = getattr(bm25, "vocab_dict", None) or {}
        scores = getattr(bm25, "scores", None) or {}
        indptr = np.asarray(scores.get("indptr", [0]))
        self.n = int(scores.get("num_docs", 0)) or 1
        df = np.diff(indptr) if len(indptr) > 1 else np.zeros(0)
        self._df = {token: int(df[i]) for token, i in vocab.items() if i < len(df)}

    def known(self, token: str) -> bool:
        return self._df.get(token, 0) > 0

    def __call__(self, token: str) -> float:
        df = self._df.get(token, 0)
        return math.log(1 + (self.n - df + 0.5) / (df + 0.5))


class EvidenceSelector:
    """Scores passage sentences for a question with the fitted models in `calibration`."""

    def __init__(
        self,
        embedder: Embedder,
        idf: Callable[[str], float],
        calibration: Calibration,
        reader: reader_model.Reader | None = None,
    ):
        self.tokens = TokenCache(embedder)  # the same retrieved sentences come back for many questions
        self.idf = idf
        self.calibration = calibration
        self.reader = reader or reader_model.packaged()

    def select(self, question: str, hits: Sequence[Hit]) -> Evidence:
        pool = passage_sentences(hits)
        kind = question_type(question)
        if not pool or not question.strip():
            return Evidence(question, kind, (), 0.0, {})
        return self.rank(question, kind, pool, self.features(question, kind, pool), hits)

    def rank(
        self,
        question: str,
        kind: str,
        pool: Sequence[PassageSentence],
        rows: Sequence[dict[str, float]],
        hits: Sequence[Hit],
    ) -> Evidence:
        """The evidence from `pool`'s sentence features (`features`): ranked by the fitted sentence model (the best
        few re-ranked with the reader, when the calibration has a re-ranking), with its calibrated confidence.
        Fitting calls it with features computed once, as the models change."""
        ranked, read = self.reread(question, self.scored(pool, rows))
        features = self.confidence_features(question, kind, ranked, read, hits)
        return Evidence(question, kind, ranked, self.calibration.answer_confidence(kind, features), features)

    def reread(
        self, question: str, ranked: tuple[ScoredSentence, ...]
    ) -> tuple[tuple[ScoredSentence, ...], np.ndarray]:
        """The reader's log-odds for the best few of `ranked`, and `ranked` with those few in the order of the
        calibration's re-ranking (reader and sentence model together; the rest keep their places)."""
        head = ranked[: reader_model.SENTENCES]
        read = self._read(question, tuple(s.sentence.text for s in head))
        rerank = self.calibration.rerank
        if rerank is None:
            return ranked, read
        order = sorted(range(len(head)), key=lambda i: -rerank.score(float(read[i]), head[i].probability))
        return tuple(head[i] for i in order) + ranked[len(head) :], read[order]

    def scored(self, pool: Sequence[PassageSentence], rows: Sequence[dict[str, float]]) -> tuple[ScoredSentence, ...]:
        """`pool`'s sentences (headings left out) with the fitted sentence model's probabilities, best first."""
        model = self.calibration.sentence
        scored = [ScoredSentence(p, model.probability(f), f) for p, f in zip(pool, rows, strict=True) if not p.heading]
        return tuple(sorted(scored, key=lambda s: (-s.probability, s.sentence.n, s.sentence.start)))

    def features(self, question: str, kind: str, pool: Sequence[PassageSentence]) -> list[dict[str, float]]:
        """The sentence model's inputs for every sentence of `pool`."""
        # a long sentence's vector is about its main clause: each clause is matched on its own too
        parts = [[p.text[c.start : c.end] for c in clauses(p.text)] for p in pool]
        pieces = [piece for ps in parts for piece in ps if len(ps) > 1]
        vectors, in_context = self.tokens.embed_tokens([question, *(p.text for p in pool), *pieces])
        cosine = vectors[1 : len(pool) + 1] @ vectors[0]
        asked, weights = self._asked_tokens(question, in_context[0])
        piece_cosine = iter((vectors[len(pool) + 1 :] @ vectors[0]).tolist())
        clause_cosine = [
            max([float(c)] + [next(piece_cosine) for _ in ps if len(ps) > 1])
            for c, ps in zip(cosine, parts, strict=True)
        ]
        q_words = content_words(question)
        q_idf = {t: self.idf(t) for t in sorted(q_words)}
        idf_total = sum(q_idf.values()) or 1.0
        q_tokens = content_tokens(question)
        q_bigrams = set(itertools.pairwise(q_tokens))
        tokens = [content_tokens(p.text) for p in pool]
        avg_len = max(1.0, sum(len(t) for t in tokens) / len(tokens))
        rows = []
        for i, (p, cos, clause_cos, toks) in enumerate(zip(pool, cosine, clause_cosine, tokens, strict=True)):
            s_words = set(toks)
            # the sentence before, in the same passage, often names what this one calls "it" or "the company"
            lead = not (i and pool[i - 1].n == p.n)
            before = set() if lead else set(tokens[i - 1])
            candidates = answer_candidates(p.text, kind, question)
            rows.append(
                {
                    "cosine": float(cos),
                    "clause_cosine": clause_cos,
                    "bm25": _bm25(toks, q_idf, avg_len) / idf_total,
                    "overlap": len(q_words & s_words) / len(q_words) if q_words else 0.0,
                    "type_match": float(bool(candidates)),
                    "rank": 1.0 / p.n,
                    "novel": min(len(s_words - q_words), 10) / 10,
                    "length": math.log(1 + len(words(p.text))),
                    "weighted_overlap": sum(v for t, v in q_idf.items() if t in s_words) / idf_total,
                    "context_overlap": sum(v for t, v in q_idf.items() if t in s_words | before) / idf_total,
                    "bigrams": len(q_bigrams & set(itertools.pairwise(toks))) / len(q_bigrams) if q_bigrams else 0.0,
                    "proximity": _proximity(p.text, candidates, q_words),
                    "lead": float(lead),
                    "alignment": _alignment(asked, weights, in_context[i + 1].vectors),
                }
            )
        return rows

    def confidence_features(
        self, question: str, kind: str, ranked: Sequence[ScoredSentence], read: np.ndarray, hits: Sequence[Hit]
    ) -> dict[str, float]:
        """The calibrator's inputs: how good the best sentences are (`read`: the reader's log-odds for the first
        few of `ranked`), and what of the question no passage holds."""
        best = ranked[0]
        q_words = content_words(question)
        weights = {w: self.idf(w) for w in q_words}
        top_words = content_words(" ".join(s.sentence.text for s in ranked[:2]))
        passage_text = " ".join(h.chunk.text for h in hits).lower()
        passage_words = content_words(passage_text)
        missing = [weights[w] for w in q_words if w not in top_words]
        total = sum(weights.values()) or 1.0
        return {
            "best": logit(best.probability),
            "margin": self._margin(ranked, read),
            "cosine": best.features["clause_cosine"],
            "bm25": best.features["bm25"],
            "overlap": best.features["overlap"],
            "typed": float(bool(kind)),
            "type_match": best.features["type_match"],
            "missing": max(missing, default=0.0),
            "missing_passages": sum(weights[w] for w in q_words if w not in passage_words) / total,
            "coverage": 1.0 - sum(missing) / total,
            # a name or number the question gives that no passage holds (each part of a hyphened pair such as
            # "OpenAI-Microsoft" on its own), and negation in one but not the other
            "missing_name": float(
                any(part not in passage_text for e in entities(question) for part in e.lower().split("-") if part)
            ),
            "negation": float(bool(NEGATION.search(question)) != bool(NEGATION.search(best.sentence.text))),
            "type_mismatch": float(bool(kind) and not best.features["type_match"]),
            # the share of the question's words the whole corpus never uses
            "unknown": _share(sorted(q_words), lambda t: not self.idf.known(t)),
            "weighted_overlap": best.features["weighted_overlap"],
            "context_overlap": best.features["context_overlap"],
            "proximity": best.features["proximity"],
            # how much of the question any one sentence holds, the best sentence or not
            "best_weighted_overlap": max(s.features["weighted_overlap"] for s in ranked),
            "alignment": best.features["alignment"],
            # the reader's log-odds that the best sentence, and that one of the best few, holds the answer
            "reader": float(read[0]),
            "reader_any": float(np.logaddexp.reduce(read)),
        }

    def _margin(self, ranked: Sequence[ScoredSentence], read: np.ndarray) -> float:
        """How far the best sentence is ahead of the next, by the score that ordered them: the sentence model's
        probability, or with the reader's re-ranking, the logistic of the difference of their scores."""
        if len(ranked) < 2:
            return ranked[0].probability
        rerank = self.calibration.rerank
        if rerank is None or len(read) < 2:
            return ranked[0].probability - ranked[1].probability
        ahead = rerank.score(float(read[0]), ranked[0].probability) - rerank.score(
            float(read[1]), ranked[1].probability
        )
        return 1.0 / (1.0 + math.exp(-ahead))

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - fitting ranks the same pools again and again
    def _read(self, question: str, texts: tuple[str, ...]) -> np.ndarray:
        return self.reader.scores(question, texts)

    def _asked_tokens(self, question: str, tokens: TokenVectors) -> tuple[np.ndarray, np.ndarray]:
        """The vectors of the question's tokens that belong to its content words, each weighted by its word's IDF."""
        weight_at = {}
        for start, end, word in _asked_words(question, content_words(question)):
            weight_at.update(dict.fromkeys(range(start, end), self.idf(word)))
        keep = [(i, weight_at[a]) for i, (a, _) in enumerate(tokens.offsets) if a in weight_at]
        return tokens.vectors[[i for i, _ in keep]], np.array([w for _, w in keep], dtype=np.float32)


def _asked_words(text: str, asked: set[str]) -> list[tuple[int, int, str]]:
    """Spans in `text` of the words whose stems are in `asked`, with those stems."""
    found = list(re.finditer(r"\w+", text))
    stems = stem([m.group(0).lower() for m in found])
    return [(m.start(), m.end(), s) for m, s in zip(found, stems, strict=True) if s in asked]


def _anchors(text: str, asked: set[str]) -> list[int]:
    """Offsets in `text` of the words whose stems are in `asked`."""
    return [start for start, _, _ in _asked_words(text, asked)]


def _proximity(text: str, spans: Sequence[tuple[int, int]], asked: set[str]) -> float:
    """How close the nearest candidate answer lies to a question word: 1 adjacent, towards 0 far or none."""
    anchors = _anchors(text, asked)
    if not spans or not anchors:
        return 0.0
    gap = min(min(abs(a - start), abs(a - end)) for start, end in spans for a in anchors)
    return 1.0 / (1.0 + gap / 20)


def _alignment(asked: np.ndarray, weights: np.ndarray, tokens: np.ndarray) -> float:
    """How well a sentence's tokens, read in context, cover the question's (BERTScore recall): each question
    token's best cosine with a sentence token, averaged with the weights."""
    if not len(asked) or not len(tokens) or weights.sum() <= 0:
        return 0.0
    return float((asked @ tokens.T).max(axis=1) @ weights / weights.sum())


def _share(items: Sequence[str], test: Callable[[str], bool]) -> float:
    return sum(map(test, items)) / len(items) if items else 0.0


def _bm25(tokens: list[str], q_idf: dict[str, float], avg_len: float) -> float:
    counts: dict[str, int] = {}
    for t in tokens:
        if t in q_idf:
            counts[t] = counts.get(t, 0) + 1
    norm = _BM25_K1 * (1 - _BM25_B + _BM25_B * len(tokens) / avg_len)
    return sum(q_idf[t] * tf * (_BM25_K1 + 1) / (tf + norm) for t, tf in counts.items())


# -- the extractive answer: the best one or two sentences, and the exact answer phrase inside them -----------


@dataclass(frozen=True)
class Extract:
    """The sentences an extractive answer is made of (document spans) and the short answer inside them."""

    parts: tuple[PassageSentence, ...]
    short: tuple[PassageSentence, int, int] | None  # (sentence, start, end) as document offsets


def extract(evidence: Evidence, calibration: Calibration) -> Extract | None:
    """The best sentence, plus a second from another passage when it is likely enough and carries question
    words the first lacks (multi-hop); at most `max_words` words, cut to a window when one sentence is longer."""
    if not evidence.ranked:
        return None
    best = evidence.ranked[0]
    parts = [best.sentence]
    asked = content_words(evidence.question)
    has = content_words(best.sentence.text)
    for other in evidence.ranked[1:]:
        if other.probability < calibration.second_sentence:
            continue  # the reader's re-ranking can put a less likely sentence before a likelier one
        s = other.sentence
        if (
            s.n != best.sentence.n
            and (asked & content_words(s.text)) - has
            and len(words(best.sentence.text)) + len(words(s.text)) <= calibration.max_words
        ):
            parts.append(s)
            break
    parts = [_window(p, evidence, calibration.max_words) for p in parts]
    return Extract(tuple(parts), short_answer(evidence.question, evidence.kind, parts))


def short_answer(question: str, kind: str, parts: Sequence[PassageSentence]) -> tuple[PassageSentence, int, int] | None:
    """The answer phrase: the candidate of the asked-for kind nearest the question's words in the sentence."""
    asked = set(stem(words(question)))
    for part in parts:
        spans = answer_candidates(part.text, kind, question)
        if not spans:
            continue
        anchors = _anchors(part.text, asked)
        start, end = min(spans, key=lambda s: (min((abs(s[0] - a) for a in anchors), default=0), s[0]))
        return part, part.start + start, part.start + end
    return None


def _window(part: PassageSentence, evidence: Evidence, limit: int) -> PassageSentence:
    """`part` itself, or its `limit`-word stretch with the most question words when it is longer."""
    spans = [m.span() for m in re.finditer(r"\S+", part.text)]
    if len(spans) <= limit:
        return part
    asked = content_words(evidence.question)
    hits = [bool(content_words(part.text[a:b]) & asked) for a, b in spans]
    first = max(range(len(spans) - limit + 1), key=lambda i: (sum(hits[i : i + limit]), -i))
    a, b = spans[first][0], spans[first + limit - 1][1]
    return PassageSentence(part.n, part.hit, part.start + a, part.start + b, part.text[a:b])
