"""The reader: the bundled MiniLM read as a cross-encoder, question and sentence together, saying how likely
the sentence holds the answer, against how likely no sentence does.

The embedder reads the question and each sentence apart; here they are read as one pair, so every layer's attention
can set the question's words against the sentence's. The encoder's own weights are the bundled all-MiniLM-L6-v2's,
with a low-rank update of each layer's attention (LoRA: query and value), a scoring head over the mean of the
pair's token vectors, and a "no sentence answers" score. Those few parameters are fitted by eval/fit_reader.py
(listwise: the softmax over a question's sentences and the null puts its mass on the sentences holding a gold
answer, or on the null when none does) on invented articles with reader-worded questions (eval/train/), and
shipped beside this module as a numpy .npz (no pickle).

`scores` gives each sentence's log-odds of holding the answer against no sentence holding it; their log-sum-exp
is the log-odds that one of them does.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rag.index.embedding import (
    DEFAULT_CACHE_DIR,
    bundled_model_dir,
    export_onnx,
    fast_tokenizer,
    mean_pooled,
    onnx_session,
    padded,
    quantize_onnx,
)
from rag.modelcache import derived_folder, exclusive

PACKAGED = Path(__file__).with_name("reader.npz")
MAX_TOKENS = 128  # a question and one sentence
# the evidence step reads this many of the best-ranked sentences, about 0.01 s each on two cores (int8 graph, long
# Wikipedia sentences); on the judge sets 3, 4 and 8 did about as well (README), and with 3 the refit's threshold
# rose past `make run`'s example
SENTENCES = 4
_EXPORT_VERSION = 1  # bump when the exported graph changes
ADAPTED = ("query", "value")  # the attention projections the low-rank update applies to


def pair_logits(encoder, tokenizer, head, question: str, sentences: Sequence[str]):
    """The head's logit for each (question, sentence) pair, as a torch tensor: the fitting and `Reader.scores`
    both go through here."""
    batch = tokenizer(
        [question] * len(sentences),
        list(sentences),
        padding=True,
        truncation="longest_first",
        max_length=MAX_TOKENS,
        return_tensors="pt",
    )
    hidden = encoder(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1)
    return head(pooled)[:, 0]


@dataclass
class Reader:
    """`weights` as eval/fit_reader.py writes them. With `source` (the weights file), scoring runs an int8 ONNX
    graph of the updated encoder, exported into `cache_dir` on first use as the embedder's is (0.043 s for 8 pairs
    on two cores here, against 0.060 s in torch); without, the encoder runs in torch, as it was fitted."""

    weights: dict[str, np.ndarray]
    source: Path | None = None
    cache_dir: Path = DEFAULT_CACHE_DIR
    _built: tuple | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, path: Path = PACKAGED, cache_dir: Path | None = None) -> Reader:
        with np.load(path, allow_pickle=False) as data:
            weights = {name: data[name].astype(np.float32) for name in data.files}
        missing = [n for n in ("head.weight", "head.bias", "null", "scale") if n not in weights]
        if missing:
            raise ValueError(f"{path}: not a reader's weights (missing {', '.join(missing)})")
        return cls(weights, path, Path(cache_dir) if cache_dir else DEFAULT_CACHE_DIR)

    def scores(self, question: str, sentences: Sequence[str]) -> np.ndarray:
        """Each sentence's log-odds of holding the answer to `question` against no sentence holding it."""
        if not sentences:
            return np.zeros(0, dtype=np.float32)
        with self._lock:
            if self.source is None:
                import torch

                if self._built is None:
                    self._built = self._merged()
                encoder, tokenizer, head = self._built
                with torch.inference_mode():
                    logits = pair_logits(encoder, tokenizer, head, question, sentences).numpy()
            else:
                logits = self._onnx(question, sentences)
        return logits.astype(np.float32) - self.weights["null"].item()

    def _onnx(self, question: str, sentences: Sequence[str]) -> np.ndarray:
        if self._built is None:
            # 0.020 s for 4 pairs on 2 cores against 0.038 s on 1; the embedder's session runs just before
            session = onnx_session(self.graph(), len(os.sched_getaffinity(0)), spinning=False)
            self._built = (session, fast_tokenizer(bundled_model_dir(), MAX_TOKENS))
        session, tokenizer = self._built
        inputs = [i.name for i in session.get_inputs()]
        pooled = []
        # one pair at a time: int8 activations are scaled per batch, so a pair's score would depend on the others
        for encoding in tokenizer.encode_batch([(question, s) for s in sentences]):
            feed = padded([encoding])
            hidden = session.run(None, {name: feed[name] for name in inputs})[0]
            pooled.append(mean_pooled(hidden, feed["attention_mask"])[0])
        return np.stack(pooled) @ self.weights["head.weight"][0] + self.weights["head.bias"][0]

    def graph(self) -> Path:
        """The updated encoder as an int8 ONNX graph, exported from these weights on first use."""
        folder = derived_folder(self.cache_dir, "reader", self.source, _EXPORT_VERSION)
        int8 = folder / "reader-int8.onnx"
        if int8.exists():
            return int8
        with exclusive(folder):
            if not int8.exists():
                fp32 = folder / ".reader.onnx"  # dot-named: a killed export's leftover is swept by the lock
                with tempfile.TemporaryDirectory() as merged:
                    self._merged()[0].save_pretrained(merged)
                    export_onnx(Path(merged), fp32)
                quantize_onnx(fp32, int8)
                fp32.unlink()
        return int8

    def _merged(self):
        """The bundled encoder with the fitted update merged into its weights, its tokenizer and the head."""
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = bundled_model_dir()
        encoder = AutoModel.from_pretrained(path).eval()
        scale = self.weights["scale"].item()
        with torch.no_grad():
            for i, layer in enumerate(encoder.encoder.layer):
                for m in ADAPTED:
                    a, b = self.weights[f"layer{i}.{m}.A"], self.weights[f"layer{i}.{m}.B"]
                    getattr(layer.attention.self, m).weight += torch.from_numpy(b @ a * scale)
        head = torch.nn.Linear(encoder.config.hidden_size, 1)
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(self.weights["head.weight"]))
            head.bias.copy_(torch.from_numpy(self.weights["head.bias"]))
        return encoder, AutoTokenizer.from_pretrained(path), head.eval()


def digest(path: Path = PACKAGED) -> str:
    """The weights file's sha256, which the calibration fitted on its scores records."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@functools.cache
def packaged(cache_dir: Path = DEFAULT_CACHE_DIR) -> Reader:
    """The reader fitted by eval/fit_reader.py, shipped beside this module; its graph is kept in `cache_dir` (the
    `model_cache_dir` setting)."""
    return Reader.load(PACKAGED, Path(cache_dir))
