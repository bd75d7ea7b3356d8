"""The answering pipeline: condense the follow-up, retrieve, select evidence, decide, answer and verify.

Every backend shares retrieval, evidence selection (rag.answer.evidence), the calibrated decision to answer or
abstain, and verification (rag.answer.citations); only the answer step differs: the extractive answer is the best
evidence itself, an LLM writes from the evidence sentences and falls back to the extractive answer when
none of its claims survives verification.

`RAG.open(index_dir)` is the one entry point: `.ask()` returns an `Answer`, `.stream()` yields text and then
the final `Answer`, and `.chain` is the same pipeline as a LangChain Runnable (invoke, batch, stream,
ainvoke). The embedder and the LLM load once per `RAG`. Indexing lives elsewhere.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from rag.answer import calibration as fitted
from rag.answer.calibration import Calibration
from rag.answer.citations import Verifier, cite, distinct_citations, quoted, readable_draft, statements_for
from rag.answer.evidence import Evidence, EvidenceSelector, Extract, Idf, extract
from rag.answer.llm import Backend, complete, make_backend, until_repeated
from rag.answer.prompting import IDK, Message, answer_messages, condense_messages
from rag.answer.reader import packaged as packaged_reader
from rag.answer.retrieval import Retriever
from rag.index.dense_store import StoreOptions
from rag.index.embedding import embedder_for
from rag.settings import Settings
from rag.text import content_words
from rag.types import Answer, Citation, Hit, Statement

ABSTAIN = "The documents do not say."
# what a reader who watched the draft stream is told when the extractive answer replaced it
REPLACED = "The model's draft did not hold up against the passages; this is what they say."
_FOLLOW_UP = re.compile(r"\b(it|its|they|them|their|this|that|these|those|he|she|his|her|there|then)\b", re.I)


class RAG:
    """Question answering with cited, verified answers over one index."""

    def __init__(
        self, settings: Settings, retriever: Retriever, backend: Backend | None, calibration: Calibration | None = None
    ):
        self.settings = settings
        self.retriever = retriever
        self.backend = backend
        self.calibration = calibration or fitted.load()
        self.selector = EvidenceSelector(
            retriever.embedder, Idf(retriever.index.bm25), self.calibration, packaged_reader(settings.model_cache_dir)
        )
        cut, own_words = self.calibration.claim_cut, self.calibration.own_words_claim_cut(getattr(backend, "model", ""))
        if settings.grounding_threshold is not None:
            cut = own_words = settings.grounding_threshold
        self.verifier = Verifier(retriever.embedder, cut, self.calibration.grounding, own_words)
        # read from disk on demand: documents with their page and heading markers, and their texts
        self.docs = retriever.index.documents_by_id
        self.documents = retriever.index.document_texts
        # keys the passage delimiters (see prompting.delimiters): the setting, else a random key for this process
        self._prompt_secret = settings.prompt_key.encode() or secrets.token_bytes(16)

    @classmethod
    def open(cls, index_dir: Path | str | None = None, settings: Settings | None = None, **overrides: Any) -> RAG:
        """Open the index and the configured backend: `RAG.open("index", backend="extractive")`."""
        settings = (settings or Settings()).with_overrides(index_dir=index_dir, **overrides)
        embedder = embedder_for(settings)
        retriever = Retriever.open(settings.index_dir, embedder, settings.rrf_k, StoreOptions.from_settings(settings))
        return cls(settings, retriever, make_backend(settings))

    @property
    def backend_name(self) -> str:
        return self.backend.name if self.backend else "extractive"

    @property
    def model_name(self) -> str:
        return self.backend.model if self.backend else self.retriever.embedder.name

    def ask(
        self,
        question: str,
        history: Sequence[Message] | None = None,
        k: int | None = None,
        min_confidence: float | None = None,
        sources: Sequence[str] | None = None,
    ) -> Answer:
        answer = None
        for item in self.stream(question, history, k, min_confidence, sources):
            answer = item
        return answer

    @property
    def min_confidence(self) -> float:
        """Answers below this calibrated confidence abstain: the setting, else the fitted threshold."""
        chosen = self.settings.min_confidence
        return self.calibration.min_confidence if chosen is None else chosen

    def stream(
        self,
        question: str,
        history: Sequence[Message] | None = None,
        k: int | None = None,
        min_confidence: float | None = None,
        sources: Sequence[str] | None = None,
    ) -> Iterator[str | Answer]:
        """Yield the draft's text as it is generated (without echoes of the prompt's delimiters; `Answer.draft` keeps
        them), then the final, verified `Answer`; `min_confidence`
        overrides the abstention threshold for this question, `sources` (globs) restricts retrieval to
        matching documents."""
        timings: dict[str, float] = {}
        started = time.perf_counter()
        question = " ".join(question.split())[:4000]  # control characters and whitespace runs collapse
        standalone = self.condense(question, history or [])
        timings["condense"] = _since(started)
        hits = (
            self.retriever.search(standalone, k=k or self.settings.k, mode=self.settings.mode, sources=sources)
            if question
            else []
        )
        timings["retrieve"] = _since(started)
        evidence = self.selector.select(standalone, hits)
        threshold = self.min_confidence if min_confidence is None else min_confidence
        extracted = extract(evidence, self.calibration)
        chosen = extracted if evidence.confidence >= threshold else None
        timings["evidence"] = _since(started)
        base = dict(
            query=question,
            standalone_query=standalone,
            backend=self.backend_name,
            model=self.model_name,
            passages=tuple(hits),
            confidence=evidence.confidence,
            threshold=threshold,
        )
        if chosen is None:  # the draft keeps what the extractive answer would have been, for evaluation
            answer = Answer(
                text=ABSTAIN,
                abstained=True,
                citations=(),
                **base,
                draft=_extractive_text(extracted) if extracted else "",
                withheld=self._statements(extracted) if extracted else (),
            )
        elif self.backend is None:
            answer = self._extractive(chosen, base)
            timings["first_text"] = _since(started)
            yield answer.draft
        else:
            draft = ""
            messages = answer_messages(
                question if not history else standalone, hits, self.excerpts(evidence), self._prompt_secret
            )
            shown = ""  # what the reader has seen: the draft without the prompt framing the model echoes
            for piece in until_repeated(self.backend.stream(messages, self.settings.max_tokens)):
                draft += piece
                readable = readable_draft(draft)
                if len(readable) > len(shown) and readable.startswith(shown):
                    timings.setdefault("first_text", _since(started))
                    yield readable[len(shown) :]
                    shown = readable
            timings["generate"] = _since(started)
            answer = self.verify(draft.strip(), hits, chosen, base)
        timings["total"] = _since(started)
        yield replace(answer, timings={name: round(v, 4) for name, v in timings.items()})

    def excerpts(self, evidence: Evidence) -> list[tuple[int, str]]:
        """The best evidence sentences for the prompt, grouped by passage in document order."""
        top = sorted(
            (s.sentence for s in evidence.ranked[: self.calibration.prompt_sentences]), key=lambda p: (p.n, p.start)
        )
        grouped: dict[int, list[str]] = {}
        for p in top:
            grouped.setdefault(p.n, []).append(p.text)
        return [(n, " ".join(texts)) for n, texts in grouped.items()]

    def _extractive(self, chosen: Extract, base: dict, **extra: Any) -> Answer:
        text = _extractive_text(chosen)
        statements = self._statements(chosen)
        return Answer(
            text=text,
            abstained=False,
            citations=tuple(c for st in statements for c in st.citations),
            short=self._short(chosen),
            statements=tuple(statements),
            **{"draft": text, **base, **extra},
        )

    def _statements(self, chosen: Extract) -> tuple[Statement, ...]:
        """The extract's sentences, each with its verified document span."""
        return tuple(Statement(p.text, (c,) if (c := cite(p, self.docs)) else ()) for p in chosen.parts)

    def _short(self, chosen: Extract) -> Citation | None:
        if chosen.short is None:
            return None
        part, start, end = chosen.short
        citation = Citation.create(part.n, part.hit.chunk, self.docs[part.hit.chunk.doc_id], start, end)
        return citation if citation.quote.strip() else None

    def verify(self, draft: str, hits: Sequence[Hit], chosen: Extract, base: dict) -> Answer:
        """The model's draft, kept where the cited passages support it (clause by clause) and where it still
        carries the extractive answer's phrase or sentence; otherwise the extractive answer, marked so."""
        claims = self.verifier.check(draft, hits) if draft and not draft.lower().startswith(IDK.lower()[:-1]) else []
        if not self.settings.grounding:
            claims = [replace(c, supported=True, dropped="") for c in claims]
        if self.settings.grounding:  # a claim that only restates the question answers nothing
            asked = content_words(base["standalone_query"])
            claims = [
                replace(c, supported=False) if c.supported and not content_words(c.text) - asked else c for c in claims
            ]
            # a kept edit of a passage sentence is shown as that sentence
            claims = [quoted(c) if c.supported else c for c in claims]
        kept = list({c.text: c for c in claims if c.supported}.values())  # small models repeat themselves
        removed = tuple(c.text for c in claims if not c.supported) + tuple(c.dropped for c in kept if c.dropped)
        base = {**base, "draft": draft, "removed": removed}
        if not kept or (self.settings.grounding and not _carries(kept, chosen)):
            return self._extractive(chosen, {**base, "draft": draft}, fallback="extractive")
        text = " ".join(f"{c.text} " + "".join(f"[{ev.n}]" for ev in c.evidence) for c in kept).strip()
        short = self._short(chosen)
        statements = statements_for(kept, self.docs)
        return Answer(
            text=text,
            abstained=False,
            citations=tuple(distinct_citations(statements)),
            short=short if short and short.quote in text else None,
            statements=tuple(statements),
            **base,
        )

    def condense(self, question: str, history: Sequence[Message]) -> str:
        """A standalone query for retrieval: the LLM rewrites follow-ups for hosted backends; locally
        (the 135M model rewrites poorly) a follow-up is joined with the previous question."""
        users = [m["content"] for m in history if m.get("role") == "user" and m.get("content")]
        if not users:
            return question
        if self.backend is not None and self.backend.name != "local":
            rewritten = " ".join(complete(self.backend, condense_messages(history, question), 96).split())
            if rewritten:
                return rewritten
        if _FOLLOW_UP.search(question) or len(question.split()) < 6:
            return f"{users[-1]} {question}"
        return question

    @property
    def chain(self):
        """This pipeline as a LangChain Runnable: input a question string or {"question", "history"}."""
        from rag.answer.integrations import AnswerRunnable

        return AnswerRunnable(rag=self)


def _carries(claims, chosen: Extract) -> bool:
    """Does the kept draft still hold what the extractive answer would say: its answer phrase when one was
    found, else one of its sentences as a claim's evidence?"""
    if chosen.short is not None:
        part, start, end = chosen.short
        phrase = part.text[start - part.start : end - part.start].lower()
        return any(phrase in c.text.lower() for c in claims)
    spans = {(p.n, p.start) for p in chosen.parts}
    return any((ev.n, ev.start) in spans for c in claims for ev in c.evidence)


def _extractive_text(chosen: Extract) -> str:
    """The extractive answer's text: its sentences, each with its passage marker."""
    return " ".join(f"{p.text} [{p.n}]" for p in chosen.parts)


def _since(started: float) -> float:
    return time.perf_counter() - started
