"""A whole scan, as a short sequence of named steps: open the index and the profile, find the
shards and check them, lock the output directory, run the units of work (resuming finished
ones), build the report and write it."""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from ..config import ScanOptions
from ..discover import discover
from ..errors import ContamscanError, FieldTypeError, ShardReadError
from ..formats import check_fields
from ..index import ReferenceIndex, open_index
from ..io import Location, OutputDir
from ..model import MATCH_SCHEMA, Fields, Shard, ShardResult, empty
from ..report.build import add_ai_share, build_report, sampling_note
from ..report.evidence import evidence_table
from ..report.write import FINAL_OUTPUTS, REPORT, ScanReport, write_outputs
from ..style.estimate import StyleTally
from ..style.profile import open_cached
from ..version import __version__
from . import annotations
from .checkpoint import Checkpoints, OutputLock, run_fingerprint
from .executors import executor_for
from .matcher import check_expectations
from .shard import loud_failure, merge_pieces, plan_units


def scan(dataset, index, out=None, options: ScanOptions = ScanOptions(), progress=None, resume: bool = False,
         events=None) -> ScanReport:
    """Scan files, directories or globs against an index and write the report to ``out``.

    With ``out``, the scan holds a lock on it (a second scan into it fails at once), saves
    each finished shard, and writes the report at the end; ``resume=True`` continues an
    interrupted scan of the same inputs, index and options, and the report equals an
    uninterrupted run's. Failed shards are listed in the report rather than raised.

    Args:
        dataset: files, directories or glob patterns (paths or URIs) of shards.
        index: an opened :class:`~contamscan.index.ReferenceIndex` or its path/URI.
        out: the output directory (a path or a URI); None: nothing is written.
        options: everything else (:class:`~contamscan.config.ScanOptions`).
        progress: called as ``progress(records, bytes)`` as work advances
            (``progress.total_bytes`` is set first when it has that attribute).
        resume: continue an interrupted scan into ``out``.
        events: called as ``events(name, fields)`` at "scan_started", each
            "shard_finished" and "scan_finished".

    Returns:
        A :class:`~contamscan.report.write.ScanReport` (``report.data`` is report.json).

    Raises:
        ContamscanError: bad arguments, a missing text field, a bad or incompatible index,
            no shards, an output directory in use.

    Example:
        >>> report = scan(["crawl/"], "refs.index", "scan-out", ScanOptions(workers=4))  # doctest: +SKIP
        >>> report.contamination_rate, report.totals["ci95"]  # doctest: +SKIP
    """
    started = _now()
    emit = events or (lambda name, fields: None)
    check_output_paths(dataset, out, options)
    index = _open_index(index, options)
    _open_style(options)
    output = OutputDir(out) if out is not None else None
    for root in (options.write_clean, options.write_flagged, options.write_annotations):
        if root is not None:
            Location.of(root).check_writable()
    shards, skipped = _find_shards(dataset, options, output)
    lock = OutputLock(output.work, output.shown) if output is not None else None
    try:
        units = plan_units(shards, options)
        checkpoints = _checkpoints(output, units, index, options, resume)
        done = dict(checkpoints.done) if checkpoints else {}
        for root in (options.write_clean, options.write_flagged, options.write_annotations):
            if root is not None:
                Location.of(root).remove_temporaries()
        if options.write_annotations is not None and not resume:  # parts of pieces only a resumed scan may reuse
            annotations.clear_parts(options.write_annotations)
        todo = [n for n in range(len(units)) if n not in done]
        emit("scan_started", {"shards": len(shards), "pieces": len(units), "resumed_shards": len(done),
                              "bytes": sum(s.size for s in shards), "index": index.shown,
                              "out": output.shown if output else None})
        if progress is not None and hasattr(progress, "total_bytes"):
            progress.total_bytes = sum(units[n].size for n in todo)
        done.update(zip(todo, _run_units([units[n] for n in todo], todo, index, options, progress, checkpoints,
                                         emit)))
        results = _merge_pieces(units, done, options)
        if options.write_annotations is not None:
            _join_annotations(units, results, options)
        report = build_report(results, index_summary=index.summary(), started_at=started, finished_at=_now(),
                              skipped=skipped, top_k=options.top_matches, version=__version__,
                              match_rules=options.match_rules())
        if options.sampling() is not None:  # a quick look says so (the key is there only then)
            report["sampling"] = {**options.sampling(), "note": sampling_note(options.sampling())}
        if options.profile is not None:  # the style estimate beside the near-duplicate rate
            add_ai_share(report, results, open_cached(options.profile))
        if output is not None:
            _write(output, report, results, units, done, checkpoints)
    finally:
        if lock is not None:
            lock.release()
    t = report["totals"]
    emit("scan_finished", {"documents": t["documents"], "flagged_documents": t["flagged_documents"],
                           "contamination_rate": t["contamination_rate"], "ci95": t["ci95"],
                           "failed_shards": t["errors"]["failed_shards"]})
    return ScanReport(report, output.location.path if output is not None else None)


# --------------------------------------------------------------------------- the steps


def check_output_paths(dataset, out, options: ScanOptions) -> None:
    """Before any work: the scan's outputs never overlap each other or the data. `write_clean`
    and `write_flagged` are not, do not contain and are not inside the output directory (nor
    each other), nor a dataset root (a directory given, a glob's fixed prefix, a file). The output
    directory is not and does not contain a dataset root; inside one it is allowed (it is
    skipped, never read as data)."""
    inputs = [dataset] if isinstance(dataset, (str, os.PathLike)) else list(dataset)
    roots = []
    for raw in inputs:
        loc = Location.of(raw)
        if loc.path:
            roots.append(loc.glob_base() if loc.has_magic() and not loc.exists() else loc)

    def overlap(a: Location, b: Location) -> bool:
        return a.within(b) or b.within(a)

    named = [(name, Location.of(p)) for name, p in (("write_clean", options.write_clean),
                                                    ("write_flagged", options.write_flagged),
                                                    ("write_annotations", options.write_annotations)) if p is not None]
    if out is not None:
        o = Location.of(out)
        for name, loc in named:
            if overlap(loc, o):
                raise ContamscanError(f"`{name}` {loc.shown} and the output directory {o.shown} overlap (one is, "
                                      "or is inside, the other); give separate directories")
        for root in roots:
            if root.within(o):
                raise ContamscanError(f"the output directory {o.shown} is or contains the dataset path "
                                      f"{root.shown}; write the outputs outside the data")
    for i, (a, la) in enumerate(named):
        for b, lb in named[i + 1:]:
            if overlap(la, lb):
                raise ContamscanError(f"`{a}` and `{b}` must be different directories, neither inside the other")
    for name, loc in named:
        for root in roots:
            if overlap(loc, root):
                raise ContamscanError(f"`{name}` {loc.shown} and the dataset path {root.shown} overlap (one is, or "
                                      "is inside, the other); write the outputs outside the data")


def _open_index(index, options: ScanOptions) -> ReferenceIndex:
    """The index, opened, and checked against what the scan asks of it."""
    if not isinstance(index, ReferenceIndex):
        index = open_index(index)
    if options.verify == "exact" and index.texts is None:
        raise ContamscanError(f"`verify` 'exact' compares texts, and the index {index.shown} does not store them; "
                              "rebuild it with `store_text`")
    check_expectations(index, options)
    return index


def _open_style(options: ScanOptions) -> None:
    """Open the profile before any work (a bad profile fails the scan at once) and compile its
    kernels in this process, so forked workers inherit both."""
    if options.profile is not None:
        StyleTally(open_cached(options.profile)).add(["warm up the style kernels " * 20])


def _find_shards(dataset, options: ScanOptions, output: OutputDir | None) -> tuple[list[Shard], list]:
    """The shards of the dataset (the scan's own outputs never among them), checked: clean and
    flagged outputs must not collide, and every shard must have the text field."""
    inputs = [dataset] if isinstance(dataset, (str, os.PathLike)) else list(dataset)
    outputs = [p for p in (output.location if output else None, Location.of(str(output.work)) if output else None,
                           options.write_clean, options.write_flagged, options.write_annotations) if p is not None]
    shards, skipped = discover(inputs, exclude=outputs, exclude_globs=options.exclude)
    if not shards:
        raise ContamscanError("no shards to scan (expected .parquet, .jsonl, .json, .jsonl.gz, .jsonl.zst, .arrow)")
    if options.write_clean or options.write_flagged:
        _check_output_paths(shards, options)
    if options.write_annotations:
        annotations.check_collisions(shards, options.write_annotations, options.annotations_format)
    _check_text_field(shards, options)
    return shards, skipped


def _check_output_paths(shards, options: ScanOptions) -> None:
    """Clean/flagged outputs mirror the inputs' relative paths: they must not collide."""
    if options.write_clean and options.write_flagged and \
            Location.of(options.write_clean).key == Location.of(options.write_flagged).key:
        raise ContamscanError("`write_clean` and `write_flagged` must be different directories")
    seen = {}
    for s in shards:
        if s.relpath in seen:
            raise ContamscanError(f"{Location.of(seen[s.relpath]).shown} and {Location.of(s.path).shown} would both "
                                  f"be written as {s.relpath}; give their common parent directory instead of the files")
        seen[s.relpath] = s.path


def _check_text_field(shards, options: ScanOptions) -> None:
    """A missing text field fails before any work (a text field of the wrong type fails its
    shard, when it is read, as a shard without documents does). The checks run on 16 threads: a check of a
    remote shard costs round trips (a Parquet footer, the first lines of a JSON Lines file),
    and a dataset can have thousands of shards. The first missing field in shard order is
    raised; an unreadable shard is left for the scan to mark failed."""

    def check(s: Shard):
        try:
            check_fields(s, Fields(text=options.text_field))
        except (ShardReadError, FieldTypeError):  # the shard fails alone, with the reason (loud, not fatal)
            return None
        except ContamscanError as e:
            return e
        return None

    with ThreadPoolExecutor(16) as pool:
        errors = list(pool.map(check, shards))
    for e in errors:
        if e is not None:
            raise e


def _checkpoints(output: OutputDir | None, units, index, options: ScanOptions, resume: bool) -> Checkpoints | None:
    """A new scan removes the previous run's report (an old report next to a new, unfinished
    scan would be mistaken for its result) and starts its checkpoints; a resumed one loads them."""
    if output is None:
        return None
    output.remove(FINAL_OUTPUTS)
    checkpoints = Checkpoints(output.work, run_fingerprint(units, index, options, __version__), resume, output.shown)
    if resume:  # a finished shard whose bytes changed (same size and time) is scanned again
        checkpoints.drop_changed(units)
    return checkpoints


def _run_units(units, numbers, index, options: ScanOptions, progress, checkpoints, emit) -> list[ShardResult]:
    """Scan the units still to do; each finished one is saved before it is reported."""

    def finished(i: int, result: ShardResult) -> ShardResult:
        if checkpoints is not None:
            checkpoints.save(numbers[i], result)
        piece = units[i].row_groups
        emit("shard_finished", {"shard": result.shard, "status": result.status, "error": result.error,
                                "documents": result.documents, "flagged_documents": result.flagged_documents,
                                "bad_records": result.bad_records, "seconds": round(result.seconds, 3),
                                **({"row_groups": [piece[0], piece[-1]]} if piece else {})})
        # its matches are in its checkpoint now (and needed only there): memory stays
        # flat however many documents the dataset flags
        return dataclasses.replace(result, matches=empty(MATCH_SCHEMA))

    return executor_for(options).run(units, index, options, progress, finished)


def _merge_pieces(units, done: dict, options: ScanOptions) -> list[ShardResult]:
    """One result per shard, its pieces merged."""
    groups = []
    for n in range(len(units)):
        if n == 0 or units[n].path != units[n - 1].path:
            groups.append([])
        groups[-1].append(done[n])
    results = []
    for parts in groups:
        if len(parts) == 1:
            results.append(parts[0])
            continue
        r = merge_pieces(parts, options.top_matches)
        failure = loud_failure(r, options) if r.status == "ok" else None
        results.append(r if failure is None else ShardResult(shard=r.shard, status="failed", error=failure,
                                                             seconds=r.seconds))
    return results


def _join_annotations(units, results, options: ScanOptions) -> None:
    """Each shard scanned in pieces gets its annotation file from its pieces' parts (a failed
    shard none); a shard scanned whole wrote its own."""
    root, fmt = options.write_annotations, options.annotations_format
    status = {r.shard: r.status for r in results}
    pieces: dict[str, list] = {}
    for u in units:
        if u.row_groups:
            pieces.setdefault(u.path, []).append(u)
    for group in pieces.values():
        if status.get(group[0].relpath) == "ok":
            annotations.assemble(root, group, fmt)
        else:
            for p in group:
                try:
                    annotations.part(root, p, fmt).delete()
                except ContamscanError:
                    pass
            annotations.delete(root, group[0], fmt)


def _write(output: OutputDir, report: dict, results, units, done: dict, checkpoints: Checkpoints) -> None:
    """The final outputs, report.json last, then published (uploaded, for a URI)."""
    ok = {r.shard for r in results if r.status == "ok"}  # a shard with a failed piece has no matches
    matches = (checkpoints.matches(n) for n in range(len(units)) if done[n].shard in ok)  # one at a time
    write_outputs(output.work, report, matches, evidence_table(results))
    output.publish(FINAL_OUTPUTS, last=REPORT)
    checkpoints.clear()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
