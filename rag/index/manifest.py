"""The manifest of an index version (`manifest.json`): read, checked and written here, nowhere else.

The store owns five entries (format version, artifact checksums, counts, segments, the dense store's record); the
indexer owns the rest (embedding, chunking, files, sources, created_at, ...), kept in `info` in their order so a
manifest reads back and writes out byte for byte. What each store puts in its `dense` record is the store's business.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import IndexCorrupt, IndexMismatch

FORMAT_VERSION = 3  # 2: JSONL chunks and documents, pages and headings; 3: SQLite chunk store, segments, dense kinds
REBUILD_HINT = "rebuild it with `rag index --rebuild`"
FILE = "manifest.json"
CORE_KEYS = ("format_version", "artifacts", "counts", "segments", "dense")  # what the store owns, in file order


@dataclass
class Manifest:
    """One version's manifest. `info` holds the indexer's entries; the rest is the store's."""

    info: dict[str, Any] = field(default_factory=dict)
    format_version: int | None = FORMAT_VERSION
    artifacts: dict[str, dict] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    segments: list[dict] = field(default_factory=list)
    dense: dict[str, Any] = field(default_factory=dict)

    @property
    def embedding(self) -> dict:
        return self.info.get("embedding") or {}

    @property
    def chunking(self) -> dict | None:
        return self.info.get("chunking")

    @property
    def files(self) -> dict[str, dict]:
        return self.info.get("files") or {}

    @property
    def sources(self) -> list[str] | None:
        return self.info.get("sources")

    @property
    def model(self) -> str | None:
        return self.embedding.get("model")

    @property
    def dim(self) -> int:
        return int(self.embedding.get("dim", 0))

    @property
    def backend(self) -> str | None:
        return self.embedding.get("backend")

    @property
    def store(self) -> str:
        """The name of the dense store the vectors live in (a key of rag.index.stores.REGISTRY)."""
        return self.dense.get("store", "faiss")

    @property
    def n_chunks(self) -> int:
        return int(self.counts.get("chunks", 0))

    @classmethod
    def from_dict(cls, data: dict) -> Manifest:
        """A manifest as it was parsed, unchecked (`read` checks the format version)."""
        return cls(
            {k: v for k, v in data.items() if k not in CORE_KEYS},
            data.get("format_version"),
            data.get("artifacts") or {},
            data.get("counts") or {},
            data.get("segments") or [],
            data.get("dense") or {},
        )

    def to_dict(self) -> dict:
        return {
            **{k: v for k, v in self.info.items() if k not in CORE_KEYS},
            "format_version": self.format_version,
            "artifacts": self.artifacts,
            "counts": self.counts,
            "segments": self.segments,
            "dense": self.dense,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def write(self, version: Path) -> Path:
        path = version / FILE
        path.write_text(self.dumps(), encoding="utf-8")
        return path

    @classmethod
    def parse(cls, version: Path) -> Manifest:
        """The manifest of `version` whatever its format version (IndexCorrupt when it is missing or not JSON)."""
        try:
            data = json.loads((version / FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise IndexCorrupt(f"{version} has no {FILE}: {REBUILD_HINT}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise IndexCorrupt(f"{version}/{FILE} is not valid JSON ({exc}): {REBUILD_HINT}") from None
        if not isinstance(data, dict):
            raise IndexCorrupt(f"{version}/{FILE} is not a JSON object: {REBUILD_HINT}")
        return cls.from_dict(data)

    @classmethod
    def read(cls, version: Path) -> Manifest:
        """The manifest of `version`, checked to be of the format this code reads (IndexMismatch otherwise)."""
        manifest = cls.parse(version)
        found = manifest.format_version
        if found != FORMAT_VERSION:
            why = " (chunks and documents in JSONL files read whole at open)" if found in (1, 2) else ""
            raise IndexMismatch(
                f"index format {found} at {version}{why}, this version reads format "
                f"{FORMAT_VERSION} (chunks on disk, segments, choice of dense index): {REBUILD_HINT}"
            )
        return manifest
