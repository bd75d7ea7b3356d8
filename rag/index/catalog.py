"""What the index holds, one row per document: the listing behind `rag documents`, the chat page's Documents
panel and `GET /v1/documents`. Reads a loaded index and its manifest; removing documents is `Indexer.remove`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from rag.index.store import LoadedIndex

__all__ = ["DocumentInfo", "list_documents"]


@dataclass(frozen=True)
class DocumentInfo:
    """One indexed document: where it came from, how big it is, when it was added."""

    doc_id: str
    source: str  # the name search and citations show
    title: str
    path: str  # the file it was read from
    pages: int | None  # PDF pages; None where the format has no pages
    sections: int  # headings found (Markdown, HTML, DOCX)
    chunks: int
    size: int | None  # bytes on disk when indexed
    added_at: str | None  # UTC, ISO 8601
    upload: bool  # a copy in the upload area (removable from the chat page and the API)

    def to_dict(self) -> dict:
        return asdict(self)


def list_documents(index: LoadedIndex, uploads: Path | str) -> list[DocumentInfo]:
    """Every document of `index`, sorted by source; `uploads` is the upload area (`Settings.uploads`)."""
    files = {f["doc_id"]: f for f in index.manifest.files.values()}
    counts = index.chunk_counts()
    area = Path(uploads).resolve()
    rows = []
    for doc in index.documents:
        f = files.get(doc.id, {})
        path = f.get("path", "")
        rows.append(
            DocumentInfo(
                doc_id=doc.id,
                source=doc.source,
                title=doc.title,
                path=path,
                pages=len(doc.pages) or None,
                sections=len(doc.headings),
                chunks=counts.get(doc.id, 0),
                size=f.get("size"),
                added_at=f.get("added_at"),
                upload=bool(path) and Path(path).resolve().is_relative_to(area),
            )
        )
    return sorted(rows, key=lambda d: d.source)
