"""The shared vocabulary: small frozen dataclasses passed between pipeline stages.

Ids are content hashes, so they are stable across runs and machines. Nothing here does I/O.
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import asdict, dataclass, field

__all__ = [
    "content_hash",
    "Location",
    "Document",
    "Chunk",
    "Hit",
    "Skipped",
    "IndexReport",
    "RemoveReport",
    "Citation",
    "Answer",
]


def content_hash(*parts: str, length: int = 16) -> str:
    """A short, stable sha256 hex id of the given strings (joined with NUL)."""
    digest = hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()
    return digest[:length]


@dataclass(frozen=True)
class Location:
    """Where a span lies in its document: 1-based pages (PDF) and the nearest heading above it."""

    page: int | None = None
    page_end: int | None = None  # the last page the span touches (== page for a one-page span)
    section: str = ""

    @property
    def label(self) -> str:
        """How a reader cites it: "p. 3", "pp. 3–4", "§ Installation", "p. 3, § Results"; "" when unknown."""
        parts = []
        if self.page is not None:
            end = self.page_end or self.page
            parts.append(f"p. {self.page}" if end == self.page else f"pp. {self.page}–{end}")
        if self.section:
            parts.append(f"§ {self.section}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Document:
    """A loaded file: `text` is the normalised text every span refers to.

    `pages` holds the offset in `text` where each page starts (PDF; page 1 at pages[0]); `headings` holds
    (offset, heading) for each heading (Markdown, HTML, DOCX). Both are empty where the format has none.
    """

    id: str
    source: str
    title: str
    text: str
    pages: tuple[int, ...] = ()
    headings: tuple[tuple[int, str], ...] = ()

    @classmethod
    def create(
        cls, source: str, title: str, text: str, pages: tuple[int, ...] = (), headings: tuple[tuple[int, str], ...] = ()
    ) -> Document:
        return cls(
            id=content_hash(source, text),
            source=source,
            title=title,
            text=text,
            pages=tuple(pages),
            headings=tuple((int(o), str(h)) for o, h in headings),
        )

    @classmethod
    def from_dict(cls, row: dict) -> Document:
        """The inverse of `to_dict` (JSON turns the tuples into lists)."""
        row = dict(row)
        row["pages"] = tuple(row.get("pages", ()))
        row["headings"] = tuple((int(o), str(h)) for o, h in row.get("headings", ()))
        return cls(**row)

    def to_dict(self) -> dict:
        return asdict(self)

    def locate(self, start: int, end: int) -> Location:
        """The location of `text[start:end]`: the pages it touches and the last heading at or before `start`."""
        page = page_end = None
        if self.pages:
            page = bisect.bisect_right(self.pages, start)
            page_end = max(page, bisect.bisect_right(self.pages, max(start, end - 1)))
        at = bisect.bisect_right([o for o, _ in self.headings], start)
        return Location(page, page_end, self.headings[at - 1][1] if at else "")


@dataclass(frozen=True)
class Chunk:
    """A span of a document: `document.text[start:end] == text` always holds."""

    id: str
    doc_id: str
    source: str
    start: int
    end: int
    text: str
    page: int | None = None  # where the span lies (see Location); None/"" where the format has no pages/headings
    page_end: int | None = None
    section: str = ""

    @classmethod
    def create(cls, doc: Document, start: int, end: int) -> Chunk:
        text = doc.text[start:end]
        where = doc.locate(start, end)
        return cls(
            content_hash(doc.id, str(start), text),
            doc.id,
            doc.source,
            start,
            end,
            text,
            where.page,
            where.page_end,
            where.section,
        )

    @property
    def location(self) -> Location:
        return Location(self.page, self.page_end, self.section)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its fused score and its rank in each retriever (1-based, None if absent)."""

    chunk: Chunk
    score: float
    dense_rank: int | None = None
    bm25_rank: int | None = None

    def to_dict(self) -> dict:
        c = self.chunk
        return {
            "chunk_id": c.id,
            "doc_id": c.doc_id,
            "source": c.source,
            "char_start": c.start,
            "char_end": c.end,
            "page": c.page,
            "page_end": c.page_end,
            "section": c.section,
            "location": c.location.label,
            "text": c.text,
            "score": self.score,
            "dense_rank": self.dense_rank,
            "bm25_rank": self.bm25_rank,
        }


@dataclass(frozen=True)
class Skipped:
    """An input file that was not indexed, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class IndexReport:
    """What one `rag index` run did."""

    files_indexed: int  # files the index holds after the run
    files_updated: int = 0  # files (re)loaded and chunked by this run
    files_skipped: list[Skipped] = field(default_factory=list)
    chunks_embedded: int = 0
    chunks_removed: int = 0
    chunks_total: int = 0
    seconds: float = 0.0
    changed: bool = False
    sources: list[str] = field(default_factory=list)  # what the index is built from, as recorded after the run
    sources_missing: list[str] = field(default_factory=list)  # recorded sources gone from disk: kept, not dropped
    upgraded_from: int | None = None  # the older index format this run rebuilt from the recorded sources

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("changed")
        return data


@dataclass(frozen=True)
class RemoveReport:
    """What one `rag remove` did: nothing is re-embedded, files on disk are left alone."""

    sources_removed: list[str]
    files_removed: list[str]  # source names, as search shows them
    chunks_removed: int
    files_total: int  # files the index holds after the removal
    chunks_total: int
    sources: list[str]  # the sources still recorded
    still_in_sources: list[str] = field(default_factory=list)  # removed files a recorded source still holds on disk
    uploads_deleted: list[str] = field(default_factory=list)  # removed uploads whose copy was deleted
    seconds: float = 0.0
    changed: bool = False

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("changed")
        return data


@dataclass(frozen=True)
class Citation:
    """Passage `n` of the answer, narrowed to the exact span that supports a claim.

    `quote == document.text[char_start:char_end]` always holds.
    """

    n: int
    source: str
    doc_id: str
    chunk_id: str
    char_start: int
    char_end: int
    quote: str
    page: int | None = None
    page_end: int | None = None
    section: str = ""

    @classmethod
    def create(cls, n: int, chunk: Chunk, doc: Document, start: int, end: int) -> Citation:
        """The citation of `doc.text[start:end]` (inside passage `n`, chunk `chunk`), with its location."""
        where = doc.locate(start, end)
        return cls(
            n,
            chunk.source,
            doc.id,
            chunk.id,
            start,
            end,
            doc.text[start:end],
            where.page,
            where.page_end,
            where.section,
        )

    @property
    def location(self) -> Location:
        return Location(self.page, self.page_end, self.section)

    def to_dict(self) -> dict:
        return {**asdict(self), "location": self.location.label}


@dataclass(frozen=True)
class Statement:
    """One sentence of an answer, as kept (without its [n] markers), and the document spans that support it."""

    text: str
    citations: tuple[Citation, ...]

    def to_dict(self) -> dict:
        return {"text": self.text, "citations": [c.to_dict() for c in self.citations]}


@dataclass(frozen=True)
class Answer:
    """A grounded answer: text with [n] markers, the citations they resolve to, and how it was made."""

    text: str
    abstained: bool
    citations: tuple[Citation, ...]
    passages: tuple[Hit, ...]
    query: str  # the question as asked
    standalone_query: str  # what retrieval searched for (condensed with the history)
    backend: str
    model: str
    draft: str = ""  # the generator's raw output, before citation mapping and grounding; on abstention, the
    # extractive answer that fell below the confidence threshold
    removed: tuple[str, ...] = ()  # draft sentences (or sentence tails) dropped as unsupported
    timings: dict = field(default_factory=dict)
    confidence: float = 0.0  # calibrated probability that the answer is right (0-1)
    short: Citation | None = None  # the exact answer phrase inside the cited sentences, where one was found
    fallback: str | None = None  # "extractive" when no claim of the model's draft survived verification
    statements: tuple[Statement, ...] = ()  # the answer's sentences one by one, each with its supporting spans
    threshold: float | None = None  # the confidence below which this question was abstained on
    # on abstention, the extractive answer's sentences that fell below the threshold, each with its verified span:
    # the closest match, shown as such, never as an answer
    withheld: tuple[Statement, ...] = ()

    @property
    def closest(self) -> tuple[Citation, ...]:
        """On abstention, the spans of the closest match (the withheld sentences); empty otherwise."""
        return tuple(c for st in self.withheld for c in st.citations)

    def to_dict(self) -> dict:
        return {
            "answer": self.text,
            "abstained": self.abstained,
            "citations": [c.to_dict() for c in self.citations],
            "passages": [{"n": n, **h.to_dict()} for n, h in enumerate(self.passages, 1)],
            "query": self.query,
            "standalone_query": self.standalone_query,
            "backend": self.backend,
            "model": self.model,
            "draft": self.draft,
            "removed": list(self.removed),
            "timings": self.timings,
            "confidence": round(self.confidence, 4),
            "short": self.short.to_dict() if self.short else None,
            "fallback": self.fallback,
            "statements": [st.to_dict() for st in self.statements],
            "threshold": None if self.threshold is None else round(self.threshold, 4),
            "withheld": [st.to_dict() for st in self.withheld],
        }
