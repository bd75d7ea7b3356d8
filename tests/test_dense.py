"""Dense index kinds: each round-trips through the store, approximate kinds find what flat finds, flat is FAISS."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag.errors import ConfigError
from rag.index import dense
from rag.index.dense import Choice, DenseIndex, VectorFiles
from rag.index.dense_store import StoreOptions
from rag.index.store import IndexData, IndexStore
from rag.types import Chunk, Document

DIM = 32


def clustered(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    """Unit vectors around 40 centres (as real chunk embeddings cluster by topic)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, dim))
    x = centres[rng.integers(0, 40, n)] + rng.normal(0, 0.6, (n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def synthetic(n: int, start: int = 0, seed: int = 0) -> IndexData:
    docs = [Document.create(f"d{i}.txt", "", f"chunk number {i} about topic {i % 40}") for i in range(start, start + n)]
    chunks = [Chunk.create(d, 0, len(d.text)) for d in docs]
    manifest = {"embedding": {"model": "hash", "dim": DIM}, "chunking": {"size": 8, "overlap": 0}}
    return IndexData(docs, chunks, clustered(n, seed), manifest)


def build(tmp_path, kind: str, data: IndexData) -> IndexStore:
    store = IndexStore(tmp_path / kind, StoreOptions(dense_index=kind))
    with store.writer_lock():
        store.write(data)
    return store


def recall_at_10(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a[:10]) & set(e[:10])) / 10 for a, e in zip(approx, exact, strict=True)]))


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf-pq"])
def test_each_kind_round_trips_and_finds_what_flat_finds(tmp_path, kind: str) -> None:
    data = synthetic(3000)
    store = build(tmp_path, kind, data)
    manifest = json.loads((store.current() / "manifest.json").read_text())
    assert manifest["dense"]["index"] == kind and manifest["dense"]["rows"] == 3000
    loaded = store.load()
    assert loaded.dense.index.kind == kind and loaded.dense.count() == 3000 and loaded.dense.d == DIM
    np.testing.assert_array_equal(loaded.vectors(), data.vectors)  # the exact vectors stay, whatever the index
    queries = clustered(50, seed=1)
    exact = np.argsort(-(queries @ data.vectors.T), axis=1, kind="stable")[:, :10]
    found = [loaded.dense.search(q[None, :], 50)[1][0] for q in queries]
    assert all(len(f) == 50 for f in found)
    assert recall_at_10(found, exact) >= (1.0 if kind == "flat" else 0.8)
    scores, rows = loaded.dense.search(queries[:1], 5)  # approximate kinds re-score exactly
    np.testing.assert_allclose(scores[0], data.vectors[rows[0]] @ queries[0], rtol=1e-5)


def test_flat_results_are_faiss_results_unchanged(tmp_path) -> None:
    import faiss

    data = synthetic(500)
    loaded = build(tmp_path, "flat", data).load()
    reference = faiss.IndexFlatIP(DIM)
    reference.add(data.vectors)
    queries = clustered(20, seed=2)
    for q in queries:
        got, want = loaded.dense.search(q[None, :], 50), reference.search(q[None, :], 50)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_choice_parsing_and_size_threshold(tmp_path) -> None:
    assert Choice.parse("hnsw") == Choice("hnsw", 0) and str(Choice.parse("ivf-pq@200_000")) == "ivf-pq@200000"
    assert Choice.parse("hnsw@1000").kind_for(999) == "flat" and Choice.parse("hnsw@1000").kind_for(1000) == "hnsw"
    assert Choice.parse("ivf-pq").kind_for(10) == "flat"  # too few vectors to train an IVF-PQ index
    for bad in ("annoy", "hnsw@lots", "hnsw@-1", ""):
        with pytest.raises(ConfigError, match="dense index must be one of flat, hnsw, ivf-pq"):
            Choice.parse(bad)
    with pytest.raises(ConfigError):
        IndexStore(tmp_path / "nope", StoreOptions(dense_index="nope"))


def test_the_index_picks_the_kind_past_the_stated_size(tmp_path) -> None:
    store = IndexStore(tmp_path / "idx", StoreOptions(dense_index="hnsw@1800"), append_min_rows=0)
    with store.writer_lock():
        store.write(synthetic(1500))
    assert store.load().manifest.dense | {"params": None} == {
        "store": "faiss",
        "index": "flat",
        "choice": "hnsw@1800",
        "rows": 1500,
        "params": None,
    }
    more = synthetic(500, start=1500, seed=3)
    with IndexStore(tmp_path / "idx").writer_lock():  # no option: the index keeps its own choice
        IndexStore(tmp_path / "idx", append_min_rows=0).append(more.documents, more.chunks, more.vectors)
    loaded = IndexStore(tmp_path / "idx").load()
    record = loaded.manifest.dense
    assert (record["index"], record["rows"], loaded.n_chunks) == ("hnsw", 2000, 2000)
    assert len(loaded.manifest.segments) == 2  # the chunks were appended; only the dense index was rebuilt


def test_dense_index_with_an_exact_tail_merges_by_score_then_row(tmp_path) -> None:
    import faiss

    data = synthetic(300)
    np.save(tmp_path / "v.npy", data.vectors, allow_pickle=False)
    files = VectorFiles([(tmp_path / "v.npy", 300)], DIM)
    main = faiss.IndexFlatIP(DIM)
    main.add(data.vectors[:200])  # rows 200..299 are the tail
    split = DenseIndex("flat", main, files)
    whole = faiss.IndexFlatIP(DIM)
    whole.add(data.vectors)
    for q in clustered(10, seed=4):
        got, want = split.search(q[None, :], 30), whole.search(q[None, :], 30)
        assert got[1][0].tolist() == want[1][0].tolist()
        np.testing.assert_allclose(got[0][0], want[0][0], rtol=1e-6)
    np.testing.assert_array_equal(split.reconstruct_n(0, 300), data.vectors)


@pytest.mark.parametrize("exact_rows", [20_000, 0])  # a narrow filter scored exactly / FAISS's ID selector
@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf-pq"])
def test_a_selection_restricts_every_kind_to_its_rows(tmp_path, monkeypatch, kind, exact_rows) -> None:
    from rag.answer.retrieval import Selection

    monkeypatch.setattr(dense, "EXACT_SELECTION_ROWS", exact_rows)
    base, more = synthetic(3000), synthetic(40, start=3000, seed=4)
    store = IndexStore(tmp_path / kind, StoreOptions(dense_index=kind), append_min_rows=0)
    with store.writer_lock():
        store.write(base)
        store.append(more.documents, more.chunks, more.vectors)  # 40 rows in the exact tail
    loaded = store.load()
    assert loaded.manifest.dense["index"] == kind and loaded.dense.index.tail.ntotal == 40
    vectors = np.concatenate([base.vectors, more.vectors])
    for allowed in (np.arange(0, 3040, 50), np.arange(2990, 3020), np.arange(0, 3040, 2)):  # 2%, straddling, 50%
        for q in (7, 1234, 3010):
            scores, rows = loaded.dense.search(vectors[q : q + 1], 5, Selection(("x",), allowed))
            exact = vectors[allowed] @ vectors[q]
            assert rows[0].tolist() == allowed[np.lexsort((allowed, -exact))[:5]].tolist()
            assert scores[0] == pytest.approx(np.sort(exact)[::-1][:5], abs=1e-5)


def test_vector_rows_come_back_in_the_order_asked_across_files(tmp_path) -> None:
    a, b = clustered(50, seed=1), clustered(30, seed=2)
    np.save(tmp_path / "a.npy", a, allow_pickle=False)
    np.save(tmp_path / "b.npy", b, allow_pickle=False)
    files = VectorFiles([(tmp_path / "a.npy", 50), (tmp_path / "b.npy", 30)], DIM)
    rows = [79, 3, 4, 5, 49, 50, 51, 5, 0, 60]  # runs, a run across the two files, a repeat, any order
    np.testing.assert_array_equal(files.rows(rows), np.concatenate([a, b])[rows])
    assert files.rows([]).shape == (0, DIM)


@pytest.mark.parametrize("kind", ["hnsw", "ivf-pq"])
def test_source_filters_on_an_approximate_index_give_the_exact_filtered_hits(tmp_path, kind) -> None:
    from rag.answer.retrieval import Retriever
    from rag.index.embedding import HashEmbedder

    data = synthetic(3000)
    flat = Retriever(build(tmp_path, "flat", data).load(), HashEmbedder(dim=DIM))
    approx = Retriever(build(tmp_path, kind, data).load(), HashEmbedder(dim=DIM))
    for globs in (["d1*.txt"], ["d2999.txt", "d7.txt"], ["d[0-4]*.txt"]):  # 1,111 / 2 / 1,555 sources
        for mode in ("dense", "bm25", "hybrid"):
            want = flat.search("chunk about topic 7", k=5, mode=mode, sources=globs)
            got = approx.search("chunk about topic 7", k=5, mode=mode, sources=globs)
            assert [(h.chunk.id, h.score) for h in got] == [(h.chunk.id, pytest.approx(h.score)) for h in want]
            assert want and all(h.chunk.source in flat.matching_sources(globs) for h in want)
