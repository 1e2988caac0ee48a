"""The command line's options are generated from the config dataclasses
(contamscan.config.option): every field with ``cli=True`` is a flag of its command, with its
help and its default (in the flag's unit), and what click parses from the flags becomes the
dataclass (contamscan.cli.options.dataclass_from). Library errors name options as Python
spells them (`text_field`); the command line shows its flags instead (--text-field)."""

from __future__ import annotations

import dataclasses
import re

import pytest
from click.testing import CliRunner

import contamscan.cli.commands.index as index_command
import contamscan.cli.commands.profile as profile_command
import contamscan.cli.commands.scan as scan_command
from contamscan.cli import EXIT_ERROR, cli
from contamscan.cli.options import dataclass_from, spelled
from contamscan.config import BuildOptions, IndexParams, ProfileBuildOptions, ProfileParams, ScanOptions, flag_of
from contamscan.errors import ContamscanError

# each command and the dataclasses its options come from
COMMANDS = {
    ("scan",): (ScanOptions,),
    ("index", "build"): (BuildOptions, IndexParams),
    ("profile", "build"): (ProfileBuildOptions, ProfileParams),
}


def _command(path):
    command = cli
    for name in path:
        command = command.commands[name]
    return command


def _options_help(path) -> dict[str, str]:
    """The "Options:" entries of ``contamscan PATH --help``: {flag: the entry, whitespace collapsed}."""
    r = CliRunner().invoke(cli, [*path, "--help"], terminal_width=400, max_content_width=400)
    assert r.exit_code == 0, r.output
    entries: list[str] = []
    for line in r.output.split("Options:\n", 1)[1].splitlines():
        if line.startswith("  -"):
            entries.append(line)
        elif entries:
            entries[-1] += " " + line
    out = {}
    for entry in entries:
        text = " ".join(entry.split())
        names = entry.strip().split("  ")[0]  # the flags' column ends at the first wide gap
        for flag in re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", names.split(" [")[0]):
            out[flag] = text
    return out


def _cli_fields(cls):
    return [f for f in dataclasses.fields(cls) if f.metadata["cli"]]


def _shown_default(f):
    """The default as --help shows it: in the flag's unit (``--batch-mb``: 16)."""
    value = f.default
    if f.metadata["unit"] != 1:
        value = value / f.metadata["unit"]
        value = int(value) if value == int(value) else value
    return value


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_cli_field_is_a_flag_with_its_help(path):
    shown = _options_help(path)
    for cls in COMMANDS[path]:
        for f in dataclasses.fields(cls):
            flag = flag_of(f)
            if not f.metadata["cli"]:
                if not any(flag in [flag_of(g) for g in _cli_fields(c)] for c in COMMANDS[path]):
                    assert flag not in shown, f"{cls.__name__}.{f.name} is not for the command line: {flag}"
                continue
            assert flag in shown, f"{cls.__name__}.{f.name}: no {flag} in `contamscan {' '.join(path)} --help`"
            entry = shown[flag]
            assert " ".join(f.metadata["help"].split()) in entry, (f.name, entry)
            if f.metadata["choices"]:
                assert f"[{'|'.join(f.metadata['choices'])}]" in entry, (f.name, entry)
            if f.type != "bool" and not f.metadata["multiple"] and f.default is not None:
                assert f"[default: {_shown_default(f)}]" in entry, (f.name, entry)


def test_flags_are_unique_within_a_command():
    for path, classes in COMMANDS.items():
        flags = [flag_of(f) for cls in classes for f in _cli_fields(cls)]
        # a flag shared by two dataclasses of one command (--text-field, --strict) must mean one field
        names = {}
        for cls in classes:
            for f in _cli_fields(cls):
                assert names.setdefault(flag_of(f), f.name) == f.name, (path, flag_of(f))
        assert len(set(flags)) == len(names)


# ------------------------------------------------------------------------------- parsing


def _parsed(path, args, classes):
    """The dataclasses of ``classes`` from ``contamscan PATH ARGS`` as the command parses them
    (the command is not run), and the parameters left for the command itself."""
    ctx = _command(path).make_context(" ".join(path), list(args))
    params = dict(ctx.params)
    built = [dataclass_from(cls, params) for cls in classes]
    return built, params


SCAN = ["data/", "--index", "refs.index", "-o", "out"]


def test_defaults_are_the_dataclasses_defaults():
    (scan,), rest = _parsed(("scan",), SCAN, (ScanOptions,))
    assert scan == ScanOptions()
    assert set(rest) == {"dataset", "index_path", "out", "fail_above", "fail_above_shard", "resume", "as_json"}
    (build, params), rest = _parsed(("index", "build"), ["refs/", "-o", "ix"], (BuildOptions, IndexParams))
    assert build == BuildOptions() and params == IndexParams() and set(rest) == {"refs", "out"}
    (options, params), rest = _parsed(("profile", "build"), ["--human", "h/", "--ai", "a/", "-o", "p"],
                                      (ProfileBuildOptions, ProfileParams))
    assert options == ProfileBuildOptions() and params == ProfileParams() and set(rest) == {"human", "ai", "out"}


def test_scan_flags_become_scan_options():
    (options,), _ = _parsed(("scan",), SCAN + [
        "--batch-mb", "8", "--piece-mb", "0.5", "--id-field", "", "--text-field", "meta.body", "--workers", "3",
        "--executor", "ray", "--ray-address", "10.0.0.5:6379", "--strict", "--verify", "exact",
        "--min-anchors", "6", "--min-words", "40", "--write-clean", "clean", "--write-flagged", "s3://b/flagged",
        "--threshold", "0.7", "--ngram", "4", "--num-perm", "64", "--profile", "style.profile"], (ScanOptions,))
    assert options == ScanOptions(
        batch_bytes=8 << 20, piece_bytes=1 << 19, id_field=None, text_field="meta.body", workers=3, executor="ray",
        ray_address="10.0.0.5:6379", strict=True, verify="exact", min_anchors=6.0, min_words=40, write_clean="clean",
        write_flagged="s3://b/flagged", expect_threshold=0.7, expect_ngram=4, expect_num_perm=64,
        profile="style.profile")
    assert options.batch_bytes == 8 << 20 and options.id_field is None


def test_index_build_flags_become_build_options_and_index_params():
    (options, params), _ = _parsed(("index", "build"), [
        "refs/", "-o", "ix", "--id-field", "", "--label-field", "meta.model", "--text-field", "body",
        "--store-text", "--strict", "--threshold", "0.8", "--num-perm", "64", "--ngram", "4", "--seed", "7",
        "--anchor-bits", "0"], (BuildOptions, IndexParams))
    assert options == BuildOptions(id_field=None, label_field="meta.model", text_field="body", store_text=True,
                                   strict=True)
    assert params == IndexParams(threshold=0.8, num_perm=64, ngram=4, seed=7, anchor_bits=0)


def test_profile_build_flags_become_profile_options_and_params():
    (options, params), _ = _parsed(("profile", "build"), [
        "--human", "h/", "--ai", "a/", "-o", "p", "--family", "anthropic=claude-*,sonnet*", "--family",
        "openai=gpt-*", "--family-by", "label", "--group-field", "", "--label-field", "m", "--text-field", "t",
        "--strict", "--vocab-size", "100", "--clusters", "3"], (ProfileBuildOptions, ProfileParams))
    assert options == ProfileBuildOptions(families=("anthropic=claude-*,sonnet*", "openai=gpt-*"), family_by="label",
                                          group_field=None, label_field="m", text_field="t", strict=True)
    assert params == ProfileParams(vocab_size=100, clusters=3)


class _Called(Exception):
    pass


def _capture(monkeypatch, module, name):
    """Replace ``module.name`` (what a command calls) by a function that records its arguments."""
    calls = []

    def fake(*args, **kwargs):
        calls.append((args, kwargs))
        raise _Called

    monkeypatch.setattr(module, name, fake)
    return calls


def test_the_commands_pass_the_parsed_dataclasses_on(monkeypatch):
    calls = _capture(monkeypatch, scan_command, "scan")
    r = CliRunner().invoke(cli, ["scan", *SCAN, "--batch-mb", "8", "--id-field", ""])
    assert isinstance(r.exception, _Called), r.output
    (args, kwargs), = calls
    assert args[3] == ScanOptions(batch_bytes=8 << 20, id_field=None)
    calls = _capture(monkeypatch, index_command, "build_index")
    r = CliRunner().invoke(cli, ["index", "build", "refs/", "-o", "ix", "--threshold", "0.8", "--id-field", ""])
    assert isinstance(r.exception, _Called), r.output
    (args, kwargs), = calls
    assert args[2] == BuildOptions(id_field=None) and kwargs["params"] == IndexParams(threshold=0.8)
    calls = _capture(monkeypatch, profile_command, "build_profile")
    r = CliRunner().invoke(cli, ["profile", "build", "--human", "h", "--ai", "a", "-o", "p", "--clusters", "3"])
    assert isinstance(r.exception, _Called), r.output
    (args, kwargs), = calls
    assert args[3] == ProfileBuildOptions() and kwargs["params"] == ProfileParams(clusters=3)


# ------------------------------------------------------------------------------- how errors name options


# a bad value of each validated field, and the field the message must name
BAD = [
    (IndexParams, {"threshold": 2}, "threshold"),
    (IndexParams, {"num_perm": 8}, "num_perm"),
    (IndexParams, {"ngram": 0}, "ngram"),
    (IndexParams, {"seed": -1}, "seed"),
    (IndexParams, {"anchor_bits": 9}, "anchor_bits"),
    (IndexParams, {"max_anchor_refs": 0}, "max_anchor_refs"),
    (ScanOptions, {"executor": "spark"}, "executor"),
    (ScanOptions, {"workers": -1}, "workers"),
    (ScanOptions, {"batch_bytes": 1000}, "batch_bytes"),
    (ScanOptions, {"piece_bytes": 0}, "piece_bytes"),
    (ScanOptions, {"min_anchors": 1}, "min_anchors"),
    (ScanOptions, {"miss_penalty": -1}, "miss_penalty"),
    (ScanOptions, {"verify": "maybe"}, "verify"),
    (ScanOptions, {"min_words": 0}, "min_words"),
    (ProfileParams, {"windows": (32, 16)}, "windows"),
    (ProfileParams, {"max_windows": 17}, "max_windows"),
    (ProfileParams, {"vocab_size": 0}, "vocab_size"),
    (ProfileParams, {"smoothing": 0}, "smoothing"),
    (ProfileParams, {"clusters": 0}, "clusters"),
    (ProfileBuildOptions, {"family_by": "vendor"}, "family_by"),
]


@pytest.mark.parametrize("cls, values, name", BAD, ids=[f"{c.__name__}.{n}" for c, _, n in BAD])
def test_library_errors_name_options_in_backquotes(cls, values, name):
    with pytest.raises(ContamscanError) as err:
        cls(**values)
    message = str(err.value)
    assert f"`{name}`" in message
    # the command line's spelling of the same message: the flag, no Python name
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    if f.metadata["cli"]:
        assert flag_of(f) in spelled(message) and f"`{name}`" not in spelled(message)


@pytest.mark.parametrize("args, flag, name", [
    (["index", "build", "X", "-o", "Y", "--threshold", "2"], "--threshold", "threshold"),
    (["index", "build", "X", "-o", "Y", "--num-perm", "8"], "--num-perm", "num_perm"),
    (["scan", "X", "--index", "I", "-o", "O", "--batch-mb", "0.01"], "--batch-mb", "batch_bytes"),
    (["scan", "X", "--index", "I", "-o", "O", "--min-anchors", "1"], "--min-anchors", "min_anchors"),
    (["scan", "X", "--index", "I", "-o", "O", "--fail-above", "2"], "--fail-above", "fail_above"),
    (["profile", "build", "--human", "H", "--ai", "A", "-o", "P", "--clusters", "0"], "--clusters", "clusters"),
    (["profile", "build", "--human", "H", "--ai", "A", "-o", "P", "--family", "no-equals-sign"], "--family",
     "families"),
])
def test_the_cli_shows_flags_in_errors(tmp_path, monkeypatch, args, flag, name):
    monkeypatch.chdir(tmp_path)  # X, I, H, A: nothing there; the options fail first
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == EXIT_ERROR, r.output
    assert r.stderr.startswith("error: ") and flag in r.stderr, r.stderr
    assert f"`{name}`" not in r.stderr and "Traceback" not in r.stderr
    assert not list(tmp_path.iterdir())  # nothing written


def test_index_params_threshold():
    """The issue's example, on both sides."""
    with pytest.raises(ContamscanError, match="`threshold`"):
        IndexParams(threshold=2)
    r = CliRunner().invoke(cli, ["index", "build", "X", "-o", "Y", "--threshold", "2"])
    assert r.exit_code == 1 and "--threshold" in r.stderr and "`threshold`" not in r.stderr
