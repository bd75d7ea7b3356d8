"""Embedding on Ray: a build whose embedding ran as a Ray Data job on a local two-worker Ray instance is the
same index as a single-process build (same chunk ids, vectors within 1e-5), for the torch and int8 backends."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SEEDS
from rag.index.distributed import RayEmbedder
from rag.index.embedding import make_embedder
from rag.index.indexer import Indexer
from rag.index.store import IndexStore
from rag.settings import Settings


def test_ray_flag_takes_an_optional_address() -> None:
    from rag.cli import _optional_ray_address

    assert _optional_ray_address(["index", "docs", "--ray"]) == ["index", "docs", "--ray", "local"]
    assert _optional_ray_address(["index", "--ray", "docs"]) == ["index", "--ray", "local", "docs"]
    assert _optional_ray_address(["index", "--ray", "--json"]) == ["index", "--ray", "local", "--json"]
    for address in ("auto", "ray://head:10001", "10.0.0.5:6379", "head-node:6379"):
        assert _optional_ray_address(["index", "--ray", address]) == ["index", "--ray", address]


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "onnx-int8"])
def test_ray_build_equals_single_process_build(tmp_path, local_ray, backend: str) -> None:
    # a small model batch, so the ~30 chunks of the seed article make several Ray groups for the two workers
    single = Settings(index_dir=tmp_path / "single", chunk_size=32, chunk_overlap=0, embedding_backend=backend)
    on_ray = single.with_overrides(index_dir=tmp_path / "ray")
    Indexer(single, make_embedder(single.embedding_model, 4, backend=backend)).index([SEEDS])
    ray_embedder = RayEmbedder(make_embedder(single.embedding_model, 4, backend=backend), workers=2, batch_size=4)
    report = Indexer(on_ray, ray_embedder).index([SEEDS])
    assert len(ray_embedder.last_workers) == 2  # both workers embedded part of the corpus
    a, b = IndexStore(single.index_dir).load(), IndexStore(on_ray.index_dir).load()
    assert report.chunks_embedded == len(b.chunks) > 16
    assert [c.id for c in a.chunks] == [c.id for c in b.chunks]
    assert a.manifest.embedding == b.manifest.embedding
    np.testing.assert_allclose(a.vectors(), b.vectors(), rtol=0, atol=1e-5)
    assert Indexer(on_ray, ray_embedder).index([SEEDS]).chunks_embedded == 0  # incremental as before: no job
