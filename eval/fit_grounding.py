"""Fit the grounding check (which of a model's claims a cited passage supports) on hand-labelled claims.

    python eval/fit_grounding.py draw [--out eval/handcheck/grounding_calibration.jsonl]
    python eval/fit_grounding.py fit  [--labels eval/handcheck/grounding_calibration.jsonl]

`draw` asks the `local` backend every question of the calibration split (eval/seed_questions.jsonl,
eval/seed_questions_dev.jsonl and the SQuAD 2.0 article Normans), with no abstention threshold so every question
gets a draft, and writes each claim the verifier would judge (every draft sentence and its leading clauses) with
the passage sentence that best supports it and the cited passages' text, for a reader to label: `supported` is
"yes" when the cited passages state everything the claim says, "partly" or "no" otherwise.

`fit` fits a logistic model over rag.answer.citations.CLAIM_FEATURES on those labels ("yes" against the rest) and
the cut-off: the lowest probability at which the kept claims of the labelled set are at most 5% not fully
supported (issue 11's ceiling), judged on out-of-fold probabilities. It chooses a second cut-off the same way
over the claims in the model's own words alone (not `quotable` from their best sentence), for the model whose
claims were labelled (`--model`, the bundled one by default), and writes all three into
rag/answer/calibration.json. Held out, and never drawn here:
eval/seed_questions_heldout.jsonl and the other SQuAD article.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "eval")]

from rag.answer.calibration import PACKAGED, Calibration  # noqa: E402
from rag.answer.calibration import load as load_calibration  # noqa: E402
from rag.answer.citations import (  # noqa: E402
    CLAIM_FEATURES,
    PREAMBLE,
    claim_features,
    clause_prefixes,
    quotable,
    split_claims,
)
from rag.answer.llm import BUNDLED_GGUF  # noqa: E402
from rag.evaluation.evaluate import by_source, eval_index_dir, load_questions  # noqa: E402
from rag.settings import Settings  # noqa: E402

DEFAULT_SQUAD = ROOT.parent / "shared" / "data" / "squad2"
LABELS = ROOT / "eval" / "handcheck" / "grounding_calibration.jsonl"
CEILING = 0.05  # issue 11: at most 5% of kept answer sentences unsupported


def draw(args: argparse.Namespace) -> None:
    from rag.answer.chain import RAG
    from rag.index.embedding import embedder_for
    from rag.index.indexer import Indexer

    settings = Settings().with_overrides(backend="local")
    squad = by_source(load_questions(args.squad / "questions.jsonl"))
    sets = [
        ("seed", ROOT / "seeds", [q for p in args.seed_questions for q in load_questions(p)]),
        ("squad", args.squad / "corpus", [q for q in squad[f"{args.fit_article}.txt"] if q.answerable]),
    ]
    units, started = [], time.time()
    for name, corpus, questions in sets:
        index_dir = eval_index_dir(corpus, settings, args.cache)
        Indexer(settings.with_overrides(index_dir=index_dir), embedder_for(settings)).index([corpus])
        rag = RAG.open(index_dir, settings)
        for n, q in enumerate(questions, 1):
            answer = rag.ask(q.question, min_confidence=0.0)
            hits = list(answer.passages)
            if answer.abstained or not answer.draft:
                continue
            for text, cited in split_claims(answer.draft, len(hits)):
                for unit in [text, *clause_prefixes(text)]:
                    claim, features = rag.verifier.judge_one(unit, cited, hits)
                    units.append(
                        {
                            "set": name,
                            "qid": q.id,
                            "question": q.question,
                            "claim": unit,
                            "cited": list(claim.cited),
                            "best_sentence": claim.evidence[0].text if claim.evidence else "",
                            "cited_passages": {str(h): hits[h - 1].chunk.text for h in claim.cited},
                            "features": features,
                        }
                    )
            print(f"{name} {n}/{len(questions)} units {len(units)} ({time.time() - started:.0f} s)", file=sys.stderr)
    random.Random(11).shuffle(units)
    units = units[: args.max_units]
    for i, u in enumerate(units):
        u["i"] = i
    args.out.write_text("".join(json.dumps(u, ensure_ascii=False) + "\n" for u in units), encoding="utf-8")
    print(json.dumps({"out": str(args.out), "units": len(units), "seconds": round(time.time() - started)}))


def fit(args: argparse.Namespace) -> None:
    from fit_calibration import fit_logistic

    rows = [json.loads(line) for line in args.labels.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if r.get("verdict", {}).get("supported") in ("yes", "partly", "no")]
    if len(rows) < 20:
        sys.exit(f"{args.labels}: only {len(rows)} labelled claims; label them first (see the module docstring)")
    # every feature but the support score (which needs the embedder, and was stored when drawn) is recomputed
    # from the stored texts, so a new feature needs no new labels
    for r in rows:
        r["claim"] = PREAMBLE.sub("", r["claim"])  # as split_claims now reads a draft
        passages = " ".join(r["cited_passages"].values())
        r["features"] = claim_features(r["claim"], r["best_sentence"], passages, r["features"]["support"])
    x = np.array([[r["features"][name] for name in CLAIM_FEATURES] for r in rows])
    y = np.array([r["verdict"]["supported"] == "yes" for r in rows])
    model = fit_logistic(x, y, CLAIM_FEATURES)
    # the cut-off is chosen on out-of-fold probabilities (5 folds), so it is not fitted to the claims it judges:
    # the lowest at which the kept claims are at most CEILING not fully supported
    p = np.zeros(len(rows))
    for fold in np.array_split(np.random.default_rng(0).permutation(len(rows)), 5):
        train = np.setdiff1d(np.arange(len(rows)), fold)
        held = fit_logistic(x[train], y[train], CLAIM_FEATURES)
        p[fold] = [held.probability(dict(zip(CLAIM_FEATURES, x[i], strict=True))) for i in fold]
    cut = lowest_cut(p, y)
    # the same choice over the claims in the model's own words alone (a content word their best sentence lacks):
    # a small model's paraphrases are mostly wrong, and the quoted claims around them would hide them in the share
    own = np.array([not quotable(r["claim"], [_Sentence(r["best_sentence"])]) for r in rows])
    own_cut = lowest_cut(p[own], y[own])
    kept = (p >= cut) & ~own | (p >= own_cut) & own
    calibration = load_calibration(args.out)
    figures = {
        "labelled": len(rows),
        "supported_yes": int(y.sum()),
        "own_words": int(own.sum()),
        "own_words_supported_yes": int((own & y).sum()),
        "own_words_kept_at_the_shared_cut": int((own & (p >= cut)).sum()),
        "own_words_kept_at_the_shared_cut_not_fully_supported": int((own & (p >= cut) & ~y).sum()),
        "kept": int(kept.sum()),
        "kept_not_fully_supported": int((kept & ~y).sum()),
        "supported_kept": int((kept & y).sum()),
        "support_alone_kept": int(sum(r["features"]["support"] >= calibration.support for r in rows)),
        "support_alone_kept_not_fully_supported": int(
            sum(r["features"]["support"] >= calibration.support and r["verdict"]["supported"] != "yes" for r in rows)
        ),
    }
    meta = {
        **calibration.meta,
        "grounding": {
            "fitted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": "python eval/fit_grounding.py " + " ".join(sys.argv[1:]),
            "labels": str(args.labels.relative_to(ROOT)) if args.labels.is_relative_to(ROOT) else str(args.labels),
            "ceiling": CEILING,
            "model": args.model,
            "figures_on_labelled_claims": figures,
        },
    }
    result: Calibration = replace(
        calibration, grounding=model, grounding_cut=cut, own_words_cut={args.model: own_cut}, meta=meta
    )
    args.out.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    print(json.dumps({"out": str(args.out), "cut": cut, "own_words_cut": own_cut, **figures}, indent=2))


def lowest_cut(p: np.ndarray, y: np.ndarray) -> float:
    """The lowest probability at which the claims kept are at most CEILING not fully supported; 1.0 (none kept)
    when there is none."""
    return next(
        (float(t) for t in sorted(set(np.round(p, 4))) if (p >= t).any() and (~y[p >= t]).mean() <= CEILING), 1.0
    )


@dataclass(frozen=True)
class _Sentence:
    """A labelled claim's stored best sentence, as the verifier's evidence."""

    text: str


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("draw", help="write the calibration split's claims, to label")
    d.add_argument("--squad", type=Path, default=DEFAULT_SQUAD)
    d.add_argument("--fit-article", default="Normans")
    d.add_argument(
        "--seed-questions",
        type=Path,
        nargs="+",
        default=[ROOT / "eval" / "seed_questions.jsonl", ROOT / "eval" / "seed_questions_dev.jsonl"],
    )
    d.add_argument("--cache", type=Path, default=ROOT / "eval" / ".cache")
    d.add_argument("--max-units", type=int, default=200)
    d.add_argument("--out", type=Path, default=LABELS)
    f = sub.add_parser("fit", help="fit the grounding model on the labelled claims")
    f.add_argument("--labels", type=Path, default=LABELS)
    f.add_argument("--out", type=Path, default=PACKAGED)
    f.add_argument(
        "--model", default=Path(BUNDLED_GGUF).stem, help="the model whose claims were labelled (its own-words cut-off)"
    )
    args = parser.parse_args()
    draw(args) if args.command == "draw" else fit(args)


if __name__ == "__main__":
    main()
