"""Configuration files (TOML) for ``verde provider serve`` and ``verde arbiter serve``.

A file holds one table per service, ``[provider]`` or ``[arbiter]``; its keys are the long
flags of that service's ``serve`` command without the dashes in front (``listen``,
``max-upload-mb``, ``log-format``; ``max_upload_mb`` works too), so every flag can be set
there and the flag's ``--help`` documents the key. Precedence, highest first: the command
line, the environment variables for secrets (``VERDE_KEY``, ``VERDE_DB_URL``,
``VERDE_TLS_KEY``), the file, the built-in defaults. Relative paths in a file are relative to
the file's folder, so a deployment folder can be moved as a whole.

Checking a file collects every problem (unknown keys with a suggestion, wrong types and
ranges, settings that contradict each other) instead of stopping at the first, for
``verde config check`` and for ``--config`` alike.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from cli.options import DatabaseUrl
from verde.errors import VerdeInputError

#: A cross-field check of a service's converted settings: returns problems (or none).
SettingsCheck = Callable[[Mapping[str, Any]], list[str]]


class ConfigError(VerdeInputError):
    """A configuration file cannot be used (every problem, in one line; exit 3)."""


@dataclass
class ConfigReport:
    """The settings read from one table and what is wrong with them."""

    values: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def setting_name(param: click.Parameter) -> str:
    """The config key of a parameter: its first long flag without the dashes."""
    longs = [o for o in getattr(param, "opts", []) if o.startswith("--")]
    return longs[0][2:] if longs else str(param.name)


def settings_of(command: click.Command) -> dict[str, click.Option]:
    """Every option of ``command`` that a file may set (all but --config and --help)."""
    return {setting_name(p): p for p in command.params
            if isinstance(p, click.Option) and p.name not in ("config", "help")}


def read_toml(path: Path) -> dict[str, Any]:
    """The file's tables; ConfigError for a file that is missing or not TOML."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config {path}: cannot read it: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path}: not valid TOML: {exc}") from None


def _relaxed(param: click.Option, check_files: bool) -> click.ParamType:
    """The param's type; without ``check_files``, paths need not exist on this machine."""
    t = param.type
    if isinstance(t, click.Path) and not check_files:
        return click.Path(exists=False, file_okay=t.file_okay, dir_okay=t.dir_okay,
                          path_type=t.type)
    return t


def _convert(param: click.Option, raw: Any, base: Path, check_files: bool) -> Any:
    if param.is_flag and not isinstance(raw, bool):
        raise click.BadParameter(f"expected true or false, got {raw!r}")
    if param.multiple and not isinstance(raw, list):
        raise click.BadParameter(f"expected a list, got {raw!r}")
    if isinstance(raw, dict | list) and not param.multiple:
        raise click.BadParameter(f"expected a single value, got {raw!r}")
    kind = _relaxed(param, check_files)
    if isinstance(param.type, click.Path):
        def resolve(v: Any) -> Any:
            return str(base / v) if isinstance(v, str) and not os.path.isabs(v) else v
        raw = [resolve(v) for v in raw] if param.multiple else resolve(raw)
    if param.is_flag:
        return raw
    if param.multiple:
        return tuple(kind.convert(v, param, None) for v in raw)
    return kind.convert(raw, param, None)


def check_table(command: click.Command, table: Mapping[str, Any], *, section: str,
                base: Path, check_files: bool = True, ignore_unknown: bool = False,
                cross_check: SettingsCheck | None = None) -> ConfigReport:
    """Convert ``table`` into ``command``'s parameter values, collecting every problem."""
    settings = settings_of(command)
    report = ConfigReport()
    seen: dict[str, str] = {}
    for key, raw in table.items():
        name = key.replace("_", "-")
        where = f"[{section}] {key}"
        param = settings.get(name)
        if param is None:
            if not ignore_unknown:
                close = difflib.get_close_matches(name, list(settings), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                report.problems.append(f"{where}: unknown setting{hint}")
            continue
        if name in seen:
            report.problems.append(f"{where}: set twice (also as {seen[name]!r})")
            continue
        seen[name] = key
        try:
            report.values[str(param.name)] = _convert(param, raw, base, check_files)
        except click.BadParameter as exc:
            report.problems.append(f"{where}: {exc.message}")
    for name, param in settings.items():
        if param.required and str(param.name) not in report.values and not (
                param.envvar and any(os.environ.get(e) for e in _envvars(param))):
            env = f", or set {_envvars(param)[0]}" if param.envvar else ""
            report.problems.append(f"[{section}] {name}: required (set it here, pass "
                                   f"--{name}{env})")
    if cross_check is not None and not report.problems:
        report.problems.extend(f"[{section}] {p}" for p in cross_check(
            {**_defaults(command), **report.values}))
    for name, param in settings.items():
        value = report.values.get(str(param.name))
        if isinstance(param.type, DatabaseUrl) and isinstance(value, str) and \
                _has_password(value):
            env = f" (set {_envvars(param)[0]})" if param.envvar else ""
            report.warnings.append(f"[{section}] {name}: holds a password; keep secrets out "
                                   f"of config files{env}")
    return report


def _envvars(param: click.Parameter) -> list[str]:
    env = param.envvar
    return [env] if isinstance(env, str) else list(env or [])


def _defaults(command: click.Command) -> dict[str, Any]:
    """What the command's options are without a file: defaults and environment variables."""
    return dict(command.make_context(command.name or "serve", [], resilient_parsing=True).params)


def _has_password(url: str) -> bool:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).password is not None
    except ArgumentError:
        return False


def load_section(path: Path, section: str, command: click.Command, *,
                 ignore_unknown: bool = False,
                 cross_check: SettingsCheck | None = None) -> dict[str, Any]:
    """The ``[section]`` settings of ``path`` for ``command``; ConfigError listing every
    problem."""
    doc = read_toml(path)
    table = doc.get(section)
    if not isinstance(table, dict):
        found = ", ".join(f"[{k}]" for k, v in doc.items() if isinstance(v, dict)) or "none"
        raise ConfigError(f"config {path}: no [{section}] table (found {found})")
    report = check_table(command, table, section=section, base=path.parent.resolve(),
                         ignore_unknown=ignore_unknown, cross_check=cross_check)
    # Required settings may still come from the command line: click reports those itself.
    problems = [p for p in report.problems if ": required (" not in p]
    if problems:
        raise ConfigError(f"config {path}: {len(problems)} problem"
                          f"{'s' if len(problems) > 1 else ''}: " + "; ".join(problems))
    return report.values


def config_option(section: str, *, ignore_unknown: bool = False,
                  cross_check: SettingsCheck | None = None
                  ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--config FILE``: the command's settings from the file's ``[section]`` table.

    ``ignore_unknown`` lets a command read only its own keys of a table written for another
    (``verde arbiter migrate`` reads ``db`` from the ``[arbiter]`` table of ``serve``).
    """

    def load(ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
        if value is not None:
            values = load_section(value, section, ctx.command, ignore_unknown=ignore_unknown,
                                  cross_check=cross_check)
            ctx.default_map = {**(ctx.default_map or {}), **values}
        return value

    return click.option(
        "--config", type=click.Path(dir_okay=False, path_type=Path), is_eager=True,
        expose_value=False, callback=load,
        help=f"TOML file whose [{section}] table sets any of these options "
             "(flags and environment variables override it).")
