"""``verde config check FILE``: every problem of a service configuration file at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli import exit_codes
from cli.commands import arbiter_cmd, provider
from cli.config import ConfigError, SettingsCheck, check_table, read_toml, settings_of
from cli.options import DatabaseUrl
from cli.output import emit

#: The services a file may configure: table name -> (serve command, cross-field check).
SERVICES: dict[str, tuple[click.Command, SettingsCheck]] = {
    "arbiter": (arbiter_cmd.serve, arbiter_cmd.check_serve_settings),
    "provider": (provider.serve, provider.check_serve_settings),
}


@click.group("config")
def config_group() -> None:
    """Check service configuration files (TOML)."""


@config_group.command("check")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--check-files", is_flag=True,
              help="Also require every file the config names (key, TLS, ...) to exist here.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def check(path: Path, check_files: bool, as_json: bool) -> None:
    """Report every problem of PATH ([arbiter] and/or [provider] tables); exit 3 if any."""
    doc = check_file(path, check_files=check_files)
    if as_json:
        emit(doc, as_json=True)
    else:
        lines = [f"{path}: " + (f"{len(doc['problems'])} problem"
                                f"{'s' if len(doc['problems']) != 1 else ''}"
                                if doc["problems"] else
                                f"ok ({', '.join(f'[{s}]' for s in doc['sections'])})")]
        lines += [f"  error: {p}" for p in doc["problems"]]
        lines += [f"  warning: {w}" for w in doc["warnings"]]
        emit(doc, as_json=False, human="\n".join(lines))
    if doc["problems"]:
        raise click.exceptions.Exit(exit_codes.BAD_INPUT)


def check_file(path: Path, *, check_files: bool = False) -> dict[str, Any]:
    """``{"file", "sections", "problems", "warnings", "settings"}`` for one config file."""
    result: dict[str, Any] = {"file": str(path), "sections": [], "problems": [],
                              "warnings": [], "settings": {}}
    try:
        tables = read_toml(path)
    except ConfigError as exc:
        result["problems"].append(str(exc))
        return result
    if not tables:
        result["problems"].append(f"no service table: expected {_expected()}")
    for name, table in tables.items():
        if name not in SERVICES:
            result["problems"].append(
                f"[{name}]: unknown table, expected {_expected()}"
                if isinstance(table, dict) else
                f"{name}: setting outside a table, put it under {_expected()}")
            continue
        if not isinstance(table, dict):
            result["problems"].append(f"{name}: expected a [{name}] table")
            continue
        command, cross_check = SERVICES[name]
        report = check_table(command, table, section=name, base=path.parent.resolve(),
                             check_files=check_files, cross_check=cross_check)
        result["sections"].append(name)
        result["problems"].extend(report.problems)
        result["warnings"].extend(report.warnings)
        params = {str(p.name): (key, p) for key, p in settings_of(command).items()}
        result["settings"][name] = {params[k][0]: _plain(v, params[k][1])
                                    for k, v in report.values.items()}
    return result


def _expected() -> str:
    return " or ".join(f"[{s}]" for s in SERVICES)


def _plain(value: Any, param: click.Parameter) -> Any:
    """A setting as JSON shows it: paths as text, database URLs without their password."""
    if isinstance(param.type, DatabaseUrl):
        from arbiter.storage.db import safe_url

        return safe_url(str(value))
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v, param) for v in value]
    return value
