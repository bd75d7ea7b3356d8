"""Checksums of index artifacts: each file's sha256 and size recorded when it is written, checked at open by
size and a full or sampled digest, and every byte by `rag verify`. Which files a version has is rag.index.store's."""

from __future__ import annotations

import hashlib
from pathlib import Path

from rag.errors import IndexCorrupt

REBUILD_HINT = "rebuild it with `rag index --rebuild`"
FULL_CHECK_BYTES = 64 << 20  # artifacts up to this size are sha256-checked in full on every load
SAMPLE_EDGE, SAMPLE_BLOCKS, SAMPLE_BYTES = 1 << 20, 32, 64 << 10  # a sampled digest reads head, tail and blocks


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sampled_sha256(path: Path, size: int) -> str:
    """sha256 of the size, the first and last MiB and SAMPLE_BLOCKS blocks spread evenly between (~4 MB read)."""
    digest = hashlib.sha256(size.to_bytes(8, "little"))
    offsets = [0, max(0, size - SAMPLE_EDGE)] + [size * i // (SAMPLE_BLOCKS + 1) for i in range(1, SAMPLE_BLOCKS + 1)]
    with open(path, "rb") as f:
        for i, offset in enumerate(offsets):
            f.seek(offset)
            digest.update(f.read(SAMPLE_EDGE if i < 2 else SAMPLE_BYTES))
    return digest.hexdigest()


def record(path: Path) -> dict:
    """What the manifest records of an artifact: its size, sha256 and, if large, its sampled digest."""
    size = path.stat().st_size
    record = {"sha256": sha256_file(path), "bytes": size}
    if size > FULL_CHECK_BYTES:
        record["sampled_sha256"] = sampled_sha256(path, size)
    return record


def check(path: Path, record: dict, full: bool) -> None:
    """Size always; then the full sha256 (small files, or `full`) or the sampled digest (large files at open)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise IndexCorrupt(f"{path} is missing: {REBUILD_HINT}") from None
    if size != record["bytes"]:
        raise IndexCorrupt(
            f"{path} fails its checksum ({size} bytes, {record['bytes']} recorded: truncated or "
            f"altered): {REBUILD_HINT}"
        )
    if full or "sampled_sha256" not in record:
        ok = sha256_file(path) == record["sha256"]
    else:
        ok = sampled_sha256(path, size) == record["sampled_sha256"]
    if not ok:
        raise IndexCorrupt(f"{path} fails its checksum (altered): {REBUILD_HINT}")
