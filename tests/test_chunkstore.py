"""The SQLite chunk store: rows and documents by id, on demand, in order, across segments."""

from __future__ import annotations

import pytest

from rag.errors import IndexCorrupt
from rag.index import chunkstore
from rag.index.chunkstore import ChunkStore, ChunkView, DocumentTexts, DocumentView
from rag.types import Chunk, Document


def corpus(n_docs: int, start: int = 0) -> tuple[list[Document], list[Chunk]]:
    docs = [
        Document.create(
            f"d{i}.txt",
            f"Doc {i}",
            f"First part of {i}. Second part of {i}; ünïcode ✓.",
            pages=(0, 17) if i % 2 else (),
            headings=((0, "Über"), (17, "Part 2")) if i % 2 else (),
        )
        for i in range(start, start + n_docs)
    ]  # odd ones: two pages and two headings, as a PDF or Markdown
    chunks = [
        c
        for d in docs
        for c in (Chunk.create(d, 0, d.text.index(".") + 1), Chunk.create(d, d.text.index(".") + 2, len(d.text)))
    ]
    return docs, chunks


def open_store(tmp_path, parts) -> ChunkStore:
    folders = []
    for i, (docs, chunks) in enumerate(parts):
        folder = tmp_path / f"seg{i}"
        folder.mkdir()
        assert chunkstore.write_segment(folder / chunkstore.FILE, docs, chunks) == (len(docs), len(chunks))
        folders.append((folder, len(chunks), len(docs)))
    return ChunkStore.open(folders)


def test_round_trip_across_segments(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(chunkstore, "PAGE", 3)  # stream in several pages
    a, b = corpus(5), corpus(2, start=5)
    store = open_store(tmp_path, [a, b])
    docs, chunks = a[0] + b[0], a[1] + b[1]
    assert (store.n_chunks, store.n_documents) == (14, 7)
    assert list(store.iter_chunks()) == chunks and list(store.iter_chunks(4, 12)) == chunks[4:12]
    assert store.chunks_by_rows([13, 0, 10, 10]) == [chunks[13], chunks[0], chunks[10], chunks[10]]
    assert list(store.iter_documents()) == docs and store.document_ids() == [d.id for d in docs]
    assert store.document(docs[6].id) == docs[6] and store.document("nope") is None
    assert store.chunk_ids() == [c.id for c in chunks]
    assert store.rows_of([chunks[11].id, "nope", chunks[2].id]) == {chunks[11].id: 11, chunks[2].id: 2}
    for c in chunks:  # the invariant citations rely on
        assert store.document(c.doc_id).text[c.start : c.end] == c.text
    view, dview, texts = ChunkView(store), DocumentView(store), DocumentTexts(store)
    assert len(view) == 14 and view[-1] == chunks[-1] and view[2:5] == chunks[2:5] and view == chunks
    assert view != chunks[:-1] and dview == docs and dview[6] == docs[6] and len(dview) == 7
    assert texts[docs[3].id] == docs[3].text and docs[3].id in texts and "nope" not in texts and len(texts) == 7
    assert list(texts) == [d.id for d in docs]
    with pytest.raises(KeyError):
        texts["nope"]
    with pytest.raises(IndexError):
        store.chunk(14)


def test_duplicate_ids_in_a_segment_are_refused(tmp_path) -> None:
    docs, chunks = corpus(1)
    with pytest.raises(ValueError, match="duplicate"):
        chunkstore.write_segment(tmp_path / "x.sqlite", docs, chunks + chunks[:1])


def test_a_damaged_file_is_reported_as_corrupt(tmp_path) -> None:
    store = open_store(tmp_path, [corpus(50)])
    store.close()
    path = tmp_path / "seg0" / chunkstore.FILE
    path.write_bytes(path.read_bytes()[:4096] + b"\xff" * (path.stat().st_size - 4096))
    damaged = ChunkStore.open([(tmp_path / "seg0", 100, 50)])
    with pytest.raises(IndexCorrupt, match="rag index --rebuild"):
        list(damaged.iter_chunks())


def test_a_filtered_segment_keeps_the_rest_in_order_with_its_runs(tmp_path) -> None:
    docs, chunks = corpus(4)
    store = open_store(tmp_path, [(docs, chunks)])
    store.close()
    out = tmp_path / "filtered.sqlite"
    drop = [2, 3, 5]  # document 1 whole, and the second chunk of document 2
    assert chunkstore.filter_segment(tmp_path / "seg0" / chunkstore.FILE, out, drop, {docs[1].id}) == (3, 5)
    folder = tmp_path / "f"
    folder.mkdir()
    out.rename(folder / chunkstore.FILE)
    filtered = ChunkStore.open([(folder, 5, 3)])
    kept = [c for i, c in enumerate(chunks) if i not in drop]
    assert list(filtered.iter_chunks()) == kept and list(filtered.iter_documents()) == [docs[0], docs[2], docs[3]]
    assert filtered.runs() == [
        (0, 2, docs[0].id, docs[0].source),
        (2, 3, docs[2].id, docs[2].source),
        (3, 5, docs[3].id, docs[3].source),
    ]
    assert filtered.rows_of_documents({docs[3].id, docs[1].id}).tolist() == [3, 4]
    assert filtered.document(docs[0].id) == docs[0]
