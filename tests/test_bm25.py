"""BM25 on segments scores exactly as bm25s over the same texts, however the rows are split into segments."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from rag.index.bm25 import Bm25Index, tokenize_many, write_segment
from rag.text import bm25_tokens, query_tokens

TEXTS = [
    "Cats purr when they are content. A cat sleeps sixteen hours a day.",
    "Kittens open their eyes after about ten days; kittens sleep too.",
    "Dogs bark at strangers. A dog can learn over a hundred words.",
    "Parrots can mimic human speech. Crows solve puzzles with tools.",
    "",
    "the of and",  # stopwords only: a chunk with no tokens
    "Running runners ran; the runner runs. Cats and dogs run, cats run faster than dogs.",
    "Sleep sleep sleep: the cat sleeps, the dog sleeps, the parrot sleeps.",
]
QUERIES = ["cats sleep", "dogs bark strangers", "run runner", "sleep sleep cat", "zzz nothing", "parrots crows tools"]


def bm25s_scores(texts: list[str], query: str) -> np.ndarray:
    retriever = _bm25s(tuple(texts))
    tokens = query_tokens(query)
    known = [t for t in tokens if t in retriever.vocab_dict]
    return retriever.get_scores(known) if known else np.zeros(len(texts), np.float32)


@functools.lru_cache(maxsize=4)
def _bm25s(texts: tuple[str, ...]):
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(bm25_tokens(list(texts)), show_progress=False)
    return retriever


def open_split(tmp_path, texts: list[str], cuts: list[int]) -> Bm25Index:
    folders, start = [], 0
    for i, stop in enumerate([*cuts, len(texts)]):
        write_segment(tmp_path / f"seg{i}", texts[start:stop])
        folders.append((tmp_path / f"seg{i}", start))
        start = stop
    return Bm25Index.open(folders)


@pytest.mark.parametrize("cuts", [[], [3], [1, 2, 6]])
def test_scores_equal_bm25s_exactly_whatever_the_segments(tmp_path, cuts) -> None:
    index = open_split(tmp_path, TEXTS, cuts)
    assert index.num_docs == len(TEXTS)
    for query in QUERIES:
        ours = index.get_scores(query_tokens(query))
        assert ours.dtype == np.float32
        np.testing.assert_array_equal(ours, bm25s_scores(TEXTS, query))  # bit for bit


def test_top_ranks_positive_scores_by_score_then_row(tmp_path) -> None:
    index = open_split(tmp_path, TEXTS * 3, [8, 16])  # every text three times: exact ties across segments
    scores = index.get_scores(query_tokens("cats sleep"))
    expected = sorted((r for r in range(len(scores)) if scores[r] > 0), key=lambda r: (-scores[r], r))
    for n in (1, 4, 100):
        rows, values = index.top(query_tokens("cats sleep"), n)
        assert rows.tolist() == expected[:n]
        assert values.tolist() == [scores[r] for r in expected[:n]]
    assert index.top([], 5)[0].tolist() == [] and index.top(["zzz"], 5)[0].tolist() == []


def test_tokenize_many_is_query_tokens_per_text() -> None:
    texts = TEXTS * 2 + ["Héllo wörld ÉCOLE naïve café", "don't won't U.S.A. 3.5% co-operation"]
    assert list(tokenize_many(texts)) == [query_tokens(t) for t in texts]


def test_segment_files_hold_no_pickle(tmp_path) -> None:
    write_segment(tmp_path / "seg", TEXTS)
    for name in ("rows.npy", "tf.npy", "doclen.npy"):
        np.load(tmp_path / "seg" / name, allow_pickle=False)


def test_a_filtered_segment_is_what_writing_the_remaining_texts_makes(tmp_path) -> None:
    from rag.index.bm25 import filter_segment

    write_segment(tmp_path / "all", TEXTS)
    drop = np.array([0, 3, 7])  # "Parrots ..." leaves with row 3: its terms vanish from the vocabulary
    kept = [t for i, t in enumerate(TEXTS) if i not in set(drop.tolist())]
    stats = filter_segment(tmp_path / "all", tmp_path / "filtered", drop)
    write_segment(tmp_path / "fresh", kept)
    filtered, fresh = Bm25Index.open([(tmp_path / "filtered", 0)]), Bm25Index.open([(tmp_path / "fresh", 0)])
    assert stats.docs == len(kept) and filtered.vocab_dict.keys() == fresh.vocab_dict.keys()
    assert "parrot" not in filtered.vocab_dict
    for query in QUERIES:
        np.testing.assert_array_equal(filtered.get_scores(query_tokens(query)), fresh.get_scores(query_tokens(query)))
    np.testing.assert_array_equal(
        np.diff(filtered.scores["indptr"]),
        [np.diff(fresh.scores["indptr"])[fresh.vocab_dict[t]] for t in filtered.vocab_dict],
    )


@pytest.mark.parametrize("cuts", [[], [700, 2100]])
def test_top_ranks_from_a_sampled_cut_and_cached_weights_as_from_every_score(tmp_path, cuts, monkeypatch) -> None:
    import random

    from rag.index import bm25

    monkeypatch.setattr(bm25, "CACHE_MIN_POSTINGS", 100)
    monkeypatch.setattr(bm25, "SAMPLE_STRIDE", 16)
    rng = random.Random(5)
    words = [f"w{i}" for i in range(400)]
    weights = [1 / (i + 1) for i in range(400)]  # Zipf: a few tokens in most rows, most tokens rare
    texts = [" ".join(rng.choices(words, weights, k=rng.randint(5, 60))) for _ in range(3000)]
    index = open_split(tmp_path, texts, cuts)
    allowed = np.arange(0, 3000, 7)
    for _ in range(2):  # the second round reads the frequent tokens' weights from the cache
        rng = random.Random(6)
        for _query in range(40):
            tokens = [rng.choice(words[:3]), rng.choice(words[:30]), rng.choice(words[100:]), rng.choice(words)]
            tokens += tokens[:1]  # a repeated token counts twice
            scores = bm25s_scores(texts, " ".join(tokens))
            for n, rows_allowed in ((1, None), (5, None), (50, None), (2900, None), (5, allowed)):
                rows, values = index.top(tokens, n, rows_allowed)
                pool = np.arange(3000) if rows_allowed is None else rows_allowed
                pool = pool[scores[pool] > 0]
                want = pool[np.lexsort((pool, -scores[pool]))][:n]
                assert rows.tolist() == want.tolist()
                assert values.tolist() == scores[want].tolist()  # bit for bit
    assert 0 < index._cache.used <= bm25.CACHE_BYTES and "w0" in index._cache._items
