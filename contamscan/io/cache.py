"""Local copies of remote things, kept where they pay.

* **Artifacts** (indexes, profiles) at a URI are downloaded once into
  ``$XDG_CACHE_HOME/contamscan/<kind>/`` and opened from there, memory-mapped like local ones,
  so that the workers of a machine share one copy (:func:`fetch_dir`); one built here for a
  URI is uploaded and kept as that URI's cache entry (:func:`adopt_dir`).
* **Scan outputs** at a URI are staged in a local directory keyed by the URI, which holds the
  output lock and the checkpoints (so ``--resume`` works from this machine) and the final
  files until they are uploaded (:class:`OutputDir`).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from ..errors import ContamscanError, StorageError
from .location import Location, _digest, display, download, exists, join, key, read_bytes, upload


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/contamscan`` (``~/.cache/contamscan`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "contamscan"


class _Lock:
    """flock on a file: processes of one machine fetching the same directory wait for each
    other instead of downloading it several times."""

    def __init__(self, path: Path):
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def __enter__(self):
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _entry_name(uri: str, manifest: bytes) -> str:
    return f"{_digest(key(uri))[:16]}-{_digest(manifest)[:16]}"


def _safe_name(name) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..", "manifest.json") and "/" not in name \
        and "\\" not in name and not name.startswith(".")


def fetch_dir(uri: str, kind: str, *, error: type[ContamscanError] = StorageError, what: str = "a directory",
              check: Callable[[dict], None] | None = None) -> tuple[Path, bool]:
    """A local copy of the remote directory ``uri`` described by its ``manifest.json`` (which
    lists ``files: {name: {bytes, xxh3_128}}``), in ``cache_root()/kind/``.

    The entry is named by the URI and the manifest's digest: an unchanged directory is
    reused, a changed one is fetched again (older copies of the same URI are removed). A
    fetch verifies the size and checksum of every file as it downloads it, writes the
    manifest last and renames the whole directory into place, so an entry is complete or
    absent; processes on one machine fetch one at a time. ``check(manifest)`` may reject the
    manifest before anything is downloaded. Returns (local directory, fetched now)."""
    try:
        manifest_bytes = read_bytes(join(uri, "manifest.json"))
    except StorageError as e:
        if not exists(join(uri, "manifest.json")):
            raise error(f"{display(uri)} is not {what} (no manifest.json)") from None
        raise error(str(e)) from e
    try:
        manifest = json.loads(manifest_bytes)
        files = manifest["files"]
        if not isinstance(files, dict) or not all(_safe_name(n) and isinstance(m, dict) for n, m in files.items()):
            raise ValueError("bad file list")
    except (ValueError, KeyError, TypeError) as e:
        raise error(f"{display(uri)}/manifest.json: unreadable manifest ({e})") from None
    if check is not None:
        check(manifest)
    root = cache_root() / kind
    root.mkdir(parents=True, exist_ok=True)
    name = _entry_name(uri, manifest_bytes)
    entry = root / name
    if (entry / "manifest.json").is_file():
        return entry, False
    with _Lock(root / f".{name}.lock"):
        if (entry / "manifest.json").is_file():  # fetched by another process meanwhile
            return entry, False
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
        try:
            for fname, meta in files.items():
                try:
                    digest = download(join(uri, fname), tmp / fname, size=meta.get("bytes"))
                except StorageError as e:
                    raise error(str(e)) from None
                if meta.get("xxh3_128") is not None and digest != meta["xxh3_128"]:
                    raise error(f"{display(uri)}: checksum mismatch for {fname}: the file does not match its "
                                "manifest (modified or corrupted)")
            (tmp / "manifest.json").write_bytes(manifest_bytes)
            try:
                os.rename(tmp, entry)
            except OSError:
                if not (entry / "manifest.json").is_file():  # else: placed by another machine's process
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _prune(root, name)
    return entry, True


def _prune(root: Path, keep: str) -> None:
    """Remove older copies of the same URI (a process still using one keeps its mapped files)."""
    prefix = keep.split("-", 1)[0] + "-"
    for d in root.glob(prefix + "*"):
        if d.name != keep and d.is_dir():
            shutil.rmtree(d, ignore_errors=True)
            (root / f".{d.name}.lock").unlink(missing_ok=True)


def adopt_dir(local: Path, uri: str, kind: str) -> Path:
    """Make ``local`` (a directory just written and uploaded to ``uri``, with its manifest) the
    cache entry of ``uri``, so opening ``uri`` next does not download it. Returns the entry."""
    root = cache_root() / kind
    root.mkdir(parents=True, exist_ok=True)
    name = _entry_name(uri, (Path(local) / "manifest.json").read_bytes())
    entry = root / name
    if (entry / "manifest.json").is_file():
        shutil.rmtree(local, ignore_errors=True)
    else:
        os.replace(local, entry)
    _prune(root, name)
    return entry


def new_build_dir(kind: str) -> Path:
    """A local directory to build something to be uploaded, beside the cache entries (same
    file system, so it can become one by a rename)."""
    root = cache_root() / kind
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".build-", dir=root))


def upload_dir(local: Path, uri: str, names, last: str = "manifest.json", stale=()) -> None:
    """Upload the files ``names`` of ``local`` to ``uri``, then ``last``. ``uri/last`` is deleted
    first, so while the files change a reader finds no ``last`` (no manifest: not an index,
    not a profile) rather than a mix of two versions; files of ``stale`` are deleted before
    ``last`` goes up. A reader that started before still checks every file against the
    manifest it read, so it fails rather than mixing versions."""
    Location(join(uri, last), True).delete()
    for n in names:
        upload(Path(local) / n, join(uri, n))
    for n in stale:
        Location(join(uri, n), True).delete()
    upload(Path(local) / last, join(uri, last))


class OutputDir:
    """A scan's output directory: the local directory it works in (the directory itself, or
    for a URI a staging directory keyed by it) and where its final files end up.

    Args:
        location: where the outputs go (a local path or a URI).
    """

    def __init__(self, location):
        self.location = Location.of(location)
        self.location.check_writable()
        if self.location.remote:
            self.work = cache_root() / "runs" / _digest(key(self.location.path))[:32]
            self.work.mkdir(parents=True, exist_ok=True)
            (self.work / "URI").write_text(self.location.shown + "\n")
        else:
            self.work = Path(self.location.path)
        self.shown = self.location.shown

    def remove(self, names) -> None:
        """Delete the files ``names`` (a previous run's report), here and at the destination."""
        for name in names:
            (self.work / name).unlink(missing_ok=True)
        if self.location.remote:
            for name in names:
                self.location.join(name).delete()

    def publish(self, names, last: str) -> None:
        """Move the final files ``names`` written in :attr:`work` to the destination, ``last``
        after the others (a ``last`` there means the rest is complete). Nothing to do for a
        local directory: the files were written in place."""
        if not self.location.remote:
            return
        order = [n for n in names if n != last and (self.work / n).exists()] + [last]
        for name in order:
            upload(self.work / name, self.location.join(name).path)
        for name in order:
            (self.work / name).unlink(missing_ok=True)
