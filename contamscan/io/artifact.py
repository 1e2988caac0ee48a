"""Manifest directories: the on-disk shape shared by indexes and style profiles.

An artifact is a directory of files and a ``manifest.json`` that names its format and
version and lists every file with its size and xxh3-128 checksum. The manifest is written
last (and removed first when a directory is rebuilt), so a directory without one is never
taken for an artifact. Opening checks the format, the version and every listed file's size,
and the checksums of the files up to the kind's ``lazy_above`` bytes (all of a profile's;
an index's large arrays are checksummed only when asked, ``verify="all"``: reading 20 GB
to open an index would cost more than the scan it serves);
a remote artifact is opened from its local copy in the cache (:mod:`contamscan.io.cache`),
which the workers of a machine share.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import xxhash

from ..errors import ContamscanError
from . import cache
from .location import Location


@dataclass(frozen=True)
class Kind:
    """What sort of artifact a directory holds, and how to talk about it."""

    format: str  # the manifest's "format"
    version: int
    version_key: str  # the manifest's key for the version
    cache: str  # cache folder of remote copies: "indexes", "profiles"
    what: str  # "a contamscan index"
    error: type[ContamscanError]
    build_hint: str  # how to make one: "build one with `contamscan index build`"
    noun: str  # "index"
    reads: tuple[int, ...] = ()  # older versions this contamscan still opens
    lazy_above: int | None = None  # files larger than this are checksummed only with verify="all"


@dataclass(frozen=True)
class Opened:
    """An artifact directory on this machine (the directory itself, or a remote one's copy)."""

    local: Path
    manifest: dict
    location: Location  # where it was opened from
    kind: Kind

    def file(self, name: str) -> Path:
        """The local path of the listed file ``name``: a loader opens no file its manifest does
        not list (and so checks)."""
        if name not in self.manifest["files"]:
            raise self.kind.error(f"{self.location.shown}: {name} is not listed in its manifest; rebuild the "
                                  f"{self.kind.noun}")
        return self.local / name


MANIFEST_DIGEST = "manifest_xxh3_128"


def manifest_self_digest(manifest: dict) -> str:
    """xxh3-128 of a manifest without its own digest, as canonical JSON (sorted keys, no
    spaces): independent of how the file is laid out."""
    body = {k: v for k, v in manifest.items() if k != MANIFEST_DIGEST}
    return xxhash.xxh3_128_hexdigest(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                                ensure_ascii=False).encode())


def file_digest(path) -> str:
    """xxh3-128 of a file, read in 4 MB pieces."""
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _check_kind(manifest: dict, kind: Kind, shown: str) -> None:
    if manifest.get("format") != kind.format:
        raise kind.error(f"{shown}: not {kind.what} (format {manifest.get('format')!r})")
    if manifest.get(kind.version_key) != kind.version and manifest.get(kind.version_key) not in kind.reads:
        raise kind.error(f"{shown}: {kind.what} of format version {manifest.get(kind.version_key)} is not supported "
                         f"by this contamscan (reads version {kind.version}); rebuild the {kind.noun}")


def open_dir(location, kind: Kind, verify: bool | str = True) -> Opened:
    """Open the artifact at ``location``: its manifest read and its kind checked, every listed
    file present with its size and (with ``verify``) its checksum: True checks the files up to
    ``kind.lazy_above`` bytes, "all" every file. Raises ``kind.error``."""
    loc = Location.of(location)
    if not loc.remote:
        return Opened(_open_local(Path(loc.path), kind, verify, loc.shown), _read_manifest(Path(loc.path), kind,
                                                                                          loc.shown), loc, kind)
    local, fetched = cache.fetch_dir(loc.path, kind.cache, error=kind.error, what=kind.what,
                                     check=lambda m: _check_manifest(m, kind, loc.shown))
    try:
        _open_local(local, kind, verify and not fetched, loc.shown)
    except ContamscanError:
        if fetched:
            raise
        shutil.rmtree(local, ignore_errors=True)  # the local copy was damaged: fetch it again
        return open_dir(loc, kind, verify)
    return Opened(local, _read_manifest(local, kind, loc.shown), loc, kind)


def _read_manifest(path: Path, kind: Kind, shown: str) -> dict:
    mpath = path / "manifest.json"
    if not mpath.is_file():
        raise kind.error(f"{shown} is not {kind.what} (no manifest.json); {kind.build_hint}")
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, ValueError) as e:
        raise kind.error(f"{shown}/manifest.json: unreadable manifest ({e})") from e
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise kind.error(f"{shown}/manifest.json: unreadable manifest (no file list); rebuild the {kind.noun}")
    _check_manifest(manifest, kind, shown)
    return manifest


def _plain_name(name) -> bool:
    """A file name inside the directory: no separator, no parent, not hidden, not the manifest."""
    return isinstance(name, str) and name not in ("", ".", "..", "manifest.json") and "/" not in name \
        and "\\" not in name and "\0" not in name and not name.startswith(".")


def _check_manifest(manifest: dict, kind: Kind, shown: str) -> None:
    """The manifest's own digest (when it has one: older artifacts do not, and open when the
    rest checks), its kind, and its file list: plain names, each with a size and a checksum.
    Nothing outside the directory is touched or named."""
    if MANIFEST_DIGEST in manifest and manifest[MANIFEST_DIGEST] != manifest_self_digest(manifest):
        raise kind.error(f"{shown}/manifest.json: the manifest does not match its checksum (modified or "
                         f"corrupted); rebuild the {kind.noun}")
    _check_kind(manifest, kind, shown)
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise kind.error(f"{shown}/manifest.json: unreadable manifest (no file list); rebuild the {kind.noun}")
    for name, meta in files.items():
        if not _plain_name(name):
            raise kind.error(f"{shown}/manifest.json lists a file that is not a plain name inside the directory; "
                             f"rebuild the {kind.noun}")
        if not isinstance(meta, dict) or not isinstance(meta.get("bytes"), int) or isinstance(meta["bytes"], bool) \
                or not isinstance(meta.get("xxh3_128"), str):
            raise kind.error(f"{shown}/manifest.json: the entry of {name} has no size or checksum; rebuild the "
                             f"{kind.noun}")


def _checked(kind: Kind, verify: bool | str, size: int) -> bool:
    """Whether a file of ``size`` bytes is checksummed on open."""
    return verify == "all" or (bool(verify) and (kind.lazy_above is None or size <= kind.lazy_above))


def _open_local(path: Path, kind: Kind, verify: bool | str, shown: str) -> Path:
    manifest = _read_manifest(path, kind, shown)
    for name, meta in manifest["files"].items():
        f = path / name
        if not f.is_file():
            raise kind.error(f"{shown}: missing file {name}")
        if f.stat().st_size != meta["bytes"]:
            raise kind.error(f"{shown}: {name} has {f.stat().st_size} bytes, manifest says {meta['bytes']} "
                             "(truncated or modified)")
        if _checked(kind, verify, meta["bytes"]) and file_digest(f) != meta["xxh3_128"]:
            raise kind.error(f"{shown}: checksum mismatch for {name}: the file was modified or corrupted; rebuild the {kind.noun}")
    return path


def write_manifest(path: Path, manifest: dict, names, known: dict | None = None) -> dict:
    """Write ``manifest`` (plus ``files``: the size and checksum of each of ``names``) into the
    directory ``path``, atomically and last; ``known``: entries of files already listed and not
    rewritten (``index add``), kept as they are. Returns the manifest written."""
    files = dict(known or {})
    files.update({n: {"bytes": (path / n).stat().st_size, "xxh3_128": file_digest(path / n)} for n in names})
    manifest = {**manifest, "files": files}
    manifest[MANIFEST_DIGEST] = manifest_self_digest(manifest)
    Location.of(str(path / "manifest.json")).write_atomic(
        (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode())
    return manifest


@contextmanager
def building(location, kind: Kind, beside: bool = False):
    """A local directory to write the artifact of ``location`` in (its files, then
    :func:`write_manifest`); when the block ends it is in place:

    * a local directory is written in place, its old manifest removed first; with ``beside``
      (the output is one of the inputs, as in ``index add``), it is written next to it and
      swapped in when complete;
    * a remote one is written in a local build directory, uploaded (the manifest last, an old
      manifest deleted first, so a reader meanwhile finds no artifact rather than a mix of
      two) and kept as the URI's cache entry.
    """
    loc = Location.of(location)
    if loc.remote:
        loc.check_writable()
        local = cache.new_build_dir(kind.cache)
        try:
            yield local
            files = json.loads((local / "manifest.json").read_text())["files"]
            stale = [n for n in _previous_files(loc, kind) if n not in files]
            cache.upload_dir(local, loc.path, list(files), stale=stale)
            cache.adopt_dir(local, loc.path, kind.cache)
        finally:
            shutil.rmtree(local, ignore_errors=True)
        return
    final = Path(loc.path)
    target = final.with_name(f".{final.name}.building-{os.getpid()}") if beside else final
    target.mkdir(parents=True, exist_ok=True)
    (target / "manifest.json").unlink(missing_ok=True)
    try:
        yield target
    except BaseException:
        if beside:
            shutil.rmtree(target, ignore_errors=True)
        raise
    if beside:  # swap the complete artifact in
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(target, final)
        shutil.rmtree(old, ignore_errors=True)


def _previous_files(loc: Location, kind: Kind) -> list[str]:
    """The files the artifact at a remote ``loc`` lists now (none if there is none)."""
    try:
        return list(json.loads(loc.join("manifest.json").read_bytes()).get("files", {}))
    except (ContamscanError, ValueError, AttributeError):
        return []


def manifest_digest(location) -> str:
    """xxh3-128 of an artifact's manifest: it changes whenever any of its files does."""
    return xxhash.xxh3_128_hexdigest(Location.of(location).join("manifest.json").read_bytes())
