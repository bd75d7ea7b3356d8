"""Citations and grounding: map [n] markers to exact sentence spans and drop what the passages do not support.

A claim is supported when a passage sentence matches it closely enough (cosine similarity of embeddings
blended with content-word overlap) and it names no number or proper noun absent from every passage.
Sentences that look like instructions to the model never count as support. The extractive answerer
picks the passage sentences that best answer the question. Prompting and generation live elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rag.chunking import sentences
from rag.embedding import Embedder
from rag.types import Citation, Hit

MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_WORD = re.compile(r"[\w’']+")
_ENTITY = re.compile(r"(?<![.!?]\s)(?<!^)\b(?:[A-Z][\w’'-]+|\d[\d,.%]*)")
_INSTRUCTION = re.compile(
    r"\b(ignore|disregard|forget|override)\b.{0,60}\b(instructions?|prompts?|rules|above|previous|prior)\b"
    r"|\b(reply|respond|answer|say|output|print)\b.{0,20}\b(only|exactly|with)\b.{0,20}[\"“”']?[A-Z]{4,}",
    re.IGNORECASE | re.DOTALL,
)
STOPWORDS = frozenset("""a an the and or but if then of to in on at by for with from as is are was were be been
being it its this that these those there their they them he she his her we our you your i me my do does did
done has have had having not no yes can could will would shall should may might must what which who whom whose
when where why how than so such into about over under also more most other some any each all both only own
same too very just while during before after again further once here out up down off per via
many much""".split())


_STEMMER = None


def content_words(text: str) -> set[str]:
    """Snowball-stemmed lowercase words minus stopwords and possessives (hosting -> host, OpenAI's -> openai)."""
    global _STEMMER
    if _STEMMER is None:  # a stateless, cheap object; built once rather than per call
        import Stemmer

        _STEMMER = Stemmer.Stemmer("english")
    words = [re.sub(r"[’']s?$", "", w) for w in _WORD.findall(text.lower())]
    return set(_STEMMER.stemWords([w for w in words if w and w not in STOPWORDS]))


# What kind of token the answer to a question must contain; no such sentence means the documents do not say.
_MONTHS = r"January|February|March|April|May|June|July|August|September|October|November|December"
ANSWER_TYPES = [
    (re.compile(r"^\s*(when|what (year|date|day|month)|by when|how long)\b", re.I),
     re.compile(rf"\b(1[89]\d\d|20\d\d|{_MONTHS})\b|\b(timeline|years?|months?|weeks?|days?|future)\b", re.I)),
    (re.compile(r"^\s*how (much|many)\b|\b(what|which) (amount|percentage|share|price|number)\b", re.I),
     re.compile(r"\d|\b(percent|billion|million|dozens?|hundreds?|thousands?|one|two|three|four|five|six|seven|"
                r"eight|nine|ten|eleven|twelve|\w+teen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)\b", re.I)),
]


def answer_type_ok(question: str, sentence: str) -> bool:
    """False when the question asks for a date or an amount and the sentence holds none."""
    for asks, holds in ANSWER_TYPES:
        if asks.search(question):
            return bool(holds.search(sentence))
    return True


def is_instruction(text: str) -> bool:
    """Does this passage sentence try to instruct the model (indirect prompt injection)?"""
    return bool(_INSTRUCTION.search(text))


@dataclass(frozen=True)
class PassageSentence:
    n: int  # 1-based passage number
    hit: Hit
    start: int  # offsets in the source document
    end: int
    text: str


@dataclass(frozen=True)
class Claim:
    """One sentence of a draft answer: its text without markers, the passages it cites, its verdict."""

    text: str
    cited: tuple[int, ...]
    support: float
    supported: bool
    evidence: tuple[PassageSentence, ...]


def passage_sentences(hits: Sequence[Hit]) -> list[PassageSentence]:
    """Every sentence of every passage as an exact document span; instruction-like sentences are left out."""
    out = []
    for n, hit in enumerate(hits, 1):
        chunk = hit.chunk
        for span in sentences(chunk.text):
            text = chunk.text[span.start:span.end]
            if not is_instruction(text):
                out.append(PassageSentence(n, hit, chunk.start + span.start, chunk.start + span.end, text))
    return out


_SOURCE_ECHO = re.compile(r"\(source:[^)]*\)", re.I)


def split_claims(draft: str, k: int) -> list[tuple[str, tuple[int, ...]]]:
    """Sentences of a draft with their valid passage numbers; markers outside 1..k are dropped, and so are
    fragments with fewer than two content words (list numbers, echoed source labels)."""
    out = []
    draft = _SOURCE_ECHO.sub("", draft)
    for span in sentences(draft):
        raw = draft[span.start:span.end]
        cited = []
        for group in MARKER.findall(raw):
            cited += [int(x) for x in group.split(",") if 1 <= int(x) <= k and int(x) not in cited]
        text = re.sub(r"\s+([.,;:!?])", r"\1", MARKER.sub("", raw)).strip()
        if len(content_words(text)) >= 2:
            out.append((text, tuple(cited)))
    return out


class Grounder:
    """Scores support between texts with the embedder plus word overlap; threshold set in settings."""

    def __init__(self, embedder: Embedder, threshold: float = 0.55, semantic_weight: float = 0.5):
        self.embedder = embedder
        self.threshold = threshold
        self.semantic_weight = semantic_weight

    def scores(self, texts: Sequence[str], candidates: Sequence[str], idf: bool = True,
               semantic_weight: float | None = None) -> np.ndarray:
        """Support of each candidate for each text: a blend of embedding cosine and the share of the text's
        words the candidate holds; with `idf`, words rare among the candidates (or absent) weigh most."""
        if not texts or not candidates:
            return np.zeros((len(texts), len(candidates)), dtype=np.float32)
        vectors = self.embedder.embed([*texts, *candidates])
        cosine = vectors[: len(texts)] @ vectors[len(texts):].T
        cand_words = [content_words(c) for c in candidates]
        df: dict[str, int] = {}
        for words in cand_words:
            for w in words:
                df[w] = df.get(w, 0) + 1
        n = len(candidates)
        overlap = np.zeros((len(texts), n))
        for row, text in enumerate(texts):
            weight = {w: np.log(1 + n / (1 + df.get(w, 0))) if idf else 1.0 for w in content_words(text)}
            total = sum(weight.values())
            if total:
                overlap[row] = [sum(v for w, v in weight.items() if w in c) / total for c in cand_words]
        weight = self.semantic_weight if semantic_weight is None else semantic_weight
        return weight * cosine + (1 - weight) * overlap

    def check(self, draft: str, hits: Sequence[Hit]) -> list[Claim]:
        """Verdicts for every sentence of a draft answer against the passages it cites (or all of them)."""
        pool = passage_sentences(hits)
        pool_entities = {e.lower() for h in hits for e in _entities(h.chunk.text)}
        claims = split_claims(draft, len(hits))
        if not claims or not pool:
            return [Claim(t, c, 0.0, False, ()) for t, c in claims]
        # plain word overlap here: invented names and numbers are caught by the entity check below
        matrix = self.scores([t for t, _ in claims], [p.text for p in pool], idf=False)
        out = []
        for row, (text, cited) in enumerate(claims):
            allowed = [i for i, p in enumerate(pool) if not cited or p.n in cited]
            if not allowed:
                out.append(Claim(text, cited, 0.0, False, ()))
                continue
            best = max(allowed, key=lambda i: matrix[row, i])
            invented = {e.lower() for e in _entities(text)} - pool_entities
            support = float(matrix[row, best])
            evidence = _evidence(pool, matrix[row], cited or (pool[best].n,))
            out.append(Claim(text, cited or (pool[best].n,), support,
                             support >= self.threshold and not invented, evidence))
        return out

    def extract(self, question: str, hits: Sequence[Hit], threshold: float, semantic_weight: float,
                max_sentences: int = 2) -> str:
        """The passage sentences that best answer `question`, each with its [n]; "" when none is good enough."""
        pool = passage_sentences(hits)
        if not pool:
            return ""
        scores = self.scores([question], [p.text for p in pool], semantic_weight=semantic_weight)[0]
        order = sorted((i for i in range(len(pool)) if answer_type_ok(question, pool[i].text)),
                       key=lambda i: (-scores[i], i))
        if not order:
            return ""
        best = scores[order[0]]
        if best < threshold:
            return ""
        chosen = [i for i in order[:max_sentences] if scores[i] >= max(threshold, 0.85 * best)]
        return " ".join(f"{pool[i].text} [{pool[i].n}]" for i in chosen)


def _entities(text: str) -> set[str]:
    """Numbers and capitalised words not at a sentence start: what a model tends to invent."""
    found = set()
    for span in sentences(text):
        sentence = text[span.start:span.end]
        found.update(re.sub(r"[’']s$", "", m.group(0).rstrip(".,%")) for m in _ENTITY.finditer(sentence)
                     if m.start() > 0)
    return {f for f in found if f and f.lower() not in STOPWORDS}


def _evidence(pool: list[PassageSentence], row: np.ndarray, cited: tuple[int, ...]) -> tuple[PassageSentence, ...]:
    """For each cited passage, its sentence that best supports the claim."""
    best: dict[int, int] = {}
    for i, p in enumerate(pool):
        if p.n in cited and (p.n not in best or row[i] > row[best[p.n]]):
            best[p.n] = i
    return tuple(pool[best[n]] for n in cited if n in best)


def citations_for(claims: Sequence[Claim], documents: dict[str, str]) -> list[Citation]:
    """One citation per distinct evidence span of the supported claims, verified against the document text."""
    seen: dict[tuple[int, int, int], Citation] = {}
    for claim in claims:
        for ev in claim.evidence if claim.supported else ():
            key = (ev.n, ev.start, ev.end)
            quote = documents[ev.hit.chunk.doc_id][ev.start:ev.end]
            if key not in seen and quote == ev.text:
                c = ev.hit.chunk
                seen[key] = Citation(ev.n, c.source, c.doc_id, c.id, ev.start, ev.end, quote)
    return sorted(seen.values(), key=lambda c: (c.n, c.char_start))
