"""The HTTP service with real clients: the official `openai` package and httpx against a server on 127.0.0.1
(uvicorn in a thread) over a seed index built with the real embedder: answers, streaming, errors, the
queue limit, auth, and the local model through the server."""

from __future__ import annotations

import threading
import time

import httpx
import openai
import pytest

from conftest import SEEDS
from rag.answer.chain import ABSTAIN
from rag.answer.citations import readable_draft
from rag.errors import ConfigError
from rag.index.indexer import Indexer
from rag.serve.server import Running, create_app, load_credentials
from rag.serve.service import Service
from rag.settings import Settings

pytestmark = pytest.mark.integration
QUESTION = "What right to OpenAI's most advanced systems does Microsoft no longer hold?"


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, real_embedder):
    path = tmp_path_factory.mktemp("server") / "index"
    Indexer(Settings(index_dir=path), real_embedder).index([SEEDS])
    return path


def start(index_dir, embedder, **overrides) -> tuple[Running, Service]:
    settings = Settings(index_dir=index_dir, **{"backend": "extractive", **overrides})
    service = Service(settings, embedder)
    return Running(create_app(settings, service)), service


@pytest.fixture(scope="module")
def server(index_dir, real_embedder):
    running, service = start(index_dir, real_embedder)
    yield running.url, service
    running.stop()


def client(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)


def assert_verified(service: Service, citations: list[dict], text: str) -> None:
    documents = service.rag().documents
    assert citations
    for c in citations:
        assert documents[c["doc_id"]][c["char_start"] : c["char_end"]] == c["quote"]
        assert c["source"] == "openai-microsoft-partnership-2026.txt"
        assert f"[{c['n']}]" in text


def test_health_and_models(server) -> None:
    url, _ = server
    health = httpx.get(f"{url}/health").json()
    assert health["status"] == "ok" and health["backend"] == "extractive"
    assert health["index"]["documents"] == 1 and health["index"]["chunks"] >= 3
    assert health["queue"] == {"answering": 0, "waiting": 0, "concurrency": 1, "queue_size": 16, "rejected": 0}
    models = client(url).models.list()
    assert [m.id for m in models.data] == ["rag", "rag-local", "rag-extractive"]  # no key: no openai/azure


def test_openai_client_answer_carries_citations(server) -> None:
    url, service = server
    started = time.perf_counter()
    reply = client(url).chat.completions.create(model="rag", messages=[{"role": "user", "content": QUESTION}])
    elapsed = time.perf_counter() - started
    text = reply.choices[0].message.content
    assert "April 27, 2026" in text and reply.choices[0].finish_reason == "stop"
    assert_verified(service, reply.model_extra["citations"], text)
    assert reply.model_extra["rag"]["abstained"] is False and reply.model_extra["rag"]["backend"] == "extractive"
    statements = reply.model_extra["rag"]["statements"]  # each sentence with the spans that support it
    assert statements and all(st["text"] in text for st in statements)
    assert [c for st in statements for c in st["citations"]] == reply.model_extra["citations"]
    assert elapsed < 30
    print(f"openai client, non-streaming, extractive: {elapsed:.2f}s")


def test_openai_client_streaming(server) -> None:
    url, service = server
    started = time.perf_counter()
    stream = client(url).chat.completions.create(
        model="rag-extractive", stream=True, messages=[{"role": "user", "content": "Who hosts the training workloads?"}]
    )
    drafts, content, last = [], [], None
    for chunk in stream:
        delta = chunk.choices[0].delta
        drafts.append((delta.model_extra or {}).get("draft") or "")
        content.append(delta.content or "")
        last = chunk
    text = "".join(content)
    assert "Azure" in text and last.choices[0].finish_reason == "stop"
    assert "".join(drafts).strip()  # the draft streamed before the grounded answer
    assert_verified(service, last.model_extra["citations"], text)
    print(f"openai client, streaming, extractive: {time.perf_counter() - started:.2f}s")


def test_streamed_draft_leaves_out_echoed_delimiters_the_trace_keeps(index_dir, real_embedder, monkeypatch) -> None:
    """A model that echoes the prompt's delimiters: `delta.draft` streams the readable draft, the last chunk's
    trace keeps the model's text as written."""
    import rag.serve.service
    from test_answer_step import ScriptedBackend

    echoing = 'Microsoft keeps its licence [1]. <<<END-54ac19378429>>"Microsoft has no exclusive right [1].'
    monkeypatch.setattr(rag.serve.service, "make_backend", lambda _: ScriptedBackend(echoing))
    running, _ = start(index_dir, real_embedder, backend="openai")
    try:
        ask = dict(model="rag", stream=True, messages=[{"role": "user", "content": QUESTION}])
        drafts, last = [], None
        for chunk in client(running.url).chat.completions.create(**ask):
            drafts.append((chunk.choices[0].delta.model_extra or {}).get("draft") or "")
            last = chunk
        streamed = "".join(drafts)
        assert "<<<" not in streamed and "Microsoft has no exclusive right" in streamed
        assert last.model_extra["rag"]["draft"] == echoing and readable_draft(echoing) == streamed.strip()
    finally:
        running.stop()


def test_follow_up_uses_the_conversation(server) -> None:
    url, _ = server
    reply = client(url).chat.completions.create(
        model="rag",
        messages=[
            {"role": "system", "content": "Ignored: the service's own prompt applies."},
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": "April 27, 2026 [1]"},
            {"role": "user", "content": [{"type": "text", "text": "And what changed for Microsoft then?"}]},
        ],
    )
    assert reply.model_extra["rag"]["standalone_query"] == f"{QUESTION} And what changed for Microsoft then?"


def test_abstention_is_an_answer_not_an_error(server) -> None:
    url, _ = server
    reply = client(url).chat.completions.create(
        model="rag", messages=[{"role": "user", "content": "Who is the CEO of OpenAI?"}]
    )
    assert reply.choices[0].message.content == ABSTAIN
    assert reply.model_extra["rag"]["abstained"] is True and reply.model_extra["citations"] == []
    # the closest match rides in the trace, verified, apart from the answer and its citations
    trace = reply.model_extra["rag"]
    assert trace["confidence"] < trace["threshold"] and trace["withheld"][0]["citations"][0]["quote"]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b'{"model": "rag"}', 400, "messages"),
        (b'{"messages": []}', 400, "at least 1"),
        (b'{"messages": [{"role": "wizard", "content": "hi"}]}', 400, "messages.0.role"),
        (
            b'{"messages": [{"role": "assistant", "content": "hi"}]}',
            400,
            "last message must be a non-empty user message",
        ),
        (b'{"messages": [{"role": "user", "content": "  "}]}', 400, "non-empty user message"),
        (b'{"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}', 404, "unknown model 'gpt-9'"),
        (b'{"model": "rag-openai", "messages": [{"role": "user", "content": "hi"}]}', 400, "OPENAI_API_KEY"),
        (b'{"k": 0, "messages": [{"role": "user", "content": "hi"}]}', 400, "k:"),
        (b'{"messages": [{"role": "user", "content": "' + b"x" * 1_100_000 + b'"}]}', 413, "request body over"),
    ],
)
def test_bad_requests_get_4xx_json_errors(server, body: bytes, status: int, words: str) -> None:
    url, _ = server
    response = httpx.post(f"{url}/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert words in response.json()["error"]["message"]
    assert httpx.get(f"{url}/health").status_code == 200  # and the server is fine


def test_full_queue_answers_busy_retry_at_once(index_dir, real_embedder) -> None:
    running, service = start(index_dir, real_embedder, concurrency=1, queue_size=1)
    api = client(running.url)
    ask = dict(model="rag", messages=[{"role": "user", "content": QUESTION}])
    try:
        held = service.limiter.admit()  # someone is being answered
        held.wait()
        waiting: list = []
        thread = threading.Thread(target=lambda: waiting.append(api.chat.completions.create(**ask)))
        thread.start()  # takes the one waiting place
        deadline = time.time() + 10
        while service.limiter.stats()["waiting"] < 1 and time.time() < deadline:
            time.sleep(0.02)
        started = time.perf_counter()
        with pytest.raises(openai.APIStatusError) as err:
            api.chat.completions.create(**ask)
        rejected_in = time.perf_counter() - started
        assert err.value.status_code == 503 and err.value.response.headers["Retry-After"] == "5"
        assert "busy" in err.value.message and "retry" in err.value.message
        streaming = httpx.post(f"{running.url}/v1/chat/completions", json={**ask, "stream": True})
        assert streaming.status_code == 503 and streaming.json()["error"]["code"] == "busy"
        assert rejected_in < 2 and not waiting  # refused immediately, while the waiting one still waits
        held.close()
        thread.join(timeout=60)
        assert "April 27, 2026" in waiting[0].choices[0].message.content
        assert service.limiter.stats() == {
            "answering": 0,
            "waiting": 0,
            "concurrency": 1,
            "queue_size": 1,
            "rejected": 2,
        }
        print(f"queue full: 503 in {rejected_in * 1000:.0f} ms")
    finally:
        running.stop()


def test_auth_on(index_dir, real_embedder, tmp_path) -> None:
    users = tmp_path / "users"
    users.write_text("# one user:password a line\nalice:s3cret\nbob:pa:ss\n")
    assert load_credentials(str(users)) == [("alice", "s3cret"), ("bob", "pa:ss")]
    with pytest.raises(ConfigError, match="user:password"):
        load_credentials("alice:")
    running, _ = start(index_dir, real_embedder, auth=str(users))
    try:
        assert "s3cret" not in repr(Settings(auth="alice:s3cret"))
        assert httpx.get(f"{running.url}/health").status_code == 200  # liveness stays open
        denied = httpx.get(f"{running.url}/v1/models")
        assert denied.status_code == 401 and "Bearer user:password" in denied.json()["error"]["message"]
        with pytest.raises(openai.AuthenticationError):
            client(running.url, "alice:wrong").models.list()
        reply = client(running.url, "bob:pa:ss").chat.completions.create(
            model="rag", messages=[{"role": "user", "content": QUESTION}]
        )
        assert "April 27, 2026" in reply.choices[0].message.content
        assert httpx.get(f"{running.url}/v1/models", auth=("alice", "s3cret")).status_code == 200  # HTTP Basic
    finally:
        running.stop()


def test_local_model_through_the_server_with_a_one_answer_queue(index_dir, real_embedder) -> None:
    """Three clients at once against the local model (one answer at a time, one waiting place): two are
    answered in turn, the third is told to retry at once; the first streams its draft as it is generated."""
    running, service = start(index_dir, real_embedder, backend="local", concurrency=1, queue_size=1, k=2, max_tokens=48)
    api = client(running.url)
    ask = dict(model="rag", messages=[{"role": "user", "content": QUESTION}])
    results: dict[str, object] = {}

    def streamed() -> None:
        started, first, drafts, last = time.perf_counter(), None, [], None
        for chunk in api.chat.completions.create(stream=True, **ask):
            draft = (chunk.choices[0].delta.model_extra or {}).get("draft")
            if draft:
                first = first or time.perf_counter() - started
                drafts.append(draft)
            last = chunk
        results["stream"] = (first, time.perf_counter() - started, "".join(drafts), last)

    def plain() -> None:
        started = time.perf_counter()
        try:
            results["plain"] = (api.chat.completions.create(**ask), time.perf_counter() - started)
        except openai.APIStatusError as exc:
            results["plain"] = (exc, time.perf_counter() - started)

    try:
        first = threading.Thread(target=streamed)
        first.start()
        while service.limiter.stats()["answering"] < 1:
            time.sleep(0.02)
        second = threading.Thread(target=plain)
        second.start()
        while service.limiter.stats()["waiting"] < 1:
            time.sleep(0.02)
        started = time.perf_counter()
        with pytest.raises(openai.APIStatusError) as busy:
            api.chat.completions.create(**ask)
        refused_in = time.perf_counter() - started
        assert busy.value.status_code == 503 and refused_in < 2
        first.join(timeout=240)
        second.join(timeout=240)
        first_token, total, draft, last = results["stream"]
        assert draft and first_token is not None and first_token < total
        trace = last.model_extra["rag"]
        assert trace["backend"] == "local" and trace["model"] == "SmolLM2-135M-Instruct.Q4_1"
        assert (
            readable_draft(trace["draft"]) == draft.strip()
        )  # streamed without echoed delimiters; the trace keeps them
        reply, waited = results["plain"]
        assert reply.model_extra["rag"]["draft"] == trace["draft"]  # same question, deterministic model
        print(
            f"local through the server: first draft token {first_token:.1f}s, streamed answer {total:.1f}s, "
            f"queued answer {waited:.1f}s, third client refused in {refused_in:.2f}s"
        )
    finally:
        running.stop()
