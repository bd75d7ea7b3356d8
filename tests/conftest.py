"""Shared fixtures: a tiny corpus, settings pointing at tmp_path, and the real bundled embedder (loaded once)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.index.embedding import HashEmbedder
from rag.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
ARTICLE = SEEDS / "openai-microsoft-partnership-2026.txt"

TINY = {
    "cats.txt": "Cats purr when they are content. A cat sleeps sixteen hours a day.\n\n"
    "Kittens open their eyes after about ten days.",
    "dogs.md": "# Dogs\n\nDogs bark at strangers. A dog can learn over a hundred words.",
    "sub/birds.txt": "Parrots can mimic human speech. Crows solve puzzles with tools.",
}


def eval_script(name: str):
    """A script of eval/ (not a package), imported as a module: `eval_script("fit_reader")`."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "eval" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_corpus(root: Path, files: dict[str, str] = TINY) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


BEIR_TOPICS = [
    "protein folding",
    "solar panels",
    "river erosion",
    "jazz harmony",
    "tax policy",
    "bird migration",
    "volcanic ash",
    "memory cells",
    "coffee roasting",
    "glacier melt",
]


def write_beir(root: Path, docs_per_topic: int = 12, seed: int = 7) -> Path:
    """A small BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv): 10 topics, 3 judged documents each."""
    import json
    import random

    rng = random.Random(seed)
    corpus, queries, qrels = [], [], []
    for t, topic in enumerate(BEIR_TOPICS):
        for d in range(docs_per_topic):
            filler = " ".join(rng.choice(["study", "result", "data", "model", "effect", "sample"]) for _ in range(30))
            key = " key finding" if d < 3 else ""  # the judged documents say what the query asks
            corpus.append({"_id": f"d{t}-{d}", "title": f"{topic} report {d}", "text": f"{topic}{key} {filler}."})
        queries.append({"_id": f"q{t}", "text": f"{topic} key finding?"})
        qrels += [(f"q{t}", f"d{t}-{d}", rng.choice([1, 2])) for d in range(3)]
    queries.append({"_id": "unjudged", "text": "ignored"})
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("\n".join(json.dumps(c) for c in corpus))
    (root / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries))
    rows = "\n".join(f"{q}\t{d}\t{s}" for q, d, s in qrels)
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return root


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "corpus")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(index_dir=tmp_path / "index", embedding_model="hash", chunk_size=16, chunk_overlap=4)


@pytest.fixture
def hash_embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture(autouse=True, scope="module")
def _stop_milvus_lite():
    """Milvus Lite runs a server thread per folder until the process exits; a module's stop with the module."""
    yield
    import sys

    if "milvus_lite" in sys.modules:
        sys.modules["milvus_lite"].server_manager_instance.release_all()


@pytest.fixture(scope="session")
def real_embedder():
    from rag.index.embedding import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, process, seconds: float = 120) -> None:
    """Poll `url` until it answers; fail at once if `process` exits, or after `seconds`."""
    import time
    import urllib.request

    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode} before {url} answered")
            time.sleep(0.5)
    process.kill()
    pytest.fail(f"{url} did not answer within {seconds:.0f} s")
