"""Dense vectors in a Milvus collection (Milvus Lite, a Milvus server or a cluster) instead of the FAISS file.

The local index directory stays the source of truth: documents, chunks, the bm25s index and the manifest are
versioned there as always. The collection holds one row per chunk, keyed by chunk id (vector, doc id, source,
char span, text, text sha256), and outlives versions: a write upserts the chunks the live version lacks
*before* the new version is swapped in and deletes the chunks it dropped *after*, so every chunk of the live
version is always in the collection (rows of other versions may be too; searches skip them). The rest of rag
sees `MilvusStore`, a rag.index.dense_store.DenseStore; where the server has Milvus's English analyzer, BM25
runs there too (`MilvusFullText`), otherwise on the local bm25s index. pymilvus is imported lazily.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from rag.errors import ConfigError, IndexCorrupt, IndexMismatch, MissingDependency, StoreError, needs_extra

if TYPE_CHECKING:
    from rag.index.dense import VectorFiles
    from rag.index.dense_store import StoreOptions
    from rag.index.manifest import Manifest
    from rag.types import Chunk

INDEX_TYPES = ("FLAT", "HNSW", "IVF_FLAT", "AUTOINDEX")
LITE_FILE = "milvus.db"  # default Milvus Lite location, inside the index root (beside versions/)
ENGLISH = {"type": "english"}  # Milvus's analyzer: standard tokenizer, lowercase, English stop words and stemmer
MAX_TOPK = 16384  # Milvus's limit on one search
MAX_TEXT_BYTES = 65535  # Milvus's VARCHAR limit; longer chunk texts (whole-document mode) are cut in the collection
BATCH = 512  # rows per upsert / get request
REBUILD_HINT = "rebuild it with `rag index --rebuild`"


def full_text_analyzer(options: StoreOptions) -> dict | None:
    """The full-text analyzer the options ask for: Milvus's English one, none, or analyzer params as JSON."""
    if not options.full_text:
        return None
    if options.full_text == "english":
        return dict(ENGLISH)
    return json.loads(options.full_text)


def is_remote(uri: str) -> bool:
    return "://" in uri


def public_uri(uri: str) -> str:
    """The URI without credentials (user:password@), as it may be shown and recorded."""
    if not is_remote(uri):
        return uri
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def record_uri(uri: str, root: Path) -> str:
    """How the manifest records `uri`: a Lite folder inside the index relative to it (the index stays movable)."""
    if not uri:
        return LITE_FILE
    if is_remote(uri):
        return public_uri(uri)
    path = Path(uri).resolve()
    try:
        return path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def resolve_uri(recorded: str, root: Path) -> str:
    if is_remote(recorded):
        return recorded
    path = Path(recorded or LITE_FILE)
    return str(path if path.is_absolute() else (root / path).resolve())


def collection_name(root: Path, model: str) -> str:
    """One collection per index directory and embedding model (Milvus names: letters, digits, underscores)."""
    key = f"{socket.gethostname()}|{root.resolve()}|{model}"
    return "rag_" + hashlib.sha256(key.encode()).hexdigest()[:20]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """pymilvus and milvus_lite log every failed RPC with a traceback; the caller turns it into one message."""
    loggers = [logging.getLogger(name) for name in ("pymilvus", "milvus_lite", "grpc._server")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


@contextlib.contextmanager
def _errors(uri: str, action: str) -> Iterator[None]:
    """Map pymilvus/gRPC failures to a StoreError that says where and what to check."""
    try:
        with _quiet():
            yield
    except (IndexCorrupt, IndexMismatch, StoreError):
        raise
    except Exception as exc:  # pymilvus raises MilvusException subclasses, gRPC errors and plain OSErrors
        if type(exc).__module__.split(".")[0] not in ("pymilvus", "grpc", "milvus_lite") and not isinstance(
            exc, OSError
        ):
            raise
        message = getattr(exc, "message", None) or str(exc).splitlines()[0]
        if action != "connect to":
            hint = "see the Milvus server's log" if is_remote(uri) else f"{REBUILD_HINT} if it persists"
        elif is_remote(uri):
            hint = "check --milvus-uri / RAG_MILVUS_URI, RAG_MILVUS_TOKEN and that the server is up"
        else:
            hint = (
                "Milvus Lite serves one process at a time: is another `rag` process using it? "
                "Use a Milvus server for concurrent readers and writers"
            )
        raise StoreError(f"cannot {action} Milvus at {public_uri(uri)} ({message}): {hint}") from None


def connect(uri: str, token: str = "", timeout: float = 30.0):
    """A MilvusClient for `uri`: a local folder (Milvus Lite, started in this process) or http(s)://host:port."""
    with needs_extra("milvus"):
        from pymilvus import MilvusClient
    if not is_remote(uri):
        if importlib.util.find_spec("milvus_lite") is None:  # imported by pymilvus when it starts Milvus Lite
            raise MissingDependency("milvus_lite", "milvus")
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
    with _errors(uri, "connect to"):
        return MilvusClient(uri=uri, token=token, timeout=timeout)


class MilvusCollection:
    """One index's collection: created with the chunk schema, written by chunk id, searched by vector or text."""

    def __init__(self, client, name: str, uri: str):
        self.client = client
        self.name = name
        self.uri = uri

    def exists(self) -> bool:
        """Whether the collection exists; an existing one is loaded for search (a server keeps it loaded)."""
        with _errors(self.uri, "list collections of"):
            if not self.client.has_collection(self.name):
                return False
        with _errors(self.uri, f"load collection {self.name} of"):
            state = self.client.get_load_state(self.name).get("state")
            if getattr(state, "name", str(state)) != "Loaded":
                self.client.load_collection(self.name)
        return True

    def properties(self) -> dict:
        with _errors(self.uri, f"describe collection {self.name} of"):
            info = self.client.describe_collection(self.name)
        props = dict(info.get("properties") or {})
        for f in info.get("fields", []):
            if f.get("name") == "vector":
                props["dim"] = int(f.get("params", {}).get("dim", 0))
        return props

    def create(self, dim: int, model: str, index_type: str, analyzer: dict | None) -> dict | None:
        """Create the collection; with `analyzer`, try BM25 full-text search first. Returns the analyzer used."""
        if analyzer is not None:
            try:
                with _quiet():
                    self._create(dim, model, index_type, analyzer)
                return analyzer
            except Exception as exc:  # the server lacks full-text search or this analyzer: BM25 stays local
                if type(exc).__module__.split(".")[0] != "pymilvus":
                    raise
        with _errors(self.uri, f"create collection {self.name} in"):
            self._create(dim, model, index_type, None)
        return None

    def _create(self, dim: int, model: str, index_type: str, analyzer: dict | None) -> None:
        from pymilvus import DataType, Function, FunctionType

        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=64)
        schema.add_field("source", DataType.VARCHAR, max_length=4096)
        schema.add_field("char_start", DataType.INT64)
        schema.add_field("char_end", DataType.INT64)
        text = {"enable_analyzer": True, "analyzer_params": analyzer} if analyzer else {}
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT_BYTES, **text)
        schema.add_field("text_sha256", DataType.VARCHAR, max_length=64)
        index = self.client.prepare_index_params()
        params = {"HNSW": {"M": 16, "efConstruction": 200}, "IVF_FLAT": {"nlist": 1024}}.get(index_type, {})
        index.add_index("vector", index_type=index_type, metric_type="IP", params=params)
        if analyzer:
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(
                Function(
                    name="bm25",
                    function_type=FunctionType.BM25,
                    input_field_names=["text"],
                    output_field_names=["sparse"],
                )
            )
            index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        props = {
            "rag.model": model,
            "rag.dim": str(dim),
            "rag.index_type": index_type,
            "rag.full_text": json.dumps(analyzer),
        }
        self.client.create_collection(
            self.name, schema=schema, index_params=index, consistency_level="Strong", properties=props
        )

    def flush(self) -> None:
        """Seal what was written into indexed segments (searching unsealed rows is brute force, ~10x slower)."""
        with _errors(self.uri, f"flush {self.name} at"):
            self.client.flush(self.name)

    def drop(self) -> None:
        with _errors(self.uri, f"drop collection {self.name} of"):
            self.client.drop_collection(self.name)

    def count(self) -> int:
        with _errors(self.uri, f"count the rows of {self.name} in"):
            return int(self.client.query(self.name, filter="", output_fields=["count(*)"])[0]["count(*)"])

    def upsert(self, chunks: Sequence, vectors: np.ndarray, rows: Sequence[int]) -> None:
        for start in range(0, len(rows), BATCH):
            batch = []
            for row in rows[start : start + BATCH]:
                c = chunks[row]
                batch.append(
                    {
                        "id": c.id,
                        "vector": vectors[row].tolist(),
                        "doc_id": c.doc_id,
                        "source": c.source.encode()[:4096].decode("utf-8", "ignore"),
                        "char_start": c.start,
                        "char_end": c.end,
                        "text": c.text.encode()[:MAX_TEXT_BYTES].decode("utf-8", "ignore"),
                        "text_sha256": hashlib.sha256(c.text.encode()).hexdigest(),
                    }
                )
            with _errors(self.uri, f"upsert into {self.name} at"):
                self.client.upsert(self.name, batch)

    def delete(self, ids: Sequence[str]) -> None:
        ids = list(ids)
        for start in range(0, len(ids), BATCH):
            with _errors(self.uri, f"delete from {self.name} at"):
                self.client.delete(self.name, ids=ids[start : start + BATCH])

    def ids(self) -> Iterator[str]:
        """Every chunk id in the collection (used only to clean up after an interrupted write)."""
        with _errors(self.uri, f"list the ids of {self.name} in"):
            it = self.client.query_iterator(self.name, batch_size=4096, filter="", output_fields=["id"])
            try:
                while batch := it.next():
                    yield from (r["id"] for r in batch)
            finally:
                it.close()

    def vectors(self, ids: Sequence[str]) -> dict[str, list[float]]:
        out = {}
        for start in range(0, len(ids), BATCH):
            with _errors(self.uri, f"read vectors from {self.name} at"):
                for r in self.client.get(
                    self.name, ids=list(ids[start : start + BATCH]), output_fields=["id", "vector"]
                ):
                    out[r["id"]] = r["vector"]
        return out

    def search(
        self, data: list, limit: int, field_name: str, params: dict, sources: Sequence[str] | None = None
    ) -> list[list[tuple[str, float]]]:
        """Nearest rows; with `sources`, only rows whose `source` field is one of them (a filter expression)."""
        # string literals as JSON writes them (quotes and backslashes escaped); Milvus Lite has no filter templates
        where = {"filter": f"source in {json.dumps(list(sources), ensure_ascii=False)}"} if sources else {}
        with _errors(self.uri, f"search {self.name} at"):
            result = self.client.search(
                self.name,
                data=data,
                anns_field=field_name,
                limit=limit,
                output_fields=["id"],
                search_params=params,
                **where,
            )
        return [[(h["id"], float(h["distance"])) for h in hits] for hits in result]


def _search_params(index_type: str, limit: int) -> dict:
    params = {"metric_type": "IP"}
    if index_type == "HNSW":
        params["params"] = {"ef": max(64, limit)}
    elif index_type == "IVF_FLAT":
        params["params"] = {"nprobe": 32}
    return params


class _RowMapped:
    """Search that maps Milvus hits to this version's chunk rows, skipping rows of other versions."""

    def __init__(self, collection: MilvusCollection, ids: Sequence[str], slack: int):
        self.collection = collection
        self._rows = {chunk_id: row for row, chunk_id in enumerate(ids)}
        self.ntotal = len(self._rows)
        self.slack = max(0, slack)

    def _ranked(
        self, query, n: int, field_name: str, params, score=float, sources: Sequence[str] | None = None
    ) -> list[tuple[int, float]]:
        """The top `n` (row, score) of this version, ties broken by row as FAISS does."""
        limit = min(n + self.slack, MAX_TOPK)
        while True:
            hits = self.collection.search([query], limit, field_name, params(limit), sources)[0]
            kept = [(self._rows[i], score(s)) for i, s in hits if i in self._rows]
            if len(kept) >= n or len(hits) < limit or limit >= MAX_TOPK:
                break
            limit = min(2 * limit, MAX_TOPK)  # rows of other versions crowded ours out: look deeper
        kept.sort(key=lambda rs: (-rs[1], rs[0]))
        return kept[:n]


class MilvusDense(_RowMapped):
    """The part of faiss.Index retrieval and the indexer use (`search`, `ntotal`, `d`, `reconstruct_n`)."""

    def __init__(
        self, collection: MilvusCollection, ids: Sequence[str], dim: int, slack: int = 0, index_type: str = "FLAT"
    ):
        super().__init__(collection, ids, slack)
        self.d = dim
        self.index_type = index_type
        self.ids = list(ids)

    def search(self, queries: np.ndarray, n: int, selection=None) -> tuple[np.ndarray, np.ndarray]:
        """Like faiss: (scores, rows), each (len(queries), n); -1 rows where fewer than n exist. With a
        `selection` (rag.answer.retrieval.Selection), only chunks of its sources."""
        return self.search_sources(queries, n, selection.sources if selection is not None else None)

    def search_sources(
        self, queries: np.ndarray, n: int, sources: Sequence[str] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """`search` restricted to chunks of `sources` (exact names), filtered by Milvus itself."""
        n = min(n, MAX_TOPK)
        scores = np.full((len(queries), n), np.finfo(np.float32).min, dtype=np.float32)
        rows = np.full((len(queries), n), -1, dtype=np.int64)
        for q, vector in enumerate(np.asarray(queries, dtype=np.float32)):
            ranked = self._ranked(
                vector.tolist(), n, "vector", lambda limit: _search_params(self.index_type, limit), sources=sources
            )
            for col, (row, score) in enumerate(ranked):
                rows[q, col], scores[q, col] = row, score
        return scores, rows

    def reconstruct_n(self, start: int, count: int) -> np.ndarray:
        """The vectors of rows start..start+count, fetched by chunk id (incremental builds reuse them)."""
        ids = self.ids[start : start + count]
        found = self.collection.vectors(ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise IndexCorrupt(
                f"Milvus collection {self.collection.name} lacks {len(missing)} chunks of this index "
                f"(e.g. {missing[0]}): {REBUILD_HINT}"
            )
        return np.asarray([found[i] for i in ids], dtype=np.float32).reshape(len(ids), self.d)


class MilvusFullText(_RowMapped):
    """BM25 over the collection's analysed text (Milvus full-text search): `search(query, n) -> (rows, scores)`."""

    def search(self, query: str, n: int, sources: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        # BM25 is never negative; Milvus Lite 3.x reports it negated (as a distance), servers as it is
        ranked = self._ranked(query, n, "sparse", lambda limit: {"metric_type": "BM25"}, score=abs, sources=sources)
        return np.array([r for r, _ in ranked], dtype=np.int64), np.array([s for _, s in ranked], dtype=np.float32)


# -- the store's hooks ----------------------------------------------------------------------------------


@dataclass
class MilvusWrite:
    """A write in two halves around the local version swap: `begin_write` upserts, `finish` deletes."""

    collection: MilvusCollection
    record: dict  # the manifest's "dense" entry
    keep: set[str]
    removed: list[str]
    replaced: dict | None  # the previous version's record when it used another collection
    upserted: int

    def finish(self, root: Path, options: StoreOptions) -> None:
        self.collection.delete(self.removed)
        if self.collection.count() != len(self.keep):  # rows left by an interrupted write: remove them
            self.collection.delete([i for i in self.collection.ids() if i not in self.keep])
        if self.upserted or self.removed:
            self.collection.flush()
        if self.replaced:
            drop_collection(root, options, self.replaced)


def begin_write(
    root: Path,
    options: StoreOptions,
    chunks: Sequence,
    vectors: np.ndarray,
    embedding: dict,
    previous: Manifest | None,
    previous_ids: Callable[[], Sequence[str]],
) -> MilvusWrite:
    """Make the collection hold every chunk of the version about to be written (before it is swapped in)."""
    prev = previous.dense if previous is not None else {}
    prev_milvus = prev.get("store") == MilvusStore.name
    uri_recorded = record_uri(options.milvus_uri, root) if options.milvus_uri or not prev_milvus else prev["uri"]
    uri = options.milvus_uri or resolve_uri(uri_recorded, root)
    same = (
        prev_milvus
        and resolve_uri(prev["uri"], root) == resolve_uri(uri_recorded, root)
        and previous is not None
        and previous.embedding == embedding
    )
    name = prev["collection"] if same else collection_name(root, embedding["model"])
    collection = MilvusCollection(connect(uri, options.milvus_token), name, uri)
    if collection.exists():
        props = collection.properties()
        _check(props, embedding, collection, uri)
        analyzer = json.loads(props.get("rag.full_text") or "null")
        known = set(previous_ids()) if same else set()
    else:
        analyzer = collection.create(
            embedding["dim"], embedding["model"], options.index_type, full_text_analyzer(options)
        )
        known = set()
    keep = {c.id for c in chunks}
    todo = [row for row, c in enumerate(chunks) if c.id not in known]
    collection.upsert(chunks, vectors, todo)
    record = {
        "store": MilvusStore.name,
        "uri": uri_recorded,
        "collection": name,
        "metric": "IP",
        "index_type": collection.properties().get("rag.index_type", options.index_type),
        "full_text": analyzer,
    }
    moved = prev_milvus and (prev["collection"], resolve_uri(prev["uri"], root)) != (
        name,
        resolve_uri(uri_recorded, root),
    )
    replaced = prev if moved else None  # the collection the previous version used, dropped once this one is live
    return MilvusWrite(collection, record, keep, sorted(known - keep), replaced, len(todo))


def drop_collection(root: Path, options: StoreOptions, record: dict) -> None:
    """Drop a collection the index no longer uses (best effort: an unreachable old server is left alone)."""
    uri = resolve_uri(record["uri"], root)
    try:
        collection = MilvusCollection(connect(uri, options.milvus_token), record["collection"], uri)
        if collection.exists():
            collection.drop()
    except StoreError:
        pass


def open_dense(root: Path, options: StoreOptions, manifest: Manifest, chunk_ids: Sequence[str]):
    """The dense index (and full-text index, if any) of a version whose vectors live in Milvus."""
    record = manifest.dense
    embedding = manifest.embedding
    uri = options.milvus_uri or resolve_uri(record["uri"], root)
    collection = MilvusCollection(connect(uri, options.milvus_token), record["collection"], uri)
    if not collection.exists():
        raise IndexCorrupt(f"Milvus collection {record['collection']} is missing at {public_uri(uri)}: {REBUILD_HINT}")
    _check(collection.properties(), embedding, collection, uri)
    count = collection.count()
    if count < len(chunk_ids):
        raise IndexCorrupt(
            f"Milvus collection {collection.name} at {public_uri(uri)} holds {count} vectors for "
            f"{len(chunk_ids)} chunks: {REBUILD_HINT}"
        )
    slack = count - len(chunk_ids)
    dense = MilvusDense(collection, chunk_ids, int(embedding["dim"]), slack, record.get("index_type", "FLAT"))
    full_text = MilvusFullText(collection, chunk_ids, slack) if record.get("full_text") else None
    return dense, full_text


def _check(props: dict, embedding: dict, collection: MilvusCollection, uri: str) -> None:
    model, dim = props.get("rag.model"), props.get("dim")
    if model != embedding.get("model") or dim != int(embedding.get("dim", -1)):
        raise IndexMismatch(
            f"Milvus collection {collection.name} at {public_uri(uri)} holds vectors of model {model!r} ({dim} dims), "
            f"the index says {embedding.get('model')!r} ({embedding.get('dim')} dims): {REBUILD_HINT}"
        )


class MilvusStore:
    """rag.index.dense_store.DenseStore over a Milvus collection. A write upserts on `add` (before the new version
    exists) and deletes what it dropped on `finish` (once it is live); updates always write a whole version."""

    name: ClassVar[str] = "milvus"
    updates_in_place: ClassVar[bool] = False

    def __init__(
        self,
        root: Path,
        options: StoreOptions,
        record: dict | None = None,
        dense: MilvusDense | None = None,
        full_text: MilvusFullText | None = None,
        write: tuple | None = None,
    ):
        self.root, self.options = root, options
        self.record = dict(record or {})
        self._dense, self._full_text = dense, full_text
        self._write_args = write  # (embedding, previous manifest, previous ids) of a new version
        self._write: MilvusWrite | None = None
        self.d = dense.d if dense is not None else 0

    @classmethod
    def check_options(cls, options: StoreOptions) -> None:
        if options.index_type not in INDEX_TYPES:
            raise ConfigError(f"milvus index type must be one of {', '.join(INDEX_TYPES)}, got {options.index_type!r}")

    @classmethod
    def create(
        cls,
        root: Path,
        options: StoreOptions,
        embedding: dict,
        live: Path | None,
        previous: Manifest | None,
        previous_ids: Callable[[], Sequence[str]],
    ) -> MilvusStore:
        return cls(root, options, write=(embedding, previous, previous_ids))

    @classmethod
    def load(
        cls,
        root: Path,
        options: StoreOptions,
        version: Path,
        manifest: Manifest,
        chunk_ids: Callable[[], Sequence[str]],
        vectors: VectorFiles | None,
    ) -> MilvusStore:
        dense, full_text = open_dense(root, options, manifest, chunk_ids())
        return cls(root, options, manifest.dense, dense, full_text)

    @classmethod
    def moves(cls, root: Path, options: StoreOptions, record: dict) -> bool:
        """Another Milvus address asked for than the one recorded."""
        return bool(options.milvus_uri) and resolve_uri(record_uri(options.milvus_uri, root), root) != resolve_uri(
            record["uri"], root
        )

    @classmethod
    def retire(cls, root: Path, options: StoreOptions, record: dict) -> None:
        drop_collection(root, options, record)

    def add(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        embedding, previous, previous_ids = self._write_args
        self._write = begin_write(self.root, self.options, chunks, vectors, embedding, previous, previous_ids)

    def delete(self, rows: np.ndarray) -> None:
        self._dense.collection.delete([self._dense.ids[int(r)] for r in rows])

    def save(self, folder: Path, vectors: VectorFiles) -> dict:
        self.record = dict(self._write.record)
        return self.describe()

    def finish(self) -> None:
        if self._write is not None:  # rows the new version dropped go only now that it is live
            self._write.finish(self.root, self.options)

    def search(self, queries: np.ndarray, n: int, selection=None) -> tuple[np.ndarray, np.ndarray]:
        return self._dense.search(queries, n, selection)

    def reconstruct_n(self, start: int, count: int) -> np.ndarray:
        return self._dense.reconstruct_n(start, count)

    def count(self) -> int:
        return self._dense.ntotal

    def describe(self) -> dict:
        return dict(self.record)

    def full_text(self) -> MilvusFullText | None:
        return self._full_text

    def warm_up(self) -> None:
        """The collection was loaded for search when the store opened."""

    def close(self) -> None:
        """The client is Milvus's to pool; nothing to release here."""
