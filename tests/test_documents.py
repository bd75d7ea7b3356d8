"""Loading files into Documents: the walk, each format's extraction, normalisation and every refusal."""

from __future__ import annotations

import builtins
import io
import os
import time
import zipfile
from pathlib import Path

import pytest

from rag.errors import DocumentError
from rag.index.documents import SourceFile, discover, load, normalize_text
from rag.types import Document, Skipped, content_hash


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def load_file(path: Path, source: str | None = None) -> Document:
    return load(SourceFile(path, source or path.name), path.read_bytes())


def make_pdf(text: str, title: str | None = None) -> bytes:
    """A minimal valid one-page PDF (Helvetica, one text line) with a correct xref table."""
    content = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    if title is not None:
        objects.append(f"<< /Title ({title}) >>".encode())
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    info = b" /Info 6 0 R" if title is not None else b""
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, info, xref)
    return bytes(out)


def make_docx(path: Path, paragraphs: list[str], title: str = "") -> Path:
    import docx

    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    document.core_properties.title = title
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(str(path))
    return path


# normalize_text ---------------------------------------------------------------------------------


def test_normalize_crlf_and_lone_cr_become_newlines() -> None:
    assert normalize_text("one\r\ntwo\rthree") == "one\ntwo\nthree"


def test_normalize_nbsp_becomes_space() -> None:
    assert normalize_text("a\xa0b") == "a b"


def test_normalize_drops_control_characters_but_keeps_tabs_and_newlines() -> None:
    assert normalize_text("a\x00b\x07c\x1bd\x7fe\tf\ng\x0bh\x0ci") == "abcde\tf\nghi"


def test_normalize_strips_trailing_spaces_and_tabs_on_every_line_and_the_ends() -> None:
    assert normalize_text("  first  \t\nsecond\xa0\nthird   ") == "first\nsecond\nthird"


def test_normalize_collapses_three_or_more_newlines_to_one_blank_line() -> None:
    assert normalize_text("a\n\nb\n\n\nc\n\n\n\n\n\nd") == "a\n\nb\n\nc\n\nd"
    assert normalize_text("a \n \n \n \nb") == "a\n\nb"


def test_normalize_composes_to_nfc() -> None:
    assert normalize_text("Cafe\u0301 n\u0303") == "Caf\u00e9 \u00f1"
    assert normalize_text("Caf\u00e9") == "Caf\u00e9"


def test_normalize_everything_at_once() -> None:
    raw = "  Title\xa0 \r\n\r\n\r\n\r\nBody e\u0301\x01 line  \r\nend\x1f\r\n"
    assert normalize_text(raw) == "Title\n\nBody \u00e9 line\nend"


def test_normalize_is_idempotent() -> None:
    text = normalize_text("x\r\n\r\n\r\ny\xa0 \n\u0065\u0301")
    assert normalize_text(text) == text == "x\n\ny\n\u00e9"


# discover ---------------------------------------------------------------------------------------


def test_discover_walks_folders_sorted_with_posix_sources(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    write(root / "b.txt", "b")
    write(root / "a.md", "a")
    write(root / "sub" / "z.html", "<p>z</p>")
    write(root / "sub" / "deeper" / "c.pdf", b"%PDF")
    write(root / "A.docx", b"PK")
    found, skipped = discover([root])
    assert [f.source for f in found] == ["A.docx", "a.md", "b.txt", "sub/deeper/c.pdf", "sub/z.html"]
    assert [f.path for f in found] == [
        root / "A.docx",
        root / "a.md",
        root / "b.txt",
        root / "sub" / "deeper" / "c.pdf",
        root / "sub" / "z.html",
    ]
    assert skipped == []


def test_discover_ignores_hidden_files_and_folders(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    write(root / "keep.txt", "k")
    write(root / ".hidden.txt", "h")
    write(root / ".git" / "notes.txt", "g")
    write(root / "sub" / ".cache" / "x.md", "x")
    write(root / "sub" / "ok.md", "o")
    found, skipped = discover([root])
    assert [f.source for f in found] == ["keep.txt", "sub/ok.md"]
    assert skipped == []


def test_discover_root_inside_a_hidden_folder_still_walks(tmp_path: Path) -> None:
    root = tmp_path / ".private" / "corpus"
    write(root / "a.txt", "a")
    found, _ = discover([root])
    assert [f.source for f in found] == ["a.txt"]


def test_discover_file_root_gives_its_basename(tmp_path: Path) -> None:
    path = write(tmp_path / "deep" / "folder" / "notes.md", "# n")
    found, skipped = discover([path])
    assert found == [SourceFile(path, "notes.md")]
    assert skipped == []


def test_discover_reports_unsupported_extensions(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    write(root / "data.csv", "a,b")
    write(root / "Makefile", "all:")
    write(root / "ok.TXT", "upper-case suffix is fine")
    found, skipped = discover([root])
    assert [f.source for f in found] == ["ok.TXT"]
    assert skipped == [
        Skipped(str(root / "Makefile"), "unsupported file type (none)"),
        Skipped(str(root / "data.csv"), "unsupported file type .csv"),
    ]


def test_discover_unsupported_file_root_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path / "image.png", b"\x89PNG")
    assert discover([path]) == ([], [Skipped(str(path), "unsupported file type .png")])


def test_discover_same_source_from_two_roots_keeps_the_first(tmp_path: Path) -> None:
    first = write(tmp_path / "one" / "a.txt", "1")
    second = write(tmp_path / "two" / "a.txt", "2")
    found, skipped = discover([tmp_path / "one", tmp_path / "two"])
    assert found == [SourceFile(first, "a.txt")]
    assert skipped == [Skipped(str(second), "another file is already indexed as a.txt")]


def test_discover_symlink_inside_the_root_is_kept(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    write(root / "real.txt", "r")
    (root / "alias.txt").symlink_to(root / "real.txt")
    found, skipped = discover([root])
    assert [f.source for f in found] == ["alias.txt", "real.txt"]
    assert skipped == []


def test_discover_skips_symlink_outside_the_root_without_reading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = write(tmp_path / "outside" / "secret.txt", "do not read")
    root = tmp_path / "corpus"
    write(root / "a.txt", "a")
    link = root / "leak.txt"
    link.symlink_to(secret)

    opened: list[str] = []
    real_open, real_io_open, real_os_open = builtins.open, io.open, os.open

    def guard(real):
        def wrapper(file, *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and Path(file).resolve() == secret.resolve():
                opened.append(str(file))
                raise AssertionError(f"discover opened {file}")
            return real(file, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(builtins, "open", guard(real_open))
    monkeypatch.setattr(io, "open", guard(real_io_open))
    monkeypatch.setattr(os, "open", guard(real_os_open))
    found, skipped = discover([root])
    monkeypatch.undo()

    assert opened == []
    assert found == [SourceFile(root / "a.txt", "a.txt")]
    assert skipped == [Skipped(str(link), "symlink points outside the corpus")]


def test_discover_does_not_descend_into_a_symlinked_folder_outside_the_root(tmp_path: Path) -> None:
    write(tmp_path / "outside" / "secret.txt", "s")
    root = tmp_path / "corpus"
    write(root / "a.txt", "a")
    (root / "linked").symlink_to(tmp_path / "outside", target_is_directory=True)
    found, _ = discover([root])
    assert [f.source for f in found] == ["a.txt"]


def test_discover_missing_root_raises(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError) as info:
        discover([missing])
    assert info.value.args == (missing,)


# load: text and markdown -----------------------------------------------------------------------


def test_load_txt_title_is_the_first_line(tmp_path: Path) -> None:
    path = write(tmp_path / "notes.txt", "\n\n  Cats and dogs  \r\nThey purr\xa0and bark.\r\n")
    doc = load_file(path, "sub/notes.txt")
    assert doc == Document(
        content_hash("sub/notes.txt", "Cats and dogs\nThey purr and bark."),
        "sub/notes.txt",
        "Cats and dogs",
        "Cats and dogs\nThey purr and bark.",
    )


def test_load_txt_long_first_line_falls_back_to_the_file_stem(tmp_path: Path) -> None:
    line = "word " * 40
    path = write(tmp_path / "long-one.txt", f"{line}\nsecond line")
    doc = load_file(path)
    assert doc.title == "long-one"
    assert doc.text == f"{line.strip()}\nsecond line"


def test_load_txt_strips_utf8_bom(tmp_path: Path) -> None:
    path = write(tmp_path / "bom.txt", "\ufeffHello".encode())
    doc = load_file(path)
    assert (doc.title, doc.text) == ("Hello", "Hello")


def test_load_md_strips_leading_hashes_from_the_title(tmp_path: Path) -> None:
    path = write(tmp_path / "dogs.md", "## Dogs  \n\nDogs bark.\n\n\n\n### Puppies\nSmall dogs.")
    doc = load_file(path)
    assert doc.title == "Dogs"
    assert doc.text == "## Dogs\n\nDogs bark.\n\n### Puppies\nSmall dogs."
    assert doc.source == "dogs.md"


def test_load_markdown_suffix_is_text(tmp_path: Path) -> None:
    path = write(tmp_path / "readme.markdown", "# Read me\nbody")
    assert load_file(path).title == "Read me"


# load: html -------------------------------------------------------------------------------------


def test_load_html_visible_text_only_with_title_and_paragraphs(tmp_path: Path) -> None:
    html = (
        "<!DOCTYPE html><html><head><title> The &amp; Title </title>"
        "<style>body { color: red }</style><script>var hidden = 1;</script></head>"
        "<body><!-- a comment --><h1>Heading</h1><p>First   <b>bold</b>\n paragraph.</p>"
        "<div>Second <a href='x'>link</a></div><ul><li>one</li><li>two &lt;3</li></ul>"
        "<script type='text/javascript'>document.write('no');</script><noscript>enable js</noscript>"
        "line<br>break</body></html>"
    )
    doc = load_file(write(tmp_path / "page.html", html))
    assert doc.title == "The & Title"
    assert doc.text == "Heading\n\nFirst bold paragraph.\n\nSecond link\n\none\n\ntwo <3\n\nline\n\nbreak"


def test_load_html_title_whitespace_is_collapsed(tmp_path: Path) -> None:
    # A browser shows "<title>\n  Annual   Report\n  - ACME\n</title>" as "Annual Report - ACME".
    html = "<html><head><title>\n  Annual   Report\n  - ACME\n</title></head><body><p>Body.</p></body></html>"
    doc = load_file(write(tmp_path / "report.html", html))
    assert (doc.title, doc.text) == ("Annual Report - ACME", "Body.")


def test_load_htm_suffix_is_html(tmp_path: Path) -> None:
    doc = load_file(write(tmp_path / "Page.HTM", "<p>Hi <i>there</i></p>"))
    assert (doc.title, doc.text) == ("Page", "Hi there")


def test_load_html_with_omitted_head_end_tag(tmp_path: Path) -> None:
    # </head> is optional in HTML: <body> closes the head implicitly.
    html = "<html><head><title>T</title><body><p>Visible body text.</p></body></html>"
    doc = load_file(write(tmp_path / "nohead.html", html))
    assert (doc.title, doc.text) == ("T", "Visible body text.")


def test_load_deeply_nested_html_has_no_recursion_error(tmp_path: Path) -> None:
    depth = 5000
    html = "<html><body>" + "<div>" * depth + "deep text" + "</div>" * depth + "</body></html>"
    doc = load_file(write(tmp_path / "deep.html", html))
    assert (doc.title, doc.text) == ("deep", "deep text")


def test_load_html_without_visible_text_is_refused(tmp_path: Path) -> None:
    html = "<html><head><title>Only a title</title><script>x()</script></head><body><div> </div></body></html>"
    with pytest.raises(DocumentError, match=r"^no text in the document$"):
        load_file(write(tmp_path / "blank.html", html))


# load: pdf --------------------------------------------------------------------------------------


def test_load_pdf_extracts_text(tmp_path: Path) -> None:
    doc = load_file(write(tmp_path / "hello.pdf", make_pdf("Hello PDF world")))
    assert doc == Document(
        content_hash("hello.pdf", "Hello PDF world"), "hello.pdf", "hello", "Hello PDF world", pages=(0,)
    )


def test_load_pdf_title_from_metadata(tmp_path: Path) -> None:
    doc = load_file(write(tmp_path / "titled.pdf", make_pdf("Hello PDF world", title="A PDF Title")))
    assert (doc.title, doc.text) == ("A PDF Title", "Hello PDF world")


def test_load_malformed_pdf_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.pdf", b"this is not a pdf at all \x01\x02\x03" * 20)
    with pytest.raises(DocumentError, match=r"^unreadable PDF: "):
        load_file(path)


# load: docx -------------------------------------------------------------------------------------


def test_load_docx_paragraphs_and_core_title(tmp_path: Path) -> None:
    path = make_docx(
        tmp_path / "report.docx", ["First paragraph.", "", "Second\xa0paragraph. "], title="Quarterly Report"
    )
    doc = load_file(path)
    assert doc.title == "Quarterly Report"
    assert doc.text == "First paragraph.\n\nSecond paragraph."


def test_load_docx_without_title_falls_back_to_the_stem(tmp_path: Path) -> None:
    doc = load_file(make_docx(tmp_path / "memo.docx", ["Only text."]))
    assert (doc.title, doc.text) == ("memo", "Only text.")


def test_load_docx_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "fake.docx", b"plain bytes, no zip here")
    with pytest.raises(DocumentError, match=r"^not a valid \.docx \(bad zip archive\)$"):
        load_file(path)


def test_load_zip_that_is_not_a_word_document_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.docx"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("hello.txt", "not a word document")
    with pytest.raises(DocumentError, match=r"^unreadable \.docx: "):
        load_file(path)


def test_load_docx_zip_bomb_is_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "bomb.docx"
    block = bytes(1024 * 1024)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        with zf.open("word/document.xml", "w", force_zip64=True) as entry:
            for _ in range(210):
                entry.write(block)
    assert path.stat().st_size < 1024 * 1024  # tiny on disk, 210 MB declared
    started = time.perf_counter()
    with pytest.raises(DocumentError, match=r"^docx inflates past 200 MB \(zip bomb\?\)$"):
        load_file(path)
    assert time.perf_counter() - started < 1.0


# load: refusals common to every format ---------------------------------------------------------


@pytest.mark.parametrize("name", ["empty.txt", "empty.md", "empty.html", "empty.pdf", "empty.docx"])
def test_load_empty_file_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(DocumentError, match=r"^empty file$"):
        load_file(write(tmp_path / name, b""))


def test_load_whitespace_only_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match=r"^empty file$"):
        load_file(write(tmp_path / "blank.txt", b" \r\n\t\n  "))


def test_load_text_that_normalises_to_nothing_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match=r"^no text in the document$"):
        load_file(write(tmp_path / "nbsp.txt", "\xa0\x01\r\n\xa0".encode()))


def test_load_binary_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match=r"^binary file \(contains NUL bytes\)$"):
        load_file(write(tmp_path / "blob.txt", b"text\x00\x01\x02more"))


def test_load_invalid_utf8_is_refused_with_the_byte_offset(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match=r"^not UTF-8 text \(byte 6\)$"):
        load_file(write(tmp_path / "latin1.md", "caf\u00e9 ".encode() + b"\xe9t\xe9"))


def test_load_invalid_utf8_html_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match=r"^not UTF-8 text \(byte 3\)$"):
        load_file(write(tmp_path / "bad.html", b"<p>\xff</p>"))


def test_load_unsupported_suffix_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match=r"^unsupported file type \.csv$"):
        load_file(write(tmp_path / "data.csv", "a,b"))


# Document ids -----------------------------------------------------------------------------------


def test_document_id_is_a_stable_content_hash(tmp_path: Path) -> None:
    a = load_file(write(tmp_path / "one" / "a.txt", "Same text."), "a.txt")
    b = load_file(write(tmp_path / "two" / "a.txt", "Same text.\r\n"), "a.txt")
    changed = load_file(write(tmp_path / "three" / "a.txt", "Other text."), "a.txt")
    moved = load_file(tmp_path / "one" / "a.txt", "b.txt")
    assert a.id == b.id == content_hash("a.txt", "Same text.") == Document.create("a.txt", "x", "Same text.").id
    assert len(a.id) == 16
    assert changed.id != a.id
    assert moved.id != a.id
