"""Hosted-backend faults against a real local HTTP server that misbehaves on purpose: every fault becomes a
clear `BackendError` (never a hang, never a leaked key), and the same `RAG` keeps answering afterwards."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rag.answer.chain import RAG
from rag.errors import BackendError
from rag.index.indexer import Indexer

KEY = "sk-planted-fault-key-0123456789"


def sse(text: str) -> bytes:
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }
    return f"data: {json.dumps(chunk)}\n\n".encode()


class Misbehaving(BaseHTTPRequestHandler):
    """The first path segment picks the behaviour: ok, slow, 429, 500, die, garbage."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        mode = self.path.split("/")[1]
        if mode == "slow":
            time.sleep(3)
        if mode in ("429", "500"):
            body = json.dumps({"error": {"message": "nope", "type": "server_error"}}).encode()
            self.send_response(int(mode))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if mode == "garbage":
            body = b"<html>not json</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        if mode == "die":
            self.send_header("Content-Length", "100000")  # promise far more than is sent, then hang up
            self.end_headers()
            self.wfile.write(sse("Microsoft will no longer"))
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        body = sse("Microsoft will no longer hold exclusive rights [1].") + b"data: [DONE]\n\n"
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # the "die" mode breaks its own connections on purpose


@pytest.fixture(scope="module")
def server():
    httpd = QuietServer(("127.0.0.1", 0), Misbehaving)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


@pytest.fixture
def rag_for(corpus, settings, hash_embedder, server):
    Indexer(settings, hash_embedder).index([corpus])

    def make(mode: str) -> RAG:
        return RAG.open(
            settings=settings.with_overrides(
                backend="openai",
                openai_base_url=f"{server}/{mode}/v1",
                openai_api_key=KEY,
                openai_model="m",
                max_retries=0,
                timeout=1.0,
            )
        )

    return make


@pytest.mark.parametrize(
    "mode,message",
    [
        ("slow", "timed out"),
        ("429", "rate limited .* \\(429\\); retry later"),
        ("500", "answered HTTP 500"),
        ("die", "connection to .* was lost mid-answer"),
        ("garbage", "sent no usable reply"),
    ],
)
def test_each_fault_is_a_clear_error_without_the_key(rag_for, mode: str, message: str) -> None:
    rag = rag_for(mode)
    started = time.perf_counter()
    with pytest.raises(BackendError, match=message) as err:
        rag.ask("Do dogs bark at strangers?")
    assert time.perf_counter() - started < 15  # bounded: timeouts are honoured, nothing hangs
    assert KEY not in str(err.value) and KEY not in repr(err.value)


def test_connection_refused(rag_for, corpus, settings) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rag = RAG.open(
        settings=settings.with_overrides(
            backend="openai",
            openai_base_url=f"http://127.0.0.1:{port}/v1",
            openai_api_key=KEY,
            max_retries=0,
            timeout=1.0,
        )
    )
    with pytest.raises(BackendError, match="cannot reach"):
        rag.ask("Do dogs bark at strangers?")


def test_service_keeps_answering_after_faults(rag_for) -> None:
    for mode in ("500", "die"):
        with pytest.raises(BackendError):
            rag_for(mode).ask("Do dogs bark at strangers?")
    answer = rag_for("ok").ask("Do dogs bark at strangers?")
    assert answer.draft == "Microsoft will no longer hold exclusive rights [1]."
