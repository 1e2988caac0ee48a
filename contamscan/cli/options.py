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
                                       metavar="NAME=GLOB[,GLOB]")(command)
                continue
            command = click.option(*decls, type=_type(f), default=default, show_default=default is not None,
                                   help=meta["help"])(command)
        return command

    return decorate


def dataclass_from(cls, params: dict, exclude=(), **extra):
    """An instance of ``cls`` from the click parameters of its fields (converted from the
    flags' units), plus ``extra`` fields."""
    values = {}
    for f in cli_fields(cls, exclude):
        v = params.pop(f.name)
        meta = f.metadata
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
    table = {"scan": data.get("scan"), "build": data.get("index", {}).get("build")}.get(ctx.command.name)
    if table is None:  # a flat file: its plain keys
        table = {k: v for k, v in data.items() if not isinstance(v, dict)}
    names = {}
    for p in ctx.command.params:
        if p.name == "config":
            continue
        names[p.name] = p.name
        for opt in p.opts:
            names[opt.lstrip("-")] = p.name
    unknown = sorted(set(table) - set(names))
    if unknown:
        keys = sorted(k for k in names if "-" in k or k == names[k])
        raise click.BadParameter(f"{path}: unknown key(s) {', '.join(unknown)}; the keys are the command's flags: "
                                 f"{', '.join(keys)}", ctx=ctx, param=param)
    ctx.default_map = {**(ctx.default_map or {}), **{names[k]: v for k, v in table.items()}}
    return path


config_option = click.option("--config", type=click.Path(dir_okay=False), is_eager=True, expose_value=False,
                             callback=load_config,
                             help="TOML file with defaults for this command's options, keyed by flag name.")
