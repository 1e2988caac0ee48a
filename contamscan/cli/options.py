"""Click options generated from the config dataclasses' fields (``contamscan.config.option``):
one source for names, defaults and help. Also the ``--config FILE`` defaults, and the
command-line spelling of option names in error messages."""

from __future__ import annotations

import dataclasses
import re
import sys

import click

from ..config import BuildOptions, IndexParams, ProfileBuildOptions, ProfileParams, ScanOptions, flag_of

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

# options of the commands themselves (not of a config dataclass), as error messages name them
_COMMAND_FLAGS = {"fail_above": "--fail-above", "fail_above_shard": "--fail-above-shard", "resume": "--resume"}


def cli_fields(cls, exclude=()) -> list:
    return [f for f in dataclasses.fields(cls) if f.metadata.get("cli") and f.name not in exclude]


def _type(f):
    kind = str(f.type)
    if f.metadata["choices"]:
        return click.Choice(list(f.metadata["choices"]))
    if f.metadata["path"]:
        return click.Path(file_okay=False)
    if f.metadata["unit"] != 1 or kind.startswith("float"):
        return float
    if kind.startswith("int"):
        return int
    return str


def dataclass_options(cls, exclude=()):
    """A decorator adding one click option per command-line field of ``cls`` (a config
    dataclass), named as the field, with its default (in the flag's unit) and help."""

    def decorate(command):
        for f in reversed(cli_fields(cls, exclude)):
            meta = f.metadata
            decls = [flag_of(f), f.name]
            if str(f.type) == "bool":
                command = click.option(*decls, is_flag=True, default=f.default, help=meta["help"])(command)
                continue
            default = f.default
            if meta["unit"] != 1:
                default = default / meta["unit"]
                default = int(default) if default == int(default) else default
            if meta["multiple"]:
                command = click.option(*decls, multiple=True, default=default, help=meta["help"],
                                       metavar=meta["metavar"] or "NAME=GLOB[,GLOB]")(command)
                continue
            for old in meta["old_flags"]:  # a former spelling: accepted, with a warning
                command = click.option(old, _old_name(f, old), type=_type(f), default=None, hidden=True,
                                       expose_value=True, callback=_deprecated(old, flag_of(f)))(command)
            command = click.option(*decls, type=_type(f), default=default, show_default=default is not None,
                                   help=meta["help"], metavar=meta["metavar"])(command)
        return command

    return decorate


def _old_name(f, old: str) -> str:
    return f"{f.name}__{old.lstrip('-').replace('-', '_')}"


def _deprecated(old: str, new: str):
    def warn(ctx, param, value):
        if value is not None:
            click.echo(f"warning: {old} is deprecated, use {new}", err=True)
        return value
    return warn


def dataclass_from(cls, params: dict, exclude=(), **extra):
    """An instance of ``cls`` from the click parameters of its fields (converted from the
    flags' units), plus ``extra`` fields."""
    values = {}
    for f in cli_fields(cls, exclude):
        v = params.pop(f.name)
        meta = f.metadata
        for old in meta["old_flags"]:
            given = params.pop(_old_name(f, old), None)
            if given is not None and v == f.default:
                v = given
        if meta["empty_is_none"] and v == "":
            v = None
        if meta["unit"] != 1 and v is not None:
            v = max(1, int(v * meta["unit"]))
        if meta["multiple"]:
            v = tuple(v)
        values[f.name] = v
    return cls(**values, **extra)


def _flags() -> dict[str, str]:
    flags = dict(_COMMAND_FLAGS)
    for cls in (IndexParams, BuildOptions, ScanOptions, ProfileParams, ProfileBuildOptions):
        for f in cli_fields(cls):  # options of the Python API only keep their names
            flags.setdefault(f.name, flag_of(f))
    return flags


FLAGS = _flags()
_NAMED = re.compile(r"`([a-z_]+)`")


def spelled(message: str) -> str:
    """A library message with the options it names (`text_field`) as the CLI spells them
    (--text-field)."""
    return _NAMED.sub(lambda m: FLAGS.get(m.group(1), m.group(0)), message)


def load_config(ctx: click.Context, param: click.Parameter, path: str | None):
    """``--config FILE``: defaults for the command's options from a TOML file, under the
    flags' own names (``fail-above = 0.01``), in a ``[scan]`` / ``[index.build]`` table or at
    the top level. Flags given on the command line win."""
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise click.BadParameter(f"cannot read {path}: {e}", ctx=ctx, param=param) from e
    table = _config_table(data, ctx.command.name)
    names = {}
    for p in ctx.command.params:
        if p.name == "config":
            continue
        for opt in p.opts:
            names[opt.lstrip("-")] = p.name
    flags = sorted(k for k, name in names.items() if not getattr(_param(ctx, name), "hidden", False))
    for k, name in list(names.items()):  # a key may also be spelled with underscores
        names.setdefault(k.replace("-", "_"), name)
    unknown = sorted(set(table) - set(names))
    if unknown:
        raise click.BadParameter(f"{path}: unknown key(s) {', '.join(_key(k) for k in unknown)}; the keys are the "
                                 f"command's flags: {', '.join(flags)}", ctx=ctx, param=param)
    ctx.default_map = {**(ctx.default_map or {}), **{names[k]: v for k, v in table.items()}}
    return path


def _key(k: str) -> str:
    """An unknown key as the file spells it (in the flags' spelling when it is a Python name)."""
    return k.replace("_", "-")


def _param(ctx: click.Context, name: str):
    return next((p for p in ctx.command.params if p.name == name), None)


# the tables of a config file that belong to a command, and those of the other commands
_TABLES = {"scan": ("scan",), "build": ("index", "build")}
_OTHER_TABLES = frozenset({"scan", "index", "profile", "report", "demo"})


def _config_table(data: dict, command: str) -> dict:
    """The command's table (``[scan]``, ``[index.build]``) or, if there is none, the file's
    top-level keys (the tables of other commands left out)."""
    node = data
    for part in _TABLES.get(command, (command,)):
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        return node
    return {k: v for k, v in data.items() if not (k in _OTHER_TABLES and isinstance(v, dict))}


config_option = click.option("--config", type=click.Path(dir_okay=False), is_eager=True, expose_value=False,
                             callback=load_config,
                             help="TOML file with defaults for this command's options, keyed by flag name.")
