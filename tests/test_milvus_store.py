"""Dense vectors in Milvus (Milvus Lite, started in-process by the tests): the store's round trip, model checks,
incremental upserts and deletes, crash leftovers, switching stores without re-embedding, clear errors, and
BM25 through Milvus full-text search. The shared retrieval tests also run on Milvus (tests/test_retrieval.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import write_corpus
from rag.answer.retrieval import Retriever
from rag.errors import IndexCorrupt, IndexMismatch, StoreError
from rag.index.dense_store import StoreOptions
from rag.index.embedding import HashEmbedder
from rag.index.indexer import Indexer
from rag.index.milvus_store import MilvusCollection, connect, public_uri, record_uri
from rag.index.store import IndexData, IndexStore
from rag.types import Chunk, Document

MILVUS = StoreOptions(store="milvus")


def sample(model: str = "hash") -> IndexData:
    doc = Document.create("a.txt", "A", "Alpha beta. Gamma delta.")
    chunks = [Chunk.create(doc, 0, 11), Chunk.create(doc, 12, 24)]
    vectors = np.array([[1, 0, 0], [0, 0.6, 0.8]], dtype=np.float32)
    manifest = {
        "embedding": {"model": model, "dim": 3},
        "chunking": {"size": 8, "overlap": 0},
        "files": {"a.txt": {"sha256": "x", "doc_id": doc.id, "path": "a.txt"}},
    }
    return IndexData([doc], chunks, vectors, manifest)


def collection_of(store: IndexStore) -> MilvusCollection:
    record = store.read_manifest().dense
    uri = str(store.root / record["uri"])
    return MilvusCollection(connect(uri), record["collection"], uri)


def test_round_trip_keeps_vectors_in_milvus_and_the_rest_local(tmp_path) -> None:
    store = IndexStore(tmp_path / "idx", MILVUS)
    data = sample()
    with store.writer_lock():
        version = store.write(data)
    loaded = IndexStore(tmp_path / "idx").load(expected_model="hash")  # a reader needs no options
    assert loaded.documents == data.documents and loaded.chunks == data.chunks
    np.testing.assert_array_equal(loaded.vectors(), data.vectors)
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["dense"] == {
        "store": "milvus",
        "uri": "milvus.db",
        "collection": manifest["dense"]["collection"],
        "metric": "IP",
        "index_type": "FLAT",
        "full_text": None,
    }
    assert "dense.faiss" not in manifest["artifacts"] and not (version / "dense.faiss").exists()
    assert (tmp_path / "idx" / "milvus.db").is_dir()
    from milvus_lite import server_manager_instance

    server_manager_instance.release_server(str(tmp_path / "idx" / "milvus.db"))  # as a new process: reopen, reload
    loaded = IndexStore(tmp_path / "idx").load(expected_model="hash")
    assert (loaded.dense.count(), loaded.dense.d) == (2, 3)
    scores, rows = loaded.dense.search(np.array([[0, 0.6, 0.8]], dtype=np.float32), 3)
    assert rows.tolist() == [[1, 0, -1]]
    assert scores[0][:2].tolist() == pytest.approx([1.0, 0.0], abs=1e-6)
    # the collection holds the chunk fields too, keyed by chunk id
    row = collection_of(store).client.get(
        manifest["dense"]["collection"],
        ids=[data.chunks[1].id],
        output_fields=["doc_id", "source", "char_start", "char_end", "text"],
    )[0]
    assert (row["doc_id"], row["source"], row["char_start"], row["char_end"], row["text"]) == (
        data.chunks[1].doc_id,
        "a.txt",
        12,
        24,
        "Gamma delta.",
    )


@pytest.mark.parametrize("kind", ["faiss", "milvus"])
def test_both_stores_round_trip_the_same_index(tmp_path, kind: str) -> None:
    store = IndexStore(tmp_path / "idx", StoreOptions(store=kind))
    data = sample()
    for _ in range(3):  # versions swap in and are pruned the same way
        with store.writer_lock():
            version = store.write(data)
    loaded = store.load(expected_model="hash")
    assert loaded.path == version == store.current() and len(list(store.versions.iterdir())) == 2
    assert (loaded.documents, loaded.chunks) == (data.documents, data.chunks)
    assert loaded.manifest.counts == {"documents": 1, "chunks": 2}
    np.testing.assert_array_equal(loaded.vectors(), data.vectors)
    scores, rows = loaded.dense.search(np.array([[0.6, 0.8, 0]], dtype=np.float32), 2)
    assert rows.tolist() == [[0, 1]] and scores.tolist()[0] == pytest.approx([0.6, 0.48])
    assert loaded.bm25.get_scores(["gamma"]).tolist()[0] == 0.0 < loaded.bm25.get_scores(["gamma"]).tolist()[1]
    with pytest.raises(IndexMismatch, match="built with embedding model 'hash', settings say 'other'"):
        store.load(expected_model="other")


def test_model_is_checked_against_the_collection(tmp_path) -> None:
    store = IndexStore(tmp_path / "idx", MILVUS)
    with store.writer_lock():
        version = store.write(sample())
    with pytest.raises(IndexMismatch, match="built with embedding model 'hash', settings say 'other'"):
        store.load(expected_model="other")
    manifest = json.loads((version / "manifest.json").read_text())  # a manifest that lies about the vectors
    manifest["embedding"] = {"model": "other", "dim": 3}
    (version / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatch, match="holds vectors of model 'hash' .*the index says 'other'.*--rebuild"):
        store.load()


def test_missing_collection_and_unreachable_server_say_what_to_do(tmp_path) -> None:
    store = IndexStore(tmp_path / "idx", MILVUS)
    with store.writer_lock():
        store.write(sample())
    collection_of(store).drop()
    with pytest.raises(IndexCorrupt, match="collection rag_.* is missing at .*milvus.db.*--rebuild"):
        store.load()
    down = IndexStore(tmp_path / "idx", StoreOptions(milvus_uri="http://user:secret@127.0.0.1:9"))
    with pytest.raises(StoreError, match=r"cannot connect to Milvus at http://127.0.0.1:9 .*RAG_MILVUS_URI") as err:
        down.load()
    assert "secret" not in str(err.value)


def test_incremental_index_upserts_new_chunks_and_deletes_removed_ones(corpus, settings) -> None:
    settings = settings.with_overrides(store="milvus")
    embedder = HashEmbedder()
    Indexer(settings, embedder).index([corpus])
    store = IndexStore(settings.index_dir)
    collection = collection_of(store)
    assert collection.count() == 4
    (corpus / "dogs.md").write_text("# Dogs\n\nDogs howl at the moon.", encoding="utf-8")
    (corpus / "sub" / "birds.txt").unlink()
    report = Indexer(settings, embedder).index([corpus])
    assert (report.chunks_embedded, report.chunks_removed, report.chunks_total) == (1, 2, 3)
    loaded = store.load()
    assert sorted(collection.ids()) == sorted(c.id for c in loaded.chunks)
    np.testing.assert_allclose(loaded.vectors(), embedder.embed([c.text for c in loaded.chunks]), atol=1e-6)
    again = Indexer(settings, embedder).index([corpus])
    assert (again.chunks_embedded, again.changed) == (0, False)


def test_interrupted_write_leaves_the_old_version_whole_and_the_next_write_cleans_up(
    corpus, settings, monkeypatch
) -> None:
    settings = settings.with_overrides(store="milvus")
    Indexer(settings, HashEmbedder()).index([corpus])
    before = Retriever.open(settings.index_dir, HashEmbedder()).search("Do dogs bark at strangers?", k=4)
    (corpus / "fish.txt").write_text("Salmon swim upstream to spawn. Dogs bark at salmon.", encoding="utf-8")

    def killed(self, name):
        raise KeyboardInterrupt  # as if the process died after the upsert, before the swap

    monkeypatch.setattr(IndexStore, "_point_current_at", killed)
    with pytest.raises(KeyboardInterrupt):
        Indexer(settings, HashEmbedder()).index([corpus])
    monkeypatch.undo()
    retriever = Retriever.open(settings.index_dir, HashEmbedder())
    assert collection_of(IndexStore(settings.index_dir)).count() == 5  # the new chunk is there, unused
    assert retriever.search("Do dogs bark at strangers?", k=4) == before  # the old version, whole
    (corpus / "fish.txt").unlink()
    Indexer(settings, HashEmbedder()).index([corpus], rebuild=True)
    assert collection_of(IndexStore(settings.index_dir)).count() == 4  # the stray row is gone


def test_switching_stores_moves_vectors_without_reembedding(corpus, settings) -> None:
    embedder = HashEmbedder()
    Indexer(settings, embedder).index([corpus])
    faiss_hits = Retriever.open(settings.index_dir, embedder).search("kittens open their eyes", k=4)
    calls = embedder.calls
    report = Indexer(settings.with_overrides(store="milvus"), embedder).index([corpus])
    assert (report.changed, report.chunks_embedded, embedder.calls) == (True, 0, calls)
    retriever = Retriever.open(settings.index_dir, embedder)
    assert retriever.index.manifest.dense["store"] == "milvus"
    assert [h.chunk.id for h in retriever.search("kittens open their eyes", k=4)] == [h.chunk.id for h in faiss_hits]
    assert not Indexer(settings, embedder).index([corpus]).changed  # no --store: the index keeps Milvus
    back = Indexer(settings.with_overrides(store="faiss"), embedder).index([corpus])
    assert (back.changed, back.chunks_embedded) == (True, 0)
    loaded = IndexStore(settings.index_dir).load()
    assert loaded.manifest.dense["store"] == "faiss" and (loaded.path / "dense.faiss").is_file()
    assert connect(str(settings.index_dir / "milvus.db")).list_collections() == []  # the collection was dropped


def test_new_model_gets_a_new_collection_and_the_old_one_is_dropped(corpus, settings) -> None:
    settings = settings.with_overrides(store="milvus")
    Indexer(settings, HashEmbedder()).index([corpus])
    first = IndexStore(settings.index_dir).read_manifest().dense["collection"]
    rerun = HashEmbedder()
    rerun.backend = "hash-v2"  # same model name, vectors from another backend: re-embedded into the same collection
    assert Indexer(settings, rerun).index([corpus]).chunks_embedded == 4
    assert IndexStore(settings.index_dir).read_manifest().dense["collection"] == first
    assert collection_of(IndexStore(settings.index_dir)).count() == 4
    other = HashEmbedder(dim=32)
    other.name = "hash-32"
    Indexer(settings, other).index([corpus], rebuild=True)
    loaded = IndexStore(settings.index_dir).load(expected_model="hash-32")
    assert loaded.manifest.dense["collection"] != first and loaded.dense.d == 32
    assert connect(str(settings.index_dir / "milvus.db")).list_collections() == [loaded.manifest.dense["collection"]]


def test_full_text_search_runs_in_milvus_where_the_server_has_it(corpus, tmp_path) -> None:
    """Milvus Lite lacks the English analyzer (so BM25 stays local by default); with a plain one, BM25 runs there."""
    documents = [
        Document.create(name, name, text)
        for name, text in [
            ("cats.txt", "Cats purr when they are content."),
            ("birds.txt", "Parrots can mimic human speech."),
            ("dogs.txt", "Dogs bark at strangers. Dogs bark at parrots."),
        ]
    ]
    chunks = [Chunk.create(d, 0, len(d.text)) for d in documents]
    data = IndexData(
        documents,
        chunks,
        HashEmbedder().embed([c.text for c in chunks]),
        {"embedding": {"model": "hash", "dim": 64}, "chunking": {}, "files": {}},
    )
    analyzer = {"tokenizer": "standard", "filter": [{"type": "stop", "stop_words": ["can", "at", "the"]}]}
    default = IndexStore(tmp_path / "english", MILVUS)
    plain = IndexStore(tmp_path / "plain", StoreOptions(store="milvus", full_text=json.dumps(analyzer)))
    for store in (default, plain):
        with store.writer_lock():
            store.write(data)
    assert default.load().full_text is None  # the English analyzer is not in Milvus Lite: local bm25s
    loaded = plain.load()
    assert loaded.manifest.dense["full_text"] == analyzer
    hits = Retriever(loaded, HashEmbedder()).search("parrots speech", k=3, mode="bm25")
    assert [h.chunk.source for h in hits] == ["birds.txt", "dogs.txt"]  # only chunks sharing a term score
    assert hits[0].score > hits[1].score > 0
    assert Retriever(loaded, HashEmbedder()).search("the", mode="bm25") == []


def test_lite_folder_held_by_another_process_is_a_clear_error(tmp_path) -> None:
    from milvus_lite import server_manager_instance

    store = IndexStore(tmp_path / "idx", MILVUS)
    with store.writer_lock():
        store.write(sample())
    server_manager_instance.release_server(str(tmp_path / "idx" / "milvus.db"))  # this process lets go
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pymilvus import MilvusClient; MilvusClient(sys.argv[1]); "
            "print('ready', flush=True); time.sleep(60)",
            str(tmp_path / "idx" / "milvus.db"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreError, match="Milvus Lite serves one process at a time"):
            IndexStore(tmp_path / "idx").load()
    finally:
        holder.kill()
        holder.wait()


def test_remove_drops_a_source_from_the_collection_without_embedding(corpus, settings, tmp_path) -> None:
    settings = settings.with_overrides(store="milvus")
    embedder = HashEmbedder()
    notes = write_corpus(tmp_path / "notes", {"fish.txt": "Salmon swim upstream to spawn."})
    Indexer(settings, embedder).index([corpus, notes])
    store = IndexStore(settings.index_dir)
    assert collection_of(store).count() == 5
    calls = embedder.calls
    report = Indexer(settings, embedder).remove([notes])
    assert (report.chunks_removed, report.chunks_total, embedder.calls) == (1, 4, calls)
    loaded = store.load()
    assert sorted(collection_of(store).ids()) == sorted(c.id for c in loaded.chunks)
    assert "fish.txt" not in loaded.manifest.files
    np.testing.assert_allclose(loaded.vectors(), embedder.embed([c.text for c in loaded.chunks]), atol=1e-6)


def test_uris_are_recorded_without_credentials(tmp_path) -> None:
    assert public_uri("https://root:Milvus@db.example:19530/x") == "https://db.example:19530/x"
    assert record_uri("", tmp_path) == "milvus.db"
    assert record_uri(str(tmp_path / "sub" / "v.db"), tmp_path) == "sub/v.db"
    assert record_uri("/elsewhere/v.db", tmp_path) == "/elsewhere/v.db"
    with pytest.raises(Exception, match="store must be"):
        IndexStore(tmp_path / "idx", StoreOptions(store="pinecone"))


def test_index_and_search_from_the_command_line(corpus, settings) -> None:
    from typer.testing import CliRunner

    from rag.cli import app

    env = {
        "RAG_INDEX_DIR": str(settings.index_dir),
        "RAG_EMBEDDING_MODEL": "hash",
        "RAG_CHUNK_SIZE": "16",
        "RAG_CHUNK_OVERLAP": "4",
    }
    runner = CliRunner()
    result = runner.invoke(app, ["index", str(corpus), "--store", "milvus", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["chunks_embedded"] == 4
    result = runner.invoke(app, ["search", "dogs bark", "--k", "2", "--json"], env=env)
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert hits[0]["source"] == "dogs.md" and (hits[0]["dense_rank"], hits[0]["bm25_rank"]) == (1, 1)
    result = runner.invoke(app, ["search", "dogs", "--milvus-uri", "http://127.0.0.1:9"], env=env)
    assert result.exit_code == 1 and "cannot connect to Milvus at http://127.0.0.1:9" in result.output
