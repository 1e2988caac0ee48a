"""What a running command shows on stderr: a progress bar on a terminal, and events (as JSON
lines with ``--log-format json``)."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn


class ProgressBar:
    """On a terminal (stderr): shards done of all, documents, MB/s and the time left (from the
    bytes still to read at the rate so far); silent when stderr is not one."""

    def __init__(self, label: str):
        self.label, self.total_bytes = label, None
        self.docs = self.bytes = 0
        self.shards_done, self.shards_total = 0, None
        self.t0 = time.perf_counter()
        self._bar = None
        if sys.stderr.isatty():
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                                 TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self._task = self._bar.add_task(label, total=None, info="")
            self._bar.start()

    def __call__(self, docs: int, nbytes: int) -> None:
        self.docs += docs
        self.bytes += nbytes
        self._show()

    def shard_finished(self) -> None:
        """One more shard (or piece) done."""
        self.shards_done += 1
        self._show()

    def info(self) -> str:
        """The line shown beside the bar."""
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        rate = self.bytes / elapsed
        parts = []
        if self.shards_total is not None:
            parts.append(f"{self.shards_done:,}/{self.shards_total:,} shards")
        parts.append(f"{self.docs:,} docs")
        parts.append(f"{rate / 1e6:,.1f} MB/s")
        if self.total_bytes and rate > 0 and self.bytes:
            left = max(0, self.total_bytes - self.bytes) / rate
            parts.append(f"ETA {int(left // 3600):d}:{int(left % 3600 // 60):02d}:{int(left % 60):02d}")
        return "  ".join(parts)

    def _show(self) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=self.bytes, total=self.total_bytes, info=self.info())

    def batch(self, b) -> None:
        """Count a Batch that was read (its records, good and bad, and its bytes on disk)."""
        self(b.n_records, b.raw_bytes)

    @property
    def rate(self) -> float:
        """Bytes per second so far."""
        return self.bytes / max(time.perf_counter() - self.t0, 1e-9)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def log(ctx: click.Context, event: str, fields: dict, text: str | None) -> None:
    """One event on stderr: a JSON line with --log-format json, else ``text`` (if any)."""
    if ctx.find_root().params.get("log_format") == "json":
        record = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "event": event, **fields}
        click.echo(json.dumps(record, ensure_ascii=False, default=str), err=True)
    elif text is not None:
        click.echo(text, err=True)
