"""Split a document into token-bounded chunks that keep paragraph and sentence boundaries.

Sizes are counted with the embedder's own tokenizer, so no chunk is longer than the model can see.
Every chunk is an exact span of the document text. Embedding and storage live elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rag.text import Span, paragraphs, sentences
from rag.types import Chunk, Document

__all__ = ["Chunker"]

TokenOffsets = Callable[[Sequence[str]], list[list[tuple[int, int]]]]


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    tokens: int
    paragraph: int


class Chunker:
    """Packs sentences into chunks of at most `size` tokens, carrying `overlap` tokens of whole sentences.

    A chunk breaks at a paragraph boundary when the next paragraph would not fit; a sentence longer
    than `size` is cut at token boundaries.
    """

    def __init__(self, token_offsets: TokenOffsets, size: int, overlap: int = 0):
        self.token_offsets = token_offsets
        self.size = size
        self.overlap = overlap

    def chunk(self, doc: Document) -> list[Chunk]:
        return self.chunk_many([doc])[0]

    def chunk_many(self, docs: Sequence[Document], batch: int = 256) -> list[list[Chunk]]:
        """The chunks of each document. The sentences of `batch` documents go to the tokenizer in one call (a
        fast tokenizer runs a batch in parallel; one call per document cost as much as the packing)."""
        out = []
        for first in range(0, len(docs), batch):
            group = docs[first : first + batch]
            spans = [self._spans(doc.text) for doc in group]
            offsets = self.token_offsets(
                [doc.text[s.start : s.end] for doc, doc_spans in zip(group, spans, strict=True) for _, s in doc_spans]
            )
            at = 0
            for doc, doc_spans in zip(group, spans, strict=True):
                units = self._units(doc_spans, offsets[at : at + len(doc_spans)])
                at += len(doc_spans)
                out.append([Chunk.create(doc, g[0].start, g[-1].end) for g in self._pack(units)])
        return out

    @staticmethod
    def _spans(text: str) -> list[tuple[int, Span]]:
        return [(p, s) for p, para in enumerate(paragraphs(text)) for s in sentences(text, para.start, para.end)]

    def _units(self, spans: list[tuple[int, Span]], offsets: list[list[tuple[int, int]]]) -> list[_Unit]:
        units = []
        for (para, span), toks in zip(spans, offsets, strict=True):
            if len(toks) <= self.size:
                units.append(_Unit(span.start, span.end, max(1, len(toks)), para))
                continue
            for i in range(0, len(toks), self.size):  # an over-long sentence: cut at token boundaries
                piece = toks[i : i + self.size]
                units.append(_Unit(span.start + piece[0][0], span.start + piece[-1][1], len(piece), para))
        return units

    def _pack(self, units: list[_Unit]) -> list[list[_Unit]]:
        para_tokens: dict[int, int] = {}
        for u in units:
            para_tokens[u.paragraph] = para_tokens.get(u.paragraph, 0) + u.tokens
        groups: list[list[_Unit]] = []
        current: list[_Unit] = []
        used = 0
        for u in units:
            new_paragraph = bool(current) and u.paragraph != current[-1].paragraph
            if current and new_paragraph and used + para_tokens[u.paragraph] > self.size:
                groups.append(current)
                current, used = [], 0
            elif current and used + u.tokens > self.size:
                groups.append(current)
                current = self._tail(current, self.size - u.tokens)
                used = sum(t.tokens for t in current)
            current.append(u)
            used += u.tokens
        if current:
            groups.append(current)
        return groups

    def _tail(self, group: list[_Unit], room: int) -> list[_Unit]:
        """The last whole sentences of `group` worth at most `overlap` tokens (and fitting in `room`)."""
        budget = min(self.overlap, room)
        tail: list[_Unit] = []
        for u in reversed(group[1:]):  # never the whole group: the next chunk must move forward
            if u.paragraph != group[-1].paragraph or sum(t.tokens for t in tail) + u.tokens > budget:
                break
            tail.insert(0, u)
        return tail
