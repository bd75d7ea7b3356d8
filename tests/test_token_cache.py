"""The evidence selector's cache of token vectors: the same answers as the embedder, each text embedded once,
the least recently used texts dropped past the byte budget."""

from __future__ import annotations

import numpy as np

from rag.index.embedding import HashEmbedder, TokenCache

TEXTS = ["Azure hosts the training workloads.", "Rollo ruled Normandy.", "The deal was disclosed in April."]


def _same(a, b) -> None:
    (va, ta), (vb, tb) = a, b
    np.testing.assert_array_equal(va, vb)
    assert [t.offsets for t in ta] == [t.offsets for t in tb]
    for x, y in zip(ta, tb, strict=True):
        np.testing.assert_array_equal(x.vectors, y.vectors)


def test_cached_vectors_are_the_embedders_and_each_text_is_embedded_once() -> None:
    embedder = HashEmbedder()
    cache = TokenCache(embedder)
    _same(cache.embed_tokens(TEXTS), HashEmbedder().embed_tokens(TEXTS))
    assert embedder.calls == 3
    # a repeated text, in any order and twice in one call, is not embedded again; only the new one is
    again = [TEXTS[2], "A new sentence.", TEXTS[0], TEXTS[2]]
    _same(cache.embed_tokens(again), HashEmbedder().embed_tokens(again))
    assert embedder.calls == 4
    vectors, tokens = cache.embed_tokens([])
    assert vectors.shape == (0, embedder.dim) and tokens == []


def test_the_least_recently_used_texts_go_past_the_budget() -> None:
    embedder = HashEmbedder()
    one = sum(v.nbytes + t.vectors.nbytes for v, t in zip(*embedder.embed_tokens(TEXTS[:1]), strict=True))
    cache = TokenCache(embedder, budget=2 * one + one // 2)  # room for two texts of about this size
    cache.embed_tokens([TEXTS[0]])
    cache.embed_tokens([TEXTS[1]])
    cache.embed_tokens([TEXTS[0]])  # used again: TEXTS[1] is now the oldest
    embedder.calls = 0
    cache.embed_tokens([TEXTS[2]])  # pushes TEXTS[1] out
    cache.embed_tokens([TEXTS[0]])
    assert embedder.calls == 1
    cache.embed_tokens([TEXTS[1]])
    assert embedder.calls == 2
