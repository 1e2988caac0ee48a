"""Find input shards: directories (recursively), files and glob patterns, local or remote,
become a deterministic, de-duplicated list of :class:`~contamscan.model.Shard` plus the paths
skipped and why.

Rules, the same for every kind of path (a :class:`~contamscan.io.Location` walks and lists):
hidden names and the bookkeeping files of Spark/Hadoop/Arrow writers (``_SUCCESS``,
``_metadata``, ``.crc``) are ignored at every level below a directory; a file named itself
is never ignored; files of unknown extensions are skipped and recorded; anything at or under
an excluded directory (the scan's own outputs) or matching an excluded glob is skipped, the
topmost such path recorded once; each real file is taken once, however many links lead to
it. A contamscan index, style profile or scan output found among the inputs (its
``manifest.json`` / ``report.json`` says so) is skipped whole; in a ``datasets.save_to_disk``
folder (its ``state.json`` says so) the JSON metadata is skipped and the Arrow files are
shards.
"""

from __future__ import annotations

import fnmatch
import json
import os
from typing import Iterable, Sequence

from .errors import ContamscanError
from .formats import classify
from .io import Found, Location
from .model import Shard, Skipped

__all__ = ["discover", "failed_input"]

# bookkeeping files written by Spark/Hadoop/Arrow dataset writers: ignored silently
_IGNORED_NAMES = frozenset({"_SUCCESS", "_metadata", "_common_metadata", "_temporary"})
_IGNORED_PREFIXES = ("_committed_", "_started_")


def _ignored(name: str) -> bool:
    return (
        name.startswith(".")
        or name in _IGNORED_NAMES
        or name.startswith(_IGNORED_PREFIXES)
        or name.lower().endswith(".crc")
    )


# JSON files that say what their directory is: read (they are small) when discovery meets them
_MARKERS = frozenset({"manifest.json", "report.json", "state.json", "dataset_info.json", "dataset_dict.json"})
_DATASETS_METADATA = ("state.json", "dataset_info.json", "dataset_dict.json")


def failed_input(reason: str) -> bool:
    """Whether a path skipped for ``reason`` is a failed input: the file system refused to list
    or stat it (permission denied, an I/O error), so data may be there unread. A scan with one
    fails as a scan with a failed shard does; a skip by rule (unknown extension, excluded, not
    data, a symbolic-link loop, a broken link) does not."""
    return reason.startswith("unreadable")


def _marker(loc: Location) -> dict | None:
    try:
        data = json.loads(loc.read_bytes()[:1 << 20])
    except (ContamscanError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _directory_kind(loc: Location) -> str | None:
    """What a marker file says its directory is: a contamscan index, style profile or scan
    output (never data), or a ``datasets.save_to_disk`` folder (its JSON files are metadata)."""
    data = _marker(loc)
    if data is None:
        return None
    if loc.name == "manifest.json" and str(data.get("format", "")).startswith("contamscan-"):
        return {"contamscan-index": "contamscan index",
                "contamscan-style-profile": "contamscan style profile"}.get(data["format"], "contamscan directory")
    if loc.name == "report.json" and isinstance(data.get("tool"), dict) and data["tool"].get("name") == "contamscan":
        return "contamscan scan output"
    if loc.name == "state.json" and "_data_files" in data:
        return "datasets"
    if loc.name == "dataset_dict.json" and "splits" in data:
        return "datasets"
    return None


class _Discovery:
    def __init__(self, exclude: Sequence[Location], globs: Sequence[str] = ()):
        self.exclude = list(exclude)
        self.globs = tuple(globs)
        self.shards: list[Shard] = []
        self.skipped: dict[tuple[str, str], Skipped] = {}
        self.seen_files: set[str] = set()
        self.walked_dirs: set[str] = set()

    def skip(self, loc: Location, reason: str) -> None:
        path = loc.absolute().shown
        self.skipped.setdefault((path, reason), Skipped(path, reason, failed=failed_input(reason)))

    def excluded(self, loc: Location) -> bool:
        return any(loc.within(e) for e in self.exclude)

    def add(self, loc: Location, relbase: Location | None, from_glob: bool) -> None:
        if loc.is_dir():
            if self.excluded(loc):
                self.skip(loc, "inside output directory")
                return
            if loc.key in self.walked_dirs:
                return
            self.walked_dirs.add(loc.key)
            for found in loc.walk(_ignored, self.excluded):
                self.file(found, relbase if relbase is not None else loc)
        elif not (from_glob and _ignored(loc.name)):
            self.file(loc.stat_file(), relbase)

    def drop_non_data(self) -> None:
        """Shards that are not data: everything in a contamscan index, profile or scan output
        directory (its manifest.json or report.json says so; the directory is recorded once),
        and the metadata files of a ``datasets.save_to_disk`` folder (its state.json says so;
        its Arrow files stay shards)."""
        dirs: dict[str, tuple[Location, str]] = {}
        for s in self.shards:
            loc = Location.of(s.path)
            if loc.name in _MARKERS:
                kind = _directory_kind(loc)
                if kind is not None:
                    dirs[loc.parent.key] = (loc.parent, kind)
        if not dirs:
            return
        artifacts = [(d, kind) for d, kind in dirs.values() if kind != "datasets"]
        keep = []
        for s in self.shards:
            loc = Location.of(s.path)
            owner = next(((d, kind) for d, kind in artifacts if loc.within(d)), None)
            if owner is not None:
                self.skip(*owner)
            elif dirs.get(loc.parent.key, (None, None))[1] == "datasets" and loc.name in _DATASETS_METADATA:
                self.skip(loc, "datasets metadata (save_to_disk)")
            else:
                keep.append(s)
        self.shards = keep

    def file(self, found: Found, relbase: Location | None) -> None:
        loc = found.location
        if found.skipped is not None:
            self.skip(loc, found.skipped)
            return
        kind = classify(loc.name)
        if kind is None:
            self.skip(loc, "unknown extension")
            return
        if self.excluded(loc):
            self.skip(loc, "inside output directory")
            return
        rel = loc.name if relbase is None else loc.relative_to(relbase)
        shown = Location(rel).shown
        if self.globs and any(fnmatch.fnmatchcase(shown, g) or fnmatch.fnmatchcase(loc.absolute().shown, g)
                              or fnmatch.fnmatchcase(loc.shown, g) for g in self.globs):
            self.skip(loc, "excluded by `exclude`")
            return
        if loc.key in self.seen_files:
            return
        self.seen_files.add(loc.key)
        self.shards.append(Shard(loc.absolute().path, shown, kind[0], found.size, mtime_ns=found.mtime_ns))


def discover(inputs: str | os.PathLike | Iterable[str | os.PathLike],
             exclude: Iterable[str | os.PathLike | Location] = (),
             exclude_globs: Iterable[str] = ()) -> tuple[list[Shard], list[Skipped]]:
    """Expand directories, files and glob patterns (paths or URIs) into shards.

    Args:
        inputs: one or more directories, files or glob patterns.
        exclude: directories whose contents are never returned (a scan's outputs).
        exclude_globs: glob patterns (``fnmatch``: ``*`` crosses ``/``); a file whose relative
            path or path matches one is skipped.

    Returns:
        ``(shards, skipped)``: shards sorted by (relpath, path), each real file once; skipped
        sorted by path.

    Raises:
        ContamscanError: a path that does not exist, or a glob matching nothing.

    Example:
        >>> shards, skipped = discover(["crawl/"])  # doctest: +SKIP
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    disc = _Discovery([Location.of(e) for e in exclude], tuple(exclude_globs))
    for raw in inputs:
        loc = Location.of(raw)
        if not loc.path:
            raise ContamscanError("empty input path")
        if loc.has_magic() and not loc.exists():
            base, matches = loc.glob()
            if not matches:
                raise ContamscanError(f"no files match the pattern {loc.shown!r}")
            for m in matches:
                disc.add(m, base, from_glob=True)
        elif loc.exists():
            disc.add(loc, None, from_glob=False)
        elif loc.is_broken_link():
            raise ContamscanError(f"input is a broken symbolic link: {loc.shown}")
        else:
            raise ContamscanError(f"input does not exist: {loc.shown}")
    disc.drop_non_data()
    shards = sorted(disc.shards, key=lambda s: (s.relpath, s.path))
    skipped = sorted(disc.skipped.values(), key=lambda s: (s.path, s.reason))
    return shards, skipped
