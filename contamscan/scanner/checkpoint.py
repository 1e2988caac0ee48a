"""Checkpoints and the output lock: a scan that is interrupted (Ctrl-C, SIGKILL, a lost
machine) resumes where it stopped, and two scans never write into one output directory.

The state lives in ``OUT/.contamscan/``:

``lock``          held (``flock``) by the running scan's process, never by its workers; the
                  kernel releases it when that process dies, however it dies
``run.json``      what the scan is: its shards (path, size, mtime), the index's manifest
                  digest, the options that change results, the tool version
                  (each checkpoint also holds its unit's content digest, checked on resume:
                  :mod:`contamscan.scanner.fingerprint`)
``NNNNNN.json``   one finished shard's result (shard NNNNNN of the run's list), written after
``NNNNNN.parquet``  its matches and any clean/flagged outputs, each by write-then-rename

A shard's JSON file is the proof that everything of that shard is on disk: on resume, shards
with one are loaded, the others are scanned again. Final outputs (report.json, ...) are
removed when a scan starts and written only at its end, so they are never from a partial run.

A remote output (a URI) has this state in a local staging directory keyed by the URI
(:class:`contamscan.io.OutputDir`): the lock is a lock of this machine only (an object store
has no flock), and ``--resume`` works from the machine that started the scan.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from ..errors import ContamscanError, OutputWriteError
from ..io import Location
from ..io.artifact import manifest_digest
from ..model import MATCH_SCHEMA, ShardResult, flagging, read_arrow, write_arrow
from .fingerprint import content_digest

STATE_DIR = ".contamscan"


_held_locks: set[int] = set()  # descriptors of the output locks this process holds


def _close_locks_in_child() -> None:
    """A forked child (a worker) must not hold the output lock: ``flock`` belongs to the open
    file, which a fork shares, so a worker outliving its parent would keep the directory
    locked. Closing the child's copy leaves the parent's lock as it is."""
    for fd in _held_locks:
        try:
            os.close(fd)
        except OSError:
            pass
    _held_locks.clear()


os.register_at_fork(after_in_child=_close_locks_in_child)


class OutputLock:
    """An exclusive lock on an output directory, held for the life of a scan, by this process
    only (forked children close their copy, see :func:`_close_locks_in_child`): when it dies,
    however it dies, the kernel releases the lock and the next scan (``--resume``) takes it."""

    def __init__(self, out: Path, shown: str | None = None):
        self.path = Path(out) / STATE_DIR / "lock"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise OutputWriteError(f"{Location.of(str(self.path)).shown}: cannot write: {e.strerror or e}") from e
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(self._fd)
            raise ContamscanError(f"another scan is writing to {shown or out} ({holder}); wait for it to finish or "
                                  "choose another output directory") from None
        _held_locks.add(self._fd)
        # padded over what an earlier holder wrote, not truncated: a truncate waits on the
        # file system's journal, 0.15 s of a short scan on a disk busy with other writes
        os.pwrite(self._fd, f"pid {os.getpid()}".ljust(32).encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            _held_locks.discard(self._fd)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def run_fingerprint(shards, index, options, version: str) -> dict:
    """Everything a scan's results depend on: a resumed scan must match it exactly."""
    manifest = (Path(index.path) / "manifest.json").read_bytes()
    return {
        "tool_version": version,
        "index_manifest_xxh3_128": xxhash.xxh3_128_hexdigest(manifest),
        "options": options.result_fields(),
        **({"profile_manifest_xxh3_128": manifest_digest(options.profile)} if options.profile else {}),
        "shards": [[s.relpath, s.size, s.mtime_ns if s.mtime_ns is not None else -1]
                   + ([list(s.row_groups)] if s.row_groups else [])
                   for s in shards],
    }


def remove_stale_temporaries(directory: Path) -> None:
    """Temporary files a killed process left behind (``.NAME.tmp-PID``)."""
    if directory.is_dir():
        for p in directory.glob(".*.tmp-*"):
            p.unlink(missing_ok=True)


MATCHES_SUFFIX = ".arrow"  # a finished shard's matches: an Arrow IPC file beside its .json


class Checkpoints:
    """Finished shards of one scan, saved as they finish and loaded on resume."""

    def __init__(self, out: Path, fingerprint: dict, resume: bool, shown: str | None = None):
        self.dir = Path(out) / STATE_DIR
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputWriteError(f"{Location.of(str(self.dir)).shown}: cannot write: {e.strerror or e}") from e
        remove_stale_temporaries(self.dir)
        self.done: dict[int, object] = {}
        run = self.dir / "run.json"
        previous = _read_json(run) if resume else None
        if previous is not None:  # a damaged run.json cannot vouch for its checkpoints: a new scan
            if previous != fingerprint:
                what = [k for k in fingerprint if previous.get(k) != fingerprint[k]]
                raise ContamscanError(f"cannot resume the scan in {shown or out}: its {', '.join(what)} changed since it "
                                      "started; scan again without `resume`")
            self.done = self._load()
        else:
            self.clear()
            Location.of(str(run)).write_atomic((json.dumps(fingerprint, indent=1) + "\n").encode())

    def save(self, number: int, result) -> None:
        """Record a finished shard (its outputs are already on disk). Failed shards are not
        recorded: a resumed scan tries them again."""
        if result.status != "ok":
            return
        # not synced to disk (four syncs per unit were a tenth of a small scan's time): a
        # checkpoint a power loss left empty or torn is dropped on load, and its unit rescanned
        with Location.of(str(self.matches_file(number))).writing(durable=False) as tmp:
            write_arrow(tmp, result.matches)
        fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.name != "matches"}
        Location.of(str(self.dir / f"{number:06d}.json")).write_atomic(json.dumps(fields).encode(), durable=False)

    def drop_changed(self, units) -> list[int]:
        """Drop the checkpoints of finished units whose content changed since they were
        scanned (their digest differs: a same-size edit with its time kept, as ``cp -p`` leaves
        it), so that they are scanned again; returns their numbers. The digests are computed
        on 8 threads (reads release the GIL)."""
        numbers = [n for n in sorted(self.done) if n < len(units)]

        def now(n: int) -> str | None:
            try:
                return content_digest(units[n])
            except (OSError, pa.ArrowException):
                return "unreadable"

        with ThreadPoolExecutor(8) as pool:
            digests = list(pool.map(now, numbers))
        changed = [n for n, d in zip(numbers, digests) if d != self.done[n].content]
        for n in changed:
            del self.done[n]
            (self.dir / f"{n:06d}.json").unlink(missing_ok=True)
            self.matches_file(n).unlink(missing_ok=True)
        return changed

    def matches_file(self, number: int) -> Path:
        """Where a finished shard's matches are: an Arrow file (read by :meth:`matches`)."""
        return self.dir / f"{number:06d}{MATCHES_SUFFIX}"

    def matches(self, number: int) -> pa.Table:
        """A finished shard's matches (the scan copies them into matches.parquet)."""
        return read_arrow(self.matches_file(number))

    def _load(self) -> dict:
        """The finished shards, without their matches: those stay in their files. A damaged
        checkpoint (empty, not JSON, a field missing or of the wrong type, its matches file
        missing or unreadable) is dropped with its matches file: that shard is scanned again."""
        done = {}
        for f in sorted(self.dir.glob("[0-9]*.json")):
            result = _checkpoint(f, f.with_suffix(MATCHES_SUFFIX)) if f.stem.isdigit() else None
            if result is None:
                f.unlink(missing_ok=True)
                f.with_suffix(MATCHES_SUFFIX).unlink(missing_ok=True)
                continue
            done[int(f.stem)] = result
        return done

    def clear(self) -> None:
        """Forget every finished shard (a new scan, or a finished one)."""
        for pattern in ("[0-9]*.json", f"[0-9]*{MATCHES_SUFFIX}", "[0-9]*.parquet"):  # (.parquet: an earlier version's)
            for p in list(self.dir.glob(pattern)):
                p.unlink(missing_ok=True)
        (self.dir / "run.json").unlink(missing_ok=True)


# every field a checkpoint holds (``evidence`` came later: optional), and its JSON type
_FIELDS = {"shard": str, "status": str, "error": (str, type(None)), "documents": int, "bytes": int,
           "flagged_documents": int, "flagged_bytes": int, "by_label": dict, "similarity_histogram": list,
           "bad_records": int, "bad_by_reason": dict, "bad_examples": list, "seconds": (int, float),
           "evidence": list, "ai_share": (dict, type(None)), "content": (str, type(None)), "by_label_any": dict}
_OPTIONAL = {"evidence", "by_label_any"}  # fields that came later


def _read_json(path: Path):
    """The JSON value in ``path``; None when it is missing, unreadable or not JSON."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def _checkpoint(path: Path, matches: Path) -> ShardResult | None:
    """The shard result a checkpoint holds, or None when it is damaged."""
    fields = _read_json(path)
    if not isinstance(fields, dict) or fields.get("status") != "ok" or \
            set(fields) - set(_FIELDS) or set(_FIELDS) - _OPTIONAL - set(fields):
        return None
    if not all(isinstance(v, _FIELDS[k]) and not isinstance(v, bool) for k, v in fields.items()):
        return None
    try:  # the whole file, as the final matches.parquet will read it
        table = read_arrow(matches)
    except (OSError, pa.ArrowException):
        return None
    # a row per flagged document and source (and turn): the documents are the distinct rows
    if not table.schema.equals(MATCH_SCHEMA) or \
            len(pc.unique(flagging(table).column("row"))) != fields["flagged_documents"]:
        return None
    fields["similarity_histogram"] = tuple(fields["similarity_histogram"])
    fields["bad_examples"] = tuple(fields["bad_examples"])
    fields["evidence"] = tuple(fields.get("evidence", ()))
    try:
        return ShardResult(**fields)
    except TypeError:
        return None


__all__ = ["OutputLock", "Checkpoints", "run_fingerprint", "STATE_DIR"]
