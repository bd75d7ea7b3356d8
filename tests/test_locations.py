"""Where a span lies in its document: PDF pages and the nearest heading above, from real files made here
(a multi-page PDF written with fpdf2, a DOCX with heading styles, Markdown and HTML), through chunks,
citations and `rag ask`, with the exact-span invariant intact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.answer.chain import RAG
from rag.answer.retrieval import Retriever
from rag.cli import app
from rag.index.documents import SourceFile, load
from rag.index.embedding import HashEmbedder
from rag.index.indexer import Indexer
from rag.settings import Settings
from rag.types import Document, Location

PAGES = [
    "Quarterly report. Revenue grew in every region during the first quarter.",
    "The board approved the Lisbon data centre on March 3. Construction starts in the autumn.",
    "Hiring slowed in the third quarter while costs stayed flat.",
]


def make_pdf(path: Path, pages: list[str] = PAGES) -> Path:
    """A real multi-page PDF: one paragraph per page, Helvetica, via fpdf2."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


def make_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("Setup guide", level=0)
    document.add_paragraph("This guide explains the setup.")
    document.add_heading("Installation", level=1)
    document.add_paragraph("Run the installer and accept the licence.")
    document.add_heading("Configuration", level=1)
    document.add_paragraph("The port is set in the settings file to 8443.")
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(str(path))
    return path


MARKDOWN = """# Field notes

Notes from the trip.

## Birds

The heron waited by the reed bed all morning.

```
# not a heading: code
```

## Weather

Rain came at noon and the river rose by a metre.
"""

HTML = (
    "<html><head><title>Guide</title></head><body><h1>Overview</h1><p>An overview of the tool.</p>"
    "<h2>Limits <em>and</em> quotas</h2><p>Each account may upload ninety files a day.</p></body></html>"
)


def loaded(path: Path) -> Document:
    return load(SourceFile(path, path.name), path.read_bytes())


def test_pdf_pages_are_recorded_and_a_span_on_page_two_is_page_two(tmp_path) -> None:
    doc = loaded(make_pdf(tmp_path / "report.pdf"))
    assert len(doc.pages) == 3 and doc.pages[0] == 0
    at = doc.text.index("Lisbon")
    assert doc.locate(at, at + 6) == Location(2, 2, "")
    assert doc.text[doc.pages[1] :].startswith("The board approved")
    last = doc.text.index("Hiring")
    assert doc.locate(at, last + 6) == Location(2, 3, "")
    assert doc.locate(at, last + 6).label == "pp. 2–3" and doc.locate(0, 5).label == "p. 1"


def test_markdown_html_and_docx_headings(tmp_path) -> None:
    md = tmp_path / "notes.md"
    md.write_text(MARKDOWN, encoding="utf-8")
    doc = loaded(md)
    assert [h for _, h in doc.headings] == ["Field notes", "Birds", "Weather"]  # the fenced "#" line is code
    at = doc.text.index("river rose")
    assert doc.locate(at, at + 10).section == "Weather"
    assert doc.locate(0, 3).section == "Field notes"
    assert all(doc.text[o:].lstrip("# ").startswith(h) for o, h in doc.headings)

    page = tmp_path / "guide.html"
    page.write_text(HTML, encoding="utf-8")
    doc = loaded(page)
    assert [h for _, h in doc.headings] == ["Overview", "Limits and quotas"]
    at = doc.text.index("ninety")
    assert doc.locate(at, at + 6).label == "§ Limits and quotas"

    doc = loaded(make_docx(tmp_path / "setup.docx"))
    assert [h for _, h in doc.headings] == ["Setup guide", "Installation", "Configuration"]
    at = doc.text.index("8443")
    assert doc.locate(at, at + 4).section == "Configuration"
    assert all(doc.text[o : o + len(h)] == h for o, h in doc.headings)


def test_plain_text_has_no_location(tmp_path) -> None:
    path = tmp_path / "plain.txt"
    path.write_text("# not markdown\n\nJust text.", encoding="utf-8")
    doc = loaded(path)
    assert (doc.pages, doc.headings) == ((), ())
    assert doc.locate(0, 4) == Location() and Location().label == ""


def corpus(root: Path) -> Path:
    make_pdf(root / "report.pdf")
    make_docx(root / "setup.docx")
    (root / "notes.md").write_text(MARKDOWN, encoding="utf-8")
    return root


@pytest.fixture
def index(tmp_path) -> Settings:
    settings = Settings(
        index_dir=tmp_path / "index", embedding_model="hash", chunk_size=16, chunk_overlap=4, backend="extractive"
    )
    Indexer(settings, HashEmbedder()).index([corpus(tmp_path / "docs")])
    return settings


def test_chunks_carry_their_location_through_a_save_and_load(index) -> None:
    retriever = Retriever.open(index.index_dir, HashEmbedder())
    docs = {d.id: d for d in retriever.index.documents}
    for chunk in retriever.index.chunks:
        doc = docs[chunk.doc_id]
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert chunk.location == doc.locate(chunk.start, chunk.end)
    pdf = next(d for d in docs.values() if d.source == "report.pdf")
    assert len(pdf.pages) == 3  # the markers survived the round trip as tuples
    assert {c.page for c in retriever.index.chunks if c.source == "report.pdf"} == {1, 2, 3}
    assert {c.section for c in retriever.index.chunks if c.source == "setup.docx"} >= {"Setup guide", "Configuration"}


def test_a_fact_on_page_two_is_cited_as_page_two(index) -> None:
    rag = RAG.open(settings=index)
    answer = rag.ask("When did the board approve the Lisbon data centre?", min_confidence=0.0)
    assert not answer.abstained
    cited = [c for c in answer.citations if "Lisbon" in c.quote]
    assert cited and all((c.source, c.page, c.page_end) == ("report.pdf", 2, 2) for c in cited)
    for c in answer.citations:
        assert rag.documents[c.doc_id][c.char_start : c.char_end] == c.quote
        assert c.to_dict()["location"] == c.location.label
    hits = rag.retriever.search("port settings file 8443", k=1)
    assert hits[0].chunk.section == "Configuration" and hits[0].to_dict()["location"] == "§ Configuration"


def test_rag_ask_prints_and_returns_the_page(index, monkeypatch) -> None:
    runner = CliRunner()
    env = {
        "RAG_INDEX_DIR": str(index.index_dir),
        "RAG_EMBEDDING_MODEL": "hash",
        "RAG_BACKEND": "extractive",
        "RAG_MIN_CONFIDENCE": "0",
    }
    question = "When did the board approve the Lisbon data centre?"
    result = runner.invoke(app, ["ask", question], env=env)
    assert result.exit_code == 0, result.output
    assert "report.pdf, p. 2" in result.stdout
    result = runner.invoke(app, ["ask", question, "--json"], env=env)
    data = json.loads(result.stdout)
    lisbon = [c for c in data["citations"] if "Lisbon" in c["quote"]]
    assert lisbon and lisbon[0]["page"] == 2 and lisbon[0]["location"] == "p. 2"
    assert all("page" in p and "section" in p for p in data["passages"])


def test_the_sources_panel_shows_the_cited_page(index) -> None:
    from ui.app import sources_html

    answer = RAG.open(settings=index).ask("When did the board approve the Lisbon data centre?", min_confidence=0.0)
    panel = sources_html(answer)
    assert '<b>report.pdf</b> · <span class="where">p. 2</span> · chars' in panel


def test_an_index_of_the_previous_format_asks_for_a_rebuild(index) -> None:
    from rag.errors import IndexMismatch
    from rag.index.store import IndexStore

    store = IndexStore(index.index_dir)
    manifest_path = store.current() / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "format_version": 1}))
    with pytest.raises(IndexMismatch, match="rebuild it with `rag index --rebuild`"):
        Retriever.open(index.index_dir, HashEmbedder())


def test_eval_results_carry_the_page(tmp_path) -> None:
    corpus = tmp_path / "corpus"
    make_pdf(corpus / "report.pdf")
    question = {
        "id": "q1",
        "question": "When did the board approve the Lisbon data centre?",
        "answers": ["March 3"],
        "answerable": True,
        "support": [{"source": "report.pdf", "quote": "The board approved the Lisbon data centre on March 3."}],
    }
    qfile = tmp_path / "q.jsonl"
    qfile.write_text(json.dumps(question))
    out = tmp_path / "report"
    env = {"RAG_EMBEDDING_MODEL": "hash", "RAG_CHUNK_SIZE": "16", "RAG_CHUNK_OVERLAP": "4"}
    result = CliRunner().invoke(
        app,
        [
            "eval",
            str(qfile),
            "--corpus",
            str(corpus),
            "--backend",
            "extractive",
            "--k",
            "2",
            "--out",
            str(out),
            "--json",
            "--cache",
            str(tmp_path / "cache"),
            "--min-confidence",
            "0",
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    [row] = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [(c["page"], c["location"]) for c in row["citations"]] == [(2, "p. 2")]
    assert row["retrieved"][0]["location"] == "p. 2"
