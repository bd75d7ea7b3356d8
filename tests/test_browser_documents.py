"""The Documents panel and the source selector in a real headless browser (Debian's chromium via Playwright)
against a server over the seed article plus an uploaded three-page PDF: ask within the PDF only and see the
citation's page, list the documents, remove the upload after a confirmation (cancel first)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from conftest import SEEDS
from rag.index.indexer import Indexer
from rag.serve.server import Running, create_app
from rag.serve.service import Service
from rag.settings import Settings
from test_browser import BOT, CHROMIUM, FLAGS, SEED, ask
from test_locations import make_pdf
from ui.app import mount

pytestmark = pytest.mark.integration


@pytest.fixture
def served(tmp_path, real_embedder):
    settings = Settings(index_dir=tmp_path / "index", backend="extractive", k=3, min_confidence=0.0)
    Indexer(settings, real_embedder).index([SEEDS])
    service = Service(settings, real_embedder)
    [added] = service.add_documents([make_pdf(tmp_path / "report.pdf")])
    assert added.status == "added", added.detail
    running = Running(create_app(settings, service, mount))
    yield running.url, settings
    running.stop()


@pytest.fixture
def page():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        yield page
        browser.close()


def choose(page: Page, dropdown: str, option: str) -> None:
    page.locator(f"{dropdown} input").click()
    page.get_by_role("option", name=option).click()


def test_ask_within_a_pdf_then_remove_it_from_the_documents_panel(served, page: Page, tmp_path) -> None:
    url, settings = served
    page.goto(url)
    expect(page.locator("#index-info")).to_contain_text("2 documents")

    ask(page, "Who hosts the training and deployment workloads?", 0)  # all documents: the seed article answers
    expect(page.locator("#sources .rag-source").first).to_contain_text(SEED)

    choose(page, "#source-filter", "report.pdf")
    page.keyboard.press("Escape")
    ask(page, "When did the board approve the Lisbon data centre?", 1)
    expect(page.locator(BOT).nth(1)).to_contain_text("March 3")
    heads = page.locator("#sources .rag-source .head")
    expect(heads.first).to_contain_text("report.pdf · p. 2 · chars")
    for i in range(heads.count()):
        expect(heads.nth(i)).to_contain_text("report.pdf")

    page.locator("#documents .label-wrap").click()
    table = page.locator("#doc-table")
    expect(table).to_contain_text("report.pdf")
    expect(table).to_contain_text(SEED)
    expect(table).to_contain_text("upload")
    shot = tmp_path / "documents.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot {shot}")

    choose(page, "#doc-remove-choice", "report.pdf")
    page.locator("#doc-remove").click()
    expect(page.locator("#doc-confirm")).to_be_visible()
    expect(page.locator("#doc-confirm-text")).to_contain_text("Remove report.pdf from the index?")
    page.locator("#doc-confirm-no").click()
    expect(page.locator("#doc-confirm")).to_be_hidden()
    expect(table).to_contain_text("report.pdf")
    assert (settings.uploads / "report.pdf").exists()

    page.locator("#doc-remove").click()
    page.locator("#doc-confirm-yes").click()
    expect(table).not_to_contain_text("report.pdf", timeout=60_000)
    expect(page.locator("#index-info")).to_contain_text("1 document, ")
    expect(page.locator("#doc-confirm")).to_be_hidden()
    assert not (settings.uploads / "report.pdf").exists()
    page.locator("#doc-remove-choice input").click()
    expect(page.get_by_role("option", name="report.pdf")).to_have_count(0)  # the seed is not removable here
    expect(page.get_by_role("option", name=SEED)).to_have_count(0)
