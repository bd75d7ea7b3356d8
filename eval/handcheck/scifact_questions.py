"""Questions and a corpus from SciFact for a grounding check on text no fit has seen.

    python eval/handcheck/scifact_questions.py ../shared/data/scifact /tmp/sf [--n 500] [--skip 0] [--others 500]
        [--seed 7]

Writes OUT/questions.jsonl ("Is it true that <claim>?" for `n` claims of the train split, drawn with `seed`) and
OUT/corpus/ (their relevant abstracts plus `others` more, one .txt each: title, blank line, abstract), for
`rag eval OUT/questions.jsonl --corpus OUT/corpus --backend local --min-confidence 0`. SciFact is CC BY-NC 2.0:
it is read where it lies and nothing of it is committed; the hand check keeps only ids and verdicts.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scifact", type=Path, help="SciFact in the BEIR layout (corpus.jsonl, queries.jsonl, qrels/)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--n", type=int, default=500, help="claims to ask about")
    parser.add_argument("--skip", type=int, default=0, help="claims of the drawn order to pass over (used before)")
    parser.add_argument("--others", type=int, default=500, help="abstracts added beside the relevant ones")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    claims = {r["_id"]: r["text"] for r in map(json.loads, (args.scifact / "queries.jsonl").open(encoding="utf-8"))}
    relevant: dict[str, set[str]] = {}
    with (args.scifact / "qrels" / "train.tsv").open(encoding="utf-8") as f:
        for query, doc, *_ in list(csv.reader(f, delimiter="\t"))[1:]:
            relevant.setdefault(query, set()).add(doc)
    rng = random.Random(args.seed)
    chosen = sorted(relevant)
    rng.shuffle(chosen)
    chosen = chosen[args.skip : args.skip + args.n]
    docs = {r["_id"]: r for r in map(json.loads, (args.scifact / "corpus.jsonl").open(encoding="utf-8"))}
    keep = set().union(*(relevant[q] for q in chosen))
    others = [d for d in sorted(docs) if d not in keep]
    rng.shuffle(others)
    keep |= set(others[: args.others])
    corpus = args.out / "corpus"
    if corpus.is_dir() and any(corpus.iterdir()):
        raise SystemExit(f"{corpus} is not empty: its abstracts would join these; choose a new OUT")
    corpus.mkdir(parents=True, exist_ok=True)
    for d in keep:
        (corpus / f"{d}.txt").write_text(f"{docs[d]['title'].strip()}\n\n{docs[d]['text'].strip()}\n", encoding="utf-8")
    with (args.out / "questions.jsonl").open("w", encoding="utf-8") as f:
        for q in chosen:
            claim = claims[q].strip().rstrip(".")
            if claim[:2].isalpha() and claim[1].islower():  # "Active Ly49Q …" -> "active Ly49Q …", "IL-6 …" kept
                claim = claim[0].lower() + claim[1:]
            row = {"id": f"sf{q}", "question": f"Is it true that {claim}?", "answers": [], "answerable": True}
            f.write(json.dumps(row) + "\n")
    print(f"{len(chosen)} questions, {len(keep)} abstracts in {args.out}")


if __name__ == "__main__":
    main()
