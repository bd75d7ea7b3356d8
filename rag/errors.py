"""The project's exceptions: one small hierarchy, each message says what to do next.

Library code raises these; the CLI, the UI and the HTTP API turn them into exit codes,
`gr.Error`s and status codes. Nothing here formats for a particular edge.
"""


class RagError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(RagError):
    """A setting is missing, malformed or contradicts another."""


class MissingDependency(RagError):
    """An optional extra is not installed."""

    def __init__(self, module: str, extra: str):
        super().__init__(f"{module} is not installed: install the extra with `pip install -e '.[{extra}]'`")


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
