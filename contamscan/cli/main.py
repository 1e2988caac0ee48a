"""The command line: click only. Each command parses its options, calls the Python API and
renders the result; one handler turns every :class:`~contamscan.errors.ContamscanError` into
a message (options spelled as flags) and the exit status the error carries.

Exit status: 0 success; 1 error (bad arguments, bad input, bad index); 2 usage error;
3 the scan finished but some shards (or inputs) failed; 4 the contamination rate is above
``--fail-above``; 5 the scan read no document at all; 130 interrupted (Ctrl-C, SIGINT);
143 stopped by SIGTERM. SIGTERM stops a command as Ctrl-C does (:class:`~contamscan.errors.Interrupted`).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

import click

from ..errors import ContamscanError, FailedShardsError, GateError, Interrupted
from ..model import pyarrow_without_pandas
from ..version import __version__
from .commands.demo import demo_cmd
from .commands.index import index_group
from .commands.profile import profile_group
from .commands.query import lookup_cmd, matches_cmd
from .commands.report import report_cmd
from .commands.scan import scan_cmd
from .options import spelled
from .progress import log

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, ContamscanError.exit_code, 2
EXIT_FAILED_SHARDS, EXIT_GATE = FailedShardsError.exit_code, GateError.exit_code


class Cli(click.Group):
    """The root group: errors of any command end here, as one message and their exit status."""

    def invoke(self, ctx: click.Context):
        try:
            with stop_signals():
                return super().invoke(ctx)
        except ContamscanError as e:
            if ctx.params.get("debug"):
                raise
            message = spelled(str(e))
            fields = {k: spelled(v) if k == "message" else v for k, v in e.fields().items()}
            log(ctx, e.event, fields, message if isinstance(e, GateError) else f"error: {message}")
            ctx.exit(e.exit_code)
        except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: one line, 128 + the signal
            if ctx.params.get("debug"):
                raise
            signum = e.signum if isinstance(e, Interrupted) else signal.SIGINT
            name = signal.Signals(signum).name
            message = e.message if isinstance(e, Interrupted) else ""
            log(ctx, "interrupted", {"signal": name, "message": message},
                f"interrupted ({name})" + (f": {message}" if message else ""))
            ctx.exit(128 + signum)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


@contextmanager
def stop_signals():
    """While a command runs, SIGTERM stops it as Ctrl-C does: both raise
    :class:`~contamscan.errors.Interrupted` in the main thread (elsewhere, nothing changes).
    The previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise_interrupted) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="contamscan")
@click.option("--debug", is_flag=True, help="Show the full traceback of errors.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: events (scan started, each shard finished, scan finished, errors) as JSON lines on stderr.")
def cli(debug, log_format):
    """Find near-copies of known AI model outputs in training data.

    Build an index from reference texts (outputs of named models), then scan a dataset of
    Parquet / JSON Lines / Arrow shards against it. Exit status: 0 ok, 1 error, 2 usage,
    3 some shards or inputs failed, 4 rate above --fail-above, 5 no document read,
    130 interrupted (Ctrl-C), 143 stopped by SIGTERM (as Ctrl-C: finished shards kept for --resume).
    """


for _command in (index_group, scan_cmd, report_cmd, matches_cmd, lookup_cmd, demo_cmd, profile_group):
    cli.add_command(_command)


def main():
    pyarrow_without_pandas()
    cli(prog_name="contamscan")
