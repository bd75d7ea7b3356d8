"""Build and incrementally update an index from files: discover, load, chunk, embed, store.

The index remembers its sources (the files and folders it was built from) in its manifest; a run re-syncs
the sources it is given, or all of them, and keeps the others. Unchanged files keep their documents and
chunks; a chunk whose text was embedded before reuses its vector, so re-indexing an unchanged corpus embeds
nothing. A large index is updated in place: only new and changed files are read, chunked and embedded (their
old chunks' vectors reused by text), and the store adds and drops just those. Dropping a source is explicit
(`Indexer.remove`). Retrieval and answering live elsewhere.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.errors import DocumentError, IndexMismatch, RagError
from rag.index.chunking import Chunker
from rag.index.dense_store import StoreOptions
from rag.index.documents import SourceFile, discover, load
from rag.index.embedding import Embedder, compatible_backends
from rag.index.manifest import Manifest
from rag.index.store import IndexData, IndexStore, LoadedIndex
from rag.settings import Settings
from rag.text import SEGMENTER
from rag.types import Chunk, Document, IndexReport, RemoveReport, Skipped


def source_key(path: Path | str) -> str:
    """How a source or file path is recorded: relative to the current directory when inside it, else absolute."""
    absolute = Path(os.path.normpath(Path(path).absolute()))
    try:
        return absolute.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return absolute.as_posix()


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


@dataclass(frozen=True)
class _Entry:
    """One file's state in the new version."""

    source: str
    path: str
    sha256: str
    doc_id: str
    doc: Document | None  # None: the document as the index holds it (read from there only when needed)
    reused: bool  # same bytes and chunking as the previous version: keep its chunks
    root: str = ""  # the recorded source (file or folder) it was found under
    size: int | None = None  # bytes on disk when it was read
    added_at: str | None = None  # when a file of this name first entered the index


class Indexer:
    """Keeps the index at `settings.index_dir` in step with a set of files."""

    def __init__(self, settings: Settings, embedder: Embedder, whole_documents: bool = False):
        """`whole_documents` makes one chunk per document (the model sees its first 256 tokens, as in MTEB)."""
        self.settings = settings
        self.embedder = embedder
        self.store = IndexStore(settings.index_dir, StoreOptions.from_settings(settings))
        self.backend = getattr(embedder, "backend", "torch")
        self.chunking = {
            "size": min(settings.chunk_size, embedder.max_tokens),
            "overlap": settings.chunk_overlap,
            "tokenizer": embedder.name,
            "segmenter": SEGMENTER,
        }
        if whole_documents:
            self.chunking = {"whole_documents": True, "tokenizer": embedder.name}
        self.chunker = Chunker(
            embedder.token_offsets, min(settings.chunk_size, embedder.max_tokens), settings.chunk_overlap
        )

    def sources(self) -> list[str]:
        """The sources the index was built from (as recorded: relative to the directory it was run in, when
        inside it); [] for a new index or one whose manifest cannot be read."""
        if self.store.current() is None:
            return []
        try:
            return _recorded(self.store.read_manifest())[0]
        except IndexMismatch:  # another format version: its sources still say what a rebuild should re-read
            try:
                return _recorded(Manifest.parse(self.store.current()))[0]
            except (RagError, OSError, ValueError, KeyError, TypeError):
                return []
        except RagError:
            return []

    def index(
        self, paths: Sequence[Path] | None = None, rebuild: bool = False, prune: bool = True, progress: bool = False
    ) -> IndexReport:
        """Re-sync `paths` (files or folders; None: every recorded source) and record them as sources.

        Sources not named are kept as they are. Within a re-synced source the index mirrors the disk: new
        files are added, changed ones re-embedded, deleted ones dropped (`prune=False` keeps those). A recorded
        source that no longer exists is kept, not dropped, and listed in `sources_missing`. `rebuild` ignores
        the old vectors and chunks and re-reads every source.
        """
        started = time.perf_counter()
        given = [source_key(p) for p in paths] if paths is not None else None
        absent = [str(p) for p in paths or [] if not Path(p).exists()]
        if absent:
            raise RagError(f"no such file or folder: {', '.join(absent)}")
        with self.store.writer_lock():
            upgraded_from = None if rebuild else self._older_format()
            rebuild = rebuild or upgraded_from is not None
            previous = self._previous(rebuild)
            old = None if rebuild else previous
            recorded, previous_files = _recorded(previous.manifest) if previous else ([], {})
            if rebuild and previous is None:
                recorded = self.sources()  # an unreadable index being rebuilt: its manifest may still say
            sync = list(dict.fromkeys((recorded if given is None or rebuild else []) + (given or [])))
            if not sync:
                raise RagError(
                    f"nothing to index: the index at {self.settings.index_dir} records no sources; "
                    "give a file or folder"
                )
            sources = list(dict.fromkeys(recorded + sync))
            missing = [s for s in sync if not Path(s).exists()]
            synced = [s for s in sync if s not in missing]
            entries, skipped = self._sync(synced, previous, previous_files, rebuild, prune, progress)
            if not entries:
                raise RagError("nothing to index: no readable documents under " + ", ".join(synced or sync))
            manifest = self._manifest(entries, sources)
            if old is not None and self.store.updates_in_place(old.manifest, manifest):
                embedded, removed, total, changed = self._update(old, entries, manifest, progress)
            else:
                embedded, removed, total, changed = self._write(previous, old, entries, manifest, rebuild, progress)
        return IndexReport(
            files_indexed=len(entries),
            files_updated=sum(not e.reused for e in entries),
            files_skipped=skipped,
            chunks_embedded=embedded,
            chunks_removed=removed,
            chunks_total=total,
            seconds=round(time.perf_counter() - started, 3),
            changed=changed,
            sources=sources,
            sources_missing=missing,
            upgraded_from=upgraded_from,
        )

    def _older_format(self) -> int | None:
        """The format of a live version this code cannot read, when a rebuild loses nothing (every source it
        records is still on disk); None otherwise. An index with a source gone keeps the IndexMismatch error."""
        if self.store.current() is None:
            return None
        try:
            self.store.read_manifest()
            return None
        except IndexMismatch:  # read_manifest parsed it: only the format version is another
            old = Manifest.parse(self.store.current())
            sources = _recorded(old)[0]
            if sources and all(Path(s).exists() for s in sources):
                return old.format_version
            raise
        except RagError:
            return None

    def _write(
        self,
        previous: LoadedIndex | None,
        old: LoadedIndex | None,
        entries: list[_Entry],
        manifest: dict,
        rebuild: bool,
        progress: bool,
    ) -> tuple[int, int, int, bool]:
        """The whole new version, written whole (a new or small index, a rebuild, new chunking or embedder)."""
        stored = {d.id: d for d in previous.documents} if any(e.doc is None for e in entries) else {}
        entries = [e if e.doc is not None else dataclasses.replace(e, doc=stored[e.doc_id]) for e in entries]
        chunks = self._chunks(entries, old)
        vectors, embedded = self._vectors(chunks, old, progress)
        old_ids = {c.id for c in old.chunks} if old else set()
        new_ids = [c.id for c in chunks]
        removed = len(old_ids - set(new_ids))
        changed = (
            old is None
            or old_ids != set(new_ids)
            or self._manifest_changed(old, manifest)
            or (old.manifest.backend or self.backend) != self.backend
            or self.store.moves_vectors(old.manifest)
        )
        if changed:
            self.store.write(IndexData([e.doc for e in entries], chunks, vectors, manifest), fresh=rebuild)
        return embedded, removed, len(chunks), changed

    def _update(
        self, old: LoadedIndex, entries: list[_Entry], manifest: dict, progress: bool
    ) -> tuple[int, int, int, bool]:
        """Only what changed, on a large index: the documents of new and changed files are chunked and embedded
        (reusing the vectors of their previous versions' chunks with the same text), the documents no file holds
        any more are dropped, and the store writes just that; the rest is neither read nor rewritten."""
        stored = set(old.document_ids())
        new_docs = list({e.doc.id: e.doc for e in entries if e.doc is not None and e.doc.id not in stored}.values())
        dropped = stored - {e.doc_id for e in entries}
        if self.chunking.get("whole_documents"):
            chunks = [Chunk.create(d, 0, len(d.text)) for d in new_docs]
        else:
            chunks = [c for part in self.chunker.chunk_many(new_docs) for c in part]
        files = _recorded(old.manifest)[1]
        replaced = {files[e.source]["doc_id"] for e in entries if e.doc is not None and e.source in files}
        rows = old.rows_of_documents(replaced & dropped)
        vectors, embedded = self._embed(
            chunks, [c.text for c in old.chunks_by_rows(rows)], old.vector_files.rows(rows), progress
        )
        counts = old.chunk_counts()
        removed = sum(counts.get(d, 0) for d in dropped)
        changed = bool(chunks or new_docs or dropped) or self._manifest_changed(old, manifest)
        if changed:
            self.store.update(new_docs, chunks, vectors, dropped, manifest)
        return embedded, removed, old.n_chunks - removed + len(chunks), changed

    def _manifest_changed(self, old: LoadedIndex, manifest: dict) -> bool:
        return old.manifest.info.get("files") != manifest["files"] or old.manifest.sources != manifest["sources"]

    def _previous(self, rebuild: bool) -> LoadedIndex | None:
        """The live version; for a rebuild only its documents matter, and an unreadable one is no obstacle."""
        if self.store.current() is None:
            return None
        if not rebuild:
            return self.store.load(self.embedder.name)
        try:
            return self.store.load()
        except RagError:
            return None

    def _sync(
        self,
        roots: list[str],
        previous: LoadedIndex | None,
        previous_files: dict[str, dict],
        rebuild: bool,
        prune: bool,
        progress: bool,
    ) -> tuple[list[_Entry], list[Skipped]]:
        """The new version's files: those of `roots` as on disk, and every other indexed file as it was."""
        stored = set(previous.document_ids()) if previous else set()
        kept: dict[str, _Entry] = {}
        for source, f in previous_files.items():  # files of sources not re-synced now (or pruned files kept)
            if f["doc_id"] in stored and (f["root"] not in roots or not prune):
                kept[source] = _Entry(
                    source,
                    f["path"],
                    f["sha256"],
                    f["doc_id"],
                    None,
                    not rebuild,
                    f["root"],
                    f.get("size"),
                    f.get("added_at"),
                )
        found: dict[str, _Entry] = {}
        skipped: list[Skipped] = []
        for root in roots:
            files, skips = discover([Path(root)])
            skipped += skips
            owner = {}
            for file in files:
                holder = found.get(file.source) or kept.get(file.source)
                if holder is not None and holder.root != root:
                    skipped.append(
                        Skipped(
                            str(file.path), f"another file is already indexed as {file.source} (from {holder.root})"
                        )
                    )
                else:
                    owner[file.source] = file
            for entry in self._entries(
                list(owner.values()), previous if not rebuild else None, previous_files, skipped, progress, root
            ):
                found[entry.source] = entry
                kept.pop(entry.source, None)
        return sorted([*kept.values(), *found.values()], key=lambda e: e.source), skipped

    def remove(self, targets: Sequence[Path | str]) -> RemoveReport:
        """Drop recorded sources, or indexed files and folders, from the index; nothing is re-embedded.

        A target matches a recorded source (or a folder holding sources), an indexed file's path or a folder
        above it, an indexed document's source name as search shows it, or its doc id. Files on disk are left
        alone, except copies in the upload area (`settings.uploads`), which the server owns: they are deleted
        once the new version is live. A removed file still inside a recorded source comes back at the next
        `index()` (`still_in_sources`).
        """
        started = time.perf_counter()
        with self.store.writer_lock():
            old = self.store.load()  # vectors are reused as they are: any embedder will do
            recorded, files = _recorded(old.manifest)
            drop_sources: set[str] = set()
            drop_files: set[str] = set()
            unmatched = []
            for target in targets:
                key = source_key(target)
                hit_sources = {s for s in recorded if _inside(s, key)}
                hit_files = {
                    name
                    for name, f in files.items()
                    if str(target) in (name, f["doc_id"]) or _inside(f["path"], key) or f["root"] in hit_sources
                }
                if not hit_sources and not hit_files:
                    unmatched.append(str(target))
                drop_sources |= hit_sources
                drop_files |= hit_files
            if unmatched:
                raise RagError(
                    f"nothing in the index at {self.settings.index_dir} matches {', '.join(unmatched)} "
                    f"(its sources: {', '.join(recorded) or 'none recorded'})"
                )
            sources = [s for s in recorded if s not in drop_sources]
            kept_files = {name: f for name, f in files.items() if name not in drop_files}
            if not kept_files:
                raise RagError(
                    f"removing {', '.join(map(str, targets))} would leave the index at "
                    f"{self.settings.index_dir} empty: delete that folder to start over"
                )
            kept_docs = {f["doc_id"] for f in kept_files.values()}
            dropped = {d for d in old.document_ids() if d not in kept_docs}
            counts = old.chunk_counts()
            removed = sum(counts.get(d, 0) for d in dropped)
            manifest = {"files": kept_files, "sources": sources, "created_at": _now()}
            changed = bool(drop_files or drop_sources)
            deleted = []
            if changed:
                self.store.remove(dropped, manifest)  # the rest of the index is neither read nor re-embedded
                deleted = self._delete_uploads(files[n]["path"] for n in drop_files)
        returning = sorted(
            files[n]["path"]
            for n in drop_files
            if any(_inside(files[n]["path"], s) for s in sources) and Path(files[n]["path"]).exists()
        )
        return RemoveReport(
            sources_removed=sorted(drop_sources),
            files_removed=sorted(drop_files),
            chunks_removed=removed,
            files_total=len(kept_files),
            chunks_total=old.n_chunks - removed,
            sources=sources,
            still_in_sources=returning,
            uploads_deleted=deleted,
            seconds=round(time.perf_counter() - started, 3),
            changed=changed,
        )

    def _delete_uploads(self, paths) -> list[str]:
        """Delete the upload-area copies among `paths` (called only after the index no longer holds them)."""
        uploads = Path(self.settings.uploads).resolve()
        deleted = []
        for path in sorted(paths):
            if Path(path).resolve().is_relative_to(uploads) and Path(path).is_file():
                Path(path).unlink()
                deleted.append(path)
        return deleted

    def _entries(
        self,
        files: list[SourceFile],
        old: LoadedIndex | None,
        previous: dict[str, dict],
        skipped: list[Skipped],
        progress: bool,
        root: str,
    ) -> list[_Entry]:
        """Entries for the files found under `root`: reused where the bytes are unchanged."""
        old_docs = set(old.document_ids()) if old else set()
        limit = int(self.settings.max_file_mb * 1024 * 1024)
        entries = []
        now = _now()
        for file in _progress(files, progress, "reading"):
            prev = previous.get(file.source)
            added = (prev or {}).get("added_at") or now
            try:
                size = file.path.stat().st_size
                if size > limit:
                    raise DocumentError(f"larger than the {self.settings.max_file_mb:g} MB limit ({size} bytes)")
                data = file.path.read_bytes()
                digest = hashlib.sha256(data).hexdigest()
                path = source_key(file.path)
                if prev and prev["sha256"] == digest and prev["doc_id"] in old_docs:
                    entries.append(_Entry(file.source, path, digest, prev["doc_id"], None, True, root, size, added))
                else:
                    doc = load(file, data)
                    entries.append(_Entry(file.source, path, digest, doc.id, doc, False, root, size, added))
            except (DocumentError, OSError) as exc:
                reason = str(exc) if isinstance(exc, DocumentError) else f"cannot read: {exc.strerror or exc}"
                if prev and prev["doc_id"] in old_docs:  # lose nothing: keep the last good version
                    reason += " (kept the previously indexed version)"
                    entries.append(
                        _Entry(
                            file.source,
                            prev["path"],
                            prev["sha256"],
                            prev["doc_id"],
                            None,
                            True,
                            root,
                            prev.get("size"),
                            added,
                        )
                    )
                skipped.append(Skipped(str(file.path), reason))
        return entries

    def _chunks(self, entries: list[_Entry], old: LoadedIndex | None) -> list[Chunk]:
        """Chunks of every entry: reused from the old index where the file and the chunking are unchanged."""
        same_chunking = old is not None and old.manifest.chunking == self.chunking
        old_chunks: dict[str, list[Chunk]] = {}
        for c in old.chunks if old else []:
            old_chunks.setdefault(c.doc_id, []).append(c)
        keep = [e.reused and same_chunking and e.doc.id in old_chunks for e in entries]
        whole = bool(self.chunking.get("whole_documents"))
        fresh = iter(
            self.chunker.chunk_many([e.doc for e, k in zip(entries, keep, strict=True) if not k]) if not whole else []
        )
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
        reusable = old is not None and old.chunks and compatible_backends(old.manifest.backend, self.backend)
        if not reusable:  # never mix int8 and fp32 vectors in one index
            return self._embed(chunks, [], np.zeros((0, self.embedder.dim), dtype=np.float32), progress)
        return self._embed(chunks, [c.text for c in old.chunks], old.vectors(), progress)

    def _embed(
        self, chunks: list[Chunk], known_texts: list[str], known_vectors: np.ndarray, progress: bool
    ) -> tuple[np.ndarray, int]:
        """Vectors for `chunks`: a text among `known_texts` takes its known vector, the rest are embedded."""
        vectors = np.zeros((len(chunks), self.embedder.dim), dtype=np.float32)
        known = {text: row for row, text in enumerate(known_texts)}
        todo: dict[str, list[int]] = {}
        for row, c in enumerate(chunks):
            if c.text in known:
                vectors[row] = known_vectors[known[c.text]]
            else:
                todo.setdefault(c.text, []).append(row)
        if todo:
            texts = list(todo)
            fresh = self.embedder.embed(texts, progress=progress and len(texts) > 64)
            for text, vector in zip(texts, fresh, strict=True):
                vectors[todo[text]] = vector
        return vectors, len(todo)

    def _files_manifest(self, entries: list[_Entry]) -> dict:
        return {
            e.source: {
                "sha256": e.sha256,
                "doc_id": e.doc_id,
                "path": e.path,
                "root": e.root,
                "size": e.size,
                "added_at": e.added_at,
            }
            for e in entries
        }

    def _manifest(self, entries: list[_Entry], sources: list[str]) -> dict:
        return {
            "embedding": {"model": self.embedder.name, "dim": self.embedder.dim, "backend": self.backend},
            "chunking": self.chunking,
            "sources": sources,
            "files": self._files_manifest(entries),
            "created_at": _now(),
        }


def _recorded(manifest: Manifest) -> tuple[list[str], dict[str, dict]]:
    """The manifest's sources and files, each file with the source it belongs to.

    An index written before sources were recorded gets them inferred from its files: the folder a file was
    found under (its path without its source name), so `seeds/` and `index/uploads/` come back as sources.
    """
    files = {}
    for name, f in manifest.files.items():
        root = f.get("root")
        if root is None:
            path = f["path"]
            root = source_key(path[: -len(name) - 1] if path.endswith("/" + name) else Path(path).parent)
        files[name] = {**f, "root": root}
    sources = manifest.sources
    if sources is None:
        sources = sorted({f["root"] for f in files.values()})
    return list(sources), files


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _progress(items: list, enabled: bool, desc: str):
    if not enabled or len(items) < 20:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="file")
