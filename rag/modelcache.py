"""Files made once from installed model weights (an ONNX export, a converted GGUF) and kept in the model cache.

A file's folder is keyed by its source's path, sizes and modification times and the maker's version, so a
changed source or maker is made again; two processes starting at once make it once. Writing the file itself
(to a temporary name starting with ".", then renamed into place) is the maker's job; temporary files a maker killed
midway left behind are removed the next time the folder's lock is taken.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

__all__ = ["derived_folder", "exclusive"]


def derived_folder(cache_dir: Path, kind: str, source: Path, version: int) -> Path:
    """`cache_dir/kind/<source name>-<key>`: the folder for files made from `source` (a file or a folder)."""
    files = [source] if source.is_file() else sorted(p for p in source.iterdir() if p.is_file())
    stamp = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    key = hashlib.sha256(f"{source.resolve()}|{stamp}|{version}".encode()).hexdigest()[:12]
    return Path(cache_dir).expanduser() / kind / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', source.name)}-{key}"


@contextlib.contextmanager
def exclusive(folder: Path) -> Iterator[None]:
    """Hold `folder`'s lock (creating the folder): check again inside it whether the file is there yet. Every maker
    writes under this lock, so a temporary (dot-named) file found on taking it was left by one killed midway."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in folder.glob(".*"):
            if stale.name != ".lock" and stale.is_file():
                stale.unlink()
        yield
