"""`rag eval-beir` on a small synthetic BEIR folder: loading, caching, and metrics equal to ranx's on the same run."""

from __future__ import annotations

from ranx import Qrels, Run, evaluate
from typer.testing import CliRunner

from conftest import write_beir
from rag.answer.retrieval import Retriever
from rag.cli import app
from rag.evaluation.beir import document_run, evaluate_beir, load_beir, mirror_corpus, score
from rag.index.embedding import HashEmbedder
from rag.index.indexer import Indexer
from rag.settings import Settings


def test_load_beir_keeps_judged_queries(tmp_path) -> None:
    data = load_beir(write_beir(tmp_path / "ds"))
    assert len(data.corpus) == 120 and len(data.queries) == 10 and "unjudged" not in data.queries
    assert data.qrels["q0"].keys() == {"d0-0", "d0-1", "d0-2"}


def test_metrics_equal_ranx_on_the_same_run(tmp_path) -> None:
    data = load_beir(write_beir(tmp_path / "ds"))
    settings = Settings(index_dir=tmp_path / "index", embedding_model="hash", chunk_size=16, chunk_overlap=0)
    Indexer(settings, HashEmbedder()).index([mirror_corpus(data, tmp_path / "mirror")])
    retriever = Retriever.open(settings.index_dir, HashEmbedder())
    for mode in ("bm25", "dense", "hybrid"):
        run = document_run(retriever, data.queries, mode)
        assert all(len(set(docs)) == len(docs) for docs in run.values())
        ours = score(run, data.qrels)
        ranx_run = Run({q: {d: float(len(docs) - i) for i, d in enumerate(docs)} for q, docs in run.items()})
        ref = evaluate(Qrels(data.qrels), ranx_run, ["ndcg@10", "recall@100", "mrr@10"])
        for metric in ("ndcg@10", "recall@100", "mrr@10"):
            assert abs(ours[metric] - ref[metric]) < 1e-4, (mode, metric)
        if mode == "bm25":  # the hashing test embedder is no semantic model; BM25 must rank these well
            assert ours["ndcg@10"] > 0.8


def test_second_run_reuses_the_cached_index(tmp_path) -> None:
    folder = write_beir(tmp_path / "ds")
    settings = Settings(embedding_model="hash", chunk_size=16, chunk_overlap=0)
    first = evaluate_beir(folder, settings, HashEmbedder(), ["bm25"], cache=tmp_path / "cache")
    second = evaluate_beir(folder, settings, HashEmbedder(), ["bm25"], cache=tmp_path / "cache")
    assert 0 < first["chunks_embedded"] <= first["chunks"]  # identical chunk texts are embedded once
    assert second["chunks_embedded"] == 0
    assert first["modes"]["bm25"]["ndcg@10"] == second["modes"]["bm25"]["ndcg@10"]
    whole = evaluate_beir(folder, settings, HashEmbedder(), ["dense"], whole_docs=True, cache=tmp_path / "cache")
    assert whole["chunks"] == 120


def test_cli_rejects_a_folder_that_is_not_beir_and_says_where_scifact_goes(tmp_path) -> None:
    result = CliRunner().invoke(app, ["eval-beir", str(tmp_path)], env={"RAG_EMBEDDING_MODEL": "hash"})
    assert result.exit_code == 2 and f"{tmp_path} is not a BEIR folder" in result.stderr
    result = CliRunner().invoke(app, ["eval-beir", str(tmp_path / "scifact")], env={"RAG_EMBEDDING_MODEL": "hash"})
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {tmp_path / 'scifact'} does not exist. For SciFact")
    assert "../shared/data/scifact" in result.stderr and "RAG_BENCH_DATA" in result.stderr
