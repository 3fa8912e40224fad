"""Entry point of the ``verde`` command (console script ``verde = cli.main:main``)."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="verde")
def cli() -> None:
    """verde: verified outsourced machine learning."""


def main() -> None:
    """Run the CLI."""
    cli()
