"""The project's exceptions: one small hierarchy, each message says what to do next.

Library code raises these; the CLI, the UI and the HTTP API turn them into exit codes,
`gr.Error`s and status codes. Nothing here formats for a particular edge.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = [
    "RagError",
    "ConfigError",
    "MissingDependency",
    "needs_extra",
    "ModelNotFound",
    "DocumentError",
    "IndexMissing",
    "IndexCorrupt",
    "IndexMismatch",
    "StoreError",
    "BackendError",
]


class RagError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(RagError):
    """A setting is missing, malformed or contradicts another."""


class MissingDependency(RagError):
    """An optional extra (ui, local, hosted, milvus, ray) is not installed; `extra=None`: a core dependency."""

    def __init__(self, module: str, extra: str | None):
        self.module, self.extra = module, extra
        if extra:
            hint = f"it comes with the `{extra}` extra: install it with `pip install -e '.[{extra}]'`"
        else:
            hint = "it is a dependency of rag: reinstall with `pip install -e .`"
        super().__init__(f"{module} is not installed; {hint}")


@contextlib.contextmanager
def needs_extra(extra: str | None) -> Iterator[None]:
    """Wrap the imports of an optional extra: an ImportError inside becomes one `MissingDependency` line.

    with needs_extra("ui"):
        import gradio as gr
    """
    try:
        yield
    except ImportError as exc:
        raise MissingDependency((exc.name or str(exc)).split(".")[0], extra) from None


class ModelNotFound(RagError):
    """A model file or package is not on this machine (nothing is downloaded at run time)."""


class DocumentError(RagError):
    """One input file cannot be turned into a document; the message is the reason it was skipped."""


class IndexMissing(RagError):
    """There is no index at the given directory."""


class IndexCorrupt(RagError):
    """An index artifact fails its checksum, is truncated, or has an unknown format."""


class IndexMismatch(RagError):
    """The index was built with settings (embedding model, format) that differ from the current ones."""


class StoreError(RagError):
    """The vector store (a Milvus server or Milvus Lite folder) is unreachable or refused a request."""


class BackendError(RagError):
    """The LLM backend failed: unreachable endpoint, bad key, unknown model, timeout."""
