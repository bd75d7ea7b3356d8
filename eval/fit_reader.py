"""Fit the reader (rag/answer/reader.py) and write its weights to rag/answer/reader.npz (numpy, no pickle).

    python eval/fit_reader.py [--train eval/train] [--k 5] [--epochs 4] [--hard 2]

Training data: eval/train/corpus/ (invented articles, news and encyclopedia style) and eval/train/questions.jsonl
(reader-worded questions on them, a third unanswerable, each written by a helper who read only its article; ids
"article/hNN"), plus 8 short, vague questions an article (ids "article/vNN", a quarter unanswerable), worded as a
reader types them after skimming, leaning on the article's context ("When were the details announced?").
Nothing else: not the calibration split (SQuAD's fit article, the seed question files), not the judge sets, not
the held-out sets, so `fit_calibration.py --cross-source` judges the reader's features on questions it never saw.

Each question is retrieved as users get it (hybrid, k passages, over the whole training corpus); its pool is the
passages' sentences (headings left out), labelled by whether they hold a gold answer. The loss is listwise: the
softmax over the pool and a null (no sentence answers) should put its mass on the answer sentences, or on the null
for an unanswerable question or one whose answer retrieval missed. Beside the answer sentences, each question
reads 7 wrong ones an epoch: sampled anew, or with `--hard N`, its N best-ranked wrong ones (by the packaged sentence
model, as the reader meets them at run time) and the rest sampled. The questions of every seventh article are kept
out as a validation split; the epoch with the lowest validation loss is kept.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.answer import calibration  # noqa: E402
from rag.answer.evidence import EvidenceSelector, Idf, passage_sentences, question_type  # noqa: E402
from rag.answer.reader import ADAPTED, PACKAGED, SENTENCES, Reader, pair_logits  # noqa: E402
from rag.answer.retrieval import Retriever  # noqa: E402
from rag.evaluation.evaluate import eval_index_dir, load_questions  # noqa: E402
from rag.evaluation.machine import cpu  # noqa: E402
from rag.evaluation.metrics import contains_answer  # noqa: E402
from rag.index.embedding import bundled_model_dir, embedder_for  # noqa: E402
from rag.index.indexer import Indexer  # noqa: E402
from rag.settings import Settings  # noqa: E402

RANK = 8  # the low-rank update's rank: a few hundred thousand parameters, for a few thousand sentences a side
ALPHA = 16.0
NEGATIVES = 7  # per question and epoch, beside every answer sentence: `hard` best-ranked ones, the rest sampled anew
HOLD_OUT_EVERY = 7  # every seventh article's questions validate


def examples(settings: Settings, corpus: Path, questions, k: int, cache: Path) -> list[dict]:
    """Per question: its pool's sentences (headings left out), and which of them hold an answer."""
    index_dir = eval_index_dir(corpus, settings, cache)
    embedder = embedder_for(settings)
    Indexer(settings.with_overrides(index_dir=index_dir), embedder).index([corpus])
    retriever = Retriever.open(index_dir, embedder)
    selector = EvidenceSelector(embedder, Idf(retriever.index.bm25), calibration.load())
    out = []
    for q in tqdm(questions, desc="questions", file=sys.stderr):
        pool = [p for p in passage_sentences(retriever.search(q.question, k=k)) if not p.heading]
        if pool:
            # the packaged sentence model's order: the reader reads the best-ranked few at run time
            at = {(p.n, p.start): i for i, p in enumerate(pool)}
            rows = selector.features(q.question, question_type(q.question), pool)
            ranked = [at[s.sentence.n, s.sentence.start] for s in selector.scored(pool, rows)]
            out.append(
                {
                    "article": q.id.split("/")[0],  # the training file's ids are "article/hNN" or "article/vNN"
                    "question": q.question,
                    "sentences": [p.text for p in pool],
                    "labels": [bool(q.answerable and contains_answer(p.text, q.answers) == 1.0) for p in pool],
                    "ranked": ranked,
                }
            )
    return out


def build():
    """The bundled encoder, frozen, with a trainable low-rank update on each layer's query and value, a scoring
    head and the null's score."""
    import torch
    from torch import nn
    from transformers import AutoModel, AutoTokenizer

    class LoRA(nn.Module):
        def __init__(self, base: nn.Linear):
            super().__init__()
            self.base = base
            self.A = nn.Parameter(torch.randn(RANK, base.in_features) / base.in_features**0.5)
            self.B = nn.Parameter(torch.zeros(base.out_features, RANK))

        def forward(self, x):
            return self.base(x) + (x @ self.A.T @ self.B.T) * (ALPHA / RANK)

    path = bundled_model_dir()
    encoder = AutoModel.from_pretrained(path)
    for p in encoder.parameters():
        p.requires_grad = False
    for layer in encoder.encoder.layer:
        for m in ADAPTED:
            setattr(layer.attention.self, m, LoRA(getattr(layer.attention.self, m)))
    head = nn.Linear(encoder.config.hidden_size, 1)
    null = nn.Parameter(torch.zeros(1))
    return encoder, AutoTokenizer.from_pretrained(path), head, null


def exported(encoder, head, null) -> dict[str, np.ndarray]:
    weights = {
        "head.weight": head.weight.detach().numpy().copy(),
        "head.bias": head.bias.detach().numpy().copy(),
        "null": null.detach().numpy().copy(),
        "scale": np.array([ALPHA / RANK], dtype=np.float32),
    }
    for i, layer in enumerate(encoder.encoder.layer):
        for m in ADAPTED:
            lora = getattr(layer.attention.self, m)
            weights[f"layer{i}.{m}.A"] = lora.A.detach().numpy().copy()
            weights[f"layer{i}.{m}.B"] = lora.B.detach().numpy().copy()
    return weights


def loss_of(model, example: dict, sentences: list[int]):
    import torch

    encoder, tokenizer, head, null = model
    logits = pair_logits(encoder, tokenizer, head, example["question"], [example["sentences"][i] for i in sentences])
    log_p = torch.log_softmax(torch.cat([logits, null]), dim=0)
    target = [j for j, i in enumerate(sentences) if example["labels"][i]] or [len(sentences)]
    return -torch.logsumexp(log_p[target], dim=0)


def train(fit: list[dict], validation: list[dict], epochs: int, hard: int, seed: int = 0) -> tuple[dict, list]:
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build()
    encoder, _, head, null = model
    trainable = [p for p in encoder.parameters() if p.requires_grad] + list(head.parameters()) + [null]
    optimiser = torch.optim.AdamW(trainable, lr=1e-3, weight_decay=1e-2)
    best, best_loss, history = None, float("inf"), []
    for epoch in range(epochs):
        encoder.train()
        total = 0.0
        order = rng.permutation(len(fit))
        for start in tqdm(range(0, len(order), 8), desc=f"epoch {epoch + 1}", file=sys.stderr):
            optimiser.zero_grad()
            losses = []
            for i in order[start : start + 8]:
                ex = fit[i]
                positives = [j for j, ok in enumerate(ex["labels"]) if ok]
                # the best-ranked wrong sentences, which the reader must tell from an answer at run time, and others
                hardest = [j for j in ex["ranked"] if not ex["labels"][j]][:hard]
                negatives = [j for j, ok in enumerate(ex["labels"]) if not ok and j not in hardest]
                size = min(NEGATIVES - len(hardest), len(negatives))
                picked = hardest + rng.choice(negatives, size=size, replace=False).tolist()
                losses.append(loss_of(model, ex, positives + picked))
            step = torch.stack(losses).mean()
            step.backward()
            optimiser.step()
            total += float(step.detach()) * len(losses)
        encoder.eval()
        with torch.no_grad():
            held = float(np.mean([float(loss_of(model, ex, list(range(len(ex["labels"]))))) for ex in validation]))
        history.append({"epoch": epoch + 1, "fit_loss": round(total / len(fit), 4), "validation_loss": round(held, 4)})
        print(json.dumps(history[-1]), file=sys.stderr)
        if held < best_loss:
            best_loss, best = held, exported(encoder, head, null)
    return best, history


def ranked_first(reader: Reader, data: list[dict], top: int | None = None) -> dict:
    """On `data`: how often the reader's best sentence holds an answer, and how well its pooled log-odds separate
    questions it can answer from the rest (AUC); over the `top` best-ranked sentences (as at run time) if given,
    else over the whole pool."""
    from sklearn.metrics import roc_auc_score

    first, pooled, answerable = 0, [], []
    for ex in data:
        read = ex["ranked"][:top] if top else range(len(ex["sentences"]))
        labels = [ex["labels"][i] for i in read]
        scores = reader.scores(ex["question"], [ex["sentences"][i] for i in read])
        first += labels[int(np.argmax(scores))]
        pooled.append(float(np.logaddexp.reduce(scores)))
        answerable.append(any(labels))
    return {
        "questions": len(data),
        "with_an_answer_sentence": sum(answerable),
        "right_first": first,
        "answerable_auc": round(float(roc_auc_score(answerable, pooled)), 4)
        if 0 < sum(answerable) < len(data)
        else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, default=ROOT / "eval" / "train", help="corpus/ and questions.jsonl")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument(
        "--hard",
        type=int,
        default=2,
        help="of the 7 negatives a question, how many are its best-ranked wrong sentences (README: 0, 2 and 4 judged)",
    )
    parser.add_argument("--out", type=Path, default=PACKAGED)
    parser.add_argument("--cache", type=Path, default=ROOT / "eval" / ".cache")
    args = parser.parse_args()
    started = time.time()
    settings = Settings()
    questions = load_questions(args.train / "questions.jsonl")
    data = examples(settings, args.train / "corpus", questions, args.k, args.cache)
    articles = sorted({ex["article"] for ex in data})
    held = set(articles[::HOLD_OUT_EVERY])
    fit = [ex for ex in data if ex["article"] not in held]
    validation = [ex for ex in data if ex["article"] in held]
    weights, history = train(fit, validation, args.epochs, args.hard)
    tmp = args.out.with_name(f".{args.out.name}.tmp.npz")
    np.savez(tmp, **weights)
    tmp.replace(args.out)
    reader = Reader.load(args.out)
    meta = {
        "fitted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python eval/fit_reader.py " + " ".join(sys.argv[1:]),
        "training": f"{args.train.name}: {len(articles)} articles, {len(data)} questions; validation: "
        f"{len(held)} articles ({len(validation)} questions)",
        "machine": cpu(),
        "rank": RANK,
        "negatives": NEGATIVES,
        "hard_negatives": args.hard,
        "epochs": history,
        "fit": ranked_first(reader, fit),
        "validation": ranked_first(reader, validation),
        f"validation_top{SENTENCES}": ranked_first(reader, validation, SENTENCES),
        "seconds": round(time.time() - started, 1),
    }
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: meta[k] for k in ("training", "fit", "validation", "seconds")}, indent=2))


if __name__ == "__main__":
    main()
