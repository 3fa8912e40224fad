"""``verde --version`` names the protocol; ``verde completion`` scripts complete commands."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from cli.main import cli
from verde.version import PROTOCOL_VERSION, release, version_line


def test_version_names_the_release_and_the_protocol() -> None:
    res = CliRunner().invoke(cli, ["--version"], prog_name="verde")
    assert res.exit_code == 0
    assert res.output.strip() == version_line() == \
        f"verde {release()} (protocol {PROTOCOL_VERSION})"
    assert release() != "unknown"  # the test environment installs the package


@pytest.mark.parametrize(("shell", "marker"), [("bash", "complete -o"),
                                               ("zsh", "compdef"),
                                               ("fish", "complete --no-files")])
def test_completion_scripts_for_each_shell(shell: str, marker: str) -> None:
    res = CliRunner().invoke(cli, ["completion", shell], prog_name="verde")
    assert res.exit_code == 0, res.output
    assert marker in res.output and "_VERDE_COMPLETE" in res.output


def test_completion_completes_commands_and_options() -> None:
    """What the bash script asks for: click answers through the _VERDE_COMPLETE protocol."""
    def complete(words: str) -> list[str]:
        env = {"_VERDE_COMPLETE": "bash_complete", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
        res = CliRunner().invoke(cli, [], prog_name="verde", env=env)
        return [line.split(",", 1)[1] for line in res.output.splitlines() if "," in line]

    assert "migrate" in complete("verde arbiter m")
    assert "serve" in complete("verde arbiter ")
    assert "--log-format" in complete("verde provider serve --log-f")
    assert "json" in complete("verde arbiter serve --log-format ")
    assert complete("verde arbiter z") == []  # no such subcommand


def test_unknown_shell_is_a_usage_error() -> None:
    res = CliRunner().invoke(cli, ["completion", "tcsh"], prog_name="verde")
    assert res.exit_code == 2 and "tcsh" in res.output
