"""Load files into `Document`s: walk folders, read .txt/.md/.html/.pdf/.docx, normalise the text.

Each loader also records where the text's locations are: the offset of every PDF page, and of every heading
(Markdown `#`, HTML h1-h6, DOCX heading styles), so a span can be cited as "p. 3" or by its section.
Every failure is a `DocumentError` whose message is the reason the file was skipped; the caller
collects them. Nothing here chunks, embeds or writes.
"""

from __future__ import annotations

import re
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from rag.errors import DocumentError
from rag.types import Document, Skipped

__all__ = ["SUPPORTED_SUFFIXES", "SourceFile", "discover", "load", "normalize_text"]

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf", ".docx"}
MAX_DOCX_UNCOMPRESSED = 200 * 1024 * 1024  # a .docx that inflates past this is treated as a zip bomb

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_MD_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)
_MD_FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1", re.M | re.S)


@dataclass(frozen=True)
class SourceFile:
    """A file found by the walk, with the name it is stored under (relative to its root)."""

    path: Path
    source: str


def normalize_text(text: str) -> str:
    """NFC, Unix newlines, no control characters, no trailing spaces, at most one blank line in a row."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text.replace("\xa0", " "))
    text = _TRAILING_SPACE.sub("\n", text)
    return _MANY_NEWLINES.sub("\n\n", text).strip()


def discover(roots: list[Path]) -> tuple[list[SourceFile], list[Skipped]]:
    """Every candidate file under `roots` (files or folders), sorted; hidden files and folders are ignored.

    Symlinks that resolve outside their root are skipped, so a corpus never reads beyond itself.
    """
    found: dict[str, SourceFile] = {}
    skipped: list[Skipped] = []
    for root in roots:
        if not root.exists():
            raise FileNotFoundError(root)
        base = root.resolve() if root.is_dir() else root.resolve().parent
        for path in _walk(root):
            source = path.relative_to(root).as_posix() if root.is_dir() else path.name
            if not path.resolve().is_relative_to(base):
                skipped.append(Skipped(str(path), "symlink points outside the corpus"))
            elif path.suffix.lower() not in SUPPORTED_SUFFIXES:
                skipped.append(Skipped(str(path), f"unsupported file type {path.suffix or '(none)'}"))
            elif source in found:
                skipped.append(Skipped(str(path), f"another file is already indexed as {source}"))
            else:
                found[source] = SourceFile(path, source)
    return sorted(found.values(), key=lambda f: f.source), skipped


def _walk(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if any(p.startswith(".") for p in parts) or not path.is_file():
            continue
        yield path


def load(file: SourceFile, data: bytes) -> Document:
    """Turn a file's bytes into a Document, or raise DocumentError with the reason."""
    suffix = file.path.suffix.lower()
    if not data.strip():
        raise DocumentError("empty file")
    pages: list[int] = []
    headings: list[tuple[int, str]] = []
    if suffix in TEXT_SUFFIXES:
        text = normalize_text(_decode(data))
        title = _first_line_title(text)
        if suffix != ".txt":
            headings = _markdown_headings(text)
    elif suffix in HTML_SUFFIXES:
        title, text, names = _html_text(_decode(data))
        text = normalize_text(text)
        headings = _find_in_order(text, names)
    elif suffix == ".pdf":
        title, text, pages = _pdf_text(file.path)
    elif suffix == ".docx":
        title, text, names = _docx_text(file.path)
        text = normalize_text(text)
        headings = _find_in_order(text, names)
    else:
        raise DocumentError(f"unsupported file type {suffix}")
    if not text:
        raise DocumentError("no text in the document")
    return Document.create(file.source, normalize_text(title) or file.path.stem, text, tuple(pages), tuple(headings))


def _markdown_headings(text: str) -> list[tuple[int, str]]:
    """ATX headings (`# Title`) outside fenced code blocks, with their offsets."""
    fenced = [(m.start(), m.end()) for m in _MD_FENCE.finditer(text)]
    return [
        (m.start(), m.group(1).strip())
        for m in _MD_HEADING.finditer(text)
        if m.group(1).strip() and not any(a <= m.start() < b for a, b in fenced)
    ]


def _find_in_order(text: str, names: list[str]) -> list[tuple[int, str]]:
    """Offsets of each heading in the normalised text, searched in document order (a heading that cannot be
    found, e.g. one normalisation changed, is left out rather than guessed)."""
    found, at = [], 0
    for name in names:
        name = " ".join(normalize_text(name).split())
        where = text.find(name, at) if name else -1
        if where >= 0:
            found.append((where, name))
            at = where + len(name)
    return found


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise DocumentError("binary file (contains NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"not UTF-8 text (byte {exc.start})") from None


def _first_line_title(text: str) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line if len(line) <= 120 else ""
    return ""


class _TextExtractor(HTMLParser):
    """Collects visible text; block elements become line breaks. Iterative, so deep nesting is harmless."""

    BLOCKS = {
        "p",
        "div",
        "br",
        "li",
        "ul",
        "ol",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "tr",
        "table",
        "section",
        "article",
        "header",
        "footer",
        "blockquote",
        "pre",
        "hr",
        "title",
    }
    HIDDEN = {"script", "style", "noscript", "template"}  # not "head": </head> is optional in HTML
    HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self.headings: list[str] = []
        self._hidden = 0
        self._in_title = False
        self._heading: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self.HIDDEN:
            self._hidden += 1
        elif tag in self.HEADINGS and not self._hidden:
            self._heading = []
        if tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self.HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in self.HEADINGS and self._heading is not None:
            self.headings.append(" ".join("".join(self._heading).split()))
            self._heading = None
        if tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._hidden:
            self.parts.append(re.sub(r"\s+", " ", data))
            if self._heading is not None:
                self._heading.append(data)


def _html_text(html: str) -> tuple[str, str, list[str]]:
    """Title, visible text and the h1-h6 headings in order."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = (line.strip() for line in "".join(parser.parts).split("\n"))
    return " ".join("".join(parser.title).split()), "\n".join(lines), [h for h in parser.headings if h]


def _pdf_text(path: Path) -> tuple[str, str, list[int]]:
    """Title, text and the offset where each page starts. Pages are normalised one by one and joined by a
    blank line, so the offsets hold in the final text; a page without text starts where the one before ends."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            raise DocumentError("encrypted PDF")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata or {}).get("/Title") or ""
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise DocumentError(f"unreadable PDF: {exc}") from None
    text, starts = "", []
    for page in pages:
        page = normalize_text(page)
        if page and text:
            text += "\n\n"
        starts.append(len(text))
        text += page
    return str(title), text, starts


def _docx_text(path: Path) -> tuple[str, str, list[str]]:
    """Title, the paragraphs' text and the text of each heading paragraph (styles Title, Heading 1-9)."""
    try:
        with zipfile.ZipFile(path) as archive:
            if sum(info.file_size for info in archive.infolist()) > MAX_DOCX_UNCOMPRESSED:
                raise DocumentError("docx inflates past 200 MB (zip bomb?)")
    except zipfile.BadZipFile:
        raise DocumentError("not a valid .docx (bad zip archive)") from None
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, KeyError, ValueError) as exc:
        raise DocumentError(f"unreadable .docx: {exc}") from None
    title = document.core_properties.title or ""
    headings = [
        p.text
        for p in document.paragraphs
        if p.style is not None and (p.style.name or "").startswith(("Heading", "Title")) and p.text.strip()
    ]
    return title, "\n\n".join(p.text for p in document.paragraphs), headings
