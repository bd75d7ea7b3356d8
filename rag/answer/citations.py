"""Verification and citations: map a draft's [n] markers to exact sentence spans and keep only what the
cited passages support, judged clause by clause.

A claim is supported when the fitted grounding model (rag.answer.calibration, over CLAIM_FEATURES: how closely
its best passage sentence matches it in meaning, words and word pairs, and what it says that no cited passage
does) puts it above the fitted cut-off, and it names no number or proper noun absent from every passage. When
a sentence as a whole is not supported, its longest supported leading clauses are kept, so a correct clause
survives an invented tail. A kept claim whose words all come from its evidence sentence is an edit of that
sentence and is shown as the sentence itself (`quoted`). Evidence selection and prompting live elsewhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from rag.answer.calibration import Logistic
from rag.answer.evidence import NEGATION, PassageSentence, passage_sentences
from rag.index.embedding import Embedder
from rag.text import (
    CLAUSE_BREAK,
    content_tokens,
    content_words,
    entities,
    sentences,
    stopwords,
    words,
    written_words,
)
from rag.types import Citation, Document, Hit, Statement

CLAIM_FEATURES = (
    "support",
    "coverage",
    "exact_coverage",
    "passage_coverage",
    "bigrams",
    "skip_bigrams",
    "negation",
    "length",
)
MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
# echoes of the prompt's framing a small model copies into its reply: source labels and the data delimiters
_SOURCE_ECHO = re.compile(r"\(source:[^)]*\)|<{2,}\s*(?:PASSAGES|END)-\w*\s*>*", re.I)
# the start of such an echo at the end of a draft still being written
_ECHO_UNDER_WAY = re.compile(r"(?:\(source:[^)]*|<{2,}[\w-]*)$", re.I)
# a reply's framing before the claim itself: "The answer is:", "The answer to this question is:"
PREAMBLE = re.compile(r"^(?:the\s+)?answer(?:\s+to\s+(?:the|this)\s+question)?(?:\s+is)?\s*:\s*", re.I)


@dataclass(frozen=True)
class Claim:
    """One sentence (or its kept leading clauses) of a draft: text without markers, cited passages, verdict."""

    text: str
    cited: tuple[int, ...]
    support: float
    supported: bool
    evidence: tuple[PassageSentence, ...]
    dropped: str = ""  # the tail of the sentence that was not supported, when only its head was kept


def split_claims(draft: str, k: int) -> list[tuple[str, tuple[int, ...]]]:
    """Sentences of a draft with their valid passage numbers; markers outside 1..k are dropped, and so are
    fragments with fewer than two content words (list numbers, echoed source labels)."""
    out = []
    draft = _SOURCE_ECHO.sub("", draft)
    for span in sentences(draft):
        raw = draft[span.start : span.end]
        cited: list[int] = []
        for group in MARKER.findall(raw):
            cited += [int(x) for x in group.split(",") if 1 <= int(x) <= k and int(x) not in cited]
        text = PREAMBLE.sub("", re.sub(r"\s+([.,;:!?])", r"\1", MARKER.sub("", raw)).strip())
        if len(content_words(text)) >= 2:
            out.append((text, tuple(cited)))
    return out


def readable_draft(draft: str) -> str:
    """A draft (complete or still streaming) without the prompt's framing the model echoed: what a reader is shown
    while it is checked."""
    return re.sub(r" {2,}", " ", _ECHO_UNDER_WAY.sub("", _SOURCE_ECHO.sub("", draft))).strip()


def clause_prefixes(sentence: str) -> list[str]:
    """The sentence's leading runs of whole clauses, longest first, the whole sentence excluded."""
    cuts = [m.start() for m in CLAUSE_BREAK.finditer(sentence)]
    prefixes = [sentence[:cut].rstrip(" ,;:—–-") for cut in reversed(cuts)]
    # a head that ends on a function word ("This will allow OpenAI to") breaks off mid-thought
    return [p + "." for p in prefixes if len(content_words(p)) >= 2 and words(p)[-1] not in stopwords()]


def support_scores(embedder: Embedder, claims: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
    """Support of each candidate for each claim: the mean of embedding cosine and the share of the claim's
    content words the candidate holds."""
    if not claims or not candidates:
        return np.zeros((len(claims), len(candidates)), dtype=np.float32)
    vectors = embedder.embed([*claims, *candidates])
    cosine = vectors[: len(claims)] @ vectors[len(claims) :].T
    cand_words = [content_words(c) for c in candidates]
    overlap = np.zeros((len(claims), len(candidates)))
    for row, claim in enumerate(claims):
        words = content_words(claim)
        if words:
            overlap[row] = [len(words & c) / len(words) for c in cand_words]
    return 0.5 * cosine + 0.5 * overlap


class Verifier:
    """Judges draft claims against the passages they cite. With a fitted grounding `model`, a claim is kept when
    the model's probability that its passages support it reaches `threshold` (`own_words` for a claim not
    `quotable` from its evidence); without one (tests, older calibrations), when its support score does."""

    def __init__(
        self, embedder: Embedder, threshold: float, model: Logistic | None = None, own_words: float | None = None
    ):
        self.embedder = embedder
        self.threshold = threshold
        self.own_words = threshold if own_words is None else own_words
        self.model = model

    def check(self, draft: str, hits: Sequence[Hit]) -> list[Claim]:
        """Verdicts for every sentence of a draft; an unsupported sentence keeps its longest supported head."""
        pool = _support_pool(hits)
        claims = split_claims(draft, len(hits))
        if not claims or not pool:
            return [Claim(t, c, 0.0, False, ()) for t, c in claims]
        heads = [(i, p) for i, (text, _) in enumerate(claims) for p in clause_prefixes(text)]
        texts = [t for t, _ in claims] + [p for _, p in heads]
        matrix = support_scores(self.embedder, texts, [p.text for p in pool])
        context = _Context(pool, hits)
        out = []
        for row, (text, cited) in enumerate(claims):
            claim, _ = self._judge(text, cited, matrix[row], context)
            if not claim.supported:
                for offset, (i, head) in enumerate(heads):
                    if i == row:
                        kept, _ = self._judge(head, cited, matrix[len(claims) + offset], context)
                        if kept.supported:
                            claim = replace(kept, dropped=text[len(head) - 1 :].lstrip(" ,;:—–-"))
                            break
            out.append(claim)
        return out

    def judge_one(self, text: str, cited: tuple[int, ...], hits: Sequence[Hit]) -> tuple[Claim, dict[str, float]]:
        """The verdict on one claim and the grounding model's inputs for it (eval/fit_grounding.py draws these)."""
        pool = _support_pool(hits)
        return self._judge(
            text, cited, support_scores(self.embedder, [text], [p.text for p in pool])[0], _Context(pool, hits)
        )

    def _judge(
        self, text: str, cited: tuple[int, ...], row: np.ndarray, context: _Context
    ) -> tuple[Claim, dict[str, float]]:
        pool = context.pool
        allowed = [i for i, p in enumerate(pool) if not cited or p.n in cited]
        if not allowed:
            return Claim(text, cited, 0.0, False, ()), {}
        best = max(allowed, key=lambda i: row[i])
        cited = cited or (pool[best].n,)
        features = claim_features(text, pool[best].text, context.passages(cited), float(row[best]))
        invented = {e.lower() for e in entities(text)} - context.known
        score = self.model.probability(features) if self.model else features["support"]
        evidence = _evidence(pool, row, cited)
        cut = self.threshold if quotable(text, evidence) else self.own_words
        return Claim(text, cited, score, score >= cut and not invented, evidence), features


def _support_pool(hits: Sequence[Hit]) -> list[PassageSentence]:
    """The passage sentences a claim can rest on: headings state nothing."""
    return [p for p in passage_sentences(hits) if not p.heading]


class _Context:
    """The passages a draft is checked against: their sentences, names and texts."""

    def __init__(self, pool: list[PassageSentence], hits: Sequence[Hit]):
        self.pool = pool
        self.hits = hits
        # a name that opens a passage sentence is not an entity there, but the passages still hold it
        self.known = {e.lower() for h in hits for e in entities(h.chunk.text)} | {
            w for h in hits for w in words(h.chunk.text)
        }

    def passages(self, cited: tuple[int, ...]) -> str:
        return " ".join(self.hits[n - 1].chunk.text for n in cited if 1 <= n <= len(self.hits))


def claim_features(claim: str, sentence: str, passages: str, support: float) -> dict[str, float]:
    """The grounding model's inputs for a claim and the passage sentence that best supports it: the support
    score (`support_scores`); the share of the claim's words in the sentence, by stem and as written (stems
    make "computational" and "computability" one word), and by stem in the cited passages; the share of its
    adjacent word pairs (and pairs one word apart) the sentence repeats as written, which a swap of who does
    what breaks; negation in one but not the other; the claim's length."""
    stems, s_stems = set(content_tokens(claim)), set(content_tokens(sentence))
    written, s_written = written_words(claim), written_words(sentence)
    pairs, skips = _pairs(written, 1), _pairs(written, 2)
    return {
        "support": support,
        "coverage": len(stems & s_stems) / len(stems) if stems else 0.0,
        "exact_coverage": len(set(written) & set(s_written)) / len(set(written)) if written else 0.0,
        "passage_coverage": len(stems & content_words(passages)) / len(stems) if stems else 0.0,
        "bigrams": len(pairs & _pairs(s_written, 1)) / len(pairs) if pairs else 1.0,
        "skip_bigrams": len(skips & _pairs(s_written, 2)) / len(skips) if skips else 1.0,
        "negation": float(bool(NEGATION.search(claim)) != bool(NEGATION.search(sentence))),
        "length": math.log(1 + len(written)),
    }


def _pairs(tokens: Sequence[str], reach: int) -> set[tuple[str, str]]:
    """Ordered pairs of tokens at most `reach` positions apart."""
    return {(a, b) for i, a in enumerate(tokens) for b in tokens[i + 1 : i + 1 + reach]}


def _evidence(pool: list[PassageSentence], row: np.ndarray, cited: tuple[int, ...]) -> tuple[PassageSentence, ...]:
    """For each cited passage, its sentence that best supports the claim."""
    best: dict[int, int] = {}
    for i, p in enumerate(pool):
        if p.n in cited and (p.n not in best or row[i] > row[best[p.n]]):
            best[p.n] = i
    return tuple(pool[best[n]] for n in cited if n in best)


def quotable(text: str, evidence: Sequence[PassageSentence]) -> PassageSentence | None:
    """The first evidence sentence that holds every content word of `text`, if any."""
    said = content_words(text)
    return next((ev for ev in evidence if said <= content_words(ev.text)), None)


def quoted(claim: Claim) -> Claim:
    """The claim as its evidence sentence, verbatim, when it holds no content word that sentence lacks; else as is.

    Such a claim can only restate the sentence or distort it: a small model's edits of a sentence it copies drop
    a hedge ("it is believed that"), swap who does what, or change a formula, and lexical features cannot see
    them. Quoting the sentence keeps everything the claim said and none of its edits."""
    ev = quotable(claim.text, claim.evidence)
    return replace(claim, text=ev.text, evidence=(ev,)) if ev else claim


def cite(part: PassageSentence, documents: Mapping[str, Document]) -> Citation | None:
    """A citation of one document span (with its page or section), or None when the span does not equal the
    document text there."""
    citation = Citation.create(part.n, part.hit.chunk, documents[part.hit.chunk.doc_id], part.start, part.end)
    return citation if citation.quote == part.text else None


def statements_for(claims: Sequence[Claim], documents: Mapping[str, Document]) -> list[Statement]:
    """Each supported claim with the citations of its evidence spans, verified against the document text (a span
    that two claims share is cited once)."""
    cited: dict[tuple[int, int, int], Citation | None] = {}
    out = []
    for claim in claims:
        if not claim.supported:
            continue
        for ev in claim.evidence:
            if (key := (ev.n, ev.start, ev.end)) not in cited:
                cited[key] = cite(ev, documents)
        spans = (cited[(ev.n, ev.start, ev.end)] for ev in claim.evidence)
        out.append(Statement(claim.text, tuple(c for c in spans if c is not None)))
    return out


def distinct_citations(statements: Sequence[Statement]) -> list[Citation]:
    """The statements' citations, each span once, in passage and document order."""
    unique = {(c.n, c.char_start, c.char_end): c for st in statements for c in st.citations}
    return sorted(unique.values(), key=lambda c: (c.n, c.char_start))
