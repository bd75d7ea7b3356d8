"""The answering pipeline: condense the follow-up, retrieve, prompt, generate, cite and verify.

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

from rag.citations import Grounder, answer_type_ok, citations_for
from rag.embedding import embedder_for
from rag.llm import Backend, complete, make_backend
from rag.prompting import IDK, Message, answer_messages, condense_messages
from rag.milvus_store import StoreOptions
from rag.retrieval import Retriever
from rag.settings import Settings
from rag.types import Answer

ABSTAIN = "The documents do not say."
# Calibrated on eval/seed_questions.jsonl (see README): question-to-sentence matching leans on IDF-weighted
# word overlap, since MiniLM's cosine between a short question and a long sentence is unreliable.
EXTRACTIVE_THRESHOLD = 0.5
EXTRACTIVE_SEMANTIC_WEIGHT = 0.4
_FOLLOW_UP = re.compile(r"\b(it|its|they|them|their|this|that|these|those|he|she|his|her|there|then)\b", re.I)


class RAG:
    """Question answering with cited, verified answers over one index."""

    def __init__(self, settings: Settings, retriever: Retriever, backend: Backend | None):
        self.settings = settings
        self.retriever = retriever
        self.backend = backend
        self.grounder = Grounder(retriever.embedder, settings.grounding_threshold)
        self.documents = retriever.index.document_texts  # doc_id -> text, read from disk on demand
        self._prompt_secret = secrets.token_bytes(16)  # keys the passage delimiters (see prompting.delimiters)

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

    def ask(self, question: str, history: Sequence[Message] | None = None, k: int | None = None) -> Answer:
        answer = None
        for item in self.stream(question, history, k):
            answer = item
        return answer

    def stream(self, question: str, history: Sequence[Message] | None = None,
               k: int | None = None) -> Iterator[str | Answer]:
        """Yield the draft's text as it is generated, then the final, grounded `Answer`."""
        timings: dict[str, float] = {}
        started = time.perf_counter()
        question = " ".join(question.split())[:4000]  # control characters and whitespace runs collapse
        standalone = self.condense(question, history or [])
        timings["condense"] = _since(started)
        hits = self.retriever.search(standalone, k=k or self.settings.k, mode=self.settings.mode) if question else []
        timings["retrieve"] = _since(started) - timings["condense"]
        draft = ""
        if hits and self.backend is None:
            draft = self.grounder.extract(standalone, hits, EXTRACTIVE_THRESHOLD, EXTRACTIVE_SEMANTIC_WEIGHT)
            if draft:
                yield draft
        elif hits:
            first = None
            for piece in self.backend.stream(answer_messages(question if not history else standalone, hits, self._prompt_secret),
                                             self.settings.max_tokens):
                first = first or _since(started)
                draft += piece
                yield piece
            timings["first_token"] = first or _since(started)
        timings["generate"] = _since(started) - timings["retrieve"] - timings["condense"]
        answer = self._finish(question, standalone, hits, draft.strip())
        timings["total"] = _since(started)
        yield Answer(**{**answer.__dict__, "timings": {k: round(v, 4) for k, v in timings.items()}})

    def condense(self, question: str, history: Sequence[Message]) -> str:
        """A standalone query for retrieval: the LLM rewrites follow-ups for hosted backends; locally
        (the 135M model rewrites poorly) a follow-up is joined with the previous question."""
        users = [m["content"] for m in history if m.get("role") == "user" and m.get("content")]
        if not users:
            return question
        if self.backend is not None and self.backend.name != "local":
            rewritten = complete(self.backend, condense_messages(history, question), 96).strip()
            if rewritten and len(rewritten) < 4 * len(question) + 200:
                return " ".join(rewritten.split())
        if _FOLLOW_UP.search(question) or len(question.split()) < 6:
            return f"{users[-1]} {question}"
        return question

    def _finish(self, question: str, standalone: str, hits, draft: str) -> Answer:
        base = dict(query=question, standalone_query=standalone, backend=self.backend_name,
                    model=self.model_name, draft=draft, passages=tuple(hits))
        if not draft or draft.lower().startswith(IDK.lower().rstrip(".")):
            return Answer(text=ABSTAIN, abstained=True, citations=(), **base)
        claims = self.grounder.check(draft, hits)
        if not self.settings.grounding:
            claims = [replace(c, supported=True) for c in claims]
        kept = list({c.text: c for c in claims if c.supported}.values())  # small models repeat themselves
        removed = tuple(c.text for c in claims if not c.supported)
        if kept and self.settings.grounding and not self._addresses(standalone, kept):
            kept, removed = [], removed + tuple(c.text for c in kept)
        if not kept:
            return Answer(text=ABSTAIN, abstained=True, citations=(), removed=removed, **base)
        text = " ".join(f"{c.text} " + "".join(f"[{ev.n}]" for ev in c.evidence) for c in kept)
        citations = citations_for(kept, self.documents)
        return Answer(text=text.strip(), abstained=False, citations=tuple(citations), removed=removed, **base)

    def _addresses(self, question: str, claims) -> bool:
        """True passage sentences can still miss the question (a small model copies off-topic text): keep an
        answer only if some claim matches the question well enough and holds the date or amount it asks for."""
        texts = [c.text for c in claims]
        relevance = self.grounder.scores([question], texts, semantic_weight=EXTRACTIVE_SEMANTIC_WEIGHT)[0]
        return any(r >= self.settings.relevance_threshold and answer_type_ok(question, t)
                   for r, t in zip(relevance, texts, strict=True))

    @property
    def chain(self):
        """This pipeline as a LangChain Runnable: input a question string or {"question", "history"}."""
        from rag.integrations import AnswerRunnable

        return AnswerRunnable(rag=self)


def _since(started: float) -> float:
    return time.perf_counter() - started
