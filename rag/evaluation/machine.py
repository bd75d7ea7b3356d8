"""Which CPU a figure came from: its model name, core count and the vector extensions int8 speed depends on.

The int8 embedder's numbers, hence every answer-step feature, differ a little between CPUs with and without
avx512_vnni, so evaluation runs and calibration fits record this, and `rag eval` says when the two differ.
"""

from __future__ import annotations

import os
from pathlib import Path

SIMD_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict:
    """{"cpus", "cpu", "simd"}; "cpu" and "simd" only where /proc/cpuinfo says (Linux)."""
    info: dict = {"cpus": os.cpu_count()}
    try:
        lines = cpuinfo.read_text().splitlines()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
        flags = next(line for line in lines if line.startswith("flags")).split()
        info["simd"] = [f for f in SIMD_FLAGS if f in flags]
    except (OSError, StopIteration):
        pass
    return info


def int8_kernels_differ(a: dict, b: dict) -> bool:
    """Whether machines `a` and `b` (as `cpu` gives them) run the int8 embedder with different kernels, so its
    numbers differ a little; False when either is unknown."""
    if "simd" not in a or "simd" not in b:
        return False
    return ("avx512_vnni" in a["simd"]) != ("avx512_vnni" in b["simd"])
