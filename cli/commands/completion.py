"""``verde completion SHELL``: the shell completion script (click's own completion)."""

from __future__ import annotations

import click

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_VERDE_COMPLETE"


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL.

    \b
    bash:  eval "$(verde completion bash)"        (e.g. in ~/.bashrc)
    zsh:   eval "$(verde completion zsh)"         (e.g. in ~/.zshrc)
    fish:  verde completion fish > ~/.config/fish/completions/verde.fish
    """
    from click.shell_completion import get_completion_class

    root = click.get_current_context().find_root().command
    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - click ships all three
        raise click.UsageError(f"no completion for {shell}")
    click.echo(cls(root, {}, "verde", COMPLETE_VAR).source())
