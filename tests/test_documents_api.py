"""The documents API and the source filter through real clients: httpx for GET/DELETE /v1/documents (uploads
only unless --remove-any, behind the same login), the official `openai` client for `source` in a chat request,
against a server on 127.0.0.1 over seeds plus an uploaded PDF (hashing embedder, extractive backend)."""

from __future__ import annotations

import httpx
import openai
import pytest

from conftest import SEEDS
from rag.index.embedding import HashEmbedder
from rag.index.indexer import Indexer
from rag.serve.server import Running, create_app
from rag.serve.service import Service
from rag.settings import Settings
from test_locations import make_pdf

SEED = "openai-microsoft-partnership-2026.txt"


@pytest.fixture
def server(tmp_path):
    def start(**overrides) -> tuple[str, Service]:
        settings = Settings(
            index_dir=tmp_path / "index",
            embedding_model="hash",
            backend="extractive",
            chunk_size=64,
            chunk_overlap=8,
            **overrides,
        )
        embedder = HashEmbedder()
        Indexer(settings, embedder).index([SEEDS])
        service = Service(settings, embedder)
        [added] = service.add_documents([make_pdf(tmp_path / "report.pdf")])
        assert added.status == "added", added.detail
        running = Running(create_app(settings, service))
        started.append(running)
        return running.url, service

    started: list[Running] = []
    yield start
    for running in started:
        running.stop()


def test_list_documents_and_remove_an_upload(server) -> None:
    url, service = server()
    listing = httpx.get(f"{url}/v1/documents").json()
    assert listing["object"] == "list"
    by_source = {d["source"]: d for d in listing["data"]}
    assert set(by_source) == {SEED, "report.pdf"}
    pdf, seed = by_source["report.pdf"], by_source[SEED]
    assert (pdf["pages"], pdf["upload"], seed["upload"]) == (3, True, False)
    assert pdf["id"] == pdf["doc_id"] and pdf["chunks"] > 0 and pdf["size"] > 0

    refused = httpx.delete(f"{url}/v1/documents/{seed['id']}")
    assert refused.status_code == 403 and "not an upload" in refused.json()["error"]["message"]
    missing = httpx.delete(f"{url}/v1/documents/0123456789abcdef")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "document_not_found"

    removed = httpx.delete(f"{url}/v1/documents/{pdf['id']}").json()
    assert removed["deleted"] is True and removed["upload_deleted"] is True and removed["source"] == "report.pdf"
    assert not (service.settings.uploads / "report.pdf").exists()
    assert [d["source"] for d in httpx.get(f"{url}/v1/documents").json()["data"]] == [SEED]
    assert httpx.get(f"{url}/health").json()["index"]["documents"] == 1


def test_the_last_document_is_not_removed(server) -> None:
    url, _ = server(remove_any=True)
    first, second = httpx.get(f"{url}/v1/documents").json()["data"]
    assert httpx.delete(f"{url}/v1/documents/{first['id']}").status_code == 200
    last = httpx.delete(f"{url}/v1/documents/{second['id']}")
    assert last.status_code == 409 and "would leave the index empty" in last.json()["error"]["message"]


def test_remove_any_lets_the_server_remove_other_documents(server) -> None:
    url, _ = server(remove_any=True)
    seed = next(d for d in httpx.get(f"{url}/v1/documents").json()["data"] if d["source"] == SEED)
    assert httpx.delete(f"{url}/v1/documents/{seed['id']}").json()["upload_deleted"] is False
    assert [d["source"] for d in httpx.get(f"{url}/v1/documents").json()["data"]] == ["report.pdf"]


def test_documents_need_the_login(server) -> None:
    url, _ = server(auth="ann:secret")
    assert httpx.get(f"{url}/v1/documents").status_code == 401
    assert httpx.delete(f"{url}/v1/documents/whatever").status_code == 401
    assert httpx.get(f"{url}/v1/documents", headers={"Authorization": "Bearer ann:secret"}).status_code == 200


def test_openai_client_source_filter(server) -> None:
    url, _ = server()
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)
    question = [{"role": "user", "content": "Which data centre did the board approve, and when?"}]
    for source, expected in ((["*.pdf"], {"report.pdf"}), ("openai-*", {SEED})):
        reply = client.chat.completions.create(model="rag", messages=question, extra_body={"source": source})
        passages = reply.model_extra["rag"]["passages"]
        assert passages and {p["source"] for p in passages} == expected
        assert {c["source"] for c in reply.model_extra["citations"]} <= expected
    stream = client.chat.completions.create(
        model="rag", messages=question, stream=True, extra_body={"source": ["report.pdf"]}
    )
    last = [chunk for chunk in stream][-1]
    assert {p["source"] for p in last.model_extra["rag"]["passages"]} == {"report.pdf"}
    with pytest.raises(openai.BadRequestError, match="no indexed document matches source"):
        client.chat.completions.create(model="rag", messages=question, extra_body={"source": ["*.docx"]})
