"""eval/bench.py: the synthetic index it searches at scale, and a tiny end-to-end run whose report has every
section and ratio. Nothing here times anything: speed is reported by `make bench`, never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import SEEDS, write_beir
from rag.answer.llm import BUNDLED_GGUF, bundled_gguf
from rag.index.embedding import HashEmbedder
from rag.index.indexer import Indexer
from rag.index.store import IndexStore
from rag.settings import Settings
from tests.conftest import eval_script

ROOT = Path(__file__).resolve().parents[1]


def test_synthetic_index_repeats_chunks_with_fresh_ids(corpus, settings) -> None:
    Indexer(settings, HashEmbedder()).index([corpus])
    real = IndexStore(settings.index_dir).load()
    data = eval_script("bench").synthetic_index(real.chunks, real.documents, real.vectors(), 11)
    assert len(data.chunks) == len(data.vectors) == 11
    assert len({c.id for c in data.chunks}) == 11  # perturbed ids: no collisions
    assert data.chunks[: len(real.chunks)] == real.chunks
    assert np.array_equal(data.vectors[: len(real.chunks)], real.vectors())
    assert np.allclose(np.linalg.norm(data.vectors, axis=1), 1.0, atol=1e-5)
    docs = {d.id: d for d in data.documents}
    assert all(docs[c.doc_id].text[c.start : c.end] == c.text for c in data.chunks)  # spans still exact
    copy = data.chunks[len(real.chunks)]
    assert copy.text == real.chunks[0].text and copy.source.startswith("copy1/")
    assert 0.7 < float(data.vectors[len(real.chunks)] @ real.vectors()[0]) < 0.999  # near its original, not on it


def test_bench_without_scifact_says_where_to_put_it(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "eval" / "bench.py"), "--skip-langchain", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "RAG_BENCH_DATA": str(tmp_path / "nowhere")},
    )
    assert proc.returncode == 1 and not list(tmp_path.iterdir())
    assert proc.stderr.startswith(f"SciFact is not at {tmp_path / 'nowhere'}: put the BEIR SciFact folder")
    assert "RAG_BENCH_DATA or --data" in proc.stderr and str(ROOT.parent / "shared" / "data" / "scifact") in proc.stderr


@pytest.mark.integration
def test_tiny_bench_run_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "report"
    data = write_beir(tmp_path / "beir")  # its own small BEIR folder: the test needs nothing outside the repository
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "eval" / "bench.py"),
            "--docs",
            "12",
            "--sizes",
            "150",
            "--queries",
            "10",
            "--skip-langchain",
            "--skip-answers",
            "--skip-scale",
            "--out",
            str(out),
            "--data",
            str(data),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((out / "bench.json").read_text())
    summary = result["summary"]
    backend = summary["default_backend"]
    build = result["build"][backend]
    assert build["documents"] == 12 and build["chunks"] >= 12 and build["chunks_embedded"] == build["chunks"]
    assert build["unchanged_embedded"] == 0 and build["one_changed_embedded"] >= 1
    assert result["raw_sentence_transformers"]["texts"] == build["unique_texts"]
    for key in (
        f"build_{backend}_vs_own_encoder",
        f"build_{backend}_vs_raw_sentence_transformers",
        f"unchanged_reindex_{backend}_speedup",
        f"one_changed_reindex_{backend}_speedup",
    ):
        assert summary[key] > 0, key
    row = result["queries"]["sizes"]["150"]
    for mode in ("dense", "bm25", "hybrid", "query_embed"):
        assert 0 < row[f"{mode}_p50_ms"] <= row[f"{mode}_p95_ms"], mode
    assert result["rag_help_s"] > 0 and "langchain_build" not in result and "answers" not in result
    md = (out / "bench.md").read_text()
    assert "## Index build" in md and "## Re-index" in md and "## Query latency" in md and "| 150 |" in md
    assert proc.stdout == md  # the table is printed too


@pytest.mark.integration
def test_answer_latency_times_the_local_model_beside_its_gguf_as_shipped(tmp_path: Path, real_embedder) -> None:
    index_dir = tmp_path / "index"
    Indexer(Settings(index_dir=index_dir), real_embedder).index([SEEDS])
    bench = eval_script("bench")
    shipped = f"local, {BUNDLED_GGUF} as shipped"
    result = bench.stage_answers(
        {
            "index_dir": str(index_dir),
            "backend": "torch",  # the fixture's embedder
            "model_cache_dir": str(Settings.default("model_cache_dir")),
            "questions": str(ROOT / "eval" / "seed_questions.jsonl"),
            "limit": 2,
            "backends": {
                "extractive": {"backend": "extractive"},
                "local": {"backend": "local"},
                shipped: {"backend": "local", "llm_model_path": str(bundled_gguf())},
            },
        }
    )
    answers = result["backends"]
    assert list(answers) == ["extractive", "local", shipped]
    for a in answers.values():
        assert a["questions"] == 2 and 0 < a["first_token_p50_ms"] <= a["total_p95_ms"]
    speedups = bench.local_speedups(answers)
    assert set(speedups) == {
        "local_first_token_p50_speedup_over_shipped_gguf",
        "local_total_p50_speedup_over_shipped_gguf",
    }
    assert speedups["local_total_p50_speedup_over_shipped_gguf"] == round(
        answers[shipped]["total_p50_ms"] / answers["local"]["total_p50_ms"], 2
    )
    assert bench.local_speedups({"local": answers["local"]}) == {}  # no baseline, no ratio
