"""`rag eval` end to end on a tiny corpus with the deterministic extractive backend: exact summary values."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from conftest import write_corpus
from rag.answer.calibration import load as load_calibration
from rag.answer.chain import RAG
from rag.cli import EVAL_PROMPT_KEY, app
from rag.errors import RagError
from rag.evaluation.evaluate import GoldSpan, Question, gold_spans, load_questions, relevant_chunks
from rag.types import Chunk, Document

QUESTIONS = [
    {
        "id": "q1",
        "question": "How many hours do cats sleep?",
        "answers": ["sixteen hours"],
        "answerable": True,
        "support": [{"source": "cats.txt", "quote": "Cats sleep sixteen hours a day."}],
    },
    {
        "id": "q2",
        "question": "Do dogs bark at strangers?",
        "answers": ["bark at strangers"],
        "answerable": True,
        "support": [{"source": "dogs.txt", "quote": "Dogs bark at strangers."}],
    },
    {"id": "q3", "question": "What colour are parrots?", "answers": [], "answerable": False, "support": []},
]


def test_eval_end_to_end_exact_summary(tmp_path) -> None:
    corpus = write_corpus(
        tmp_path / "corpus",
        {
            "cats.txt": "Cats sleep sixteen hours a day.\n\nCats purr when content.",
            "dogs.txt": "Dogs bark at strangers.\n\nDogs learn a hundred words.",
        },
    )
    qfile = tmp_path / "q.jsonl"
    qfile.write_text("\n".join(json.dumps(q) for q in QUESTIONS))
    env = {
        "RAG_EMBEDDING_MODEL": "hash",
        "RAG_CHUNK_SIZE": "16",
        "RAG_CHUNK_OVERLAP": "0",
        "RAG_INDEX_DIR": str(tmp_path / "index"),
    }
    out = tmp_path / "report"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            str(qfile),
            "--corpus",
            str(corpus),
            "--backend",
            "extractive",
            "--k",
            "2",
            "--out",
            str(out),
            "--json",
            "--cache",
            str(tmp_path / "cache"),
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["backends"][0]
    assert summary["backend"] == "extractive" and summary["model"] == "hash"
    assert (summary["questions"], summary["answerable"], summary["unanswerable"]) == (3, 2, 1)
    assert summary["retrieval"] == {"recall@k": 1.0, "mrr@10": 1.0, "ndcg@10": 1.0}
    # F1 by hand: "cats sleep sixteen hours day 1" vs "sixteen hours" = 2PR/(P+R) with P=2/6, R=1 -> 0.5;
    # "dogs bark at strangers 1" vs "bark at strangers": P=3/5, R=1 -> 0.75; mean 0.625
    assert summary["answer"] == {"exact_match": 0.0, "token_f1": 0.625, "contains_answer": 1.0}
    assert summary["citations"] == {"precision": 1.0, "recall": 1.0}
    assert summary["abstention_rate"] == 1.0 and summary["false_abstention_rate"] == 0.0
    assert summary["passed"] == 3
    assert summary["fallback_rate"] == 0.0  # extractive answers are never a fallback
    # first text is timed for the two answers, not for the abstention; it comes before the answer is complete
    assert 0 < summary["latency"]["first_text_p50"] <= summary["latency"]["p95"]
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["q1", "q2", "q3"]
    assert rows[0]["answer"] == "Cats sleep sixteen hours a day. [1]"
    assert rows[0]["citations"][0]["quote"] == "Cats sleep sixteen hours a day."
    assert rows[2]["abstained"] and rows[2]["answer"] == "The documents do not say."
    assert json.loads((out / "summary.json").read_text())["backends"][0] == summary
    # which CPU ran it and which fit decided the abstentions, as the README's figures say for theirs
    run = json.loads(result.stdout)
    packaged = load_calibration()
    assert run["machine"]["cpus"] >= 1
    assert run["calibration"] == {
        "fitted_at": packaged.meta["fitted_at"],
        "fitted_on": packaged.meta["machine"],
        "min_confidence": packaged.min_confidence,
    }
    page = (out / "report.html").read_text()
    assert page.count("<svg") == 2 and "How many hours do cats sleep?" in page


@pytest.mark.parametrize(("env_key", "used"), [(None, EVAL_PROMPT_KEY), ("mine", "mine")])
def test_eval_keys_llm_prompts_the_same_in_every_run(tmp_path, monkeypatch, env_key, used) -> None:
    opened = []
    original = RAG.open.__func__
    monkeypatch.setattr(
        RAG, "open", classmethod(lambda cls, *a, **kw: opened.append(kw["settings"]) or original(cls, *a, **kw))
    )
    corpus = write_corpus(tmp_path / "corpus", {"cats.txt": "Cats sleep sixteen hours a day."})
    qfile = tmp_path / "q.jsonl"
    qfile.write_text(json.dumps(QUESTIONS[0]))
    env = {"RAG_EMBEDDING_MODEL": "hash", "RAG_CHUNK_SIZE": "16", "RAG_CHUNK_OVERLAP": "0"}
    args = ["eval", str(qfile), "--corpus", str(corpus), "--out", str(tmp_path / "r"), "--cache", str(tmp_path / "c")]
    result = CliRunner().invoke(app, [*args, "--json"], env={**env, "RAG_PROMPT_KEY": env_key})
    assert result.exit_code == 0, result.output
    assert [s.prompt_key for s in opened] == [used] and used not in result.stdout


def test_gold_quotes_must_be_found(tmp_path) -> None:
    q = Question("x", "?", (), True, ({"source": "a.txt", "quote": "not there"},))
    with pytest.raises(RagError, match="quote not found in a.txt"):
        gold_spans(q, {"a.txt": ("d1", "Some text.")})
    q = Question("x", "?", (), True, ({"source": "a.txt", "quote": "Some   text."},))
    assert gold_spans(q, {"a.txt": ("d1", "Some text.")}) == [GoldSpan("d1", 0, 10)]


def test_relevant_chunks_are_those_overlapping_a_gold_span() -> None:
    doc = Document.create("a.txt", "a", "One two. Three four. Five six.")
    chunks = [Chunk.create(doc, 0, 8), Chunk.create(doc, 9, 20), Chunk.create(doc, 21, 30)]
    assert relevant_chunks(chunks, [GoldSpan(doc.id, 5, 12)]) == {chunks[0].id: 1, chunks[1].id: 1}
    assert relevant_chunks(chunks, [GoldSpan("other", 5, 12)]) == {}


def test_bad_question_files_say_where(tmp_path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "a", "question": "?", "answerable": true}\n{"id": "a"}\n')
    with pytest.raises(RagError, match=r"q.jsonl:2: not a question record"):
        load_questions(path)
    path.write_text('{"id": "a", "question": "?", "answerable": true}\n' * 2)
    with pytest.raises(RagError, match="q.jsonl:2: duplicate id 'a'"):
        load_questions(path)


def test_the_eval_cache_is_keyed_by_the_index_format(tmp_path, monkeypatch) -> None:
    """An upgrade that changes the index format gets a fresh evaluation index instead of failing on the old one."""
    import rag.index.store
    from rag.evaluation.evaluate import eval_index_dir
    from rag.settings import Settings

    corpus = write_corpus(tmp_path / "corpus", {"a.txt": "Azure hosts the training workloads."})
    before = eval_index_dir(corpus, Settings(), tmp_path / "cache")
    assert eval_index_dir(corpus, Settings(), tmp_path / "cache") == before
    monkeypatch.setattr(rag.index.store, "FORMAT_VERSION", rag.index.store.FORMAT_VERSION + 1)
    assert eval_index_dir(corpus, Settings(), tmp_path / "cache") != before


def test_summary_counts_fallbacks_among_answers_and_times_first_text_only_where_there_was_one() -> None:
    from rag.evaluation.evaluate import summarise

    def record(abstained: bool, fallback: str | None, first: float | None) -> dict:
        timings = {"total": 2.0} | ({"first_text": first} if first is not None else {})
        return {
            "answerable": True,
            "abstained": abstained,
            "fallback": fallback,
            "timings": timings,
            "latency": 2.0,
            "passed": not abstained,
            "confidence": 0.5,
            "would_be_correct": True,
        }

    summary = summarise(
        [record(False, "extractive", 1.0), record(False, None, 3.0), record(True, None, None)], "local", "m"
    )
    assert summary["fallback_rate"] == 0.5  # one of the two answers; the abstention is not an answer
    assert summary["latency"]["first_text_p50"] == 2.0 and summary["latency"]["first_text_p95"] == 2.9
    nothing = summarise([record(True, None, None)], "local", "m")
    assert nothing["fallback_rate"] is None and nothing["latency"]["first_text_p50"] is None
