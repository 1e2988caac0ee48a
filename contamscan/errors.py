"""Errors that mean "the user asked for something that cannot be done".

Each class carries the exit status the command line gives it (``exit_code``) and the name
of the event a JSON log records (``event``), so one handler in the CLI turns any of them
into a message and a status. Messages name options by their Python names in backquotes
(`text_field`); the CLI shows its own spelling of the same option (`--text-field`).
Anything that is not a ContamscanError is a bug and keeps its traceback.
"""

from __future__ import annotations


class ContamscanError(Exception):
    """Base class for user-facing errors (bad arguments, bad input, bad index): exit status 1."""

    exit_code = 1
    event = "error"

    def fields(self) -> dict:
        """What a JSON log line of this error holds besides its event name."""
        return {"message": str(self)}


class FieldMissingError(ContamscanError):
    """A requested field (text, id, label) is not in the input; names the fields that are."""

    def __init__(self, field: str, path: str, available: list[str], hint: str = ""):
        self.field, self.path, self.available = field, path, list(available)
        shown = ", ".join(self.available) if self.available else "(none)"
        super().__init__(f"field {field!r} not found in {path}; fields present: {shown}" + (f"; {hint}" if hint else ""))


class FieldTypeError(ContamscanError):
    """The text field exists but is not a string (a list of chat turns, a number, ...), or a
    selector's step does not fit the data (an index on a field that is not a list)."""

    def __init__(self, field: str, path: str, found: str, hint: str = ""):
        self.field, self.path, self.found = field, path, found
        where = f" in {path}" if path else ""
        if found:
            msg = f"field {field!r}{where} is not a string column (type found: {found})"
        else:
            msg = f"field {field!r}{where} does not fit the data"
        super().__init__(msg + (f"; {hint}" if hint else ""))


class ShardReadError(ContamscanError):
    """A shard cannot be read at all (corrupt Parquet, truncated gzip/zstd, unreadable file)."""


class IndexFormatError(ContamscanError):
    """An index directory is missing, tampered with, or incompatible with the request."""


class ProfileFormatError(ContamscanError):
    """A style profile directory is missing, tampered with, or of another format version."""


class StorageError(ContamscanError):
    """A path or URI cannot be resolved, listed, read or written."""


class OutputWriteError(ContamscanError):
    """An output file cannot be written (disk full, permission denied, ...)."""


class FailedShardsError(ContamscanError):
    """The scan finished, but some shards failed (unreadable, records and no document, more bad
    records than `max_bad_share`) or some inputs could not be read (a directory that cannot be
    listed), or a gate was asked for and input paths led nowhere (a broken link): exit status 3."""

    exit_code = 3
    event = "failed_shards"

    def __init__(self, shards: list[str], unreadable: list[str] = (), failed_inputs: list[str] = ()):
        self.shards, self.unreadable, self.failed_inputs = list(shards), list(unreadable), list(failed_inputs)
        parts = [f"{len(self.shards)} shard(s) could not be read"] if self.shards else []
        if self.failed_inputs:
            parts.append(f"{len(self.failed_inputs)} input path(s) could not be listed or read: "
                         f"{', '.join(self.failed_inputs[:5])}")
        message = "; ".join(parts) + ("; see report.json" if parts else "")
        if self.unreadable:
            message += ("; " if message else "") + (f"{len(self.unreadable)} input path(s) could not be read, so a gate "
                                                    f"cannot pass: {', '.join(self.unreadable[:5])}")
        super().__init__(message)

    def fields(self) -> dict:
        return {"shards": self.shards, "unreadable": self.unreadable, "failed_inputs": self.failed_inputs}


class NoDocumentsError(ContamscanError):
    """The scan finished and read no document at all (every shard empty, or every record
    excluded): exit status 5. Nothing was checked, so no gate can pass."""

    exit_code = 5
    event = "no_documents"

    def __init__(self, shards: int):
        self.shards = shards
        super().__init__(f"the scan read no document in {shards} shard(s): nothing was checked; see report.json")

    def fields(self) -> dict:
        return {"message": str(self), "shards": self.shards}


class GateError(ContamscanError):
    """The contamination rate of the dataset, or of a shard, is above its gate: exit status 4."""

    exit_code = 4
    event = "gate"

    def __init__(self, message: str, *, rate: float, fail_above: float | None, fail_above_shard: float | None,
                 shards_above: list[str]):
        self.rate, self.fail_above, self.fail_above_shard = rate, fail_above, fail_above_shard
        self.shards_above = list(shards_above)
        super().__init__(message)

    def fields(self) -> dict:
        return {"contamination_rate": self.rate, "fail_above": self.fail_above,
                "fail_above_shard": self.fail_above_shard, "shards_above": self.shards_above}


class Interrupted(KeyboardInterrupt):
    """The process was asked to stop: Ctrl-C (SIGINT) or SIGTERM (``kill PID``, ``timeout``, a
    container stop), which the command line turns into this exception in the main thread so
    that both stop the same way: work in flight is abandoned (a scan keeps its finished shards
    for ``--resume``), locks are released, the message is one line and the exit status is
    128 + the signal's number (130, 143). A KeyboardInterrupt, not a ContamscanError: nothing
    that handles errors (a shard that fails alone) can swallow it."""

    def __init__(self, signum: int, message: str = ""):
        self.signum, self.message = signum, message
        super().__init__(signum, message)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

