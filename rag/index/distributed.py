"""Chunk embedding as a Ray Data job: the texts are split into blocks and embedded by one model copy per worker.

`RayEmbedder` wraps the local embedder and is a drop-in `Embedder`: the indexer still decides what needs
embedding (nothing, on an unchanged corpus) and chunks with the local tokenizer; only `embed` runs on Ray.
Each row carries its position, so the vectors come back in input order whatever order the workers finish in.
Without an address a local Ray instance is started (and stopped again); Ray is imported only here, lazily.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from rag.errors import ConfigError, RagError, needs_extra
from rag.index.embedding import Embedder, TokenVectors, make_embedder

__all__ = ["RayEmbedder"]

LOCAL = "local"


class _EmbedBatch:
    """A Ray Data actor: loads the embedder once, then embeds each group of texts it is given as one call."""

    def __init__(self, name: str, batch_size: int, backend: str):
        self.embedder = make_embedder(name, batch_size, backend=backend)

    def __call__(self, batch: dict) -> dict:
        rows, vectors = [], []
        for group_rows, group_texts in zip(batch["rows"], batch["texts"], strict=True):
            rows.append(np.asarray(group_rows, dtype=np.int64))
            vectors.append(self.embedder.embed([str(t) for t in group_texts]))
        rows = np.concatenate(rows)
        return {"row": rows, "vector": np.concatenate(vectors), "worker": np.full(len(rows), os.getpid())}


class RayEmbedder:
    """An `Embedder` whose `embed` runs on a Ray cluster (`address`) or a local Ray instance (`address=None`)."""

    def __init__(self, local: Embedder, address: str | None = None, workers: int | None = None, batch_size: int = 256):
        self.local = local
        self.address = None if address in (None, "", LOCAL) else address
        self.workers = workers
        self.batch_size = batch_size  # texts per Ray batch (the model still runs its own batch size inside)
        if workers is not None and workers < 1:
            raise ConfigError(f"Ray workers must be at least 1, got {workers}")
        self.last_workers: set[int] = set()  # process ids of the workers that embedded in the last job

    # the Embedder protocol: identity and tokenisation are the local model's, so the index is the same
    @property
    def name(self) -> str:
        return self.local.name

    @property
    def backend(self) -> str:
        return getattr(self.local, "backend", "torch")

    @property
    def dim(self) -> int:
        return self.local.dim

    @property
    def max_tokens(self) -> int:
        return self.local.max_tokens

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return self.local.token_offsets(texts)

    def embed_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, list[TokenVectors]]:
        return self.local.embed_tokens(texts)  # question-time work: too small to send to the cluster

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        with needs_extra("ray"):
            import ray
        started = self._start(ray)
        try:
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = progress
            context.wait_for_min_actors_s = 600  # every worker has its model loaded before the first block goes out
            workers = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
            groups = self._groups(texts)
            workers = min(workers, len(groups))  # no idle actor loading a model for nothing
            # one group per block and one block in flight per worker: blocks go to workers as they free up
            items = [{"rows": rows, "texts": [texts[r] for r in rows]} for rows in groups]
            ds = ray.data.from_items(items, override_num_blocks=min(len(items), 10_000)).map_batches(
                _EmbedBatch,
                fn_constructor_kwargs={
                    "name": self.local.name,
                    "backend": self.backend,
                    "batch_size": getattr(self.local, "batch_size", 32),
                },
                batch_size=1,
                num_cpus=1,
                compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
                batch_format="numpy",
            )
            seen, self.last_workers = 0, set()
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                out[batch["row"]] = batch["vector"]
                seen += len(batch["row"])
                self.last_workers.update(int(w) for w in batch["worker"])
        except RagError:
            raise
        except Exception as exc:  # a worker failed (model missing on a node, out of memory, lost node)
            raise RagError(
                f"the Ray embedding job failed ({type(exc).__name__}: {str(exc).splitlines()[0]}): "
                "check the Ray cluster and that rag and the model are installed on every node"
            ) from None
        finally:
            if started:
                ray.shutdown()
        if seen != len(texts):
            raise RagError(f"the Ray embedding job returned {seen} vectors for {len(texts)} texts")
        return out

    def _groups(self, texts: Sequence[str]) -> list[list[int]]:
        """Rows of `texts` in the groups the workers embed, each group one `embed` call.

        The groups are cut from the texts sorted by token count (stable), in multiples of the model's batch
        size: the very batches a single-process `embed` of all texts runs (ONNX sorts the same way). That matters
        for int8 weights, whose activations are quantised per batch, so a vector depends on its batch-mates;
        with the same batches a Ray build and a single-process build give the same vectors.
        """
        inner = getattr(self.local, "batch_size", 32)
        size = max(inner, self.batch_size // inner * inner)
        lengths = [min(len(o), self.max_tokens) for o in self.token_offsets(texts)]
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        return [order[i : i + size] for i in range(0, len(order), size)]

    def _start(self, ray) -> bool:
        """Connect to the cluster at `address`, or start a local instance; True if this call started Ray."""
        if ray.is_initialized():
            return False
        try:
            if self.address is None:
                cpus = self.workers or len(os.sched_getaffinity(0))
                ray.init(
                    num_cpus=cpus,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level="ERROR",
                    configure_logging=True,
                )
            else:
                ray.init(address=self.address, log_to_driver=False, logging_level="ERROR")
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.address or "a local instance"
            raise RagError(
                f"cannot start Ray at {where} ({str(exc).splitlines()[0]}): give the head's address "
                "as `--ray ray://HOST:10001` or `--ray HOST:6379`, or `--ray` alone for a local "
                "instance"
            ) from None
        return True
