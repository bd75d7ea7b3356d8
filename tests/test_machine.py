"""rag.evaluation.machine: the CPU a figure came from, and when `rag eval` warns that the calibration's CPU differs."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from conftest import write_corpus
from rag.answer.calibration import load as load_calibration
from rag.cli import app
from rag.evaluation import machine
from rag.evaluation.machine import cpu, int8_kernels_differ

CPUINFO = """processor\t: 0
model name\t: Example CPU @ 2.80GHz
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni
"""


def test_cpu_reads_the_model_and_the_int8_extensions(tmp_path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    info = cpu(path)
    assert info["cpu"] == "Example CPU @ 2.80GHz" and info["simd"] == ["avx2", "avx512f", "avx512_vnni"]
    assert info["cpus"] >= 1
    assert set(cpu(tmp_path / "missing")) == {"cpus"}  # not Linux: only what os says


def test_int8_kernels_differ_only_on_avx512_vnni_and_only_when_both_are_known() -> None:
    vnni, avx2 = {"simd": ["avx2", "avx512f", "avx512_vnni"]}, {"simd": ["avx2"]}
    assert int8_kernels_differ(vnni, avx2) and int8_kernels_differ(avx2, vnni)
    assert not int8_kernels_differ(vnni, {"simd": ["avx512_vnni"]})
    assert not int8_kernels_differ(avx2, {"simd": ["avx2", "avx512f"]})
    assert not int8_kernels_differ(vnni, {}) and not int8_kernels_differ({}, avx2)


def _eval(tmp_path, *extra: str):
    corpus = write_corpus(tmp_path / "corpus", {"cats.txt": "Cats sleep sixteen hours a day."})
    qfile = tmp_path / "q.jsonl"
    qfile.write_text(
        json.dumps(
            {
                "id": "q1",
                "question": "How long do cats sleep?",
                "answers": ["sixteen hours"],
                "answerable": True,
                "support": [{"source": "cats.txt", "quote": "sixteen hours"}],
            }
        )
    )
    env = {"RAG_EMBEDDING_MODEL": "hash", "RAG_EMBEDDING_BACKEND": "onnx-int8", "RAG_INDEX_DIR": str(tmp_path / "i")}
    args = ["eval", str(qfile), "--corpus", str(corpus), "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "c")]
    return CliRunner().invoke(app, [*args, *extra], env=env)


def test_eval_says_when_the_calibration_was_fitted_on_other_int8_kernels(tmp_path, monkeypatch) -> None:
    fitted = load_calibration().meta["machine"]
    other = [f for f in fitted["simd"] if f != "avx512_vnni"] + (
        [] if "avx512_vnni" in fitted["simd"] else ["avx512_vnni"]
    )
    monkeypatch.setattr(machine, "cpu", lambda: {"cpus": 2, "cpu": "Other CPU", "simd": other})
    result = _eval(tmp_path)
    assert result.exit_code == 0, result.output
    assert "note: the calibration was fitted on a CPU" in result.stderr
    assert "python eval/fit_calibration.py refits on this machine" in result.stderr
    report = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert report["machine"]["cpu"] == "Other CPU"


def test_eval_is_quiet_on_the_calibration_s_own_kind_of_cpu(tmp_path, monkeypatch) -> None:
    fitted = load_calibration().meta["machine"]
    monkeypatch.setattr(machine, "cpu", lambda: {"cpus": 2, "cpu": "Same kind", "simd": list(fitted["simd"])})
    result = _eval(tmp_path)
    assert result.exit_code == 0, result.output
    assert "note: the calibration" not in result.stderr
