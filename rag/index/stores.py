"""The registry of dense stores: the name a manifest records (`dense.store`) -> the class that implements
rag.index.dense_store.DenseStore. Adding a store is one module and one line here; nothing else names a store."""

from __future__ import annotations

from rag.errors import ConfigError
from rag.index.dense_store import DenseStore, StoreOptions
from rag.index.faiss_store import FaissStore
from rag.index.milvus_store import MilvusStore

REGISTRY: dict[str, type[DenseStore]] = {
    "faiss": FaissStore,
    "milvus": MilvusStore,
}
DEFAULT = "faiss"  # a new index's store when the options name none


def store_class(name: str) -> type[DenseStore]:
    """The store registered as `name` (ConfigError naming the registered ones otherwise)."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"store must be one of {', '.join(REGISTRY)}, got {name!r}") from None


def check_options(options: StoreOptions) -> StoreOptions:
    """`options` checked: a registered store name (or "" for the index's own), and what each store checks."""
    if options.store:
        store_class(options.store)
    for cls in REGISTRY.values():
        cls.check_options(options)
    return options
