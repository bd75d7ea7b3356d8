"""The answer step with a scripted fake LLM and hand-set (test-only) calibration: evidence ranking, the short
answer, the calibrated abstention, clause-level verification, repetition stops and the extractive fallback.
Exact and fast; the real models are exercised in test_answers.py."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

import pytest

from conftest import write_corpus
from rag.answer.calibration import Calibration, Logistic
from rag.answer.chain import ABSTAIN, RAG
from rag.answer.evidence import CONFIDENCE_FEATURES, SENTENCE_FEATURES, question_type
from rag.answer.llm import until_repeated
from rag.answer.prompting import condense_messages, shared_opening
from rag.answer.retrieval import Retriever
from rag.index.embedding import HashEmbedder
from rag.index.indexer import Indexer

CORPUS = {
    "deal.txt": "OpenAI and Microsoft announced a new deal. The details were disclosed on April 27, 2026, in a "
    "joint statement. Azure hosts the training workloads for the models.",
    "history.txt": "The Normans settled in Normandy. Rollo was the first ruler of Normandy.",
}


def _weights(names: Sequence[str], **given: float) -> Logistic:
    n = len(names)
    return Logistic(tuple(names), tuple(given.get(f, 0.0) for f in names), 0.0, (0.0,) * n, (1.0,) * n)


# Sentences rank by BM25 and type match; confidence = the best sentence's probability (logit weight 1).
CALIBRATION = Calibration(
    sentence=replace(_weights(SENTENCE_FEATURES, bm25=6.0, overlap=2.0, type_match=2.0), bias=-4.0),
    confidence=_weights(CONFIDENCE_FEATURES, best=1.0),
    min_confidence=0.3,
    second_sentence=0.5,
    max_words=60,
    support=0.55,
    prompt_sentences=4,
    meta={},
)


class ScriptedBackend:
    """Returns the given drafts in turn, a few characters at a time; records the prompts it got."""

    name = "scripted"
    model = "scripted-1"

    def __init__(self, *drafts: str):
        self.drafts = list(drafts)
        self.prompts: list[list[dict]] = []

    def stream(self, messages: Sequence[dict], max_tokens: int) -> Iterator[str]:
        self.prompts.append(list(messages))
        draft = self.drafts.pop(0)
        for i in range(0, len(draft), 7):
            yield draft[i : i + 7]


@pytest.fixture
def retriever(tmp_path, settings) -> Retriever:
    corpus = write_corpus(tmp_path / "corpus", CORPUS)
    Indexer(settings, HashEmbedder()).index([corpus])
    return Retriever.open(settings.index_dir, HashEmbedder())


def rag_with(retriever: Retriever, settings, backend=None, **overrides) -> RAG:
    return RAG(settings.with_overrides(**overrides), retriever, backend, CALIBRATION)


def test_question_types() -> None:
    assert [
        question_type(q)
        for q in (
            "When were the details disclosed?",
            "In what year did it start?",
            "How many models are there?",
            "Who gains access when OpenAI expands?",
            "Which cloud runs the training jobs?",
            "What role does it keep?",
        )
    ] == ["date", "date", "number", "name", "name", ""]


@pytest.mark.parametrize(
    ("text", "heading"),
    [
        ("Intro.\n\nStrategic Independence and Multi-Cloud Expansion\n\nThe deal widens access.", True),
        ("# Installation\nRun make.", True),
        ("Revenue Model Changes and Market Implications", True),  # a chunk that is only the heading
        ("Intro.\n\nThe deal widens access for enterprise customers\n\nMore.", False),  # a sentence, unpunctuated
        ("Intro.\n\nOpenAI Expands Beyond Azure.\n\nMore.", False),  # closing punctuation: a sentence
        ("Microsoft and OpenAI Signed It In Washington On Monday", True),
        ("The deal names Microsoft Azure Cloud Services\nas a partner.", False),  # the line goes on
        ("- Azure Hosting And Deployment Workloads For Enterprise Customers Across Every Region In The World", False),
    ],
)
def test_a_heading_is_a_line_of_its_own_without_closing_punctuation_in_title_case(text, heading) -> None:
    from rag.answer.evidence import is_heading
    from rag.text import sentences

    first = next(sp for sp in sentences(text) if text[sp.start : sp.end] not in ("Intro.",))
    assert is_heading(text, first.start, first.end) is heading


def test_a_heading_gives_context_but_is_never_evidence(tmp_path, settings) -> None:
    text = "Enterprise Customers And Developers Gain Access\n\nThe deal widens access to the models. It was signed."
    corpus = write_corpus(tmp_path / "headed", {"news.txt": text})
    indexed = settings.with_overrides(index_dir=tmp_path / "headed-index")
    Indexer(indexed, HashEmbedder()).index([corpus])
    rag = RAG(indexed, Retriever.open(indexed.index_dir, HashEmbedder()), None, CALIBRATION)
    answer = rag.ask("Who gains access to the models, enterprise customers and developers?", min_confidence=0)
    assert not answer.abstained and answer.text == "The deal widens access to the models. [1]"
    assert all(not s.sentence.heading for s in rag.selector.select(answer.query, answer.passages).ranked)
    # nor does it support a claim: a heading states nothing
    [claim] = rag.verifier.check("Enterprise Customers And Developers Gain Access [1].", answer.passages)
    assert not claim.supported


def test_alignment_is_the_idf_weighted_share_of_question_words_a_sentence_matches(retriever) -> None:
    from rag.answer.evidence import EvidenceSelector, Idf, passage_sentences

    selector = EvidenceSelector(retriever.embedder, Idf(retriever.index.bm25), CALIBRATION)
    question = "Which cloud hosts the training workloads?"
    pool = passage_sentences(retriever.search(question, k=3))
    rows = {p.text: f["alignment"] for p, f in zip(pool, selector.features(question, "name", pool), strict=True)}
    # hashed word vectors match a word only by itself: every content word of the question but "cloud" is there
    idf = selector.idf
    expected = sum(idf(w) for w in ("host", "train", "workload")) / sum(
        idf(w) for w in ("cloud", "host", "train", "workload")
    )
    assert rows["Azure hosts the training workloads for the models."] == pytest.approx(expected, abs=1e-5)
    assert rows["Rollo was the first ruler of Normandy."] == 0.0


def test_ranking_precomputed_features_is_what_select_does(retriever) -> None:
    """Fitting (eval/fit_calibration.py) ranks features computed once; it must see what users get."""
    from rag.answer.evidence import EvidenceSelector, Idf, passage_sentences, question_type

    selector = EvidenceSelector(retriever.embedder, Idf(retriever.index.bm25), CALIBRATION)
    question = "Which cloud hosts the training workloads?"
    hits = retriever.search(question, k=3)
    pool, kind = passage_sentences(hits), question_type(question)
    ranked = selector.rank(question, kind, pool, selector.features(question, kind, pool), hits)
    selected = selector.select(question, hits)
    assert ranked == selected
    assert ranked.ranked[0].sentence.text == "Azure hosts the training workloads for the models."


def test_sentences_seen_for_one_question_are_not_embedded_again_for_the_next(retriever) -> None:
    from rag.answer.evidence import EvidenceSelector, Idf

    embedder = HashEmbedder()
    selector = EvidenceSelector(embedder, Idf(retriever.index.bm25), CALIBRATION)
    hits = retriever.search("Which cloud hosts the training workloads?", k=3)
    first = selector.select("Which cloud hosts the training workloads?", hits)
    embedder.calls = 0
    again = selector.select("Where do the training workloads run?", hits)
    assert embedder.calls == 1  # the new question only
    assert [s.sentence for s in again.ranked] and {s.sentence for s in again.ranked} == {
        s.sentence for s in first.ranked
    }


def test_extractive_answer_is_the_best_sentence_with_the_short_answer_as_a_document_span(retriever, settings) -> None:
    answer = rag_with(retriever, settings).ask("When were the details disclosed?")
    assert not answer.abstained and answer.fallback is None
    assert answer.text.startswith("The details were disclosed on April 27, 2026, in a joint statement. [")
    doc = next(d for d in retriever.index.documents if d.source == "deal.txt")
    assert answer.short.quote == "April 27, 2026" == doc.text[answer.short.char_start : answer.short.char_end]
    assert [c.quote for c in answer.citations] == [
        "The details were disclosed on April 27, 2026, in a joint statement."
    ]
    assert 0.3 <= answer.confidence <= 1.0
    assert answer.to_dict()["short"]["quote"] == "April 27, 2026" and answer.to_dict()["confidence"] > 0.3
    # one statement per answer sentence, with the span that supports it
    (statement,) = answer.statements
    assert statement.text == answer.citations[0].quote and statement.citations == answer.citations
    assert answer.to_dict()["statements"][0]["citations"][0]["char_start"] == answer.citations[0].char_start


def test_below_the_confidence_threshold_it_abstains_and_says_how_sure_it_was(retriever, settings) -> None:
    sure = rag_with(retriever, settings).ask("When were the details disclosed?")
    strict = rag_with(retriever, settings, min_confidence=1.0).ask("When were the details disclosed?")
    assert strict.abstained and strict.text == ABSTAIN and strict.citations == ()
    assert strict.confidence == pytest.approx(sure.confidence)
    assert rag_with(retriever, settings).ask("Why do penguins migrate south?").abstained


def test_an_abstention_keeps_the_withheld_extractive_answer_as_its_draft(retriever, settings) -> None:
    strict = rag_with(retriever, settings, min_confidence=1.0).ask("When were the details disclosed?")
    assert strict.abstained and strict.draft.startswith("The details were disclosed on April 27, 2026")


def test_an_answer_lacking_what_the_question_asks_for_is_capped_at_the_fitted_ceiling(retriever, settings) -> None:
    capped = replace(CALIBRATION, untyped_ceiling={"number": 0.05})
    rag = RAG(settings, retriever, None, capped)
    answer = rag.ask("How many clouds host the training workloads?")  # the best sentence holds no number
    assert answer.confidence <= 0.05 and answer.abstained
    dated = rag.ask("When were the details disclosed?")  # a date question whose sentence has one: not capped
    assert dated.confidence == pytest.approx(rag_with(retriever, settings).ask(dated.query).confidence)
    assert not dated.abstained


def test_llm_answer_is_written_from_evidence_sentences_not_whole_chunks(retriever, settings) -> None:
    backend = ScriptedBackend("Azure runs the training workloads [1].")
    rag = RAG(settings, retriever, backend, replace(CALIBRATION, prompt_sentences=2))
    answer = rag.ask("Which cloud hosts the training workloads?")
    assert answer.text == "Azure runs the training workloads. [1]" and answer.fallback is None  # as written
    prompt = backend.prompts[0][1]["content"]
    assert "Azure hosts the training workloads for the models." in prompt
    assert "Rollo was the first ruler" not in prompt  # a sentence below the prompt's top evidence
    assert answer.citations[0].quote == "Azure hosts the training workloads for the models."


def test_the_prompt_key_makes_prompts_the_same_across_processes(retriever, settings) -> None:
    def prompt(**overrides) -> str:
        backend = ScriptedBackend("Azure runs the training workloads [1].")
        rag_with(retriever, settings, backend, **overrides).ask("Which cloud hosts the training workloads?")
        return backend.prompts[0][1]["content"]

    keyed = prompt(prompt_key="k1")
    assert "<<<PASSAGES-" in keyed and prompt(prompt_key="k1") == keyed  # a new RAG, as after a restart
    assert prompt(prompt_key="k2") != keyed
    assert prompt() != prompt()  # no key: a random one each time


def test_every_prompt_of_a_kind_opens_the_same_before_its_keyed_delimiters(retriever, settings) -> None:
    backend = ScriptedBackend("Azure runs the training workloads [1].", "On April 27, 2026 [1].")
    rag = rag_with(retriever, settings, backend, prompt_key="k1")
    for question in ("Which cloud hosts the training workloads?", "When were the details disclosed?"):
        rag.ask(question)
    first, second = (shared_opening(messages) for messages in backend.prompts)
    assert first == second and len(first) > 200 and "<<<" not in first
    assert backend.prompts[0][0]["content"].startswith(first) and backend.prompts[0] != backend.prompts[1]
    condense = condense_messages([{"role": "user", "content": "Who?"}], "And then?")
    assert shared_opening(condense) == condense[0]["content"]  # no delimiters: all of it
    assert shared_opening([{"role": "user", "content": "Who?"}]) == ""


def test_a_correct_clause_survives_an_invented_tail(retriever, settings) -> None:
    backend = ScriptedBackend("The details were revealed on April 27, 2026, by Satya Nadella on a blog [1].")
    answer = rag_with(retriever, settings, backend).ask("When were the details disclosed?")
    assert answer.fallback is None and answer.text == "The details were revealed on April 27, 2026. [1]"
    assert answer.removed == ("by Satya Nadella on a blog.",)
    assert answer.short.quote == "April 27, 2026"
    # the kept clause, not the sentence the model wrote, with the passage sentence that supports it
    assert [(st.text, [c.quote for c in st.citations]) for st in answer.statements] == [
        (
            "The details were revealed on April 27, 2026.",
            ["The details were disclosed on April 27, 2026, in a joint statement."],
        )
    ]


def test_a_kept_edit_of_a_passage_sentence_is_shown_as_that_sentence(retriever, settings) -> None:
    # every word from the passage sentence, rearranged: who hosts what is swapped
    backend = ScriptedBackend("The models host the training workloads for Azure [1].")
    answer = rag_with(retriever, settings, backend).ask("Which cloud hosts the training workloads?")
    assert answer.fallback is None and answer.text == "Azure hosts the training workloads for the models. [1]"
    assert [(st.text, [c.quote for c in st.citations]) for st in answer.statements] == [
        ("Azure hosts the training workloads for the models.", ["Azure hosts the training workloads for the models."])
    ]
    assert answer.draft.startswith("The models host")  # the model's own words stay in the draft
    # the same for a kept head: its passage sentence is quoted whole, and the invented tail stays removed
    backend = ScriptedBackend("The details were disclosed on April 27, 2026, by Satya Nadella on a blog [1].")
    answer = rag_with(retriever, settings, backend).ask("When were the details disclosed?")
    assert answer.text == "The details were disclosed on April 27, 2026, in a joint statement. [1]"
    assert answer.removed == ("by Satya Nadella on a blog.",)


def test_each_statement_carries_only_its_own_citations(retriever, settings) -> None:
    draft = "The details were revealed on April 27, 2026 [1]. Azure runs the training workloads [2]."
    answer = rag_with(retriever, settings, ScriptedBackend(draft)).ask("When were the details disclosed?")
    assert [(st.text, [c.quote for c in st.citations]) for st in answer.statements] == [
        (
            "The details were revealed on April 27, 2026.",
            ["The details were disclosed on April 27, 2026, in a joint statement."],
        ),
        ("Azure runs the training workloads.", ["Azure hosts the training workloads for the models."]),
    ]
    assert answer.text.endswith("[1] Azure runs the training workloads. [2]")
    assert [c for st in answer.statements for c in st.citations] == list(answer.citations)


def test_no_surviving_claim_falls_back_to_the_extractive_answer(retriever, settings) -> None:
    extractive = rag_with(retriever, settings).ask("When were the details disclosed?")
    backend = ScriptedBackend("Elon Musk bought Contoso for 42 billion dollars [1].")
    answer = rag_with(retriever, settings, backend).ask("When were the details disclosed?")
    assert answer.fallback == "extractive" and answer.to_dict()["fallback"] == "extractive"
    assert answer.text == extractive.text and answer.citations == extractive.citations
    assert answer.draft.startswith("Elon Musk")
    assert answer.removed == ("Elon Musk bought Contoso for 42 billion dollars.",)
    assert answer.backend == "scripted"


def test_a_draft_missing_the_answer_phrase_falls_back(retriever, settings) -> None:
    backend = ScriptedBackend("OpenAI and Microsoft announced a new deal [1].")  # true, but not the date asked
    answer = rag_with(retriever, settings, backend).ask("When were the details disclosed?")
    assert answer.fallback == "extractive" and "April 27, 2026" in answer.text


def test_i_dont_know_from_the_model_falls_back_when_the_evidence_answers(retriever, settings) -> None:
    answer = rag_with(retriever, settings, ScriptedBackend("I don't know.")).ask("When were the details disclosed?")
    assert answer.fallback == "extractive" and not answer.abstained


def test_generation_stops_at_a_repeated_clause(retriever, settings) -> None:
    loop = "The details were revealed on April 27, 2026 [1]. " + "The recognition of strategic advantage. " * 20
    answer = rag_with(retriever, settings, ScriptedBackend(loop)).ask("When were the details disclosed?")
    assert answer.draft.count("The recognition of strategic advantage") == 1
    assert answer.text == "The details were revealed on April 27, 2026. [1]"


def test_the_streamed_draft_leaves_out_echoes_of_the_prompt_delimiters(retriever, settings) -> None:
    draft = "<<<PASSAGES-0a1b2c3d4e5f>>> The details were revealed on April 27, 2026 [1]. <<<END-0a1b2c3d4e5f>>>"
    items = list(rag_with(retriever, settings, ScriptedBackend(draft)).stream("When were the details disclosed?"))
    pieces, answer = items[:-1], items[-1]
    assert len(pieces) > 3 and "".join(pieces) == "The details were revealed on April 27, 2026 [1]."
    assert answer.draft == draft and answer.text == "The details were revealed on April 27, 2026. [1]"


def test_until_repeated_passes_text_through_until_a_clause_repeats() -> None:
    pieces = ["1. Azure hosts", " training. 2. Azure", " hosts training. 3. More"]
    assert "".join(until_repeated(pieces)) == "1. Azure hosts training. 2. Azure"  # what streamed before the repeat
    assert "".join(until_repeated(["One, two. One, two three."])) == "One, two. One, two three."  # short clauses


def test_grounding_off_keeps_the_draft_as_said(retriever, settings) -> None:
    draft = "The details were disclosed on April 27, 2026 [1]. Elon Musk owns all dogs [2]."
    rag = rag_with(retriever, settings, ScriptedBackend(draft), grounding=False)
    answer = rag.ask("When were the details disclosed?")
    assert "Elon Musk owns all dogs" in answer.text and answer.fallback is None


def test_a_claim_that_only_restates_the_question_is_not_an_answer(retriever, settings) -> None:
    backend = ScriptedBackend("The training workloads are hosted [1].")
    answer = rag_with(retriever, settings, backend).ask("What hosts the training workloads?")  # no short answer
    assert answer.fallback == "extractive" and "Azure hosts the training workloads" in answer.text
    assert answer.removed == ("The training workloads are hosted.",)


def test_a_hyphened_pair_of_names_is_missing_only_when_one_of_them_is(retriever) -> None:
    from rag.answer.evidence import EvidenceSelector, Idf

    selector = EvidenceSelector(retriever.embedder, Idf(retriever.index.bm25), CALIBRATION)

    def missing(question: str) -> float:
        return selector.select(question, retriever.search(question, k=3)).features["missing_name"]

    # the passages say "OpenAI and Microsoft", never "OpenAI-Microsoft"
    assert missing("When was the OpenAI-Microsoft deal announced?") == 0.0
    assert missing("When was the OpenAI-Google deal announced?") == 1.0


class ScriptedReader:
    """The reader's log-odds, given per sentence (0 for any other)."""

    def __init__(self, **by_start: float):
        self.by_start = by_start

    def scores(self, question: str, sentences: Sequence[str]):
        import numpy as np

        return np.array([next((v for k, v in self.by_start.items() if s.startswith(k)), 0.0) for s in sentences])


def test_the_readers_reranking_puts_the_sentence_it_prefers_first(retriever) -> None:
    from rag.answer.calibration import Rerank
    from rag.answer.evidence import EvidenceSelector, Idf

    question = "Which cloud hosts the training workloads?"
    hits = retriever.search(question, k=3)
    reader = ScriptedReader(Rollo=6.0)

    def first(calibration: Calibration) -> tuple[str, float]:
        selector = EvidenceSelector(retriever.embedder, Idf(retriever.index.bm25), calibration, reader)
        evidence = selector.select(question, hits)
        return evidence.best.sentence.text, evidence.features["reader"]

    # the sentence model's order without re-ranking; the reader's log-odds follow the sentence they belong to
    assert first(CALIBRATION) == ("Azure hosts the training workloads for the models.", 0.0)
    assert first(replace(CALIBRATION, rerank=Rerank(reader=1.0, sentence=1.0))) == (
        "Rollo was the first ruler of Normandy.",
        6.0,
    )
    # the sentence model's log-odds weigh in too: a reader that barely prefers it does not move it
    assert first(replace(CALIBRATION, rerank=Rerank(reader=0.01, sentence=1.0)))[0].startswith("Azure")


def test_the_reranking_weights_round_trip_through_the_calibration_file() -> None:
    from rag.answer.calibration import Rerank

    reranked = replace(CALIBRATION, rerank=Rerank(reader=0.4, sentence=0.6))
    assert Calibration.from_dict(reranked.to_dict()) == reranked
    assert Calibration.from_dict(CALIBRATION.to_dict()).rerank is None
