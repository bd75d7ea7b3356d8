"""Draw answer sentences a model wrote and verification kept, from `rag eval` results, for a reader to judge.

    python eval/handcheck/draw.py RESULTS.jsonl [RESULTS.jsonl ...] --corpus DIR [--n 50] [--seed 11] > out.jsonl

Takes the statements (kept sentences, each with the passages it cites) of the answers that are the model's own
(not abstained, not fallen back to extractive) and writes a random sample of `n`, each with its question and the
full text of the passages it cites (rebuilt from the corpus files and the retrieved spans in the results), its
question id, its place among the answer's statements, whether it is quoted (shown as the passage sentence itself,
verbatim), and an empty verdict for the reader: supported yes/partly/no, answers the question yes/partly/no,
fluent yes/no, a note.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from rag.index.documents import normalize_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, nargs="+", help="results.jsonl of `rag eval --backend local` runs")
    parser.add_argument("--corpus", type=Path, action="append", required=True, help="the corpus folder(s)")
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    texts: dict[str, str] = {}
    for corpus in args.corpus:
        # as the index holds them (offsets count in the normalised text: trailing spaces dropped, NFC, …)
        texts.update(
            {
                p.relative_to(corpus).as_posix(): normalize_text(p.read_text(encoding="utf-8"))
                for p in corpus.rglob("*.txt")
            }
        )
    pool = []
    for path in args.results:
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            if r["abstained"] or r.get("fallback") or r["backend"] == "extractive":
                continue
            passages = {n: texts[s["source"]][s["char_start"] : s["char_end"]] for n, s in enumerate(r["retrieved"], 1)}
            for at, statement in enumerate(r["statements"]):
                cited = [c["n"] for c in statement["citations"]]
                sentence = f"{statement['text']} " + "".join(f"[{n}]" for n in cited)
                passages_cited = {str(n): passages[n] for n in dict.fromkeys(cited) if n in passages}
                quoted = [c["quote"] for c in statement["citations"]] == [statement["text"]]  # shown as its source
                pool.append(
                    {
                        "id": r["id"],
                        "statement": at,
                        "quoted": quoted,
                        "question": r["question"],
                        "answer_sentence": sentence,
                        "cited_passages": passages_cited,
                    }
                )
    random.Random(args.seed).shuffle(pool)
    for i, row in enumerate(pool[: args.n]):
        verdict = {"supported": "", "answers_question": "", "fluent": "", "note": ""}
        print(json.dumps({"i": i, **row, "verdict": verdict}, ensure_ascii=False))
    print(f"{min(args.n, len(pool))} of {len(pool)} kept model sentences drawn", file=sys.stderr)


if __name__ == "__main__":
    main()
