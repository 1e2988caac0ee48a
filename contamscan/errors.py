"""Exceptions that mean "the user asked for something that cannot be done".

The CLI prints these as one clear message without a traceback (``--debug`` shows it);
anything else is a bug and keeps its traceback.
"""


class ContamscanError(Exception):
    """Base class for user-facing errors (bad arguments, bad input, bad index)."""


class FieldMissingError(ContamscanError):
    """A requested field (text, id, label) is not in the input; names the fields that are."""

    def __init__(self, field: str, path: str, available: list[str]):
        self.field, self.path, self.available = field, path, list(available)
        shown = ", ".join(self.available) if self.available else "(none)"
        super().__init__(f"field {field!r} not found in {path}; fields present: {shown}")


class ShardReadError(ContamscanError):
    """A shard cannot be read at all (corrupt Parquet, truncated gzip/zstd, unreadable file)."""


class IndexFormatError(ContamscanError):
    """An index directory is missing, tampered with, or incompatible with the request."""
