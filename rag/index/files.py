"""Small file operations the index writers share: fsync a path, share an immutable file with a new version."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def link(src: Path, dst: Path) -> None:
    """Share an immutable file with the previous version (a copy where hard links are not possible)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
