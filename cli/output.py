"""Printing for people and for scripts: one place decides between tables and ``--json``."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table


def emit(data: Mapping[str, Any] | Sequence[Any], *, as_json: bool, human: str = "") -> None:
    """Print ``data`` as one JSON document, or ``human`` text if given and not ``--json``."""
    if as_json:
        click.echo(json.dumps(data, sort_keys=True, default=str))
    else:
        click.echo(human if human else json.dumps(data, indent=2, sort_keys=True, default=str))


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*[str(x) for x in r])
    Console(file=sys.stdout).print(t)


def error_line(message: str) -> None:
    """The one line a user sees for a mistake: no traceback."""
    click.echo(f"verde: error: {message}", err=True)
