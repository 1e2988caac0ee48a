"""Golden outputs: a refactor must not change what a scan writes.

Three runs through the command line (the CLI verbs are a contract): the demo; a scan of the
demo's dataset with clean and flagged shards in every format; and a scan of ../shared/data
with an index that stores texts, a style profile and clean shards. Each output file is
reduced to a digest after the parts that differ from run to run are masked (the temporary
directory's path, where ../shared lies, timestamps, durations). JSON files are compared as
data, their floats to 6 significant digits; other text files (Markdown, HTML, JSON Lines,
Arrow) byte for byte; Parquet files by their schema with its metadata, codec, row groups and
rows, not their bytes, because pyarrow writes its own version into every file.

When an issue changes an output on purpose, regenerate with
``CONTAMSCAN_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py`` and say so in the commit.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import SHARED

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("CONTAMSCAN_UPDATE_GOLDEN") == "1"
_TIME = re.compile(rb"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")
# report.json fields that measure the machine, not the data
_VOLATILE = re.compile(rb'"(seconds|build_seconds)": [0-9.e-]+')


def run(*args: str, cwd: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "contamscan", *args], cwd=cwd, capture_output=True, text=True,
                       env={**os.environ, "NO_COLOR": "1"})
    assert r.returncode in (0, 3), f"contamscan {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"


def masked(data: bytes, root: Path) -> bytes:
    # where the checkout and ../shared lie differs from machine to machine (CI clones elsewhere)
    places = {str(root): b"<ROOT>", str(root.resolve()): b"<ROOT>",
              str(SHARED): b"<SHARED>", str(SHARED.resolve()): b"<SHARED>"}
    for p in sorted(places, key=len, reverse=True):
        data = data.replace(p.encode(), places[p])
    return _VOLATILE.sub(rb'"\1": 0', _TIME.sub(b"<TIME>", data))


def parquet_digest(path: Path) -> str:
    f = pq.ParquetFile(path)
    md = f.metadata
    groups = [(md.row_group(g).num_rows, str(md.row_group(g).column(0).compression) if md.num_columns else "")
              for g in range(md.num_row_groups)]
    schema = f.schema_arrow
    meta = {k.decode(): v.decode("utf-8", "replace") for k, v in (schema.metadata or {}).items()}
    rows = f.read().to_pylist()
    blob = json.dumps([str(schema.remove_metadata()), meta, groups, rows], sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()


def _rounded(value):
    """JSON with every float to 6 significant digits: the last bits of a sum or an EM fit
    differ between releases of numpy and pyarrow (a fresh install takes the newest), which is
    not what this test is about."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def digests(out: Path, root: Path) -> dict[str, str]:
    """Digest of every file under ``out`` but the scan's own state directory."""
    found = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if not p.is_file() or rel.startswith(".contamscan/"):
            continue
        if p.suffix == ".parquet":
            found[rel] = parquet_digest(p)
        elif p.suffix == ".json":
            canonical = json.dumps(_rounded(json.loads(masked(p.read_bytes(), root))), sort_keys=True)
            found[rel] = hashlib.sha256(canonical.encode()).hexdigest()
        else:
            found[rel] = hashlib.sha256(masked(p.read_bytes(), root)).hexdigest()
    return found


def check(name: str, found: dict[str, str]) -> None:
    path = GOLDEN / f"{name}.json"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
        return
    want = json.loads(path.read_text())
    assert sorted(found) == sorted(want), "the set of output files changed"
    changed = [f for f in want if found[f] != want[f]]
    assert not changed, f"outputs changed: {changed}"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("golden-demo")
    run("demo", "ws", cwd=root)
    return root


def test_demo_outputs_unchanged(demo):
    check("demo", digests(demo / "ws" / "scan", demo))


def test_clean_and_flagged_shards_of_every_format_unchanged(demo):
    ws = demo / "ws"
    run("scan", str(ws / "dataset"), "--index", str(ws / "index"), "-o", str(demo / "out"), "--workers", "1",
        "--write-clean", str(demo / "clean"), "--write-flagged", str(demo / "flagged"), cwd=demo)
    found = {f"out/{k}": v for k, v in digests(demo / "out", demo).items()}
    found |= {f"clean/{k}": v for k, v in digests(demo / "clean", demo).items()}
    found |= {f"flagged/{k}": v for k, v in digests(demo / "flagged", demo).items()}
    check("demo-split", found)


def test_shared_data_scan_unchanged(tmp_path):
    if not (SHARED / "ai" / "slop_score.parquet").exists():
        pytest.skip(f"real data not found at {SHARED}")
    run("index", "build", str(SHARED / "ai"), "-o", "index", "--store-text", cwd=tmp_path)
    run("profile", "build", "--human", str(SHARED / "human"), "--ai", str(SHARED / "ai"), "-o", "profile",
        cwd=tmp_path)
    run("scan", str(SHARED), "--index", "index", "--profile", "profile", "-o", "out", "--workers", "1",
        "--write-clean", "clean", cwd=tmp_path)
    found = {f"out/{k}": v for k, v in digests(tmp_path / "out", tmp_path).items()}
    found |= {f"clean/{k}": v for k, v in digests(tmp_path / "clean", tmp_path).items()}
    check("shared", found)
