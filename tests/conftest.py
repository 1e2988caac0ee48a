import os
from pathlib import Path

# a compiled kernel called off its signature is a bug here, not a JIT fallback (contamscan.native);
# set before contamscan is imported, and inherited by the workers the tests start
os.environ.setdefault("CONTAMSCAN_KERNELS_STRICT", "1")

import _locations  # noqa: E402
import pyarrow.parquet as pq
import pytest

from contamscan.index import build_index

# the repository, and the shared test data beside it (../shared/data): never an absolute path,
# CI runs in a fresh clone elsewhere
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
AI = SHARED / "ai" / "slop_score.parquet"
HUMAN = sorted((SHARED / "human").glob("*.parquet"))
ESSAYS = SHARED / "human" / "essays.parquet"


@pytest.fixture(scope="session")
def ai_table():
    if not AI.exists():
        pytest.skip(f"real data not found at {AI}")
    return pq.read_table(AI)


@pytest.fixture(scope="session")
def ai_texts(ai_table):
    """A spread of real model outputs (every 20th row: all models, both prompt kinds)."""
    return ai_table["text"].to_pylist()[::20]


# ------------------------------------------------------------------------------- locations
# (see _locations.py): the I/O tests run once per kind of root


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server on 127.0.0.1 for the tests of one module (the environment points
    every AWS client at it, with dummy credentials, while the module runs)."""
    yield from _locations.serve_s3(tmp_path_factory.mktemp("s3env"))


@pytest.fixture(params=_locations.KINDS)
def location(request, tmp_path_factory) -> _locations.Root:
    """An empty directory of each kind in turn: a local path, the same as a file:// URI (a
    directory name with a space, so that the URI is percent-encoded), an S3 prefix."""
    if request.param == "s3":
        server = request.getfixturevalue("s3")
        return _locations.S3Root(server, server.fresh_prefix())
    return _locations.LocalRoot(tmp_path_factory.mktemp(f"{request.param} root"), as_uri=request.param == "file")


@pytest.fixture(scope="session")
def io_data(tmp_path_factory, ai_table) -> Path:
    """The I/O tests' references and dataset on disk (_locations.write_dataset)."""
    return _locations.write_dataset(tmp_path_factory.mktemp("io-data"), ai_table, HUMAN)


@pytest.fixture(scope="session")
def local_scan(io_data, tmp_path_factory) -> Path:
    """What every location must give: the index and the scan (with clean shards) of
    ``io_data`` from the files on disk, by the command line."""
    out = tmp_path_factory.mktemp("local-scan")
    build_index([str(io_data / "refs")], out / "refs.index")
    r = _locations.run_cli("scan", io_data / "data", "--index", out / "refs.index", "-o", out / "run",
                           "--write-clean", out / "clean", "--workers", "2")
    assert r.returncode == 0, r.stderr
    return out
