"""The chat page: Gradio Blocks over the shared `rag.serve.server.Service`, with no retrieval logic of its own.

A question streams the model's draft into the chat, labelled as a draft being checked, then shows the grounded
answer (saying so when the draft gave way to the extractive answer) with [n] markers and,
beside it, each cited passage with its file, page or section, and the cited span highlighted. A selector
restricts a question to some documents; the Documents panel lists what is indexed and removes uploads after a
confirmation. Settings choose the backend, top-k, retrieval mode and grounding; uploads and removals go
through the service to the incremental indexer. `mount` puts the page on the server's app with the queue, auth
and upload limits of the settings; pyproject.toml registers it as the page `rag serve` mounts (`rag.pages`).
"""

from __future__ import annotations

import contextlib
import glob
import html
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.answer import chain
from rag.errors import RagError, needs_extra

with needs_extra("ui"):
    import gradio as gr

from rag.index.documents import SUPPORTED_SUFFIXES
from rag.serve.service import Busy, Service
from rag.settings import MODES
from rag.types import Answer

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["build_ui", "mount", "sources_html"]

EXAMPLES = [
    "When were the details disclosed?",
    "Does Microsoft keep exclusive rights?",
    "Who hosts the training and deployment workloads?",
    "What role does Microsoft retain?",
    "Who is the CEO of OpenAI?",
]
# a streamed draft is not yet the answer: verification may keep part of it or replace it
DRAFTING = "*Model draft, being checked against the passages:*"
REPLACED = f"*{chain.REPLACED}*"
UNSURE = "*Not sure enough to answer"  # opens the note on an abstention whose closest match is underlined
NO_SOURCES = '<div class="rag-empty">Sources of the answer appear here, with the cited words highlighted.</div>'
CSS = """
.rag-source { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 10px 12px;
  margin-bottom: 10px; background: var(--background-fill-secondary); }
.rag-source .head { font-size: 0.85em; margin-bottom: 6px; color: var(--body-text-color-subdued); }
.rag-source .n { font-weight: 700; color: var(--color-accent); margin-right: 6px; }
.rag-source .where { font-weight: 600; }
.rag-source .text { font-size: 0.9em; line-height: 1.45; white-space: pre-line; }
.rag-source mark { background: #fde68a; color: #111827; padding: 0 2px; border-radius: 3px; }
mark.short { background: #f59e0b; font-weight: 700; }
.rag-closest mark { background: none; border-bottom: 2px dashed #9ca3af; border-radius: 0; }
.rag-short { margin-bottom: 8px; }
.rag-meta, .rag-empty { font-size: 0.85em; color: var(--body-text-color-subdued); margin-bottom: 8px; }
.rag-abstain { font-weight: 600; margin-bottom: 8px; }
"""


def _plain(history: list[dict] | None) -> list[dict[str, str]]:
    """Gradio 6 messages ({"role", "content": [{"type": "text", "text"}...]}) as plain role/content strings."""
    turns = []
    for message in history or []:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        if isinstance(content, str) and message.get("role") in ("user", "assistant"):
            # the page's notes (a replaced draft, an abstention's closest match) are not part of what was answered
            content = content.replace(REPLACED, "").split(f"\n\n{UNSURE}")[0]
            turns.append({"role": message["role"], "content": content.strip()})
    return turns


def chat_text(answer: Answer) -> str:
    """The answer as the chat shows it; when the model's draft gave way to the extractive answer, a line says why
    the text just changed under the reader's eyes; on an abstention, where the closest match is marked."""
    if answer.fallback:
        return f"{answer.text}\n\n{REPLACED}"
    marked = ", ".join(f"[{n}]" for n in dict.fromkeys(c.n for c in answer.closest))
    if marked:
        return (
            f"{answer.text}\n\n{UNSURE} (confidence {answer.confidence:.2f}, threshold {answer.threshold:.2f}); "
            f"the closest match is underlined in passage {marked}.*"
        )
    return answer.text


def sources_html(answer: Answer) -> str:
    """Each cited passage with its source file, the page or section of what it cites and the cited spans marked
    (the short answer inside them); for an abstention, the closest passages, the closest match underlined."""
    fallback = " · model draft unsupported: extractive answer" if answer.fallback else ""
    meta = (
        f'<div class="rag-meta">{html.escape(answer.backend)} · {html.escape(answer.model)} · '
        f"confidence {answer.confidence:.2f}{fallback} · {answer.timings.get('total', 0):.1f} s</div>"
    )
    short = ""
    if answer.short and not answer.abstained:
        quote = html.escape(answer.short.quote)
        short = f'<div class="rag-short">Short answer: <mark class="short">{quote}</mark></div>'

    spans: dict[int, list[tuple[int, int]]] = {}
    where: dict[int, list[str]] = {}
    for c in answer.closest if answer.abstained else answer.citations:
        spans.setdefault(c.n, []).append((c.char_start, c.char_end))
        where.setdefault(c.n, []).append(c.location.label)
    shown = [(n, answer.passages[n - 1], marks, where[n]) for n, marks in sorted(spans.items())]
    head = ""
    if answer.abstained:
        head = (
            '<div class="rag-abstain">No passage supports an answer with enough confidence, so none is given.</div>'
            if answer.passages
            else '<div class="rag-abstain">No passage matched the question.</div>'
        )
        if shown:
            head += '<div class="rag-meta">The closest match, underlined, is below the confidence threshold:</div>'
        elif answer.passages:
            head += '<div class="rag-meta">The closest passages were:</div>'
        # the closest passages, the one holding the closest match first
        marked = {n for n, *_ in shown}
        shown += [
            (n, hit, [], [hit.chunk.location.label]) for n, hit in enumerate(answer.passages[:3], 1) if n not in marked
        ]
        shown = shown[:3]
    parts = [meta, short, head]
    exact = answer.short if answer.short and not answer.abstained else None
    kind = "rag-source rag-closest" if answer.abstained else "rag-source"  # a closest match is marked, not cited
    for n, hit, marks, labels in shown:
        c = hit.chunk
        inner = [(exact.char_start, exact.char_end)] if exact and exact.n == n else []
        location = "".join(
            f'<span class="where">{html.escape(label)}</span> · ' for label in dict.fromkeys(labels) if label
        )
        parts.append(
            f'<div class="{kind}" id="source-{n}"><div class="head"><span class="n">[{n}]</span>'
            f"<b>{html.escape(c.source)}</b> · {location}chars {c.start}–{c.end}</div>"
            f'<div class="text">{_highlight(c.text, c.start, marks, inner)}</div></div>'
        )
    if answer.removed:
        items = "".join(f"<li><s>{html.escape(s)}</s></li>" for s in answer.removed)
        parts.append(
            f"<details><summary>{len(answer.removed)} draft sentence(s) removed as unsupported"
            f"</summary><ul>{items}</ul></details>"
        )
    return "".join(parts)


def _size(size: int | None) -> str:
    if size is None:
        return ""
    return f"{size} B" if size < 1024 else f"{size / 1024:.1f} KB" if size < 1024 * 1024 else f"{size / 1048576:.1f} MB"


def _highlight(text: str, offset: int, spans: list[tuple[int, int]], inner: Sequence[tuple[int, int]] = ()) -> str:
    """`text` (starting at document offset `offset`) escaped, with the document spans wrapped in <mark> and
    the `inner` spans (the short answer) in <mark class="short">."""
    out, pos = [], 0
    for start, end in sorted(spans):
        a, b = max(start - offset, pos), min(end - offset, len(text))
        if a >= b:
            continue
        out += [_marked(text, pos, a, offset, inner), "<mark>", _marked(text, a, b, offset, inner), "</mark>"]
        pos = b
    out.append(_marked(text, pos, len(text), offset, inner))
    return "".join(out)


def _marked(text: str, a: int, b: int, offset: int, inner: Sequence[tuple[int, int]]) -> str:
    """text[a:b] escaped, with the parts inside `inner` (document spans) in <mark class="short">."""
    out, pos = [], a
    for start, end in sorted(inner):
        s, e = max(start - offset, pos), min(end - offset, b)
        if s >= e:
            continue
        out += [html.escape(text[pos:s]), '<mark class="short">', html.escape(text[s:e]), "</mark>"]
        pos = e
    out.append(html.escape(text[pos:b]))
    return "".join(out)


def build_ui(service: Service) -> gr.Blocks:
    """The chat page for `service` (`mount` puts it on the server's app)."""
    settings = service.settings
    backends = service.available_backends()
    allowed = sorted(SUPPORTED_SUFFIXES)

    def index_info() -> str:
        try:
            info = service.index_info()
        except RagError as exc:
            return f"**No index yet:** {exc}"
        documents, chunks = info["documents"], info["chunks"]
        return f"{documents} document{'s' * (documents != 1)}, {chunks} passage{'s' * (chunks != 1)} indexed."

    def document_rows() -> tuple[list[list[Any]], list[tuple[str, str]], list[str]]:
        """The Documents table, the removable documents (label, doc id) and every source name."""
        try:
            docs = service.documents()
        except RagError:
            return [], [], []
        rows = [
            [
                d.source,
                d.title,
                d.pages or "",
                d.chunks,
                _size(d.size),
                (d.added_at or "").replace("T", " "),
                "upload" if d.upload else "",
            ]
            for d in docs
        ]
        removable = [(d.source, d.doc_id) for d in docs if d.upload or settings.remove_any]
        return rows, removable, [d.source for d in docs]

    def refresh_documents(chosen: list[str] | None = None) -> tuple[Any, ...]:
        rows, removable, names = document_rows()
        kept = [name for name in chosen or [] if name in names]
        return (
            rows,
            gr.update(choices=removable, value=None),
            gr.update(choices=names, value=kept),
            gr.update(visible=False),
            index_info(),
        )

    def confirm_removal(doc_id: str | None) -> tuple[Any, ...]:
        if not doc_id:
            raise gr.Error("Choose a document to remove first.")
        name = next((label for label, value in document_rows()[1] if value == doc_id), doc_id)
        return gr.update(visible=True), (
            f"Remove **{name}** from the index? Its passages will no longer be "
            "searched, and the uploaded file is deleted."
        )

    def remove_document(doc_id: str | None, chosen: list[str] | None) -> tuple[Any, ...]:
        if not doc_id:
            raise gr.Error("Choose a document to remove first.")
        try:
            result = service.remove_document(doc_id)
        except RagError as exc:
            raise gr.Error(str(exc)) from None
        gr.Info(f"Removed {result['source']} ({result['chunks_removed']} passages).")
        return refresh_documents(chosen)

    def respond(
        message: str,
        history: list[dict],
        backend: str,
        k: float,
        mode: str,
        grounding: bool,
        only: list[str] | None = None,
    ) -> Iterator[tuple[Any, ...]]:
        message = (message or "").strip()
        chat = _plain(history)
        if not message:
            yield chat, "", gr.skip(), gr.skip()
            return
        turns = list(chat)
        chat += [{"role": "user", "content": message}, {"role": "assistant", "content": "…"}]
        yield chat, "", gr.skip(), gr.skip()
        answer = None
        try:
            rag = service.rag(backend, mode, grounding)
            globs = [glob.escape(name) for name in only or []]  # exact names, even with [ ] * ? in them
            stream = rag.stream(message, turns, int(k) if k else None, sources=globs or None)
            with service.limiter.slot(), contextlib.closing(stream) as items:
                draft = ""
                for item in items:
                    if isinstance(item, str):
                        draft += item
                        chat[-1] = {"role": "assistant", "content": f"{DRAFTING}\n\n{draft.strip()} ▌"}
                        yield chat, "", gr.skip(), gr.skip()
                    else:
                        answer = item
        except Busy as exc:
            gr.Warning(str(exc))
            chat[-1] = {"role": "assistant", "content": f"⏳ {exc}"}
            yield chat, "", gr.skip(), gr.skip()
            return
        except RagError as exc:
            chat[-1] = {"role": "assistant", "content": f"⚠️ {exc}"}
            yield chat, "", gr.skip(), gr.skip()
            raise gr.Error(str(exc)) from None
        chat[-1] = {"role": "assistant", "content": chat_text(answer)}
        yield chat, "", sources_html(answer), answer.to_dict()

    def retry(
        history: list[dict], backend: str, k: float, mode: str, grounding: bool, only: list[str] | None = None
    ) -> Iterator[tuple[Any, ...]]:
        chat = _plain(history)
        last = max((i for i, m in enumerate(chat) if m["role"] == "user"), default=None)
        if last is None:
            yield chat, "", gr.skip(), gr.skip()
            return
        yield from respond(chat[last]["content"], chat[:last], backend, k, mode, grounding, only)

    # gradio's idiom: a gr.Progress() default asks it for a fresh tracker per event, so nothing is shared
    def add_documents(files: list[str] | None, progress: gr.Progress = gr.Progress()) -> tuple[list[list[str]], str]:  # noqa: B008
        if not files:
            raise gr.Error("Choose one or more files first.")

        def report(i: int, n: int, name: str) -> None:
            progress((i, n), desc=f"indexing {name}", unit="files")

        results = service.add_documents([Path(f) for f in files], progress=report)
        rows = [[r.name, r.status, r.detail] for r in results]
        added = sum(r.status != "rejected" for r in results)
        return rows, f"{added} of {len(results)} files in the index. {index_info()}"

    with gr.Blocks(title="rag · cited answers", analytics_enabled=False) as demo:
        gr.Markdown(
            "## Ask your documents\nAnswers cite the passages they come from; sentences the passages "
            "do not support are removed, and when nothing is left the answer says so."
        )
        info = gr.Markdown(elem_id="index-info")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    label="Conversation",
                    height=460,
                    elem_id="chat",
                    feedback_options=None,
                    buttons=["copy"],
                    placeholder="Ask a question about the documents.",
                )
                with gr.Row():
                    question = gr.Textbox(
                        placeholder="Ask a question about the documents…",
                        show_label=False,
                        scale=5,
                        elem_id="question",
                        autofocus=True,
                        max_length=4000,
                    )
                    ask = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
                only = gr.Dropdown(
                    [],
                    value=[],
                    multiselect=True,
                    label="Search only in (empty: all documents)",
                    elem_id="source-filter",
                )
                with gr.Row():
                    retry_btn = gr.Button("↻ Retry", size="sm", elem_id="retry")
                    clear_btn = gr.Button("Clear", size="sm", elem_id="clear")
                gr.Examples([[q] for q in EXAMPLES], inputs=[question], label="Example questions")
            with gr.Column(scale=2):
                gr.Markdown("### Sources")
                sources = gr.HTML(NO_SOURCES, elem_id="sources")
                with gr.Accordion("How this answer was made", open=False):
                    trace = gr.JSON(label="answer", elem_id="trace")
        with gr.Accordion("Settings", open=False, elem_id="settings"):
            with gr.Row():
                backend = gr.Dropdown(
                    backends,
                    value=settings.backend if settings.backend in backends else backends[0],
                    label="Backend",
                    elem_id="backend",
                )
                k = gr.Slider(1, 10, value=settings.k, step=1, label="Passages (top-k)", elem_id="top-k")
                mode = gr.Radio(list(MODES), value=settings.mode, label="Retrieval", elem_id="mode")
                grounding = gr.Checkbox(
                    value=settings.grounding, label="Grounding check (drop unsupported sentences)", elem_id="grounding"
                )
        with gr.Accordion("Documents", open=False, elem_id="documents"):
            table = gr.Dataframe(
                headers=["document", "title", "pages", "passages", "size", "added (UTC)", ""],
                interactive=False,
                elem_id="doc-table",
                label="Indexed documents",
            )
            with gr.Row():
                to_remove = gr.Dropdown(
                    [],
                    value=None,
                    label="Remove an uploaded document" if not settings.remove_any else "Remove a document",
                    elem_id="doc-remove-choice",
                    scale=3,
                )
                remove_btn = gr.Button("Remove…", variant="stop", elem_id="doc-remove", scale=1)
            with gr.Column(visible=False, elem_id="doc-confirm") as confirm:
                confirm_text = gr.Markdown(elem_id="doc-confirm-text")
                with gr.Row():
                    yes = gr.Button("Yes, remove it", variant="stop", elem_id="doc-confirm-yes")
                    no = gr.Button("Cancel", elem_id="doc-confirm-no")
        with gr.Accordion("Add documents", open=False, elem_id="upload"):
            gr.Markdown(
                f"Allowed: {' '.join(allowed)}, up to {settings.max_upload_mb:g} MB each. Files are added "
                "to the index; nothing already there is removed."
            )
            files = gr.File(file_count="multiple", file_types=allowed, label="Documents", elem_id="files")
            add = gr.Button("Add to index", elem_id="add")
            results = gr.Dataframe(
                headers=["file", "result", "detail"], interactive=False, elem_id="results", label="Per-file result"
            )
            summary = gr.Markdown()

        answer_io = dict(outputs=[chatbot, question, sources, trace], concurrency_id="answer")
        options = [backend, k, mode, grounding, only]
        listing = [table, to_remove, only, confirm, info]
        question.submit(respond, [question, chatbot, *options], api_name="ask", **answer_io)
        ask.click(respond, [question, chatbot, *options], api_visibility="private", **answer_io)
        retry_btn.click(retry, [chatbot, *options], api_name="retry", **answer_io)
        clear_btn.click(
            lambda: ([], "", NO_SOURCES, None),
            None,
            [chatbot, question, sources, trace],
            queue=False,
            api_visibility="private",
        )
        chatbot.clear(lambda: (NO_SOURCES, None), None, [sources, trace], queue=False, api_visibility="private")
        add.click(
            add_documents,
            [files],
            [results, summary],
            api_name="add_documents",
            concurrency_id="index",
            concurrency_limit=1,
        ).then(refresh_documents, [only], listing, queue=False, api_visibility="private")
        remove_btn.click(confirm_removal, [to_remove], [confirm, confirm_text], queue=False, api_visibility="private")
        no.click(lambda: gr.update(visible=False), None, confirm, queue=False, api_visibility="private")
        yes.click(
            remove_document,
            [to_remove, only],
            listing,
            api_name="remove_document",
            concurrency_id="index",
            concurrency_limit=1,
        )
        demo.load(refresh_documents, None, listing, queue=False, api_visibility="private")
    return demo


def mount(app: FastAPI, service: Service, credentials: list[tuple[str, str]]) -> None:
    """Mount the chat page at `/` of the server's app (a `rag.serve.server.Page`), with the login pairs of RAG_AUTH."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry, no version check
    settings = service.settings
    demo = build_ui(service)
    # Gradio counts only events not yet started, and refuses everything at max_size=0
    demo.queue(max_size=max(1, settings.queue_size), default_concurrency_limit=settings.concurrency)
    gr.mount_gradio_app(
        app,
        demo,
        path="/",
        server_name=settings.host,
        server_port=settings.port,
        auth=credentials or None,
        auth_message="Sign in with the credentials in RAG_AUTH.",
        allowed_paths=[],
        blocked_paths=[str(Path(settings.index_dir).resolve())],
        max_file_size=int(settings.max_upload_mb * 1024 * 1024),
        enable_monitoring=False,
        ssr_mode=False,
        mcp_server=False,
        run_history=False,
        footer_links=["api", "gradio", "settings"],
        css=CSS,
    )
