"""Fit the answer step's parameters and write them to rag/answer/calibration.json (versioned, no pickle).

    python eval/fit_calibration.py [--squad ../shared/data/squad2] [--fit-article Normans]
    python eval/fit_calibration.py --cross-source    # judge each calibration source fitted on the others

Calibration split: the SQuAD 2.0 questions on ONE article (`--fit-article`, answerable and unanswerable) plus
eval/seed_questions.jsonl and eval/seed_questions_dev.jsonl. Never used here, and left for reporting: the other
SQuAD article, eval/seed_questions_heldout.jsonl and eval/seed_questions_heldout2.jsonl. Retrieval runs as users
get it (hybrid, k passages) over the whole corpus.

What is fitted, in order:
1. the sentence model over rag.answer.evidence.SENTENCE_FEATURES: a linear ranker fitted on pairs (a sentence of
   the top-k passages that contains a gold answer against one of the same question's that does not: logistic
   regression on feature differences), then Platt-scaled into a probability on the sentences themselves;
1b. with `--rerank` only: the re-ranking of the best few sentences (rag.answer.reader.SENTENCES) by the reader's
   log-odds and the sentence model's together, a conditional logit fitted on out-of-fold sentence-model scores
   (each source ranked by a model fitted on the others);
2. the second-sentence cut-off: the value that makes extractive answers contain a gold answer most often;
3. the confidence calibrator: logistic regression over rag.answer.evidence.CONFIDENCE_FEATURES, each weight held to
   the sign its meaning implies (CONFIDENCE_SIGNS: more of the question found can only raise confidence), label
   "the extractive answer contains a gold answer" (always 0 for unanswerable questions); the sources (the SQuAD
   article, each seed question file) weigh the same, however many questions each has; then, per question kind, the
   ceiling for answers whose best sentence lacks the kind of thing asked for: their share right, Laplace-smoothed
   ((right + 1) / (n + 2));
4. the abstention threshold: the lowest confidence whose balanced accuracy (the mean of the share of answerable
   questions answered right and the share of unanswerable questions abstained on, averaged over the sources)
   is within TIE of the best: where the curve is flat, answer rather than refuse.
`--cross-source` writes nothing: it fits on every calibration source but one (the SQuAD article, each seed question
file) and judges on that one, for each in turn. It also judges the judge sets (`--judge`), fitted on all three
sources as the packaged fit is. No fit ever uses a judge set, so no past choice leaned on it before it was judged:
- eval/normans_reader_questions.jsonl: 60 questions on the SQuAD fit article in a reader's words (20 unanswerable);
- eval/judge/harbor_reader_questions.jsonl: questions in a reader's words on eval/judge/corpus/, an invented news
  article in the seed article's style;
- eval/judge/news_reader_questions.jsonl and news2_reader_questions.jsonl: 90 questions each on three invented news
  articles (eval/judge/news/, eval/judge/news2/), retrieved over the three;
- eval/judge/wide_reader_questions.jsonl: 720 questions (240 unanswerable) on 24 invented articles, news and
  encyclopedia style (eval/judge/wide/), retrieved over the 24; each of eight helpers wrote three articles and
  their questions.
The others were each written by a helper who read only its article (the articles by another). Feature and
fitting changes are chosen on these figures, never on held-out questions.
The grounding model (which claims of a model's draft the passages support) is fitted by eval/fit_grounding.py
on hand-labelled claims; this script keeps the one in the file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.answer.calibration import PACKAGED, Calibration, Logistic, Rerank, load, logit  # noqa: E402
from rag.answer.evidence import (  # noqa: E402
    CONFIDENCE_FEATURES,
    CONFIDENCE_SIGNS,
    SENTENCE_FEATURES,
    EvidenceSelector,
    Idf,
    extract,
    passage_sentences,
    question_type,
)
from rag.answer.reader import digest as reader_digest  # noqa: E402
from rag.answer.retrieval import Retriever  # noqa: E402
from rag.evaluation.evaluate import by_source, eval_index_dir, load_questions  # noqa: E402
from rag.evaluation.machine import cpu  # noqa: E402
from rag.evaluation.metrics import accuracy_at_coverage, contains_answer, risk_coverage  # noqa: E402
from rag.index.embedding import embedder_for  # noqa: E402
from rag.index.indexer import Indexer  # noqa: E402
from rag.settings import Settings  # noqa: E402

DEFAULT_SQUAD = ROOT.parent / "shared" / "data" / "squad2"
WIDE = ROOT / "eval" / "judge" / "wide"
# Design choices, not fitted: the length cap, the prompt size, and the grounding support cut-off
# carried over from the seed-set calibration of the first answer step (README, "Backends").
MAX_WORDS = 60
PROMPT_SENTENCES = 4
SUPPORT = 0.55
# Balanced accuracies closer than this are a tie: one question of the smallest calibration set (26 answerable) moves
# it by 1 / 26 / 2 / 2 = 0.0096. Chosen on `--cross-source` (README, "Tried after token alignment").
TIE = 0.01


def collect(settings: Settings, corpus: Path, questions, k: int, cache: Path) -> list[dict]:
    """Per question: its sentences' features and labels, from the same retrieval users get."""
    index_dir = eval_index_dir(corpus, settings, cache)
    embedder = embedder_for(settings)
    Indexer(settings.with_overrides(index_dir=index_dir), embedder).index([corpus])
    retriever = Retriever.open(index_dir, embedder)
    selector = EvidenceSelector(embedder, Idf(retriever.index.bm25), calibration=None)
    rows = []
    for q in questions:
        hits = retriever.search(q.question, k=k)
        pool = passage_sentences(hits)
        kind = question_type(q.question)
        feats = selector.features(q.question, kind, pool) if pool else []
        labels = [q.answerable and contains_answer(p.text, q.answers) == 1.0 for p in pool]
        rows.append({"q": q, "hits": hits, "pool": pool, "kind": kind, "features": feats, "labels": labels})
    return rows, selector


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    names: tuple[str, ...],
    weight: np.ndarray | None = None,
    c: float = 1.0,
    signs: dict[str, int] | None = None,
) -> Logistic:
    """L2-regularised logistic regression on standardised features (scikit-learn's objective). With `signs`, a
    feature whose sign is +1 (-1) may only raise (lower) the probability, so the model cannot learn the opposite
    from quirks of the fitting data; fitted then by bounded L-BFGS (SciPy), as scikit-learn offers no bounds."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    if signs is None:
        model = LogisticRegression(C=c, max_iter=2000).fit(z, y, sample_weight=weight)
        coef, bias = model.coef_[0], float(model.intercept_[0])
    else:
        coef, bias = _bounded_logistic(
            z, y, np.ones(len(y)) if weight is None else weight, c, [signs[n] for n in names]
        )
    return Logistic(
        names,
        tuple(float(w) for w in coef),
        bias,
        tuple(float(m) for m in mean),
        tuple(float(s) for s in scale),
    )


def _bounded_logistic(z: np.ndarray, y: np.ndarray, weight: np.ndarray, c: float, signs: list[int]):
    from scipy.optimize import minimize

    target = np.asarray(y, dtype=float)

    def loss(params: np.ndarray):
        bias, coef = params[0], params[1:]
        t = z @ coef + bias
        value = np.sum(weight * (np.logaddexp(0.0, t) - target * t)) + 0.5 / c * coef @ coef
        g = weight * (1.0 / (1.0 + np.exp(-t)) - target)
        return value, np.concatenate([[g.sum()], z.T @ g + coef / c])

    bounds = [(None, None)] + [(0.0, None) if s > 0 else (None, 0.0) if s < 0 else (None, None) for s in signs]
    fitted = minimize(loss, np.zeros(z.shape[1] + 1), jac=True, bounds=bounds, method="L-BFGS-B")
    if not fitted.success:
        sys.exit(f"the confidence fit did not converge: {fitted.message}")
    return fitted.x[1:], float(fitted.x[0])


def fit_ranker(rows: list[dict], x: np.ndarray, y: np.ndarray) -> Logistic:
    """Weights that rank a question's answer sentences above its other sentences (pairwise logistic regression
    on standardised feature differences), scaled into probabilities by a one-feature logistic fit (Platt)."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    diffs, at = [], 0
    for r in rows:
        n = len(r["labels"])
        labels = np.array(r["labels"], dtype=bool)
        for i in np.flatnonzero(labels):
            for j in np.flatnonzero(~labels):
                diffs += [z[at + i] - z[at + j], z[at + j] - z[at + i]]
        at += n
    signs = np.tile([1, 0], len(diffs) // 2)
    ranker = LogisticRegression(C=1.0, fit_intercept=False, max_iter=2000).fit(np.array(diffs), signs)
    w = ranker.coef_[0]
    platt = LogisticRegression(C=1.0, max_iter=2000).fit((z @ w).reshape(-1, 1), y)
    a, b = float(platt.coef_[0][0]), float(platt.intercept_[0])
    return Logistic(
        SENTENCE_FEATURES,
        tuple(float(v) * a for v in w),
        b,
        tuple(float(m) for m in mean),
        tuple(float(s) for s in scale),
    )


def fit_sentence(rows: list[dict]) -> tuple[Logistic, np.ndarray]:
    """Step 1: the sentence model fitted on `rows`' sentences, and their labels."""
    x = np.array([[f[name] for name in SENTENCE_FEATURES] for r in rows for f in r["features"]])
    y = np.array([label for r in rows for label in r["labels"]])
    return fit_ranker(rows, x, y), y


def fit_rerank(rows: list[dict], selectors: list, provisional: Calibration) -> tuple[Rerank, dict]:
    """Step 1b: the re-ranking weights on the reader's and the sentence model's log-odds for the best few
    sentences, fitted on out-of-fold scores (each source ranked by a sentence model fitted on the others; with one
    source, alternate questions), since a model scores its own fitting questions too well: a conditional logit
    (softmax over each answerable question's few, its mass on those holding a gold answer; L2, C=1). Also returns
    how often, out of fold, the first of the few held a gold answer before and after."""
    fold = [r["set"] for r in rows] if len(sources(rows)) > 1 else [i % 2 for i in range(len(rows))]
    groups = []  # per answerable question: its few's (reader log-odds, sentence log-odds) and labels
    for f in dict.fromkeys(fold):
        held = replace(provisional, sentence=fit_sentence([r for r, g in zip(rows, fold, strict=True) if g != f])[0])
        test = [i for i, g in enumerate(fold) if g == f]
        mine, theirs = [rows[i] for i in test], [selectors[i] for i in test]
        for r, ev, selector in zip(mine, evidence_of(mine, theirs, held), theirs, strict=True):
            if r["q"].answerable and ev.ranked:
                head, read = selector.reread(r["q"].question, ev.ranked)
                head = head[: len(read)]
                labels = np.array([contains_answer(s.sentence.text, r["q"].answers) == 1.0 for s in head])
                groups.append((np.array([read, [logit(s.probability) for s in head]]).T, labels))

    w = conditional_logit(groups)
    first = sum(bool(labels[0]) for _, labels in groups)
    after = sum(bool(labels[int(np.argmax(x @ w))]) for x, labels in groups)
    return Rerank(float(w[0]), float(w[1])), {
        "answerable": len(groups),
        "right_first_before": first,
        "right_first_after": after,
    }


def conditional_logit(groups: list[tuple[np.ndarray, np.ndarray]], c: float = 1.0) -> np.ndarray:
    """Weights w for groups of (features, labels): the softmax of features @ w over each group puts its mass on the
    group's labelled rows (groups with none are skipped); L2-regularised with strength 1/c."""
    from scipy.optimize import minimize

    def loss(w: np.ndarray):
        value, grad = 0.5 / c * w @ w, w / c
        for x, labels in groups:
            if labels.any():
                t = x @ w
                total = np.logaddexp.reduce(t)
                target = labels / labels.sum()
                value += total - target @ t
                grad = grad + x.T @ (np.exp(t - total) - target)
        return value, grad

    return minimize(loss, np.zeros(groups[0][0].shape[1]), jac=True, method="L-BFGS-B").x


def evidence_of(rows: list[dict], selectors: list, calibration: Calibration) -> list:
    """Every question's evidence under `calibration`, from the sentence features `collect` computed once."""
    out = []
    for r, selector in zip(rows, selectors, strict=True):
        selector.calibration = calibration
        q = r["q"].question
        out.append(
            selector.rank(q, r["kind"], r["pool"], r["features"], r["hits"]) if r["pool"] else selector.select(q, [])
        )
    return out


def correct(ev, calibration: Calibration, q) -> bool:
    """Does the extractive answer from `ev` contain a gold answer (never, for an unanswerable question)?"""
    chosen = extract(ev, calibration)
    return bool(q.answerable and chosen and contains_answer(" ".join(p.text for p in chosen.parts), q.answers))


def fit(rows: list[dict], selectors: list, rerank: bool = False) -> tuple[Calibration, dict]:
    """Steps 1-4 of the module docstring on `rows` (from `collect`, each with its "set"): the calibration, with
    the abstention threshold, and what the fit saw on its own questions."""
    per_set = {name: sum(r["set"] == name for r in rows) for name in sources(rows)}

    # 1. the sentence model
    sentence, y = fit_sentence(rows)
    provisional = Calibration(
        sentence,
        Logistic(
            CONFIDENCE_FEATURES,
            (0.0,) * len(CONFIDENCE_FEATURES),
            0.0,
            (0.0,) * len(CONFIDENCE_FEATURES),
            (1.0,) * len(CONFIDENCE_FEATURES),
        ),
        0.0,
        1.0,
        MAX_WORDS,
        SUPPORT,
        PROMPT_SENTENCES,
        {},
    )
    reranked = {}
    if rerank:  # 1b.
        weights, reranked = fit_rerank(rows, selectors, provisional)
        provisional = replace(provisional, rerank=weights)
    evidences = evidence_of(rows, selectors, provisional)

    # 2. the second-sentence cut-off
    answerable = [(ev, r["q"]) for ev, r in zip(evidences, rows, strict=True) if r["q"].answerable]
    grid = [round(v, 2) for v in np.arange(0.05, 1.0001, 0.05)]
    hits_at = {v: sum(correct(ev, replace(provisional, second_sentence=v), q) for ev, q in answerable) for v in grid}
    second = max(grid, key=lambda v: (hits_at[v], v))
    provisional = replace(provisional, second_sentence=second)

    # 3. the confidence calibrator
    usable = [(ev, r) for ev, r in zip(evidences, rows, strict=True) if ev.features]
    cx = np.array([[ev.features[name] for name in CONFIDENCE_FEATURES] for ev, _ in usable])
    cy = np.array([correct(ev, provisional, r["q"]) for ev, r in usable])
    cw = np.array([len(rows) / (len(per_set) * per_set[r["set"]]) for _, r in usable])
    confidence = fit_logistic(cx, cy, CONFIDENCE_FEATURES, cw, signs=CONFIDENCE_SIGNS)
    untyped = {}
    for (ev, _), ok in zip(usable, cy, strict=True):
        if ev.kind and ev.features["type_mismatch"]:
            untyped.setdefault(ev.kind, []).append(bool(ok))
    ceiling = {kind: (sum(oks) + 1) / (len(oks) + 2) for kind, oks in sorted(untyped.items())}
    provisional = replace(provisional, confidence=confidence, untyped_ceiling=ceiling)
    evidences = evidence_of(rows, selectors, provisional)

    # 4. the abstention threshold
    scored = [(ev.confidence, correct(ev, provisional, r["q"])) for ev, r in zip(evidences, rows, strict=True)]
    thresholds = sorted({round(c, 3) for c, _ in scored} | {0.0, 1.0})
    accuracy = {t: balanced_accuracy(scored, rows, t) for t in thresholds}
    threshold = min(t for t in thresholds if accuracy[t] >= max(accuracy.values()) - TIE)

    from sklearn.metrics import roc_auc_score

    figures = {"balanced_accuracy": round(accuracy[threshold], 4)}
    for name, (right, refused) in shares(scored, rows, threshold).items():
        figures[f"{name}_answerable_correct"] = round(right, 4)
        figures[f"{name}_unanswerable_abstained"] = round(refused, 4)
    figures.update(
        {
            "untyped_answers": {kind: f"{sum(oks)} of {len(oks)} right" for kind, oks in sorted(untyped.items())},
            "sentence_positive_rate": round(float(y.mean()), 4),
            "confidence_auc": round(float(roc_auc_score([ok for _, ok in scored], [c for c, _ in scored])), 4),
            "second_sentence_grid": {str(v): hits_at[v] for v in grid},
            **({"reranked_out_of_fold": reranked} if rerank else {}),
        }
    )
    return replace(provisional, min_confidence=float(threshold)), {
        "sentences": int(len(y)),
        "second": second,
        "figures": figures,
    }


def sources(rows: list[dict]) -> list[str]:
    """The sets the rows come from, in order of first appearance."""
    return list(dict.fromkeys(r["set"] for r in rows))


def shares(scored: list[tuple[float, bool]], rows: list[dict], t: float) -> dict[str, tuple[float, float]]:
    """Per set, at threshold `t`: the share of its answerable questions answered right and the share of its
    unanswerable ones abstained on."""
    out = {}
    for name in sources(rows):
        mine = [(c, ok, r["q"].answerable) for (c, ok), r in zip(scored, rows, strict=True) if r["set"] == name]
        right = [c >= t and ok for c, ok, answerable in mine if answerable]
        refused = [c < t for c, _, answerable in mine if not answerable]
        out[name] = (sum(right) / max(1, len(right)), sum(refused) / max(1, len(refused)))
    return out


def balanced_accuracy(scored: list[tuple[float, bool]], rows: list[dict], t: float) -> float:
    """At threshold `t`: the mean, over the sets, of (share of answerable questions answered right + share of
    unanswerable ones abstained on) / 2."""
    means = [(right + refused) / 2 for right, refused in shares(scored, rows, t).values()]
    return sum(means) / len(means)


def cross_source(rows: list[dict], selectors: list, judges: Sequence[str] = (), rerank: bool = False) -> dict:
    """Leave one source out: fit on the others, judge on it. The figures a feature or fitting change is chosen
    on, since they show how the answer step does on questions from a source it was not fitted on. A source named
    in `judges` is never fitted on: it is judged once, fitted on every other source."""
    from sklearn.metrics import roc_auc_score

    out = {}
    for source in sources(rows):
        train = [i for i, r in enumerate(rows) if r["set"] != source and r["set"] not in judges]
        test = [i for i, r in enumerate(rows) if r["set"] == source]
        calibration, _ = fit([rows[i] for i in train], [selectors[i] for i in train], rerank)
        mine = [rows[i] for i in test]
        evidences = evidence_of(mine, [selectors[i] for i in test], calibration)
        scored = [(ev.confidence, correct(ev, calibration, r["q"])) for ev, r in zip(evidences, mine, strict=True)]
        oks = [ok for _, ok in scored]
        answerable = [r["q"].answerable for r in mine]
        t = calibration.min_confidence
        out[source] = {
            "answerable": sum(answerable),
            "right_without_threshold": sum(oks),
            "answered_right": sum(c >= t and ok for c, ok in scored),
            "unanswerable_abstained": f"{sum(c < t for (c, _), a in zip(scored, answerable, strict=True) if not a)}"
            f" of {len(answerable) - sum(answerable)}",
            "balanced_accuracy": round(balanced_accuracy(scored, mine, t), 3),
            "confidence_auc": round(float(roc_auc_score(oks, [c for c, _ in scored])), 3)
            if 0 < sum(oks) < len(oks)
            else None,
            "accuracy_at_50": round(accuracy_at_coverage(risk_coverage([c for c, _ in scored], oks), 0.5), 3),
        }
    return out


def supported(questions: list, corpus: Path) -> list:
    """`questions`, once every support quote is found verbatim in its source under `corpus` (else exit)."""
    for q in questions:
        for quote in q.support:
            path = corpus / quote["source"]
            if not path.is_file() or quote["quote"] not in path.read_text(encoding="utf-8"):
                sys.exit(f"question {q.id}: its support quote is not in {path}")
    return questions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--squad", type=Path, default=DEFAULT_SQUAD, help="SQuAD 2.0 folder (corpus/, questions.jsonl)")
    parser.add_argument("--fit-article", default="Normans", help="the SQuAD article to fit on (the other reports)")
    parser.add_argument(
        "--seed-questions",
        type=Path,
        nargs="+",
        default=[ROOT / "eval" / "seed_questions.jsonl", ROOT / "eval" / "seed_questions_dev.jsonl"],
    )
    for flag, role in (
        (
            "--calibration",
            "a further calibration source: a question set and its corpus, fitted on as a source of its "
            "own (repeatable)",
        ),
        (
            "--judge",
            "with --cross-source: a question set and its corpus that are judged, fitted on every calibration "
            "source, and never fitted on (repeatable; default: the four in the module docstring)",
        ),
    ):
        parser.add_argument(flag, nargs=2, action="append", type=Path, metavar=("QUESTIONS", "CORPUS"), help=role)
    parser.add_argument("--k", type=int, default=Settings().k)
    parser.add_argument("--out", type=Path, default=PACKAGED)
    parser.add_argument("--cache", type=Path, default=ROOT / "eval" / ".cache")
    parser.add_argument(
        "--cross-source",
        action="store_true",
        help="write nothing: fit on all sources but one (the SQuAD article, each seed question file), judge on "
        "that one, for each in turn, and print the figures as JSON",
    )
    parser.add_argument(
        "--rerank",
        action="store_true",
        help="also fit step 1b, the reader's re-ranking of the best few sentences (README: judged, not the default)",
    )
    args = parser.parse_args()
    if not (args.squad / "questions.jsonl").is_file():
        sys.exit(f"no SQuAD 2.0 data at {args.squad}: pass --squad DIR (corpus/ and questions.jsonl)")
    settings = Settings()
    started = time.time()
    squad = by_source(load_questions(args.squad / "questions.jsonl"))
    if f"{args.fit_article}.txt" not in squad:
        sys.exit(f"no article {args.fit_article!r} in {args.squad}: one of {', '.join(s[:-4] for s in squad)}")
    fit_questions = squad[f"{args.fit_article}.txt"]
    # each seed file is a source of its own, weighing as much as the SQuAD article, in the packaged fit as in the
    # fits --cross-source judges, so the judges judge what ships
    seed_sets = [(path.stem, load_questions(path)) for path in args.seed_questions]
    sets = [("squad", args.squad / "corpus", fit_questions)] + [(n, ROOT / "seeds", qs) for n, qs in seed_sets]
    # the judge sets are only read to be judged (--cross-source); a fit never sees them
    default_judges = [
        (ROOT / "eval" / "normans_reader_questions.jsonl", args.squad / "corpus"),
        (ROOT / "eval" / "judge" / "harbor_reader_questions.jsonl", ROOT / "eval" / "judge" / "corpus"),
        (ROOT / "eval" / "judge" / "news_reader_questions.jsonl", ROOT / "eval" / "judge" / "news"),
        (ROOT / "eval" / "judge" / "news2_reader_questions.jsonl", ROOT / "eval" / "judge" / "news2"),
        (ROOT / "eval" / "judge" / "wide_reader_questions.jsonl", WIDE),
    ]
    judged = (args.judge or default_judges) if args.cross_source else []
    judges = [path.stem for path, _ in judged]
    further = [*(args.calibration or []), *judged]
    sets += [(path.stem, corpus, supported(load_questions(path), corpus)) for path, corpus in further]
    rows, selectors = [], []
    for name, corpus, questions in sets:
        got, selector = collect(settings, corpus, questions, args.k, args.cache)
        rows += [{**r, "set": name} for r in got]
        selectors += [selector] * len(got)
    if args.cross_source:
        print(json.dumps(cross_source(rows, selectors, judges, args.rerank), indent=2))
        return
    calibration, fitted = fit(rows, selectors, args.rerank)
    meta = {
        "fitted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python eval/fit_calibration.py " + " ".join(sys.argv[1:]),
        "calibration_split": {
            "squad2": f"{args.squad.name}: article {args.fit_article} ({len(fit_questions)} questions, "
            f"{sum(q.answerable for q in fit_questions)} answerable)",
            "seed": f"{' + '.join(p.name for p in args.seed_questions)} "
            f"({sum(r['set'] in {p.stem for p in args.seed_questions} for r in rows)} questions)",
            **{
                path.stem: f"{path.as_posix()} over {corpus.as_posix()}/ "
                f"({sum(r['set'] == path.stem for r in rows)} questions)"
                for path, corpus in args.calibration or []
            },
        },
        "held_out": "the other SQuAD 2.0 article; eval/seed_questions_heldout.jsonl and seed_questions_heldout2.jsonl",
        "retrieval": {
            "k": args.k,
            "mode": settings.mode,
            "embedding": f"{settings.embedding_model} ({settings.embedding_backend})",
        },
        # the int8 embedder's numbers, hence every feature, differ a little between CPUs (avx512_vnni or not)
        "machine": cpu(),
        # the confidence reads the reader's scores: a new reader needs a refit (tests/test_reader.py checks)
        "reader": reader_digest(),
        "sentences": fitted["sentences"],
        "questions": len(rows),
        "not_fitted": {
            "max_words": "issue 11's cap",
            "prompt_sentences": "prompt size",
            "support": "grounding cut-off carried over from the first seed-set calibration",
            "tie": f"balanced accuracies within {TIE} are a tie, broken towards answering",
        },
        "figures_on_calibration_split": fitted["figures"],
        "seconds": round(time.time() - started, 1),
    }
    # the grounding model is fitted on its own (eval/fit_grounding.py, on hand-labelled claims): kept as it is
    previous = load(args.out) if args.out.is_file() else None
    if previous is not None and previous.grounding is not None:
        calibration = replace(
            calibration,
            grounding=previous.grounding,
            grounding_cut=previous.grounding_cut,
            own_words_cut=previous.own_words_cut,
        )
        meta["grounding"] = previous.meta.get("grounding", {})
    result = replace(calibration, meta=meta)
    args.out.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    summary = {"out": str(args.out), "threshold": result.min_confidence, "second_sentence": fitted["second"]}
    print(json.dumps({**summary, **fitted["figures"]}, indent=2))


if __name__ == "__main__":
    main()
