"""The chat page through `gradio_client`, against a server on 127.0.0.1 over a seed index built with the
real embedder: cited answers, multi-turn context, retry, settings, abstention, uploads (good and bad
files), the busy answer, file access and login."""

from __future__ import annotations

import html

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AuthenticationError

from conftest import SEEDS
from rag.answer.chain import ABSTAIN
from rag.index.indexer import Indexer
from rag.index.store import IndexStore
from rag.serve.server import Running, create_app
from rag.serve.service import Service
from rag.settings import Settings
from ui.app import mount

pytestmark = pytest.mark.integration
QUESTION = "What right to OpenAI's most advanced systems does Microsoft no longer hold?"
SEED = "openai-microsoft-partnership-2026.txt"
DEFAULTS = ("extractive", 5, "hybrid", True)  # backend, top-k, retrieval mode, grounding


def build_index(path, embedder):
    Indexer(Settings(index_dir=path), embedder).index([SEEDS])
    return path


def start(index_dir, embedder, **overrides) -> tuple[Running, Service]:
    settings = Settings(index_dir=index_dir, **{"backend": "extractive", **overrides})
    service = Service(settings, embedder)
    return Running(create_app(settings, service, mount)), service


@pytest.fixture(scope="module")
def server(tmp_path_factory, real_embedder):
    index_dir = build_index(tmp_path_factory.mktemp("ui") / "index", real_embedder)
    running, service = start(index_dir, real_embedder)
    yield Client(running.url, verbose=False), service
    running.stop()


def text_of(message: dict) -> str:
    return "".join(part["text"] for part in message["content"] if part["type"] == "text")


def test_question_returns_an_answer_with_citations(server) -> None:
    client, service = server
    history, question, sources, trace = client.predict(QUESTION, [], *DEFAULTS, api_name="/ask")
    assert question == ""  # the box is cleared for the next question
    assert [m["role"] for m in history] == ["user", "assistant"]
    answer = text_of(history[1])
    assert "April 27, 2026" in answer and trace["answer"] == answer
    documents = service.rag().documents
    for c in trace["citations"]:
        assert f"[{c['n']}]" in answer and c["source"] == SEED
        assert documents[c["doc_id"]][c["char_start"] : c["char_end"]] == c["quote"]
        assert f"<mark>{c['quote']}</mark>" in sources.replace("&#x27;", "'")
    assert trace["citations"] and f"<b>{SEED}</b>" in sources


def test_two_turns_keep_context(server) -> None:
    client, _ = server
    history, *_ = client.predict(QUESTION, [], *DEFAULTS, api_name="/ask")
    history, _, _, trace = client.predict("And what changed for Microsoft then?", history, *DEFAULTS, api_name="/ask")
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert trace["standalone_query"] == f"{QUESTION} And what changed for Microsoft then?"
    assert trace["query"] == "And what changed for Microsoft then?"


def test_retry_asks_the_last_question_again(server) -> None:
    client, _ = server
    first, *_ = client.predict(QUESTION, [], *DEFAULTS, api_name="/ask")
    again, _, _, trace = client.predict(first, *DEFAULTS, api_name="/retry")
    assert [text_of(m) for m in again] == [text_of(m) for m in first]  # replaced, not appended
    assert trace["query"] == QUESTION


def test_settings_reach_the_answer(server) -> None:
    client, _ = server
    *_, trace = client.predict(QUESTION, [], "extractive", 2, "bm25", False, api_name="/ask")
    assert len(trace["passages"]) == 2
    assert all(p["dense_rank"] is None for p in trace["passages"])  # BM25 only


def test_abstention_is_shown_as_such(server) -> None:
    client, _ = server
    history, _, sources, trace = client.predict("Who is the CEO of OpenAI?", [], *DEFAULTS, api_name="/ask")
    assert text_of(history[-1]).startswith(ABSTAIN) and trace["abstained"]
    assert "No passage supports an answer" in sources
    # the closest match is marked in its passage and said to be below the threshold, never given as the answer
    closest = trace["withheld"][0]["citations"][0]
    assert f"<mark>{html.escape(closest['quote'])}</mark>" in sources and "below the confidence threshold" in sources
    assert f"closest match is underlined in passage [{closest['n']}]" in text_of(history[-1])
    assert trace["confidence"] < trace["threshold"]
    from ui.app import _plain

    assert _plain(history)[-1] == {"role": "assistant", "content": ABSTAIN}  # a follow-up builds on the answer alone


def test_upload_good_and_bad_files(tmp_path, real_embedder) -> None:
    index_dir = build_index(tmp_path / "index", real_embedder)
    running, service = start(index_dir, real_embedder)
    files = tmp_path / "files"
    files.mkdir()
    (files / "lunar.md").write_text(
        "# Lunar farming\n\nThe Zephyr project opened its lunar greenhouse on "
        "March 3, 2031. The greenhouse grows dwarf wheat under LED light.\n"
    )
    (files / "binary.txt").write_bytes(b"\x00\x01\x02 not text")
    (files / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    try:
        client = Client(running.url, verbose=False)
        table, summary = client.predict(
            [handle_file(str(files / n)) for n in ("lunar.md", "binary.txt", "broken.pdf")], api_name="/add_documents"
        )
        rows = {row[0]: row[1:] for row in table["data"]}
        assert rows["lunar.md"][0] == "added" and "the index holds 2 documents" in rows["lunar.md"][1]
        assert rows["binary.txt"] == ["rejected", "binary file (contains NUL bytes)"]
        assert rows["broken.pdf"][0] == "rejected" and "PDF" in rows["broken.pdf"][1]
        assert summary.startswith("1 of 3 files in the index. 2 documents")
        # the index is intact: the seed and the new document answer, the bad files left nothing behind
        assert sorted(IndexStore(index_dir).read_manifest().files) == ["lunar.md", SEED]
        assert sorted(p.name for p in service.settings.uploads.iterdir()) == ["lunar.md"]
        *_, trace = client.predict(
            "When did the Zephyr project open its lunar greenhouse?", [], *DEFAULTS, api_name="/ask"
        )
        assert "March 3, 2031" in trace["answer"] and trace["citations"][0]["source"] == "lunar.md"
        *_, trace = client.predict(QUESTION, [], *DEFAULTS, api_name="/ask")
        assert "April 27, 2026" in trace["answer"]
        table, _ = client.predict([handle_file(str(files / "lunar.md"))], api_name="/add_documents")
        assert table["data"][0][:2] == ["lunar.md", "unchanged"]
        # names, types and sizes are checked before anything is written
        (files / "tool.exe").write_bytes(b"MZ")
        (files / SEED).write_text("A different article with the seed's name.")
        results = service.add_documents([files / "tool.exe", files / SEED])
        assert [r.status for r in results] == ["rejected", "rejected"]
        assert results[0].detail.startswith("unsupported file type .exe")
        assert "already indexed from" in results[1].detail
    finally:
        running.stop()


def test_upload_size_limit_and_file_access(tmp_path, real_embedder) -> None:
    index_dir = build_index(tmp_path / "index", real_embedder)
    running, service = start(index_dir, real_embedder, max_upload_mb=0.01)
    big = tmp_path / "big.txt"
    big.write_text("words " * 4000)  # 24 kB, over 0.01 MB
    try:
        with big.open("rb") as f:
            response = httpx.post(f"{running.url}/gradio_api/upload", files={"files": ("big.txt", f, "text/plain")})
        assert response.status_code == 413
        assert service.add_documents([big])[0].detail.startswith("larger than the 0.01 MB upload limit")
        for path in ("/etc/passwd", index_dir / "CURRENT", SEEDS / SEED):
            response = httpx.get(f"{running.url}/gradio_api/file={path}")
            assert response.status_code == 403 and "File not allowed" in response.text, path
        assert httpx.get(f"{running.url}/monitoring").status_code == 403  # Gradio's monitoring is off
    finally:
        running.stop()


def test_full_queue_gives_a_busy_answer_on_the_page(tmp_path, real_embedder) -> None:
    index_dir = build_index(tmp_path / "index", real_embedder)
    running, service = start(index_dir, real_embedder, concurrency=1, queue_size=0)
    try:
        held = service.limiter.admit()
        held.wait()
        history, *_ = Client(running.url, verbose=False).predict(QUESTION, [], *DEFAULTS, api_name="/ask")
        assert text_of(history[-1]).startswith("⏳ The server is busy") and "retry" in text_of(history[-1])
        held.close()
        history, *_ = Client(running.url, verbose=False).predict(history, *DEFAULTS, api_name="/retry")
        assert "April 27, 2026" in text_of(history[-1]) and len(history) == 2
    finally:
        running.stop()


def test_login_when_auth_is_set(tmp_path, real_embedder) -> None:
    index_dir = build_index(tmp_path / "index", real_embedder)
    running, _ = start(index_dir, real_embedder, auth="alice:s3cret")
    try:
        assert httpx.get(f"{running.url}/config").status_code == 401
        with pytest.raises(AuthenticationError, match="login"):
            Client(running.url, verbose=False)
        client = Client(running.url, verbose=False, auth=("alice", "s3cret"))
        history, *_ = client.predict(QUESTION, [], *DEFAULTS, api_name="/ask")
        assert "April 27, 2026" in text_of(history[-1])
    finally:
        running.stop()


def test_sources_highlight_the_short_answer_inside_the_cited_sentence() -> None:
    from rag.types import Answer, Chunk, Citation, Document, Hit
    from ui.app import sources_html

    doc = Document.create("a.txt", "A", "Intro <b>. The deal was disclosed on April 27, 2026, in public.")
    chunk = Chunk.create(doc, 0, len(doc.text))
    cite = Citation(1, "a.txt", doc.id, chunk.id, 11, len(doc.text), doc.text[11:])
    short = Citation(1, "a.txt", doc.id, chunk.id, 37, 51, "April 27, 2026")
    answer = Answer(
        text=f"{cite.quote} [1]",
        abstained=False,
        citations=(cite,),
        passages=(Hit(chunk, 1.0),),
        query="When?",
        standalone_query="When?",
        backend="extractive",
        model="m",
        confidence=0.8,
        short=short,
    )
    page = sources_html(answer)
    assert '<mark class="short">April 27, 2026</mark>' in page
    assert "Intro &lt;b&gt;." in page and "<b>." not in page  # document text is escaped
    assert "Short answer:" in page and "confidence 0.80" in page
    assert page.count("<mark>") == 1  # the cited sentence, the short answer marked inside it
    assert '<mark>The deal was disclosed on <mark class="short">April 27, 2026</mark>, in public.</mark>' in page


def test_rag_serve_mounts_the_page_the_package_registers() -> None:
    from rag.serve.server import installed_page

    assert installed_page() is mount  # pyproject.toml's `rag.pages` entry point: rag itself never names ui


def test_a_replaced_draft_says_so_in_the_chat_and_not_in_the_history() -> None:
    from rag.types import Answer
    from ui.app import REPLACED, _plain, chat_text

    base = dict(
        text="The deal was disclosed on April 27, 2026. [1]",
        abstained=False,
        citations=(),
        passages=(),
        query="When?",
        standalone_query="When?",
        backend="local",
        model="m",
        confidence=0.8,
    )
    assert chat_text(Answer(**base)) == base["text"]  # the model's own answer, as kept
    shown = chat_text(Answer(**base, fallback="extractive"))
    assert shown.startswith(base["text"]) and shown.endswith(REPLACED)
    reply = {"role": "assistant", "content": [{"type": "text", "text": shown}]}  # as Gradio 6 sends it back
    # what a follow-up builds on: the answer, without the page's note
    assert _plain([{"role": "user", "content": "When?"}, reply])[1] == {"role": "assistant", "content": base["text"]}
