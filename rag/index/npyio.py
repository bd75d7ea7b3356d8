"""numpy .npy files read in place: the header's layout, and slices of a 1-d array read with pread.

pread copies only the bytes asked for and maps nothing, so what a query reads does not stay in the process
(the OS page cache keeps hot files fast). Whole-array reads use numpy itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rag.errors import IndexCorrupt

REBUILD_HINT = "rebuild it with `rag index --rebuild`"


def layout(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data offset) of a C-ordered, pickle-free .npy file."""
    with open(path, "rb") as f:
        major, _ = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
        offset = f.tell()
    if fortran or dtype.hasobject:
        raise ValueError(f"{path.name}: not a C-ordered numeric array")
    return shape, dtype, offset


class PreadArray:
    """A 1-d .npy array read by slices."""

    def __init__(self, path: Path):
        self.path = path
        shape, self.dtype, self.offset = layout(path)
        if len(shape) != 1:
            raise ValueError(f"{path.name}: expected a 1-d array, found shape {shape}")
        self.size = shape[0]
        self._file = open(path, "rb", buffering=0)

    def read(self, start: int, count: int) -> np.ndarray:
        if start < 0 or start + count > self.size:
            raise IndexCorrupt(f"{self.path}: slice {start}+{count} out of range: {REBUILD_HINT}")
        if count == 0:
            return np.zeros(0, self.dtype)
        nbytes = count * self.dtype.itemsize
        data = os.pread(self._file.fileno(), nbytes, self.offset + start * self.dtype.itemsize)
        if len(data) != nbytes:
            raise IndexCorrupt(f"{self.path} is truncated: {REBUILD_HINT}")
        return np.frombuffer(data, dtype=self.dtype)

    def close(self) -> None:
        self._file.close()
