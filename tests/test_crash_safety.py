"""Kill (SIGKILL) an indexing process at random moments: the index is always the old or the new version, whole."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import write_corpus
from rag.errors import IndexMissing
from rag.index.embedding import HashEmbedder
from rag.index.indexer import Indexer
from rag.index.store import IndexStore
from rag.settings import Settings

KILLS = 24


def corpus_state(version: str, files: int = 150) -> dict[str, str]:
    return {
        f"doc{i:03d}.txt": f"Document {i} version {version}. " + f"word{i} filler text. " * 40 for i in range(files)
    }


def content(index_dir: Path) -> dict[str, list[str]]:
    """What a reader sees: chunk texts per source, after full verification on load."""
    loaded = IndexStore(index_dir).load()
    out: dict[str, list[str]] = {}
    for c in loaded.chunks:
        out.setdefault(c.source, []).append(c.text)
    assert loaded.dense.count() == len(loaded.chunks)
    return out


def build(corpus: Path, index_dir: Path) -> dict[str, list[str]]:
    settings = Settings(index_dir=index_dir, embedding_model="hash", chunk_size=64, chunk_overlap=8)
    Indexer(settings, HashEmbedder()).index([corpus])
    return content(index_dir)


def set_corpus(folder: Path, state: dict[str, str]) -> Path:
    """Make `folder` hold exactly `state`: the index's source stays the same folder, its files change."""
    shutil.rmtree(folder, ignore_errors=True)
    return write_corpus(folder, state)


def start_writer(corpus: Path, index_dir: Path, segments: bool = False) -> subprocess.Popen:
    """`rag index` in a process of its own; with `segments`, as if the index were large (updates share files)."""
    env = {**os.environ, "RAG_EMBEDDING_MODEL": "hash", "RAG_CHUNK_SIZE": "64", "RAG_CHUNK_OVERLAP": "8"}
    args = ["index", str(corpus), "--index-dir", str(index_dir)]
    min_rows = 0 if segments else "rag.index.store.APPEND_MIN_ROWS"
    code = (
        f"import rag.index.store; rag.index.store.APPEND_MIN_ROWS = {min_rows}\nfrom rag.cli import app; app({args!r})"
    )
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_old_or_new_index(tmp_path: Path) -> None:
    # the new state also drops and adds files, so an update removes, changes and adds
    new_state = {**corpus_state("B"), "extra.txt": "An added file. " * 30}
    del new_state["doc000.txt"]
    new_corpus = tmp_path / "corpus"
    old = build(set_corpus(new_corpus, corpus_state("A")), tmp_path / "ref-old")
    new = build(set_corpus(new_corpus, new_state), tmp_path / "ref-new")
    assert old != new

    started = time.perf_counter()
    start_writer(new_corpus, tmp_path / "timing").wait()
    duration = time.perf_counter() - started

    rng = random.Random(20260427)
    outcomes = {"old": 0, "new": 0, "missing": 0}
    for attempt in range(2 * KILLS):
        # the swap comes near the end of a run, so few random kills land after it: past KILLS attempts, go on
        # (up to twice as many) only until one has
        if attempt >= KILLS and outcomes["new"]:
            break
        target = tmp_path / f"idx{attempt}"
        fresh_build = attempt % 4 == 0  # every fourth kill hits a first build with no old index
        if not fresh_build:
            shutil.copytree(tmp_path / "ref-old", target, symlinks=True)
        writer = start_writer(new_corpus, target)
        time.sleep(rng.uniform(0.3, 1.0) * duration)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        try:
            seen = content(target)
        except IndexMissing:
            assert fresh_build, "an existing index vanished"
            outcomes["missing"] += 1
            continue
        assert seen in (old, new), f"kill {attempt}: the index is neither the old nor the new version"
        outcomes["old" if seen == old else "new"] += 1
        # a later run completes the update from whatever the kill left behind
        start_writer(new_corpus, target).wait()
        assert content(target) == new
    # the kills landed both before and after the swap, so both outcomes were exercised
    assert outcomes["old"] + outcomes["missing"] > 0 and outcomes["new"] > 0, outcomes


@pytest.mark.slow
def test_sigkill_during_segment_updates_leaves_old_or_new_index(tmp_path: Path) -> None:
    """The same on a large index's update path: a few files removed, changed and added; the kept segments are
    hard links into the live version, the changed one is rewritten, dense.faiss is kept with an id map."""
    import rag.index.store

    state = corpus_state("A")
    new_state = {
        **state,
        **{f"doc{i:03d}.txt": corpus_state("B")[f"doc{i:03d}.txt"] for i in range(10, 20)},
        "extra.txt": "An added file. " * 30,
    }
    del new_state["doc000.txt"], new_state["doc001.txt"]
    corpus = tmp_path / "corpus"
    old = build(set_corpus(corpus, state), tmp_path / "ref-old")
    new = build(set_corpus(corpus, new_state), tmp_path / "ref-new")
    started = time.perf_counter()
    shutil.copytree(tmp_path / "ref-old", tmp_path / "timing", symlinks=True)
    start_writer(corpus, tmp_path / "timing", segments=True).wait()
    duration = time.perf_counter() - started
    rag.index.store.APPEND_MIN_ROWS, before = 0, rag.index.store.APPEND_MIN_ROWS
    try:
        assert content(tmp_path / "timing") == new
        assert IndexStore(tmp_path / "timing").read_manifest().dense["dropped"] > 0  # the update path ran
    finally:
        rag.index.store.APPEND_MIN_ROWS = before
    rng = random.Random(20260428)
    outcomes = {"old": 0, "new": 0}
    for attempt in range(KILLS // 2):
        target = tmp_path / f"idx{attempt}"
        shutil.copytree(tmp_path / "ref-old", target, symlinks=True)
        writer = start_writer(corpus, target, segments=True)
        time.sleep(rng.uniform(0.3, 1.0) * duration)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        seen = content(target)
        assert seen in (old, new), f"kill {attempt}: the index is neither the old nor the new version"
        outcomes["old" if seen == old else "new"] += 1
        start_writer(corpus, target, segments=True).wait()
        assert content(target) == new
        assert IndexStore(target).verify()["artifacts"] > 0  # every byte of every file, hard links included
    assert outcomes["old"] > 0 and outcomes["new"] > 0, outcomes


@pytest.mark.slow
def test_readers_during_rebuilds_always_see_a_whole_version(tmp_path: Path) -> None:
    """A writer process swaps versions back and forth while this process keeps opening and searching."""
    old_corpus = write_corpus(tmp_path / "old", corpus_state("A", files=60))
    new_corpus = write_corpus(tmp_path / "new", corpus_state("B", files=60))
    live = tmp_path / "live"  # the index's one source: the writer swaps its files between the two states
    new = build(set_corpus(live, corpus_state("B", files=60)), tmp_path / "ref-new")
    old = build(set_corpus(live, corpus_state("A", files=60)), tmp_path / "idx")
    script = (
        "import shutil, sys\nfrom pathlib import Path\nfrom rag.index.embedding import HashEmbedder\n"
        "from rag.index.indexer import Indexer\nfrom rag.settings import Settings\n"
        "s = Settings(index_dir=Path(sys.argv[1]), embedding_model='hash', chunk_size=64, chunk_overlap=8)\n"
        "live = Path(sys.argv[2])\n"
        "for i in range(8):\n    shutil.rmtree(live)\n    shutil.copytree(sys.argv[3 + i % 2], live)\n"
        "    Indexer(s, HashEmbedder()).index([live])\n"
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "idx"), str(live), str(new_corpus), str(old_corpus)]
    )
    from rag.answer.retrieval import Retriever

    seen = {"old": 0, "new": 0}
    while writer.poll() is None:
        retriever = Retriever.open(tmp_path / "idx", HashEmbedder())
        by_source: dict[str, list[str]] = {}
        for c in retriever.index.chunks:
            by_source.setdefault(c.source, []).append(c.text)
        assert by_source in (old, new)
        seen["old" if by_source == old else "new"] += 1
        hit = retriever.search("Document 7 version", k=1)[0]
        assert hit.chunk.text in by_source[hit.chunk.source]  # searches answer from the version opened
    assert writer.returncode == 0
    assert seen["old"] > 0 and seen["new"] > 0, seen
