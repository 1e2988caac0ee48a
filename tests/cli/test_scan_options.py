"""The scan command's new options: a config file with top-level keys, unknown keys spelled
as flags, --threshold renamed --expect-threshold, the default number of workers, a quick
look (--limit, --sample) marked as such everywhere, --json, the progress line."""

import json

import pyarrow.parquet as pq
import pytest
from _locations import run_cli
from click.testing import CliRunner
from conftest import ESSAYS

from contamscan.cli import EXIT_OK, cli
from contamscan.cli.progress import ProgressBar
from contamscan.config import ScanOptions, available_cpus
from contamscan.index import build_index


@pytest.fixture(scope="module")
def setup(tmp_path_factory, ai_table):
    root = tmp_path_factory.mktemp("cli-options")
    refs = ai_table.slice(0, 200).select(["id", "model", "text"])
    pq.write_table(refs, root / "refs.parquet")
    build_index([str(root / "refs.parquet")], root / "index")
    texts = refs["text"].to_pylist()
    human = pq.read_table(ESSAYS, columns=["text"])["text"].to_pylist()
    data = root / "data"
    data.mkdir()
    for k in range(2):  # 100 documents each, every 10th a copy
        rows = [{"id": f"{k}-{i}", "text": texts[k * 10 + i // 10] if i % 10 == 0 else human[k * 100 + i]}
                for i in range(100)]
        (data / f"part-{k}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root, data


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_a_config_file_with_top_level_keys(setup, tmp_path):
    root, data = setup
    config = tmp_path / "c.toml"
    # top-level keys, one of them `index` (a string: it once crashed looking for [index.build])
    config.write_text(f'index = "{root / "index"}"\noutput = "{tmp_path / "out"}"\nworkers = 1\n'
                      'fail-above = 0.5\nmax-bad-share = 0.02\n\n[profile]\nignored = "another command\'s table"\n')
    r = invoke("scan", data, "--config", config)
    assert r.exit_code == EXIT_OK, r.output
    assert json.loads((tmp_path / "out" / "report.json").read_text())["totals"]["documents"] == 200
    # the index build table of the same file is not read by scan, and scan's is not by index build
    both = tmp_path / "both.toml"
    both.write_text(f'[scan]\nindex = "{root / "index"}"\noutput = "{tmp_path / "out2"}"\n'
                    '[index.build]\nlabel-field = "model"\n')
    assert invoke("scan", data, "--config", both).exit_code == EXIT_OK


def test_unknown_config_keys_are_named_as_flags(setup, tmp_path):
    root, data = setup
    config = tmp_path / "c.toml"
    config.write_text('max_bad_shar = 0.1\n[weird]\nx = 1\n')
    r = invoke("scan", data, "--config", config)
    assert r.exit_code == 2
    message = " ".join(r.output.split())
    assert "unknown key(s) max-bad-shar, weird;" in message
    keys = message.split("the keys are the command's flags: ")[1]
    assert "fail-above" in keys and "max-bad-share" in keys and "expect-threshold" in keys
    for internal in ("fail_above", "index_path", "batch_bytes", "expect_threshold", "as_json", "out,"):
        assert internal not in keys
    assert "threshold," not in keys.replace("expect-threshold,", "")  # the deprecated flag is not offered


def test_threshold_is_expect_threshold_and_the_old_flag_warns(setup, tmp_path):
    root, data = setup
    new = run_cli("scan", data, "--index", root / "index", "-o", tmp_path / "a", "--expect-threshold", "0.5")
    assert new.returncode == EXIT_OK and "deprecated" not in new.stderr
    old = run_cli("scan", data, "--index", root / "index", "-o", tmp_path / "b", "--threshold", "0.5")
    assert old.returncode == EXIT_OK
    assert "warning: --threshold is deprecated, use --expect-threshold" in old.stderr
    wrong = run_cli("scan", data, "--index", root / "index", "-o", tmp_path / "c", "--threshold", "0.7")
    assert wrong.returncode == 1 and "was built with threshold 0.5, and this scan asks for 0.7" in wrong.stderr


def test_default_workers_count_the_cpus_this_process_may_use(tmp_path, monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5})
    monkeypatch.setattr("os.cpu_count", lambda: 64)
    assert available_cpus(str(tmp_path)) == 6  # no cpu.max: the affinity mask
    (tmp_path / "cpu.max").write_text("250000 100000\n")  # a quota of 2.5 CPUs
    assert available_cpus(str(tmp_path)) == 3
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert available_cpus(str(tmp_path)) == 6
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert available_cpus(str(tmp_path)) == 1
    monkeypatch.setattr("contamscan.config.available_cpus", lambda: 3)
    assert ScanOptions().n_workers == 3 and ScanOptions(workers=5).n_workers == 5


def test_limit_scans_the_first_documents_and_says_so(setup, tmp_path):
    root, data = setup
    r = run_cli("scan", data, "--index", root / "index", "-o", tmp_path / "out", "--limit", "25", "--workers", "1")
    assert r.returncode == EXIT_OK, r.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [s["documents"] for s in report["shards"]] == [25, 25]
    assert [s["flagged_documents"] for s in report["shards"]] == [3, 3]  # rows 0, 10, 20
    note = "quick look: at most the first 25 documents of each shard"
    assert report["sampling"]["limit"] == 25 and report["sampling"]["sample"] is None
    assert report["sampling"]["note"].startswith(note)
    assert note in (tmp_path / "out" / "report.md").read_text()
    assert note in (tmp_path / "out" / "report.html").read_text()
    assert note in r.stdout  # the terminal summary
    full = run_cli("scan", data, "--index", root / "index", "-o", tmp_path / "full", "--workers", "1")
    assert "sampling" not in json.loads((tmp_path / "full" / "report.json").read_text())
    assert "quick look" not in full.stdout


def test_sample_is_a_deterministic_share(setup, tmp_path):
    root, data = setup
    reports = []
    for name, workers in (("a", "1"), ("b", "2")):
        r = run_cli("scan", data, "--index", root / "index", "-o", tmp_path / name, "--sample", "0.3", "--workers",
                    workers)
        assert r.returncode == EXIT_OK, r.stderr
        reports.append(json.loads((tmp_path / name / "report.json").read_text()))
        assert "a 0.3 sample of each shard's records" in r.stdout
    a, b = reports
    assert [s["documents"] for s in a["shards"]] == [s["documents"] for s in b["shards"]]
    assert pq.read_table(tmp_path / "a" / "matches.parquet")["row"].to_pylist() == \
        pq.read_table(tmp_path / "b" / "matches.parquet")["row"].to_pylist()
    assert 40 <= a["totals"]["documents"] <= 80  # about 30% of 200
    assert a["sampling"] == {"limit": None, "sample": 0.3, "note": a["sampling"]["note"]}
    r = run_cli("scan", data, "--index", root / "index", "-o", tmp_path / "c", "--sample", "0.3",
                "--write-clean", tmp_path / "clean")
    assert r.returncode == 1 and "--limit and --sample scan part of each shard" in r.stderr


def test_json_prints_the_summary_on_stdout(setup, tmp_path):
    root, data = setup
    r = run_cli("scan", data, "--index", root / "index", "-o", tmp_path / "out", "--json", "--workers", "1")
    assert r.returncode == EXIT_OK, r.stderr
    summary = json.loads(r.stdout)  # only JSON: no table
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert summary["totals"]["documents"] == report["totals"]["documents"] == 200
    assert summary["totals"]["flagged_documents"] == 20 and summary["totals"]["failed_shards"] == 0
    assert [(s["shard"], s["status"], s["documents"], s["flagged_documents"]) for s in summary["shards"]] == \
        [("part-0.jsonl", "ok", 100, 10), ("part-1.jsonl", "ok", 100, 10)]
    assert summary["by_label"] == report["totals"]["by_label"] and sum(summary["by_label"].values()) == 20


def test_progress_line_has_shards_documents_rate_and_eta(monkeypatch):
    bar = ProgressBar("scanning")
    bar.t0 -= 10  # ten seconds in
    bar.total_bytes, bar.shards_total = 400_000_000, 8
    bar(5_000, 100_000_000)
    bar.shard_finished()
    bar.shard_finished()
    info = bar.info()
    assert info.startswith("2/8 shards  5,000 docs  10.0 MB/s  ETA 0:00:")
    eta = int(info.rsplit(":", 1)[1])
    assert 29 <= eta <= 30  # 300 MB left at 10 MB/s
    bar.close()
