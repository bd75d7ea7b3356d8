"""The dense-store protocol: what the index store, retrieval and the indexer ask of wherever the vectors live.

A store holds one index version's vectors, searched by chunk row. `rag.index.stores.REGISTRY` maps the name a
manifest records (`dense.store`) to the class; nothing outside the store modules knows which store it talks to.
Implementations: rag.index.faiss_store (a FAISS file in the version) and rag.index.milvus_store (a collection).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np

if TYPE_CHECKING:
    from rag.index.dense import VectorFiles
    from rag.index.manifest import Manifest
    from rag.types import Chunk


@dataclass(frozen=True)
class StoreOptions:
    """Where the dense vectors go and how to reach them; settings name them, the index records them.

    `store` "" keeps whatever the index already uses (FAISS for a new one); rag.index.stores.check_options checks
    the name and lets each store check its own options. `milvus_uri` "" means a Milvus Lite folder inside the
    index; on reads a non-empty `milvus_uri` overrides the address recorded in the index. `full_text` is
    "english" (BM25 in Milvus where the server has that analyzer), "" (always local BM25), or analyzer params as
    JSON. `dense_index` is the FAISS index to build (rag.index.dense.Choice: flat, hnsw, ivf-pq, kind@chunks);
    "" keeps the index's own, flat for a new one.
    """

    store: str = ""
    milvus_uri: str = ""
    milvus_token: str = field(default="", repr=False)
    index_type: str = "FLAT"
    full_text: str = "english"
    dense_index: str = ""

    @classmethod
    def from_settings(cls, settings) -> StoreOptions:
        return cls(
            store=settings.store,
            milvus_uri=settings.milvus_uri,
            milvus_token=settings.milvus_token,
            index_type=settings.milvus_index,
            dense_index=settings.dense_index,
        )


class FullText(Protocol):
    """BM25 computed by the store itself: the top `n` rows (among chunks of `sources`) and their scores."""

    def search(self, query: str, n: int, sources: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]: ...


class DenseStore(Protocol):
    """The dense vectors of one index version.

    Writing: `create` (a new version) or `load` (the live one, for stores that `updates_in_place`), then `delete`
    and `add` rows, `save` into the new version's folder (returns the manifest's `dense` record), and `finish` once
    the version is live. Reading: `load`, then `search`, `count`, `describe`. Rows are chunk rows of the version.
    """

    name: ClassVar[str]
    updates_in_place: ClassVar[bool]  # a large index may keep its files and change only the rows that change
    d: int

    @classmethod
    def check_options(cls, options: StoreOptions) -> None:
        """Raise ConfigError for options this store cannot use (called for every store, whichever is chosen)."""

    @classmethod
    def create(
        cls,
        root: Path,
        options: StoreOptions,
        embedding: dict,
        live: Path | None,
        previous: Manifest | None,
        previous_ids: Callable[[], Sequence[str]],
    ) -> DenseStore:
        """An empty store for a new version of the index at `root` (`live`, `previous`: the live version's folder
        and manifest; `previous_ids()` its chunk ids, read only by a store that needs them)."""

    @classmethod
    def load(
        cls,
        root: Path,
        options: StoreOptions,
        version: Path,
        manifest: Manifest,
        chunk_ids: Callable[[], Sequence[str]],
        vectors: VectorFiles | None,
    ) -> DenseStore:
        """The store of `version`, cheap to open: heavy reads wait for the first search (`vectors` None: opened
        only to write the next version)."""

    @classmethod
    def moves(cls, root: Path, options: StoreOptions, record: dict) -> bool:
        """Whether `options` send vectors recorded as `record` (of this store) somewhere else."""

    @classmethod
    def retire(cls, root: Path, options: StoreOptions, record: dict) -> None:
        """The index left this store (its live version uses another): release what `record` holds."""

    def add(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Rows appended after the current ones."""

    def delete(self, rows: np.ndarray) -> None:
        """Remove the sorted `rows`; the later rows move up."""

    def save(self, folder: Path, vectors: VectorFiles) -> dict:
        """Make the new version at `folder` (its vectors: `vectors`) searchable; returns its manifest record."""

    def finish(self) -> None:
        """The new version is live: drop what only older versions needed."""

    def search(self, queries: np.ndarray, n: int, selection=None) -> tuple[np.ndarray, np.ndarray]:
        """Top `n` rows of each query by inner product: (scores, rows), -1 rows where fewer exist. With a
        `selection` (rag.answer.retrieval.Selection: rows and sources), only its chunks."""

    def count(self) -> int:
        """How many rows the store serves."""

    def describe(self) -> dict:
        """The manifest record of the store (`store` is its registry name)."""

    def full_text(self) -> FullText | None:
        """BM25 by the store itself, or None (the local BM25 index serves)."""

    def warm_up(self) -> None:
        """Do the heavy reads now (a server opens the index before its first query)."""

    def close(self) -> None:
        """Release open files or connections."""
