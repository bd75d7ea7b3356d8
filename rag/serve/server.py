"""The HTTP service: one FastAPI app with the Gradio chat at `/` and an OpenAI-compatible API under `/v1`.

`create_app(settings)` serves `POST /v1/chat/completions` (JSON or SSE; the citations ride in an extra
`citations` field), `GET /v1/models`, `GET /v1/documents`, `DELETE /v1/documents/{id}` and `GET /health`, with
optional login (RAG_AUTH) and OpenAI-shaped JSON errors. Both the API and the page go through one
`rag.serve.service.Service` (cached RAGs, the bounded queue: "busy, retry" is HTTP 503 here, uploads). The page is not
this module's: a `Page` hook mounts it, and `rag serve` takes the one registered under the `rag.pages` entry point
(ui/app.py), so rag never imports ui.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rag.errors import BackendError, ConfigError, IndexMissing, RagError, needs_extra

with needs_extra("ui"):
    from fastapi import Depends, FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.answer.chain import RAG
from rag.serve.service import Busy, LastDocument, NotRemovable, Service, Ticket, UnknownDocument
from rag.settings import BACKENDS, Settings
from rag.types import Answer

__all__ = ["PAGES", "Page", "Running", "create_app", "installed_page", "load_credentials", "serve"]

log = logging.getLogger(__name__)
PAGES = "rag.pages"  # the entry-point group of pages `rag serve` mounts at `/` (pyproject.toml registers ui's)
Page = Callable[[FastAPI, Service, list[tuple[str, str]]], None]  # mounts a page on the app: (app, service, logins)
MAX_BODY_BYTES = 1024 * 1024  # an API request is a conversation, not a document
_DONE = object()


# -- authentication ---------------------------------------------------------------------------------------


def load_credentials(spec: str) -> list[tuple[str, str]]:
    """`user:password`, or a file with one `user:password` a line (# comments), into (user, password) pairs."""
    if not spec:
        return []
    path = Path(spec)
    if ":" not in spec or path.is_file():
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            raise ConfigError(
                f"RAG_AUTH: no such credentials file {spec!r}; use user:password or a file of them"
            ) from None
    else:
        lines = [spec]
    pairs = [tuple(line.strip().split(":", 1)) for line in lines if line.strip() and not line.startswith("#")]
    if not pairs or any(len(p) != 2 or not p[0] or not p[1] for p in pairs):
        raise ConfigError("RAG_AUTH must be user:password, or a file with one user:password a line")
    return pairs  # type: ignore[return-value]


def _authorized(header: str, credentials: list[tuple[str, str]]) -> bool:
    """`Authorization: Bearer user:password` (the OpenAI client's api_key) or HTTP Basic."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            value = base64.b64decode(value, validate=True).decode("utf-8")
        except ValueError:
            return False
    elif scheme.lower() != "bearer":
        return False
    ok = False
    for user, password in credentials:  # compare against every pair, in constant time
        ok |= secrets.compare_digest(value.encode(), f"{user}:{password}".encode())
    return ok


# -- the OpenAI-compatible API ----------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type_, code, param
        self.headers = headers

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def api_error(exc: Exception) -> ApiError:
    """The HTTP form of a library error."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, Busy):
        return ApiError(503, str(exc), "server_busy", "busy", headers={"Retry-After": "5"})
    if isinstance(exc, UnknownDocument):
        return ApiError(404, str(exc), code="document_not_found")
    if isinstance(exc, LastDocument):
        return ApiError(409, str(exc), code="last_document")
    if isinstance(exc, NotRemovable):
        return ApiError(403, str(exc), "permission_error", "not_an_upload")
    if isinstance(exc, IndexMissing):
        return ApiError(503, str(exc), "server_error", "no_index")
    if isinstance(exc, ConfigError):
        return ApiError(400, str(exc), code="bad_setting")
    if isinstance(exc, BackendError):
        return ApiError(502, str(exc), "upstream_error", "backend_failed")
    if isinstance(exc, RagError):
        return ApiError(500, str(exc), "server_error")
    return ApiError(500, "internal error: see the server log", "server_error")


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """The OpenAI request; `k`, `mode`, `grounding` and `source` are this service's extras (sampling fields are ignored:
    answers are grounded and deterministic)."""

    model_config = ConfigDict(extra="allow")
    model: str = "rag"
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    k: int | None = Field(default=None, ge=1, le=50)
    mode: Literal["hybrid", "dense", "bm25"] | None = None
    grounding: bool | None = None
    source: list[str] | str | None = None  # globs over document names: answer only from matching documents

    def sources(self) -> list[str] | None:
        globs = [self.source] if isinstance(self.source, str) else self.source or []
        return [g for g in globs if g] or None


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if part.get("type") == "text")
    return content or ""


def split_messages(messages: Sequence[ChatMessageIn]) -> tuple[str, list[dict[str, str]]]:
    """The question (the last user message) and the conversation before it; system prompts are ignored."""
    turns = [{"role": m.role, "content": _text(m.content)} for m in messages if m.role in ("user", "assistant")]
    if not turns or turns[-1]["role"] != "user" or not turns[-1]["content"].strip():
        raise ApiError(400, "the last message must be a non-empty user message", param="messages")
    return turns[-1]["content"], turns[:-1]


def _trace(answer: Answer) -> dict:
    """How the answer was made (query, passages, backend, draft, removed sentences, timings)."""
    return {k: v for k, v in answer.to_dict().items() if k not in ("answer", "citations")}


def _completion(model: str, answer: Answer) -> dict:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "citations": [c.to_dict() for c in answer.citations],
        "rag": _trace(answer),
    }


class _AnswerStream:
    """SSE for one answer: the unverified draft as `delta.draft` while it is generated, then the grounded
    answer as `delta.content`, then a last chunk carrying `citations` and `rag`. A worker thread runs the
    chain and always closes its ticket; a client that goes away stops generation at the next piece."""

    def __init__(
        self,
        rag: RAG,
        ticket: Ticket,
        question: str,
        history: list,
        k: int | None,
        model: str,
        sources: list[str] | None = None,
    ):
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.model = model
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._cancelled = threading.Event()
        self._args = (rag, ticket, question, history, k, sources)
        threading.Thread(target=self._work, name=f"answer-{self.id}", daemon=True).start()

    def _put(self, item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: the server is shutting down
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def _work(self) -> None:
        rag, ticket, question, history, k, sources = self._args
        try:
            ticket.wait()
            if not self._cancelled.is_set():
                with contextlib.closing(rag.stream(question, history, k, sources=sources)) as items:
                    for item in items:
                        self._put(item)
                        if self._cancelled.is_set():
                            break
        except Exception as exc:  # reaches the client as an SSE error event
            self._put(exc)
        finally:
            ticket.close()
            self._put(_DONE)

    def _chunk(self, delta: dict, finish: str | None = None, **extra: Any) -> str:
        body = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            **extra,
        }
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    async def events(self) -> AsyncIterator[str]:
        try:
            yield self._chunk({"role": "assistant", "content": ""})
            while (item := await self._queue.get()) is not _DONE:
                if isinstance(item, Exception):
                    if not isinstance(item, RagError):
                        log.error("streaming answer %s failed", self.id, exc_info=item)
                    err = api_error(item)
                    error = {"message": err.message, "type": err.type, "code": err.code}
                    yield f"data: {json.dumps({'error': error})}\n\n"
                    return
                if isinstance(item, str):
                    yield self._chunk({"draft": item})
                else:
                    yield self._chunk({"content": item.text})
                    yield self._chunk({}, "stop", citations=[c.to_dict() for c in item.citations], rag=_trace(item))
            yield "data: [DONE]\n\n"
        finally:
            self._cancelled.set()


class _BodyLimit:
    """Refuse oversized API bodies before reading them (pure ASGI, so the page's streams are untouched)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            length = dict(scope["headers"]).get(b"content-length", b"")
            if length.isdigit() and int(length) > MAX_BODY_BYTES:
                await ApiError(413, f"request body over {MAX_BODY_BYTES} bytes").response()(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(settings: Settings, service: Service | None = None, page: Page | None = None) -> FastAPI:
    """The whole service as one ASGI app: the API under `/v1`, `/health`, and `page` (the chat page) at `/`."""
    service = service or Service(settings)
    credentials = load_credentials(settings.auth)
    app = FastAPI(title="rag", docs_url=None, redoc_url=None, openapi_url="/v1/openapi.json")
    app.state.service = service

    def require_auth(request: Request) -> None:
        if credentials and not _authorized(request.headers.get("authorization", ""), credentials):
            raise ApiError(
                401,
                "authentication required: send `Authorization: Bearer user:password` "
                "(the OpenAI client's api_key) or HTTP Basic credentials",
                "authentication_error",
                "invalid_api_key",
                headers={"WWW-Authenticate": "Basic"},
            )

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RagError)
    async def _rag_error(request: Request, exc: RagError) -> JSONResponse:
        return api_error(exc).response()

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return api_error(exc).response()  # a JSON 500 without internals

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            reason = first.get("ctx", {}).get("error", "")
            return ApiError(400, f"invalid request: the body is not valid JSON ({reason})").response()
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"invalid request: {where + ': ' if where else ''}{first.get('msg', 'malformed body')}"
        return ApiError(400, message, param=where or None).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return ApiError(exc.status_code, str(exc.detail), "invalid_request_error").response()

    app.add_middleware(_BodyLimit)

    @app.get("/health")
    async def health() -> JSONResponse:
        try:
            index = await run_in_threadpool(service.index_info)
        except RagError as exc:
            return JSONResponse({"status": "unavailable", "error": str(exc)}, status_code=503)
        return JSONResponse(
            {"status": "ok", "index": index, "backend": settings.backend, "queue": service.limiter.stats()}
        )

    @app.get("/v1/models", dependencies=[Depends(require_auth)])
    async def models() -> dict:
        names = await run_in_threadpool(service.available_backends)
        ids = [("rag", settings.backend)] + [(f"rag-{name}", name) for name in names]
        return {
            "object": "list",
            "data": [{"id": i, "object": "model", "created": 0, "owned_by": "rag", "backend": b} for i, b in ids],
        }

    @app.get("/v1/documents", dependencies=[Depends(require_auth)])
    async def documents() -> dict:
        rows = await run_in_threadpool(service.documents)
        return {"object": "list", "data": [{"id": d.doc_id, "object": "document", **d.to_dict()} for d in rows]}

    @app.delete("/v1/documents/{doc_id}", dependencies=[Depends(require_auth)])
    async def remove_document(doc_id: str) -> dict:
        return await run_in_threadpool(service.remove_document, doc_id)

    @app.post("/v1/chat/completions", dependencies=[Depends(require_auth)])
    async def chat_completions(body: ChatRequest):
        name = body.model.removeprefix("rag-") if body.model != "rag" else settings.backend
        if name not in BACKENDS:
            raise ApiError(
                404, f"unknown model {body.model!r}: see GET /v1/models", code="model_not_found", param="model"
            )
        question, history = split_messages(body.messages)
        rag = await run_in_threadpool(service.rag, name, body.mode, body.grounding)
        sources = body.sources()
        if sources and not rag.retriever.matching_sources(sources):
            raise ApiError(
                400, f"no indexed document matches source {sources}: GET /v1/documents lists them", param="source"
            )
        ticket = service.limiter.admit()  # Busy -> 503 before anything is sent
        if body.stream:
            stream = _AnswerStream(rag, ticket, question, history, body.k, body.model, sources)
            return StreamingResponse(
                stream.events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
            )

        def answer() -> Answer:
            try:
                ticket.wait()
                return rag.ask(question, history, body.k, sources=sources)
            finally:
                ticket.close()

        return _completion(body.model, await run_in_threadpool(answer))

    if page is not None:
        page(app, service, credentials)
    return app


def installed_page(name: str = "chat") -> Page:
    """The page registered as `name` under the `rag.pages` entry point: ui/app.py's `mount` for "chat". Loading
    it imports gradio, so a missing `ui` extra fails here."""
    from importlib.metadata import entry_points

    for entry in entry_points(group=PAGES, name=name):
        return entry.load()
    raise ConfigError(
        f"no {name!r} page is registered under the {PAGES!r} entry point: "
        "reinstall the package with `pip install -e '.[ui]'`"
    )


# -- running ----------------------------------------------------------------------------------------------


class Running:
    """A server started in a background thread (tests, notebooks): `.url`, `.stop()`."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0):
        import socket

        with needs_extra("ui"):
            import uvicorn

        if port == 0:
            with socket.socket() as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
        self.url = f"http://{host}:{port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
        )
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.thread.start()
        deadline = time.time() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.time() > deadline:
                raise RuntimeError(f"the server did not start on {self.url}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def serve(settings: Settings) -> None:
    """`rag serve`: check the extras and the index and load the models, then serve until interrupted."""
    page = installed_page()  # before the models load: a missing extra fails in a second, not after a minute
    with needs_extra("ui"):
        import uvicorn

    service = Service(settings)
    service.warm()
    app = create_app(settings, service, page)
    if settings.host not in ("127.0.0.1", "localhost", "::1") and not settings.auth:
        print(f"warning: serving on {settings.host} without RAG_AUTH: anyone who can reach it can use it")
    info = service.index_info()
    print(
        f"rag: {info['documents']} document(s), {info['chunks']} chunks, backend {settings.backend}; "
        f"chat at http://{settings.host}:{settings.port}/ , API at http://{settings.host}:{settings.port}/v1",
        flush=True,
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
