"""Build and incrementally update an index from files: discover, load, chunk, embed, store.

Unchanged files keep their documents and chunks; a chunk whose text was embedded before reuses its
vector, so re-indexing an unchanged corpus embeds nothing. Retrieval and answering live elsewhere.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.chunking import Chunker
from rag.documents import SourceFile, discover, load
from rag.embedding import Embedder, compatible_backends
from rag.errors import DocumentError, RagError
from rag.settings import Settings
from rag.milvus_store import StoreOptions, moves_vectors
from rag.store import IndexData, IndexStore, LoadedIndex
from rag.types import Chunk, Document, IndexReport, Skipped


@dataclass(frozen=True)
class _Entry:
    """One file's state in the new version."""

    source: str
    path: str
    sha256: str
    doc: Document
    reused: bool  # same bytes and chunking as the previous version: keep its chunks


class Indexer:
    """Keeps the index at `settings.index_dir` in step with a set of files."""

    def __init__(self, settings: Settings, embedder: Embedder, whole_documents: bool = False):
        """`whole_documents` makes one chunk per document (the model sees its first 256 tokens, as in MTEB)."""
        self.settings = settings
        self.embedder = embedder
        self.store = IndexStore(settings.index_dir, StoreOptions.from_settings(settings))
        self.backend = getattr(embedder, "backend", "torch")
        self.chunking = {"size": min(settings.chunk_size, embedder.max_tokens),
                         "overlap": settings.chunk_overlap, "tokenizer": embedder.name}
        if whole_documents:
            self.chunking = {"whole_documents": True, "tokenizer": embedder.name}
        self.chunker = Chunker(embedder.token_offsets, min(settings.chunk_size, embedder.max_tokens),
                               settings.chunk_overlap)

    def index(self, paths: list[Path], rebuild: bool = False, prune: bool = True,
              progress: bool = False) -> IndexReport:
        """Make the index hold the documents under `paths`.

        With `prune`, files indexed before but no longer under `paths` are removed (the paths are the
        whole corpus); without it, the paths are added to what is there. `rebuild` ignores the old index.
        """
        started = time.perf_counter()
        files, skipped = discover(paths)
        with self.store.writer_lock():
            old = None if rebuild or self.store.current() is None else self.store.load(self.embedder.name)
            entries = self._entries(files, old, skipped, progress)
            if not prune and old is not None:
                entries = self._keep_unlisted(entries, old)
            if not entries:
                raise RagError("nothing to index: no readable documents under "
                               + ", ".join(str(p) for p in paths))
            chunks = self._chunks(entries, old)
            vectors, embedded = self._vectors(chunks, old, progress)
            old_ids = {c.id for c in old.chunks} if old else set()
            new_ids = [c.id for c in chunks]
            removed = len(old_ids - set(new_ids))
            changed = old is None or old_ids != set(new_ids) or \
                old.manifest.get("files") != self._files_manifest(entries) or \
                old.manifest.get("embedding", {}).get("backend", self.backend) != self.backend or \
                moves_vectors(self.store.options, self.store.root, old.manifest) or \
                self.store.changes_dense_index(old.manifest)
            if changed:
                self.store.write(IndexData([e.doc for e in entries], chunks, vectors, self._manifest(entries)), fresh=rebuild)
        return IndexReport(
            files_indexed=len(entries), files_updated=sum(not e.reused for e in entries), files_skipped=skipped, chunks_embedded=embedded, chunks_removed=removed,
            chunks_total=len(chunks), seconds=round(time.perf_counter() - started, 3), changed=changed,
        )

    def _entries(self, files: list[SourceFile], old: LoadedIndex | None, skipped: list[Skipped],
                 progress: bool) -> list[_Entry]:
        previous = old.manifest.get("files", {}) if old else {}
        old_docs = {d.id: d for d in old.documents} if old else {}
        limit = int(self.settings.max_file_mb * 1024 * 1024)
        entries = []
        for file in _progress(files, progress, "reading"):
            prev = previous.get(file.source)
            try:
                size = file.path.stat().st_size
                if size > limit:
                    raise DocumentError(f"larger than the {self.settings.max_file_mb:g} MB limit ({size} bytes)")
                data = file.path.read_bytes()
                digest = hashlib.sha256(data).hexdigest()
                if prev and prev["sha256"] == digest and prev["doc_id"] in old_docs:
                    entries.append(_Entry(file.source, str(file.path), digest, old_docs[prev["doc_id"]], True))
                else:
                    entries.append(_Entry(file.source, str(file.path), digest, load(file, data), False))
            except (DocumentError, OSError) as exc:
                reason = str(exc) if isinstance(exc, DocumentError) else f"cannot read: {exc.strerror or exc}"
                if prev and prev["doc_id"] in old_docs:  # lose nothing: keep the last good version
                    reason += " (kept the previously indexed version)"
                    entries.append(_Entry(file.source, prev["path"], prev["sha256"], old_docs[prev["doc_id"]], True))
                skipped.append(Skipped(str(file.path), reason))
        return entries

    def _keep_unlisted(self, entries: list[_Entry], old: LoadedIndex) -> list[_Entry]:
        listed = {e.source for e in entries}
        old_docs = {d.id: d for d in old.documents}
        kept = [_Entry(source, f["path"], f["sha256"], old_docs[f["doc_id"]], True)
                for source, f in old.manifest.get("files", {}).items() if source not in listed]
        return sorted(entries + kept, key=lambda e: e.source)

    def _chunks(self, entries: list[_Entry], old: LoadedIndex | None) -> list[Chunk]:
        """Chunks of every entry: reused from the old index where the file and the chunking are unchanged."""
        same_chunking = old is not None and old.manifest.get("chunking") == self.chunking
        old_chunks: dict[str, list[Chunk]] = {}
        for c in old.chunks if old else []:
            old_chunks.setdefault(c.doc_id, []).append(c)
        keep = [e.reused and same_chunking and e.doc.id in old_chunks for e in entries]
        whole = bool(self.chunking.get("whole_documents"))
        fresh = iter(self.chunker.chunk_many([e.doc for e, k in zip(entries, keep, strict=True) if not k])
                     if not whole else [])
        chunks: list[Chunk] = []
        for e, k in zip(entries, keep, strict=True):
            if k:
                chunks.extend(old_chunks[e.doc.id])
            elif whole:
                chunks.append(Chunk.create(e.doc, 0, len(e.doc.text)))
            else:
                chunks.extend(next(fresh))
        return chunks

    def _vectors(self, chunks: list[Chunk], old: LoadedIndex | None, progress: bool) -> tuple[np.ndarray, int]:
        """Vectors for `chunks`, embedding only texts the old index has no vector for."""
        vectors = np.zeros((len(chunks), self.embedder.dim), dtype=np.float32)
        known: dict[str, int] = {}
        reusable = old is not None and old.chunks and \
            compatible_backends(old.manifest.get("embedding", {}).get("backend"), self.backend)
        old_vectors = old.vectors() if reusable else None  # never mix int8 and fp32 vectors in one index
        if old_vectors is not None:
            known = {c.text: row for row, c in enumerate(old.chunks)}
        todo: dict[str, list[int]] = {}
        for row, c in enumerate(chunks):
            if c.text in known:
                vectors[row] = old_vectors[known[c.text]]
            else:
                todo.setdefault(c.text, []).append(row)
        if todo:
            texts = list(todo)
            fresh = self.embedder.embed(texts, progress=progress and len(texts) > 64)
            for text, vector in zip(texts, fresh, strict=True):
                vectors[todo[text]] = vector
        return vectors, len(todo)

    def _files_manifest(self, entries: list[_Entry]) -> dict:
        return {e.source: {"sha256": e.sha256, "doc_id": e.doc.id, "path": e.path} for e in entries}

    def _manifest(self, entries: list[_Entry]) -> dict:
        return {
            "embedding": {"model": self.embedder.name, "dim": self.embedder.dim, "backend": self.backend},
            "chunking": self.chunking,
            "files": self._files_manifest(entries),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }


def _progress(items: list, enabled: bool, desc: str):
    if not enabled or len(items) < 20:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="file")
