"""The FAISS dense store: `dense.faiss` in each version folder (flat, hnsw or ivf-pq, rag.index.dense), over the
segments' `vectors.npy`. A large index keeps its file across writes while it can serve: removed rows are skipped
through `dense-ids.npy`, appended rows searched exactly beside it until FAISS's `add` folds them in. How the
index kinds are built and searched is rag.index.dense's business; which files a version has is rag.index.store's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from rag.errors import IndexCorrupt, RagError
from rag.index import dense as dense_index
from rag.index.dense import Choice, DenseIndex, VectorFiles
from rag.index.files import link

if TYPE_CHECKING:
    from rag.index.dense_store import StoreOptions
    from rag.index.manifest import Manifest
    from rag.types import Chunk

REBUILD_HINT = "rebuild it with `rag index --rebuild`"


class FaissStore:
    """rag.index.dense_store.DenseStore over a FAISS file in the version folder."""

    name: ClassVar[str] = "faiss"
    updates_in_place: ClassVar[bool] = True

    def __init__(
        self,
        choice: Choice,
        record: dict | None = None,
        version: Path | None = None,
        vectors: VectorFiles | None = None,
        dense_file=None,
        ids: np.ndarray | None = None,
        live: Path | None = None,
        previous: dict | None = None,
    ):
        self.choice = choice
        self.record = dict(record or {})  # the loaded version's manifest record ({} for a new index)
        self.version = version  # the loaded version's folder
        self.vectors = vectors
        self.d = vectors.dim if vectors is not None else 0
        self._file = dense_file  # held open from load, so a pruned version still reads
        self._ids = ids  # dense-ids.npy of the loaded version (after removals), else None
        self._live, self._previous = live, previous or {}  # a new index's predecessor (IVF-PQ training reuse)
        self._added: list[np.ndarray] = []
        self._drop = np.zeros(0, np.int64)
        self._index: DenseIndex | None = None
        self._lock = threading.Lock()

    # -- opening ----------------------------------------------------------------------------------------------

    @classmethod
    def check_options(cls, options: StoreOptions) -> None:
        if options.dense_index:
            Choice.parse(options.dense_index)

    @staticmethod
    def _choice(options: StoreOptions, record: dict | None) -> Choice:
        return Choice.parse(options.dense_index or (record or {}).get("choice") or "flat")

    @classmethod
    def create(
        cls,
        root: Path,
        options: StoreOptions,
        embedding: dict,
        live: Path | None,
        previous: Manifest | None,
        previous_ids: Callable[[], Sequence[str]],
    ) -> FaissStore:
        record = previous.dense if previous is not None else {}
        return cls(cls._choice(options, record), live=live, previous=record)

    @classmethod
    def load(
        cls,
        root: Path,
        options: StoreOptions,
        version: Path,
        manifest: Manifest,
        chunk_ids: Callable[[], Sequence[str]],
        vectors: VectorFiles | None,
    ) -> FaissStore:
        record = manifest.dense
        dense_file = open(version / dense_index.FILE, "rb")
        try:
            ids = np.load(version / dense_index.IDS, allow_pickle=False) if record.get("dropped") else None
        except BaseException:
            dense_file.close()
            raise
        return cls(cls._choice(options, record), record, version, vectors, dense_file, ids)

    @classmethod
    def moves(cls, root: Path, options: StoreOptions, record: dict) -> bool:
        """Another dense index kind asked for than the one recorded."""
        return bool(options.dense_index) and Choice.parse(options.dense_index) != Choice.parse(
            record.get("choice", "flat")
        )

    @classmethod
    def retire(cls, root: Path, options: StoreOptions, record: dict) -> None:
        """Nothing outlives a version: dense.faiss goes with its folder."""

    # -- searching --------------------------------------------------------------------------------------------

    @property
    def index(self) -> DenseIndex:
        """The dense index (main FAISS index plus exact tail); read from dense.faiss on first use."""
        if self._index is None:
            with self._lock:
                if self._index is None:
                    main = dense_index.read_file(self._file, self.version / dense_index.FILE)
                    index = DenseIndex(
                        self.record.get("index", "flat"), main, self.vectors, self.record.get("params"), self._ids
                    )
                    if index.main_rows != self.record.get("rows", index.main_rows):
                        raise IndexCorrupt(
                            f"{self.version}/dense.faiss holds {index.main_rows} rows, the manifest "
                            f"says {self.record.get('rows')}: {REBUILD_HINT}"
                        )
                    self._file.close()
                    self._index = index
        return self._index

    def search(self, queries: np.ndarray, n: int, selection=None) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(queries, n, selection)

    def reconstruct_n(self, start: int, count: int) -> np.ndarray:
        return self.vectors.range(start, start + count)

    def count(self) -> int:
        return self.vectors.ntotal if self.vectors is not None else 0

    def describe(self) -> dict:
        return dict(self.record)

    def full_text(self) -> None:
        return None

    def warm_up(self) -> None:
        _ = self.index

    def close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()

    # -- writing ----------------------------------------------------------------------------------------------

    def add(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        self._added.append(np.asarray(vectors, dtype=np.float32))

    def delete(self, rows: np.ndarray) -> None:
        self._drop = np.union1d(self._drop, np.asarray(rows, dtype=np.int64))

    def save(self, folder: Path, vectors: VectorFiles) -> dict:
        """Write the new version's dense.faiss (or link the live one) into `folder`; returns the manifest record."""
        self.record = self._save_new(folder) if self.version is None else self._save_update(folder, vectors)
        return self.describe()

    def finish(self) -> None:
        self.close()

    def _save_new(self, folder: Path) -> dict:
        vectors = np.concatenate(self._added) if len(self._added) > 1 else self._added[0]
        kind = self.choice.kind_for(len(vectors))
        like, like_params = self._reusable(self._live, self._previous, kind)
        index, params = dense_index.build(kind, vectors, like, like_params)
        dense_index.write(index, folder / dense_index.FILE)
        return {"store": self.name, "index": kind, "choice": str(self.choice), "rows": len(vectors), "params": params}

    @staticmethod
    def _reusable(live: Path | None, record: dict, kind: str):
        """The live IVF-PQ index, when the new one may reuse its training."""
        if live is None or kind != "ivf-pq" or record.get("index") != "ivf-pq":
            return None, None
        try:
            return dense_index.read(live / dense_index.FILE), record.get("params")
        except (RagError, OSError):
            return None, None

    def _save_update(self, folder: Path, files: VectorFiles) -> dict:
        """The dense index of the new version. The live dense.faiss is kept while it can serve: rows dropped from
        it are skipped through `dense-ids.npy` (its ids -> rows, -1 for dropped ones) until a quarter of it is
        dropped, and appended rows are searched exactly beside it until there are TAIL_MAX_ROWS of them, when
        FAISS's `add` folds them in. A kind change, a grown IVF-PQ or too many dropped rows build it anew."""
        live, record = self.version, self.record
        self.close()
        total = files.ntotal
        kind = self.choice.kind_for(total)
        ids = dense_index.renumbered(self._ids, record["rows"], self._drop)
        covered = int((ids >= 0).sum()) if ids is not None else record["rows"]  # rows 0..covered-1 are in it
        params = record.get("params", {})
        grown = kind == "ivf-pq" and total > dense_index.RETRAIN_GROWTH * params.get("trained_rows", total)
        worn = ids is not None and (ids < 0).mean() > dense_index.DROPPED_MAX_SHARE
        if kind != record["index"] or grown or worn:
            like, like_params = self._reusable(live, record, kind) if not grown else (None, None)
            index, params = dense_index.build(kind, files.range(0, total), like, like_params)
            ids = covered = None
        elif total - covered > dense_index.TAIL_MAX_ROWS:
            index = dense_index.read(live / dense_index.FILE)
            dense_index.extend(index, files.range(covered, total))
            if ids is not None:
                ids = np.concatenate([ids, np.arange(covered, total)])
        else:
            link(live / dense_index.FILE, folder / dense_index.FILE)
            index = None
        if index is not None:
            dense_index.write(index, folder / dense_index.FILE)
            covered = total
        if ids is not None and (ids < 0).any():
            np.save(folder / dense_index.IDS, ids, allow_pickle=False)
        else:
            ids = None
        return {
            "store": self.name,
            "index": kind,
            "choice": str(self.choice),
            "rows": covered,
            "params": params,
            **({"dropped": int((ids < 0).sum())} if ids is not None else {}),
        }
