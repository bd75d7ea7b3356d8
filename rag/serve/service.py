"""What the HTTP API and the chat page share: one RAG per answering setup over the live index, bounded
admission (`concurrency` answers at once, `queue_size` waiting, the rest told "busy, retry"), and uploads.

A `Service` opens each backend once per process and shares the loaded index and embedder between them,
reloading when the index on disk changes. Uploads are copied into the upload area and handed to the
incremental `Indexer`; a file it cannot use is reported and removed. No HTTP and no Gradio here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

from rag.answer.chain import RAG
from rag.answer.llm import Backend, make_backend
from rag.answer.retrieval import Retriever
from rag.errors import IndexMissing, RagError
from rag.index.catalog import DocumentInfo, list_documents
from rag.index.dense_store import StoreOptions
from rag.index.documents import SUPPORTED_SUFFIXES
from rag.index.embedding import Embedder, embedder_for
from rag.index.indexer import Indexer, source_key
from rag.index.store import IndexStore
from rag.settings import BACKENDS, Settings

__all__ = ["Busy", "LastDocument", "Limiter", "NotRemovable", "Service", "Ticket", "UnknownDocument", "UploadResult"]


class Busy(RagError):
    """Every answer slot is taken and the waiting line is full: retry later."""


class UnknownDocument(RagError):
    """No indexed document has this id."""


class NotRemovable(RagError):
    """The document is not an upload and this server may only remove uploads."""


class LastDocument(RagError):
    """Removing this document would leave the index empty."""


# -- admission: `concurrency` answers at once, `queue_size` more waiting, the rest told to retry ----------


class Ticket:
    """One admitted request: `wait()` blocks until it holds a slot; `close()` gives everything back, once."""

    def __init__(self, limiter: Limiter):
        self._limiter = limiter
        self._held = False
        self._closed = False

    def wait(self) -> None:
        self._limiter._slots.acquire()
        self._held = True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._held:
            self._limiter._slots.release()
        with self._limiter._lock:
            self._limiter.admitted -= 1


class Limiter:
    """Bounded admission shared by the API and the chat page (the local model answers one at a time)."""

    def __init__(self, concurrency: int, queue_size: int):
        self.concurrency = concurrency
        self.queue_size = queue_size
        self.admitted = 0  # answering or waiting
        self.rejected = 0
        self._slots = threading.Semaphore(concurrency)
        self._lock = threading.Lock()

    def admit(self) -> Ticket:
        """A ticket, or `Busy` at once when `concurrency + queue_size` requests are already in."""
        with self._lock:
            if self.admitted >= self.concurrency + self.queue_size:
                self.rejected += 1
                raise Busy(
                    f"The server is busy: {self.admitted} questions are being answered or waiting "
                    f"(at most {self.concurrency} at a time, {self.queue_size} waiting). "
                    "Please retry in a few seconds."
                )
            self.admitted += 1
        return Ticket(self)

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        ticket = self.admit()
        try:
            ticket.wait()
            yield
        finally:
            ticket.close()

    def stats(self) -> dict:
        admitted = self.admitted
        return {
            "answering": min(admitted, self.concurrency),
            "waiting": max(0, admitted - self.concurrency),
            "concurrency": self.concurrency,
            "queue_size": self.queue_size,
            "rejected": self.rejected,
        }


# -- the shared service -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class UploadResult:
    """What happened to one uploaded file."""

    name: str
    status: Literal["added", "updated", "unchanged", "rejected"]
    detail: str


class Service:
    """What the API and the page share: the settings, one RAG per answering setup, the limiter, uploads."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None):
        self.settings = settings
        self.limiter = Limiter(settings.concurrency, settings.queue_size)
        self.embedder = embedder or embedder_for(settings)
        self._lock = threading.RLock()
        self._upload_lock = threading.Lock()
        self._store = IndexStore(settings.index_dir, StoreOptions.from_settings(settings))
        self._version: Path | None = None
        self._retriever: Retriever | None = None
        self._backends: dict[str, Backend | None] = {}
        self._rags: dict[Settings, RAG] = {}

    def rag(self, backend: str | None = None, mode: str | None = None, grounding: bool | None = None) -> RAG:
        """The RAG for these choices: built once (sharing the loaded index and models), rebuilt after re-indexing."""
        settings = self.settings.with_overrides(backend=backend, mode=mode, grounding=grounding)
        with self._lock:
            retriever = self._current_retriever()
            rag = self._rags.get(settings)
            if rag is None:
                rag = self._rags[settings] = RAG(settings, retriever, self.backend(settings.backend))
            return rag

    def backend(self, name: str) -> Backend | None:
        with self._lock:
            if name not in self._backends:
                self._backends[name] = make_backend(self.settings.with_overrides(backend=name))
            return self._backends[name]

    def available_backends(self) -> list[str]:
        """The backends that are configured here (a hosted one needs its endpoint and key)."""
        names = []
        for name in BACKENDS:
            try:
                self.backend(name)
                names.append(name)
            except RagError:
                pass
        return names

    def _current_retriever(self) -> Retriever:
        version = self._store.current()
        if version is None:
            raise IndexMissing(f"no index at {self.settings.index_dir}: build one with `rag index` or upload documents")
        if self._retriever is None or version != self._version:
            # as RAG.open does, with the process's one embedder
            self._retriever = Retriever.open(
                self.settings.index_dir,
                self.embedder,
                self.settings.rrf_k,
                options=StoreOptions.from_settings(self.settings),
            )
            self._version = version
            self._rags.clear()
        return self._retriever

    def index_info(self) -> dict:
        with self._lock:
            retriever = self._current_retriever()
        return {
            "version": self._version.name if self._version else None,
            "documents": len(retriever.index.documents),
            "chunks": len(retriever),
        }

    def documents(self) -> list[DocumentInfo]:
        """Every indexed document (source, title, pages, chunks, size, when added, upload or not)."""
        with self._lock:
            index = self._current_retriever().index
        return list_documents(index, self.settings.uploads)

    def remove_document(self, doc_id: str) -> dict:
        """Take one document out of the index (nothing re-embedded, the swap atomic) and delete its copy when it
        is an upload. Only uploads, unless the server allows more (`remove_any`)."""
        with self._upload_lock:  # one index writer in this process; the store's lock covers other processes
            found = next((d for d in self.documents() if d.doc_id == doc_id), None)
            if found is None:
                raise UnknownDocument(f"no indexed document has id {doc_id!r}")
            if not found.upload and not self.settings.remove_any:
                raise NotRemovable(
                    f"{found.source} is not an upload: this server removes uploads only "
                    "(start it with --remove-any, or use `rag remove`)"
                )
            if len(self.documents()) == 1:
                raise LastDocument(f"{found.source} is the only document: removing it would leave the index empty")
            report = Indexer(self.settings, self.embedder).remove([doc_id])
        return {
            "id": doc_id,
            "object": "document",
            "deleted": True,
            "source": found.source,
            "chunks_removed": report.chunks_removed,
            "upload_deleted": bool(report.uploads_deleted),
            "documents": report.files_total,
            "chunks": report.chunks_total,
        }

    def warm(self) -> None:
        """Load the index, the embedder, the reader and (for `local`) the model now, so the first question is not
        slow (the reader's graph is exported on the first start)."""
        rag = self.rag()
        rag.retriever.search("warm up", k=1)
        rag.selector.reader.scores("warm up", ["warm up"])
        if rag.backend is not None and rag.backend.name == "local":
            "".join(rag.backend.stream([{"role": "user", "content": "Hi"}], 1))

    def add_documents(
        self, files: Sequence[Path], progress: Callable[[int, int, str], None] | None = None
    ) -> list[UploadResult]:
        """Copy each file into the upload area and add it to the index; a bad file is reported and undone."""
        uploads = self.settings.uploads
        results = []
        with self._upload_lock:
            uploads.mkdir(parents=True, exist_ok=True)
            for i, file in enumerate(files):
                name = _safe_name(Path(file).name)
                if progress:
                    progress(i, len(files), name)
                results.append(self._add_one(Path(file), uploads / name))
        return results

    def _add_one(self, file: Path, dest: Path) -> UploadResult:
        name = dest.name
        limit = self.settings.max_upload_mb
        if dest.suffix.lower() not in SUPPORTED_SUFFIXES:
            allowed = " ".join(sorted(SUPPORTED_SUFFIXES))
            kind = dest.suffix or "(none)"
            return UploadResult(name, "rejected", f"unsupported file type {kind}; allowed: {allowed}")
        try:
            size = file.stat().st_size
        except OSError as exc:
            return UploadResult(name, "rejected", f"cannot read the upload: {exc.strerror or exc}")
        if size > limit * 1024 * 1024:
            return UploadResult(name, "rejected", f"larger than the {limit:g} MB upload limit ({size} bytes)")
        manifest_files = self._store.read_manifest().files if self._store.current() else {}
        known = manifest_files.get(name)
        if known and Path(known["path"]).resolve() != dest.resolve():
            return UploadResult(
                name,
                "rejected",
                f"a document named {name} is already indexed from {known['path']}; rename the file to add it",
            )
        previous = dest.read_bytes() if dest.exists() else None
        shutil.copyfile(file, dest)
        try:
            # the upload area is recorded as one of the index's sources, so a plain `rag index` keeps it
            report = Indexer(self.settings, self.embedder).index([dest.parent], prune=False)
            failed = next((s.reason for s in report.files_skipped if source_key(s.path) == source_key(dest)), None)
        except RagError as exc:
            failed = str(exc)
        if failed:
            if previous is None:
                dest.unlink(missing_ok=True)
            else:
                dest.write_bytes(previous)
            return UploadResult(name, "rejected", failed)
        status = "unchanged" if not report.changed else "updated" if known else "added"
        return UploadResult(
            name,
            status,
            f"{report.chunks_embedded} chunks embedded; the index holds "
            f"{report.files_indexed} documents, {report.chunks_total} chunks",
        )


def _safe_name(name: str) -> str:
    """A plain file name for the upload area: no folders, no hidden files, no odd characters."""
    name = re.sub(r"[^\w.\- ]", "_", name).strip(" .") or "upload"
    return name[:120]
