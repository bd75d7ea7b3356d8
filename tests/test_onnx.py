"""The ONNX Runtime embedding backends against PyTorch on the bundled model: same vectors (fp32), close ones
(int8), a one-off export reused from the cache, and indexes that never mix int8 and fp32 vectors."""

from __future__ import annotations

import numpy as np
import pytest

from rag.answer.retrieval import Retriever
from rag.errors import IndexMismatch
from rag.index.embedding import OnnxEmbedder, SentenceTransformerEmbedder, make_embedder
from rag.index.indexer import Indexer
from rag.index.store import IndexStore
from rag.settings import Settings

pytestmark = pytest.mark.integration

SENTENCES = [
    "Microsoft will no longer hold exclusive rights to license OpenAI's most advanced systems.",
    "When were the details disclosed?",
    "Cats purr when they are content.",
    "Alterations of the architecture of cerebral white matter in the developing human brain can affect "
    "cortical development and result in functional disabilities.",
    "Kittens open their eyes after about ten days, and a cat sleeps sixteen hours a day.",
]


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def torch_vectors(real_embedder) -> np.ndarray:
    return real_embedder.embed(SENTENCES)


def test_onnx_fp32_gives_torch_vectors(cache, torch_vectors) -> None:
    onnx = OnnxEmbedder(cache_dir=cache)
    vectors = onnx.embed(SENTENCES)
    assert vectors.shape == (5, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert (vectors * torch_vectors).sum(1).min() >= 0.999
    # a query alone (the one-thread session) and in a batch give the same vector
    np.testing.assert_allclose(onnx.embed([SENTENCES[1]])[0], vectors[1], atol=1e-5)


def test_onnx_int8_stays_close_to_torch(cache, torch_vectors) -> None:
    vectors = OnnxEmbedder(quantize=True, cache_dir=cache).embed(SENTENCES)
    assert (vectors * torch_vectors).sum(1).min() >= 0.98


def test_an_int8_vector_depends_on_its_text_alone(cache) -> None:
    """int8 activations are scaled per batch: batched, a text's vector moved with its batch-mates (cosine 0.98 to
    itself alone), so the evidence features did too, and a cache of them could not give what a fresh pass gives."""
    int8 = OnnxEmbedder(quantize=True, cache_dir=cache)
    vectors, tokens = int8.embed_tokens(SENTENCES)
    for i, text in enumerate(SENTENCES):
        alone, [alone_tokens] = int8.embed_tokens([text])
        np.testing.assert_allclose(alone[0], vectors[i], atol=1e-5)
        np.testing.assert_allclose(alone_tokens.vectors, tokens[i].vectors, atol=1e-5)
        np.testing.assert_allclose(int8.embed([text, *SENTENCES[::-1]])[0], vectors[i], atol=1e-5)


def test_export_happens_once_and_is_reused(cache) -> None:
    first = OnnxEmbedder(quantize=True, cache_dir=cache)
    graph = first.graph()
    stamp = graph.stat().st_mtime_ns
    again = make_embedder("all-MiniLM-L6-v2", backend="onnx-int8", cache_dir=cache)
    assert again.graph() == graph and graph.stat().st_mtime_ns == stamp
    assert str(graph).startswith(str(cache)) and "site-packages" not in str(graph)
    assert sorted(p.name for p in graph.parent.glob("*.onnx")) == ["model-int8.onnx", "model.onnx"]  # no temp files


def test_int8_index_refuses_fp32_queries_and_reindexing_reembeds(cache, corpus, tmp_path, real_embedder) -> None:
    settings = Settings(index_dir=tmp_path / "index", chunk_size=64, chunk_overlap=8)
    int8 = OnnxEmbedder(quantize=True, cache_dir=cache)
    first = Indexer(settings, int8).index([corpus])
    assert IndexStore(settings.index_dir).load().manifest.embedding["backend"] == "onnx-int8"
    with pytest.raises(IndexMismatch, match="RAG_EMBEDDING_BACKEND=onnx-int8"):
        Retriever.open(settings.index_dir, real_embedder)
    assert Retriever.open(settings.index_dir).embedder.backend == "onnx-int8"  # the index says which backend
    again = Indexer(settings, real_embedder).index([corpus])  # torch: nothing reusable, everything re-embedded
    assert again.changed and again.chunks_embedded == first.chunks_embedded > 0
    # fp32 ONNX vectors are torch's: an index built by one is searched and updated by the other
    assert Indexer(settings, OnnxEmbedder(cache_dir=cache)).index([corpus]).chunks_embedded == 0
    hits = Retriever.open(settings.index_dir, OnnxEmbedder(cache_dir=cache)).search("Which animal purrs?", k=1)
    assert hits[0].chunk.source == "cats.txt"


def test_torch_embedder_is_unchanged_by_small_batches(real_embedder: SentenceTransformerEmbedder) -> None:
    import torch

    threads = torch.get_num_threads()
    one = real_embedder.embed([SENTENCES[0]])[0]
    assert torch.get_num_threads() == threads  # the one-thread query path restores the setting
    np.testing.assert_allclose(one, real_embedder.embed(SENTENCES)[0], atol=1e-5)


def test_token_vectors_come_from_the_same_pass_and_agree_across_backends(cache, real_embedder, torch_vectors) -> None:
    onnx = OnnxEmbedder(cache_dir=cache)
    for embedder, vectors in ((real_embedder, torch_vectors), (onnx, onnx.embed(SENTENCES))):
        pooled, tokens = embedder.embed_tokens(SENTENCES)
        np.testing.assert_allclose(pooled, vectors, atol=1e-5)  # the sentence vector is the mean of the same pass
        for text, t in zip(SENTENCES, tokens, strict=True):
            assert [text[a:b] for a, b in t.offsets][:3] == [text[a:b] for a, b in onnx.token_offsets([text])[0][:3]]
            assert t.vectors.shape == (len(t.offsets), 384)
            assert np.allclose(np.linalg.norm(t.vectors, axis=1), 1.0, atol=1e-5)
    _, by_torch = real_embedder.embed_tokens(SENTENCES)
    _, by_onnx = onnx.embed_tokens(SENTENCES)
    for a, b in zip(by_torch, by_onnx, strict=True):
        assert a.offsets == b.offsets and (a.vectors * b.vectors).sum(1).min() >= 0.999
    long = "word " * 400  # cut at the model's limit, as the sentence vector is
    assert len(onnx.embed_tokens([long])[1][0].offsets) == onnx.max_tokens
