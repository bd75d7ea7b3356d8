"""Appending to a large index: a new segment beside hard-linked old files, results as a fresh build's."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from conftest import write_corpus
from rag.answer.retrieval import Retriever
from rag.index import dense
from rag.index.dense_store import StoreOptions
from rag.index.embedding import HashEmbedder
from rag.index.indexer import Indexer
from rag.index.store import IndexData, IndexStore
from test_dense import synthetic


def write(store: IndexStore, data: IndexData):
    with store.writer_lock():
        return store.write(data)


def concat(a: IndexData, b: IndexData) -> IndexData:
    return IndexData(a.documents + b.documents, a.chunks + b.chunks, np.concatenate([a.vectors, b.vectors]), a.manifest)


def by_id(loaded) -> dict:
    """chunk id -> (chunk, vector, BM25 score of a fixed query): what a fresh build must match, row order aside."""
    vectors = loaded.vectors()
    scores = loaded.bm25.get_scores(["topic", "chunk", "7"])
    return {c.id: (c, vectors[row].tolist(), float(scores[row])) for row, c in enumerate(loaded.chunks)}


def test_adding_chunks_appends_a_segment_and_shares_the_old_files(tmp_path) -> None:
    base, more = synthetic(400), synthetic(100, start=400, seed=5)
    store = IndexStore(tmp_path / "idx", append_min_rows=0)
    first = write(store, base)
    second = write(store, concat(base, more))  # the indexer's way: the whole corpus, of which some is new
    manifest = json.loads((second / "manifest.json").read_text())
    assert [s["chunks"] for s in manifest["segments"]] == [400, 100]
    old_seg = manifest["segments"][0]["name"]
    for name in ("chunks.sqlite", "vectors.npy", "bm25/rows.npy"):  # the same inode: nothing copied
        old, new = first / "segments" / old_seg / name, second / "segments" / old_seg / name
        assert os.stat(old).st_ino == os.stat(new).st_ino
    assert os.stat(first / "dense.faiss").st_ino == os.stat(second / "dense.faiss").st_ino  # tail searched exactly
    assert manifest["dense"]["rows"] == 400 and manifest["counts"] == {"documents": 500, "chunks": 500}
    loaded = store.load()
    assert [c.id for c in loaded.chunks] == [c.id for c in base.chunks + more.chunks]
    fresh = write(IndexStore(tmp_path / "fresh"), concat(base, more))
    assert by_id(loaded) == by_id(IndexStore(fresh.parent.parent).load())  # BM25 statistics are corpus-wide
    for q in synthetic(5, start=900, seed=9).vectors:
        got = loaded.dense.search(q[None, :], 20)
        want = IndexStore(tmp_path / "fresh").load().dense.search(q[None, :], 20)
        assert got[1].tolist() == want[1].tolist()


def fresh_build(tmp_path, data: IndexData, kind: str = "flat"):
    store = IndexStore(tmp_path / f"fresh-{kind}-{len(data.chunks)}", StoreOptions(dense_index=kind))
    write(store, data)
    return store.load()


def test_removing_chunks_rewrites_only_the_segments_that_held_them(tmp_path) -> None:
    base, more = synthetic(400), synthetic(100, start=400, seed=5)
    store = IndexStore(tmp_path / "idx", append_min_rows=0)
    write(store, base)
    second = write(store, concat(base, more))
    gone = {0, 7, 399, 450}  # three documents of the first segment, one of the second (the exact tail)
    keep = [i for i in range(500) if i not in gone]
    both = concat(base, more)
    fewer = IndexData(
        [both.documents[i] for i in keep], [both.chunks[i] for i in keep], both.vectors[keep], base.manifest
    )
    version = write(store, fewer)
    manifest = json.loads((version / "manifest.json").read_text())
    assert [s["chunks"] for s in manifest["segments"]] == [397, 99] and manifest["counts"]["documents"] == 496
    assert os.stat(second / "dense.faiss").st_ino == os.stat(version / "dense.faiss").st_ino  # kept, not rebuilt
    assert manifest["dense"]["rows"] == 397 and manifest["dense"]["dropped"] == 3
    assert np.load(version / "dense-ids.npy").tolist() == [-1] + list(range(6)) + [-1] + list(range(6, 397)) + [-1]
    loaded, fresh = store.load(), fresh_build(tmp_path, fewer)
    assert loaded.chunks == fewer.chunks and by_id(loaded) == by_id(fresh)  # BM25 statistics as a fresh build's
    assert loaded.chunk_counts() == {d.id: 1 for d in fewer.documents}
    for q in synthetic(5, start=900, seed=9).vectors:
        assert loaded.dense.search(q[None, :], 20)[1].tolist() == fresh.dense.search(q[None, :], 20)[1].tolist()
    assert store.verify()["artifacts"] == len(manifest["artifacts"])


def test_removing_documents_by_id_and_past_a_quarter_of_the_dense_index(tmp_path) -> None:
    base = synthetic(400)
    store = IndexStore(tmp_path / "idx", append_min_rows=0)
    write(store, base)
    with store.writer_lock():
        store.remove({d.id for d in base.documents[:50]}, {"files": {"note": "kept"}})
    loaded = store.load()
    assert loaded.chunks == base.chunks[50:] and loaded.manifest.files == {"note": "kept"}
    assert loaded.manifest.dense["dropped"] == 50 and loaded.manifest.chunking == base.manifest["chunking"]
    with store.writer_lock():
        store.remove({d.id for d in base.documents[50:101]})  # 101 of 400 ids dropped: dense.faiss is built anew
    loaded = store.load()
    assert "dropped" not in loaded.manifest.dense and not (loaded.path / "dense-ids.npy").exists()
    assert loaded.chunks == base.chunks[101:] and loaded.dense.index.main_rows == 299
    rest = IndexData(base.documents[101:], base.chunks[101:], base.vectors[101:], base.manifest)
    assert by_id(loaded) == by_id(fresh_build(tmp_path, rest))


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf-pq"])
def test_after_removals_no_kind_returns_a_removed_row_and_filters_still_hold(tmp_path, monkeypatch, kind) -> None:
    from rag.answer.retrieval import Selection

    monkeypatch.setattr(dense, "TAIL_MAX_ROWS", 50)
    base, more = synthetic(2000), synthetic(80, start=2000, seed=3)
    store = IndexStore(tmp_path / "idx", StoreOptions(dense_index=kind), append_min_rows=0)
    write(store, base)
    removed = {d.id for d in base.documents[::7]}  # 286 rows all over the dense index
    with store.writer_lock():
        store.remove(removed)
        store.append(more.documents, more.chunks, more.vectors)  # past TAIL_MAX_ROWS: folded in with `add`
    loaded = store.load()
    record = loaded.manifest.dense
    assert record["index"] == kind and record["dropped"] == 286 and record["rows"] == loaded.n_chunks == 1794
    assert loaded.dense.index.tail.ntotal == 0
    kept = IndexData(
        [d for d in base.documents if d.id not in removed] + more.documents,
        [c for c in base.chunks if c.doc_id not in removed] + more.chunks,
        np.concatenate([base.vectors[[i for i in range(2000) if i % 7]], more.vectors]),
        base.manifest,
    )
    assert loaded.chunks == kept.chunks
    exact = fresh_build(tmp_path, kept)
    allowed = np.arange(0, 1794, 3)
    for q in list(range(0, 1794, 199)) + [1790]:
        query = kept.vectors[q : q + 1]
        rows = loaded.dense.search(query, 10)[1][0].tolist()
        assert rows[0] == q  # a kept vector finds itself at its new row
        assert len(set(rows) & set(exact.dense.search(query, 10)[1][0].tolist())) >= (10 if kind == "flat" else 8)
        filtered = loaded.dense.search(query, 5, Selection(("x",), allowed))[1][0].tolist()
        assert filtered == exact.dense.search(query, 5, Selection(("x",), allowed))[1][0].tolist()


def test_small_indexes_are_always_rewritten_in_fresh_order(tmp_path) -> None:
    base, more = synthetic(50), synthetic(10, start=50)
    store = IndexStore(tmp_path / "idx")  # the default threshold: far above 60 rows
    write(store, base)
    version = write(
        store,
        IndexData(
            more.documents + base.documents,
            more.chunks + base.chunks,
            np.concatenate([more.vectors, base.vectors]),
            base.manifest,
        ),
    )
    assert len(json.loads((version / "manifest.json").read_text())["segments"]) == 1
    assert store.load().chunks == more.chunks + base.chunks  # the order given, as before segments existed


def test_explicit_append_refuses_known_chunks_and_keeps_the_manifest(tmp_path) -> None:
    base = synthetic(300)
    base.manifest["files"] = {"x": 1}
    store = IndexStore(tmp_path / "idx", append_min_rows=0)
    write(store, base)
    more = synthetic(30, start=300)
    with store.writer_lock():
        store.append(more.documents, more.chunks, more.vectors)
        with pytest.raises(ValueError, match="already in the index"):
            store.append(more.documents[:1], more.chunks[:1], more.vectors[:1])
    loaded = store.load()
    assert loaded.n_chunks == 330 and loaded.manifest.files == {"x": 1}
    assert loaded.chunk(329) == more.chunks[-1] and loaded.document_text(more.documents[0].id) == more.documents[0].text


def test_many_appends_keep_few_segments(tmp_path) -> None:
    store = IndexStore(tmp_path / "idx", append_min_rows=0)
    write(store, synthetic(1000))
    for i in range(12):
        more = synthetic(20, start=1000 + 20 * i, seed=i)
        with store.writer_lock():
            store.append(more.documents, more.chunks, more.vectors)
    loaded = store.load()
    sizes = [s["chunks"] for s in loaded.manifest.segments]
    assert sum(sizes) == loaded.n_chunks == 1240 and len(sizes) <= 5
    assert all(a > 2 * b for a, b in zip(sizes, sizes[1:], strict=False))  # geometric: O(log n) segments
    assert [c.id for c in loaded.chunks][1000:1020] == [c.id for c in synthetic(20, start=1000, seed=0).chunks]
    assert len(list(store.versions.iterdir())) == 2  # old versions pruned; shared files survive in the live one
    np.testing.assert_array_equal(loaded.vectors()[1000:1020], synthetic(20, start=1000, seed=0).vectors)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf-pq"])
def test_a_long_tail_is_folded_into_the_index_with_add(tmp_path, monkeypatch, kind: str) -> None:
    monkeypatch.setattr(dense, "TAIL_MAX_ROWS", 50)
    store = IndexStore(tmp_path / "idx", StoreOptions(dense_index=kind), append_min_rows=0)
    write(store, synthetic(2000))
    params = store.load().manifest.dense["params"]
    more = synthetic(60, start=2000, seed=7)
    with store.writer_lock():
        store.append(more.documents, more.chunks, more.vectors)
    loaded = store.load()
    assert loaded.manifest.dense == {"store": "faiss", "index": kind, "choice": kind, "rows": 2060, "params": params}
    # no retraining: the same parameters
    assert loaded.dense.index.main_rows == 2060 and loaded.dense.index.tail.ntotal == 0
    scores, rows = loaded.dense.search(more.vectors[:1], 1)
    assert rows[0].tolist() == [2000]  # a new vector finds itself


def test_ivf_pq_is_retrained_once_it_has_grown(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(dense, "TAIL_MAX_ROWS", 10)
    store = IndexStore(tmp_path / "idx", StoreOptions(dense_index="ivf-pq"), append_min_rows=0)
    write(store, synthetic(1000))
    more = synthetic(3500, start=1000, seed=8)
    with store.writer_lock():
        store.append(more.documents, more.chunks, more.vectors)
    assert store.load().manifest.dense["params"]["trained_rows"] == 4500


def test_indexer_add_mode_appends_to_a_large_index(tmp_path, monkeypatch, settings) -> None:
    import rag.index.store

    monkeypatch.setattr(rag.index.store, "APPEND_MIN_ROWS", 0)
    corpus = write_corpus(tmp_path / "c", {f"f{i}.txt": f"File {i} talks about subject {i}." for i in range(30)})
    Indexer(settings, HashEmbedder()).index([corpus])
    extra = write_corpus(tmp_path / "new", {"fish.txt": "Salmon swim upstream to spawn."})
    report = Indexer(settings, HashEmbedder()).index([extra], prune=False)
    assert (report.chunks_embedded, report.chunks_total, report.changed) == (1, 31, True)
    loaded = IndexStore(settings.index_dir).load()
    assert [s["chunks"] for s in loaded.manifest.segments] == [30, 1]
    assert not Indexer(settings, HashEmbedder()).index([corpus, extra]).changed  # row order is not a change
    hits = Retriever.open(settings.index_dir, HashEmbedder()).search("salmon spawn", k=1)
    assert hits[0].chunk.source == "fish.txt"


def test_an_index_of_no_chunks_round_trips(tmp_path) -> None:
    data = synthetic(0)
    store = IndexStore(tmp_path / "idx")
    write(store, IndexData([], [], np.zeros((0, 32), np.float32), data.manifest))
    loaded = store.load()
    assert loaded.n_chunks == 0 and loaded.dense.search(np.ones((1, 32), np.float32), 5)[1].shape == (1, 0)
    assert loaded.bm25.top(["chunk"], 5)[0].tolist() == []


def test_a_rebuild_or_a_damaged_live_version_shares_no_files(tmp_path) -> None:
    base, more = synthetic(300), synthetic(10, start=300)
    store = IndexStore(tmp_path / "idx", append_min_rows=0)
    first = write(store, base)
    with store.writer_lock():
        second = store.write(concat(base, more), fresh=True)
    assert len(json.loads((second / "manifest.json").read_text())["segments"]) == 1
    seg = json.loads((second / "manifest.json").read_text())["segments"][0]["name"]
    (second / "segments" / seg / "vectors.npy").write_bytes(b"damaged")
    third = write(store, concat(base, synthetic(20, start=300)))  # not an append onto a damaged file
    assert [s["chunks"] for s in json.loads((third / "manifest.json").read_text())["segments"]] == [320]
    assert store.load().n_chunks == 320 and first.name != third.name


def test_rag_remove_and_a_changed_file_on_an_index_with_appended_segments(tmp_path, monkeypatch, settings) -> None:
    from typer.testing import CliRunner

    import rag.index.store
    from rag.cli import app
    from test_cli import env_for

    monkeypatch.setattr(rag.index.store, "APPEND_MIN_ROWS", 0)
    monkeypatch.chdir(tmp_path)
    corpus = write_corpus(tmp_path / "c", {f"f{i}.txt": f"File {i} talks about subject {i}." for i in range(30)})
    extra = write_corpus(
        tmp_path / "new", {"fish.txt": "Salmon swim upstream to spawn.", "owl.txt": "Owls hunt at night."}
    )
    Indexer(settings, HashEmbedder()).index([corpus])
    Indexer(settings, HashEmbedder()).index([extra])
    segments = [s["name"] for s in IndexStore(settings.index_dir).read_manifest().segments]
    assert len(segments) == 2
    result = CliRunner().invoke(app, ["remove", "c/f3.txt", "new/owl.txt", "--json"], env=env_for(settings))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["files_removed"], report["chunks_removed"], report["chunks_total"]) == (["f3.txt", "owl.txt"], 2, 30)
    loaded = IndexStore(settings.index_dir).load()
    assert [s["chunks"] for s in loaded.manifest.segments] == [29, 1]  # each segment rewritten without its file
    assert not {s["name"] for s in loaded.manifest.segments} & set(segments)
    assert loaded.manifest.dense["dropped"] == 1 and loaded.manifest.sources == ["c", "new"]
    assert sorted(loaded.source_rows()) == sorted([f"f{i}.txt" for i in range(30) if i != 3] + ["fish.txt"])
    retriever = Retriever.open(settings.index_dir, HashEmbedder())
    assert retriever.search("subject 3", k=30, mode="bm25") and "f3.txt" not in {
        h.chunk.source for h in retriever.search("subject 3", k=30)
    }
    assert [h.chunk.source for h in retriever.search("salmon spawn", k=1, sources=["fish*"])] == ["fish.txt"]
    (corpus / "f3.txt").unlink()  # as the warning says: or the next `rag index` adds them back
    (extra / "owl.txt").unlink()
    (corpus / "f5.txt").write_text("File 5 now talks about herons fishing.")  # a changed file: drop + add
    report = Indexer(settings, HashEmbedder()).index()
    assert (report.chunks_embedded, report.chunks_removed, report.chunks_total) == (1, 1, 30)
    loaded = IndexStore(settings.index_dir).load()
    assert [s["chunks"] for s in loaded.manifest.segments] == [28, 2]  # the new chunk merged with the small one
    hits = Retriever.open(settings.index_dir, HashEmbedder()).search("herons fishing", k=1, sources=["f5.txt"])
    assert hits[0].chunk.text == "File 5 now talks about herons fishing."
    assert not Indexer(settings, HashEmbedder()).index().changed


def test_the_indexer_updates_a_large_index_reading_only_what_changed(tmp_path, monkeypatch, settings) -> None:
    import rag.index.store
    from rag.index.chunkstore import ChunkStore
    from rag.index.store import LoadedIndex

    monkeypatch.setattr(rag.index.store, "APPEND_MIN_ROWS", 0)
    monkeypatch.chdir(tmp_path)
    paragraphs = [f"Paragraph {i} of the long file is about topic {i} and nothing else at all." for i in range(6)]
    files = {f"f{i}.txt": f"File {i} talks about subject {i}." for i in range(20)}
    corpus = write_corpus(tmp_path / "c", {**files, "long.txt": "\n\n".join(paragraphs)})
    Indexer(settings, HashEmbedder()).index([corpus])

    def whole_index_read(*args, **kwargs):
        raise AssertionError("an update read the whole index")

    readers = [
        (cls, name, getattr(cls, name))
        for cls, name in ((LoadedIndex, "vectors"), (ChunkStore, "iter_chunks"), (ChunkStore, "iter_documents"))
    ]
    for cls, name, _ in readers:
        monkeypatch.setattr(cls, name, whole_index_read)
    paragraphs[5] = "The last paragraph now speaks of herons instead."
    (corpus / "long.txt").write_text("\n\n".join(paragraphs))
    (corpus / "f0.txt").unlink()
    (corpus / "new.txt").write_text("Salmon swim upstream to spawn.")
    report = Indexer(settings, HashEmbedder()).index()
    for cls, name, reader in readers:
        monkeypatch.setattr(cls, name, reader)
    fresh = settings.with_overrides(index_dir=tmp_path / "fresh")
    want = Indexer(fresh, HashEmbedder()).index([corpus])
    assert (report.files_updated, report.chunks_total) == (2, want.chunks_total)
    assert report.chunks_embedded == 2  # the changed paragraph's chunk and the new file; long.txt's others reused
    updated, rebuilt = IndexStore(settings.index_dir).load(), IndexStore(fresh.index_dir).load()
    assert by_id(updated) == by_id(rebuilt)  # chunks, vectors and BM25 scores as a fresh build's
    assert {k: f["doc_id"] for k, f in updated.manifest.files.items()} == {
        k: f["doc_id"] for k, f in rebuilt.manifest.files.items()
    }
    assert not Indexer(settings, HashEmbedder()).index().changed
