"""report.html: self-contained, escaped, and working in a real browser (Debian's chromium,
headless): no console errors, the charts and the evidence render, the table sorts. The
screenshot is saved under test-artifacts/ for people to look at."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from contamscan.config import ScanOptions
from contamscan.report.evidence import NOT_STORED
from contamscan.index import build_index
from contamscan.report.render.html import MAX_EVIDENCE, marked, render_html
from contamscan import scan

import _reportdata as rd
from conftest import REPO

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def scanned(tmp_path_factory, ai_table):
    root = tmp_path_factory.mktemp("html")
    data = rd.build(root, ai_table)
    refs = rd.refs_file(root, ai_table)
    stored = build_index([str(refs)], root / "index", store_text=True)
    plain = build_index([str(refs)], root / "index-plain")
    scan([str(data)], stored, root / "out", ScanOptions(workers=1))
    scan([str(data)], plain, root / "out-plain", ScanOptions(workers=1))
    return root


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def run_chromium(url: str, tmp_path: Path, *extra: str) -> tuple[str, list[str]]:
    """Load ``url`` in headless chromium; returns (stdout, the page's console messages)."""
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium is not installed (.ci/run installs it: apt-get install -y chromium)")
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    p = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                        *extra, url], capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-2000:]
    console = [line for line in p.stderr.splitlines() if ":CONSOLE" in line]
    return p.stdout, console


def test_console_errors_are_detected(tmp_path):
    """The check below is only worth something if a broken page fails it."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><p>x</p><script>undefinedFunction();</script></body></html>")
    _, console = run_chromium(page.as_uri(), tmp_path, "--dump-dom")
    assert any("undefinedFunction" in line for line in console), console


def test_report_in_a_real_browser(scanned, tmp_path):
    out = scanned / "out"
    report = json.loads((out / "report.json").read_text())
    url = (out / "report.html").as_uri()
    dom, console = run_chromium(url + "#sort=rate-desc", tmp_path, "--dump-dom")
    assert console == []  # no errors, no CSP violations, no failed loads: nothing logged at all
    assert 'data-ready="1"' in dom.split(">", 2)[1]  # the page's script ran to its end
    # the charts: by model, rate per shard, similarity histogram; each with its marks
    charts = re.findall(r'<svg class="chart".*?</svg>', dom, flags=re.S)
    assert len(charts) == 3
    models, rates, histogram = charts
    assert models.count("<rect") == 2 * len(report["totals"]["by_label"])
    assert rates.count("<circle") == len(report["shards"])
    assert histogram.count('class="hbar') == 10
    # the table, sorted by the script from the URL: rate, descending
    body = dom.split('<table id="shards-table">')[1].split("<tbody>")[1].split("</tbody>")[0]
    rates_in_dom = [float(v) for v in re.findall(r'<td class="num" data-v="([^"]+)"><span class="bar">', body)]
    assert rates_in_dom == sorted((s["contamination_rate"] for s in report["shards"]), reverse=True)
    assert 'aria-sort="descending"' in dom
    # the evidence: a card per top match, shared text marked on both sides
    evidence = dom.split('<section id="evidence">')[1].split("</section>")[0]
    cards = evidence.split('<article class="ev"')[1:]
    assert len(cards) == min(pq.read_table(out / "evidence.parquet").num_rows, MAX_EVIDENCE)
    for card in cards:
        doc, ref = card.split('<div class="side">')[1:3]
        assert "<mark" in doc and "<mark" in ref
    # untrusted text stays text: the only script element is the page's own
    assert dom.count("<script") == 1 and "<img" not in dom and "<b onmouseover" not in dom
    assert "&lt;script&gt;alert('pwned')&lt;/script&gt;" in dom

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    _, console = run_chromium(url, tmp_path, f"--screenshot={shot}", "--window-size=1280,2400")
    assert console == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


def test_html_is_self_contained_and_escaped(scanned):
    html = (scanned / "out" / "report.html").read_text()
    # nothing to fetch: no URL but the SVG namespace, a CSP that allows no loads and only this script
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) == {"http://www.w3.org/2000/svg"}
    assert not re.search(r"<(link|img|iframe|object|embed)\b", html)
    assert "default-src 'none'" in html and "script-src 'sha256-" in html
    # the hostile document, id and shard name are text, never markup
    assert html.count("<script") == 1
    assert "<script>alert" not in html and "<b onmouseover" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in html  # the document id and its text
    assert "&lt;b onmouseover=&quot;alert(2)&quot;&gt;" in html
    assert "c/q&quot;&#x27;&lt;i&gt;&amp;amp;.jsonl" in html and rd.HOSTILE_SHARD not in html


def test_marked_escapes_and_nests_marks_and_span():
    text = "a <b>&c</b> d"
    out = marked(text, [{"start": 2, "end": 11}], span=(0, 5))
    assert out == '<span class="span">a </span><mark class=span>&lt;b&gt;</mark><mark>&amp;c&lt;/b&gt;</mark> d'
    assert marked("<x>", []) == "&lt;x&gt;"


def test_reference_text_not_stored_is_said(scanned):
    out = scanned / "out-plain"
    html = (out / "report.html").read_text()
    assert "Reference text is not stored" in html and "--store-text" in html
    ev = pq.read_table(out / "evidence.parquet").to_pylist()
    assert ev and all(r["ref_excerpt"] is None and r["note"] == NOT_STORED and r["doc_excerpt"] for r in ev)
    # the document side and its matched span are still shown
    assert html.count('class="side missing"') == len(ev) and 'class="span"' in html


def test_render_without_matches_or_evidence(scanned):
    """An output directory of an older scan (no evidence.parquet) still renders, and says why."""
    report = json.loads((scanned / "out" / "report.json").read_text())
    html = render_html(report, None, None)
    assert "No evidence.parquet" in html and html.count("<svg") == 3
