"""The fitted parameters that decide what a user sees, read from one versioned JSON file in the package.

`rag/answer/calibration.json` is written by `eval/fit_calibration.py` (which records the data, the split and the
command in it); nothing else writes it and no other module holds a threshold of its own. A `Calibration`
is small and immutable; `load()` reads the packaged file once per process.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import ConfigError

FORMAT = 2
PACKAGED = Path(__file__).with_name("calibration.json")


def logit(p: float) -> float:
    """log(p / (1 - p)), with p kept off 0 and 1."""
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


@dataclass(frozen=True)
class Logistic:
    """p = sigmoid(bias + sum(weight_i * feature_i)) over named features (standardised by mean and scale)."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]

    def probability(self, values: dict[str, float]) -> float:
        z = self.bias + sum(
            w * (values[f] - m) / s
            for f, w, m, s in zip(self.features, self.weights, self.mean, self.scale, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    @classmethod
    def from_dict(cls, data: dict) -> Logistic:
        n = len(data["features"])
        return cls(
            tuple(data["features"]),
            tuple(data["weights"]),
            float(data["bias"]),
            tuple(data.get("mean", [0.0] * n)),
            tuple(data.get("scale", [1.0] * n)),
        )

    def to_dict(self) -> dict:
        return {
            "features": list(self.features),
            "weights": list(self.weights),
            "bias": self.bias,
            "mean": list(self.mean),
            "scale": list(self.scale),
        }


@dataclass(frozen=True)
class Rerank:
    """A sentence's re-ranking score: `reader` times the reader's log-odds plus `sentence` times the sentence
    model's."""

    reader: float
    sentence: float

    def score(self, read: float, sentence_probability: float) -> float:
        return self.reader * read + self.sentence * logit(sentence_probability)


@dataclass(frozen=True)
class Calibration:
    """Everything fitted: the sentence scorer, the answer-confidence calibrator and the cut-offs."""

    sentence: Logistic  # P(a passage sentence holds the answer)
    confidence: Logistic  # P(the extractive answer is right), from the best sentences' features
    min_confidence: float  # below it the answer abstains (chosen on the calibration split)
    second_sentence: float  # sentence probability a second sentence (from another passage) needs
    max_words: int  # an extractive answer's length cap
    support: float  # support a claim needs from a passage sentence to be kept (verification)
    prompt_sentences: int  # evidence sentences given to an LLM
    meta: dict  # data, split, command, figures on the calibration split
    # per question kind ("date", "number", "name"): how often an answer whose best sentence lacks the kind of thing
    # asked for was right on the calibration split; its confidence is never higher
    untyped_ceiling: dict = field(default_factory=dict)
    # P(the cited passages fully support a model's claim), fitted on hand-labelled claims by eval/fit_grounding.py,
    # and the cut-off at which the kept claims of that set were at most 5% not fully supported
    grounding: Logistic | None = None
    grounding_cut: float | None = None
    # per model whose claims were labelled: the cut-off for its claims in its own words (holding a content word
    # their evidence sentence lacks), chosen as grounding_cut but on those claims alone; 1.0 keeps none of them
    own_words_cut: dict = field(default_factory=dict)
    # the reader's re-ranking of the best few sentences (rag.answer.reader.SENTENCES), fitted on the sentence model's
    # out-of-fold scores; None keeps the sentence model's order
    rerank: Rerank | None = None

    @property
    def claim_cut(self) -> float:
        """The cut-off the verifier applies: on the grounding model's probability, or without one, on support."""
        return self.support if self.grounding is None or self.grounding_cut is None else self.grounding_cut

    def own_words_claim_cut(self, model: str) -> float:
        """The cut-off for a claim `model` wrote in its own words: fitted for that model, else `claim_cut`."""
        return self.own_words_cut.get(model, self.claim_cut) if self.grounding is not None else self.claim_cut

    def answer_confidence(self, kind: str, features: dict[str, float]) -> float:
        """The calibrated confidence, capped for an answer that lacks what the question asks for."""
        p = self.confidence.probability(features)
        return min(p, self.untyped_ceiling.get(kind, 1.0)) if features.get("type_mismatch") else p

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        if data.get("format") != FORMAT:
            raise ConfigError(
                f"calibration file format {data.get('format')!r}, this version reads {FORMAT}: "
                "refit it with `python eval/fit_calibration.py`"
            )
        try:
            return cls(
                Logistic.from_dict(data["sentence"]),
                Logistic.from_dict(data["confidence"]),
                float(data["min_confidence"]),
                float(data["second_sentence"]),
                int(data["max_words"]),
                float(data["support"]),
                int(data["prompt_sentences"]),
                data.get("meta", {}),
                {str(k): float(v) for k, v in data["untyped_ceiling"].items()},
                Logistic.from_dict(data["grounding"]) if data.get("grounding") else None,
                float(data["grounding_cut"]) if data.get("grounding_cut") is not None else None,
                {str(k): float(v) for k, v in data.get("own_words_cut", {}).items()},
                Rerank(float(data["rerank"]["reader"]), float(data["rerank"]["sentence"]))
                if data.get("rerank")
                else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"calibration file is incomplete ({exc}): refit it with `python eval/fit_calibration.py`"
            ) from None

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "sentence": self.sentence.to_dict(),
            "confidence": self.confidence.to_dict(),
            "min_confidence": self.min_confidence,
            "second_sentence": self.second_sentence,
            "max_words": self.max_words,
            "support": self.support,
            "prompt_sentences": self.prompt_sentences,
            "untyped_ceiling": self.untyped_ceiling,
            "grounding": self.grounding.to_dict() if self.grounding else None,
            "grounding_cut": self.grounding_cut,
            "own_words_cut": self.own_words_cut,
            "rerank": {"reader": self.rerank.reader, "sentence": self.rerank.sentence} if self.rerank else None,
            "meta": self.meta,
        }


@functools.cache
def load(path: Path = PACKAGED) -> Calibration:
    """The calibration at `path` (the packaged one by default), read once per process."""
    try:
        return Calibration.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except OSError as exc:
        raise ConfigError(f"cannot read the calibration file {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}): refit it with `python eval/fit_calibration.py`") from None
