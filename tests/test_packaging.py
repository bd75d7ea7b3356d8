"""What a wheel of the project holds: every data file a module reads at run time is in pyproject's package-data, so
`pip install .` (not only the editable install `make` does) ships the reader's weights and the calibration."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_data_file_in_a_package_ships_in_its_wheel() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    packages, data = setuptools["packages"], setuptools["package-data"]
    found, missing = 0, []
    for path in sorted((ROOT / "rag").rglob("*")):
        rel = path.relative_to(ROOT)
        if path.is_dir() or path.suffix == ".py" or "__pycache__" in rel.parts or path.name.startswith("."):
            continue
        found += 1
        # the deepest listed package above the file, and the file's path inside it
        depth = max(n for n in range(1, len(rel.parts)) if ".".join(rel.parts[:n]) in packages)
        package, inside = ".".join(rel.parts[:depth]), "/".join(rel.parts[depth:])
        if not any(fnmatch.fnmatch(inside, pattern) for pattern in data.get(package, [])):
            missing.append(str(rel))
    assert found >= 4 and not missing, f"not in [tool.setuptools.package-data]: {missing}"
