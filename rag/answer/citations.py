"""Verification and citations: map a draft's [n] markers to exact sentence spans and keep only what the
cited passages support, judged clause by clause.

A claim is supported when a passage sentence matches it closely enough (embedding cosine blended with the
share of the claim's words the sentence holds) and it names no number or proper noun absent from every
passage. When a sentence as a whole is not supported, its longest supported leading clauses are kept, so a
correct clause survives an invented tail. Evidence selection and prompting live elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rag.answer.evidence import PassageSentence, passage_sentences
from rag.index.embedding import Embedder
from rag.text import CLAUSE_BREAK, content_words, entities, sentences, stopwords, words
from rag.types import Citation, Document, Hit

MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_SOURCE_ECHO = re.compile(r"\(source:[^)]*\)", re.I)


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
        text = re.sub(r"\s+([.,;:!?])", r"\1", MARKER.sub("", raw)).strip()
        if len(content_words(text)) >= 2:
            out.append((text, tuple(cited)))
    return out


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
    """Judges draft claims against the passages they cite; `threshold` is the fitted support cut-off."""

    def __init__(self, embedder: Embedder, threshold: float):
        self.embedder = embedder
        self.threshold = threshold

    def check(self, draft: str, hits: Sequence[Hit]) -> list[Claim]:
        """Verdicts for every sentence of a draft; an unsupported sentence keeps its longest supported head."""
        pool = passage_sentences(hits)
        claims = split_claims(draft, len(hits))
        if not claims or not pool:
            return [Claim(t, c, 0.0, False, ()) for t, c in claims]
        known = {e.lower() for h in hits for e in entities(h.chunk.text)}
        heads = [(i, p) for i, (text, _) in enumerate(claims) for p in clause_prefixes(text)]
        texts = [t for t, _ in claims] + [p for _, p in heads]
        matrix = support_scores(self.embedder, texts, [p.text for p in pool])
        out = []
        for row, (text, cited) in enumerate(claims):
            claim = self._judge(text, cited, matrix[row], pool, known)
            if not claim.supported:
                for offset, (i, head) in enumerate(heads):
                    if i == row:
                        kept = self._judge(head, cited, matrix[len(claims) + offset], pool, known)
                        if kept.supported:
                            claim = Claim(
                                kept.text,
                                kept.cited,
                                kept.support,
                                True,
                                kept.evidence,
                                dropped=text[len(head) - 1 :].lstrip(" ,;:—–-"),
                            )
                            break
            out.append(claim)
        return out

    def _judge(
        self, text: str, cited: tuple[int, ...], row: np.ndarray, pool: list[PassageSentence], known: set[str]
    ) -> Claim:
        allowed = [i for i, p in enumerate(pool) if not cited or p.n in cited]
        if not allowed:
            return Claim(text, cited, 0.0, False, ())
        best = max(allowed, key=lambda i: row[i])
        cited = cited or (pool[best].n,)
        invented = {e.lower() for e in entities(text)} - known
        support = float(row[best])
        return Claim(text, cited, support, support >= self.threshold and not invented, _evidence(pool, row, cited))


def _evidence(pool: list[PassageSentence], row: np.ndarray, cited: tuple[int, ...]) -> tuple[PassageSentence, ...]:
    """For each cited passage, its sentence that best supports the claim."""
    best: dict[int, int] = {}
    for i, p in enumerate(pool):
        if p.n in cited and (p.n not in best or row[i] > row[best[p.n]]):
            best[p.n] = i
    return tuple(pool[best[n]] for n in cited if n in best)


def cite(part: PassageSentence, documents: Mapping[str, Document]) -> Citation | None:
    """A citation of one document span (with its page or section), or None when the span does not equal the
    document text there."""
    citation = Citation.create(part.n, part.hit.chunk, documents[part.hit.chunk.doc_id], part.start, part.end)
    return citation if citation.quote == part.text else None


def citations_for(claims: Sequence[Claim], documents: Mapping[str, Document]) -> list[Citation]:
    """One citation per distinct evidence span of the supported claims, verified against the document text."""
    seen: dict[tuple[int, int, int], Citation] = {}
    for claim in claims:
        for ev in claim.evidence if claim.supported else ():
            key = (ev.n, ev.start, ev.end)
            if key not in seen and (citation := cite(ev, documents)) is not None:
                seen[key] = citation
    return sorted(seen.values(), key=lambda c: (c.n, c.char_start))
