"""The chat page in a real headless browser: Debian's chromium driven by Playwright, against a server on
127.0.0.1 over a seed index built with the real embedder. Type a question, watch the answer stream in,
check the cited source and its highlighted span, switch to the local model; screenshots go to tmp_path."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from conftest import SEEDS
from rag.index.indexer import Indexer
from rag.serve.server import Running, create_app
from rag.serve.service import Service
from rag.settings import Settings
from ui.app import mount

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"  # Debian's package; `.ci/run` installs it (playwright cannot download here)
FLAGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SEED = "openai-microsoft-partnership-2026.txt"
BOT = "#chat .bot-row .message-content"


@pytest.fixture(scope="module")
def url(tmp_path_factory, real_embedder):
    index_dir = tmp_path_factory.mktemp("browser") / "index"
    Indexer(Settings(index_dir=index_dir), real_embedder).index([SEEDS])
    settings = Settings(index_dir=index_dir, backend="extractive", k=3, max_tokens=64)
    running = Running(create_app(settings, Service(settings, real_embedder), mount))
    yield running.url
    running.stop()


@pytest.fixture
def page():
    with sync_playwright() as p:  # no skip: a missing /usr/bin/chromium fails here
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        yield page
        browser.close()


def ask(page: Page, question: str, turn: int) -> tuple[float, float]:
    """Type and send `question`; seconds until the first answer text shows, and until the sources update."""
    box = page.locator("#question textarea")
    box.fill(question)
    before = page.locator("#sources").inner_html()
    started = time.perf_counter()
    box.press("Enter")
    bot = page.locator(BOT).nth(turn)
    expect(bot).not_to_have_text("…", timeout=120_000)  # the placeholder is replaced by streamed text
    expect(bot).not_to_be_empty()
    first = time.perf_counter() - started
    page.wait_for_function(
        "([sel, old]) => document.querySelector(sel).innerHTML !== old", arg=["#sources", before], timeout=180_000
    )
    expect(bot).not_to_contain_text("▌")
    return first, time.perf_counter() - started


def test_ask_in_the_browser_and_read_the_sources(url, page: Page, tmp_path) -> None:
    started = time.perf_counter()
    page.goto(url)
    expect(page.locator("#index-info")).to_contain_text("1 document, ")
    loaded = time.perf_counter() - started

    first, total = ask(page, "What right to OpenAI's most advanced systems does Microsoft no longer hold?", 0)
    answer = page.locator(BOT).nth(0)
    expect(answer).to_contain_text("April 27, 2026")
    expect(answer).to_contain_text("[")
    source = page.locator("#sources .rag-source").first
    expect(source).to_contain_text(SEED)
    expect(source.locator("mark")).to_contain_text("According to details disclosed on April 27, 2026")

    ask(page, "Who hosts the training and deployment workloads?", 1)
    expect(page.locator(BOT).nth(1)).to_contain_text("Azure")
    expect(page.locator("#sources .rag-source > .text > mark").first).to_contain_text(
        "hosting key training and deployment workloads"
    )
    expect(page.locator("#sources .rag-short mark.short")).to_have_text("Azure")  # the short answer, highlighted

    ask(page, "Who is the CEO of OpenAI?", 2)  # not in the article: abstained, the closest match marked as such
    expect(page.locator(BOT).nth(2)).to_contain_text("The documents do not say.")
    expect(page.locator(BOT).nth(2)).to_contain_text("Not sure enough to answer")
    expect(page.locator("#sources")).to_contain_text("The closest match, underlined, is below the confidence threshold")
    expect(page.locator("#sources .rag-closest > .text > mark")).to_have_count(1)  # marked apart from citations
    expect(page.locator("#sources .rag-short")).to_have_count(0)  # no short answer: nothing was answered
    shot = tmp_path / "chat.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    print(f"browser: page {loaded:.1f}s, first answer text {first:.2f}s, sources {total:.2f}s; screenshot {shot}")

    page.locator("#clear").click()
    expect(page.locator(BOT)).to_have_count(0)
    expect(page.locator("#sources")).to_contain_text("Sources of the answer appear here")


def test_local_model_streams_into_the_page(url, page: Page, tmp_path) -> None:
    page.goto(url)
    page.locator("#settings .label-wrap").click()  # the accordion (the footer has a "Settings" link too)
    page.locator("#backend input").click()
    page.get_by_role("option", name="local").click()
    expect(page.locator("#backend input")).to_have_value("local")

    box = page.locator("#question textarea")
    box.fill("What right to OpenAI's most advanced systems does Microsoft no longer hold?")
    started = time.perf_counter()
    box.press("Enter")
    bot = page.locator(BOT).first
    expect(bot).to_contain_text("▌", timeout=120_000)  # the draft, still being generated
    first = time.perf_counter() - started
    expect(bot).to_contain_text("Model draft, being checked against the passages:")  # not yet the answer
    assert "<<<" not in bot.inner_text()  # the prompt's delimiters, when the model echoes them, are not shown
    expect(page.locator("#sources .rag-meta").first).to_contain_text(
        "local · SmolLM2-135M-Instruct.Q4_1", timeout=180_000
    )
    total = time.perf_counter() - started
    expect(bot).not_to_contain_text("▌")
    expect(bot).not_to_contain_text("Model draft, being checked")
    final = bot.inner_text()
    # grounded or abstained, never the raw draft's unsupported sentences shown as the answer
    assert final.strip() == "The documents do not say." or "[" in final
    # a draft that gave way to the extractive answer is said to have, where the reader is looking
    replaced = "model draft unsupported" in page.locator("#sources .rag-meta").first.inner_text()
    assert ("did not hold up against the passages" in final) == replaced
    page.screenshot(path=str(tmp_path / "local.png"), full_page=True)
    print(f"browser, local model: first streamed token {first:.1f}s, final answer {total:.1f}s")
