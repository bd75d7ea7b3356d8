"""Settings: every value from the environment or a keyword is validated, and a bad one names its variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from rag.errors import ConfigError
from rag.settings import BACKENDS, MODES, Settings


@pytest.mark.parametrize("raw", ["flase", "2", "maybe", "tru"])
def test_a_misspelt_boolean_is_an_error_naming_the_variable(raw) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"RAG_GROUNDING": raw})
    assert str(caught.value) == (f"RAG_GROUNDING={raw!r} is not a valid boolean: use true/false, 1/0, yes/no or on/off")


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("true", True),
        ("1", True),
        ("YES", True),
        ("on", True),
        ("false", False),
        ("0", False),
        ("No", False),
        (" off ", False),
    ],
)
def test_booleans_accept_the_documented_words(raw, value) -> None:
    assert Settings.from_env({"RAG_GROUNDING": raw}).grounding is value


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RAG_MODE": "fuzzy"}, "RAG_MODE='fuzzy' is not a valid mode: use one of " + ", ".join(MODES)),
        ({"RAG_BACKEND": "gpt"}, "RAG_BACKEND='gpt' is not a valid backend: use one of " + ", ".join(BACKENDS)),
        (
            {"RAG_EMBEDDING_BACKEND": "cuda"},
            "RAG_EMBEDDING_BACKEND='cuda' is not a valid embedding backend: use one of torch, onnx, onnx-int8",
        ),
        (
            {"RAG_STORE": "pinecone"},
            "RAG_STORE='pinecone' is not a valid store: use one of faiss, milvus (or leave it empty)",
        ),
        ({"RAG_K": "five"}, "RAG_K='five' is not a valid whole number"),
        ({"RAG_K": "0"}, "RAG_K='0' is out of range: k must be at least 1"),
        ({"RAG_TIMEOUT": "soon"}, "RAG_TIMEOUT='soon' is not a valid number"),
        ({"RAG_PORT": "70000"}, "RAG_PORT='70000' is out of range: port must be at most 65535"),
        (
            {"RAG_CHUNK_SIZE": "64", "RAG_CHUNK_OVERLAP": "40"},
            "RAG_CHUNK_OVERLAP='40' is out of range: chunk_overlap must be below half of chunk_size (32 tokens)",
        ),
    ],
)
def test_bad_values_name_the_variable_and_what_it_accepts(env, message) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert str(caught.value) == message


def test_keywords_are_validated_too_and_name_the_keyword() -> None:
    with pytest.raises(ConfigError, match=r"^mode='x' is not a valid mode: use one of hybrid, dense, bm25$"):
        Settings(mode="x")
    with pytest.raises(ConfigError, match=r"^unknown setting 'colour'$"):
        Settings(colour="red")
    with pytest.raises(ConfigError, match=r"^k=0 is out of range"):
        Settings().with_overrides(k=0)


def test_from_env_reads_prefixed_and_standard_names_and_ignores_empty_ones() -> None:
    settings = Settings.from_env(
        {
            "RAG_INDEX_DIR": "/data/idx",
            "RAG_K": "7",
            "RAG_MODE": "bm25",
            "RAG_MAX_FILE_MB": "2.5",
            "RAG_BACKEND": "",
            "OPENAI_API_KEY": "sk-1",
            "RAG_OPENAI_API_KEY": "sk-2",
            "AZURE_OPENAI_ENDPOINT": "https://az",
            "UNRELATED": "x",
        }
    )
    assert settings.index_dir == Path("/data/idx") and settings.k == 7 and settings.mode == "bm25"
    assert settings.max_file_mb == 2.5 and settings.backend == "extractive"  # empty = unset
    assert settings.openai_api_key == "sk-2"  # RAG_ wins over the standard name
    assert settings.azure_endpoint == "https://az"
    assert Settings.from_env({}) == Settings()


def test_settings_are_frozen_hashable_values_and_overrides_skip_none() -> None:
    a = Settings(index_dir="i", embedding_model="hash", chunk_size=16, chunk_overlap=4)
    b = Settings(index_dir=Path("i"), embedding_model="hash", chunk_size=16, chunk_overlap=4)
    assert a == b and hash(a) == hash(b) and {a: 1}[b] == 1
    assert a.with_overrides(k=None, mode=None) is a
    c = a.with_overrides(k=3, mode="dense")
    assert (c.k, c.mode, c.chunk_size, a.k) == (3, "dense", 16, 5)
    with pytest.raises(ValidationError, match="frozen"):
        a.k = 9  # type: ignore[misc]
    assert a.uploads == Path("i/uploads") and a.with_overrides(upload_dir="/up").uploads == Path("/up")


def test_secrets_never_show_in_repr_or_errors() -> None:
    env = {
        "OPENAI_API_KEY": "sk-planted-1",
        "RAG_AUTH": "alice:planted-2",
        "RAG_MILVUS_TOKEN": "planted-3",
        "AZURE_OPENAI_API_KEY": "planted-4",
        "RAG_PROMPT_KEY": "planted-6",
    }
    settings = Settings.from_env(env)
    assert settings.prompt_key == "planted-6"
    for text in (repr(settings), str(settings)):
        assert "planted" not in text
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**env, "RAG_K": "x"})
    assert "planted" not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        Settings(auth=["alice:planted-5"])
    assert str(caught.value).startswith("auth is not valid") and "planted" not in str(caught.value)
