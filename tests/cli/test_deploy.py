"""deploy/: every example config passes ``verde config check``, and the compose file and the
systemd units run only commands, flags and environment variables that exist.

Each command is parsed by the real click command tree exactly as the container or unit would
run it (its --config file mapped back to the copy in deploy/, its environment set), so a
renamed flag or setting fails here, not on an operator's machine. Docker is not run.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from cli.main import cli

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ENV = ("VERDE_KEY", "VERDE_DB_URL", "VERDE_TLS_KEY")


def parse_verde(argv: list[str]) -> click.Context:
    """Parse ``verde ARGV`` like the CLI would, without running it (click errors raise)."""
    command: click.Command = cli
    args = list(argv)
    path = ["verde"]
    while isinstance(command, click.Group):
        if not args or args[0].startswith("-"):
            raise click.UsageError(f"{' '.join(path)}: a subcommand is missing")
        name = args.pop(0)
        sub = command.get_command(click.Context(command), name)
        if sub is None:
            raise click.UsageError(f"{' '.join(path)} has no command {name!r}")
        command, path = sub, [*path, name]
    return command.make_context(" ".join(path), args)


def _local_config(argv: list[str], mounts: dict[str, Path]) -> list[str]:
    """``--config`` paths inside a container or host mapped to the files in deploy/."""
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        if arg == "--config":
            assert out[i + 1] in mounts, f"{out[i + 1]} is not one of deploy/'s configs"
            out[i + 1] = str(mounts[out[i + 1]])
    return out


def _interpolate(value: str) -> str:
    """Compose's ${VAR:?message} with a stand-in value."""
    return re.sub(r"\$\{(\w+)(:?[?-][^}]*)?\}", lambda m: f"stand-in-{m.group(1).lower()}",
                  value)


@pytest.mark.parametrize("name", ["arbiter", "provider"])
def test_example_configs_pass_config_check(name: str, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    for env in ENV:
        monkeypatch.delenv(env, raising=False)
    res = CliRunner().invoke(cli, ["config", "check", str(DEPLOY / f"{name}.toml"), "--json"])
    doc = json.loads(res.output)
    assert res.exit_code == 0 and doc["problems"] == [] and doc["warnings"] == [], doc
    assert doc["sections"] == [name]


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))


def test_compose_runs_postgres_two_arbiters_and_three_providers() -> None:
    services = _compose()["services"]
    commands = {n: s.get("command", []) for n, s in services.items()}
    verbs = [tuple(c[:3]) for c in commands.values() if c[:1] == ["verde"]]
    assert verbs.count(("verde", "arbiter", "serve")) == 2
    assert verbs.count(("verde", "provider", "serve")) == 3
    assert verbs.count(("verde", "arbiter", "migrate")) == 1
    assert services["postgres"]["image"].startswith("postgres:")
    owners = [c[c.index("--owner") + 1] for c in commands.values() if "--owner" in c]
    assert len(set(owners)) == 2


def test_compose_commands_parse_with_their_configs_and_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    checked = 0
    for name, service in _compose()["services"].items():
        command = service.get("command")
        if not command or command[0] != "verde":
            continue
        mounts = {}
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            mounts[target] = (DEPLOY / source).resolve()
        for env in ENV:
            monkeypatch.delenv(env, raising=False)
        environment = service.get("environment", {})
        for key, value in environment.items():
            assert not key.startswith("VERDE_") or key in ENV, f"{name}: unknown {key}"
            monkeypatch.setenv(key, _interpolate(str(value)))
        ctx = parse_verde(_local_config(command[1:], mounts))
        if command[1:3] == ["arbiter", "serve"]:
            assert ctx.params["key_path"] == Path(environment["VERDE_KEY"])
            assert ctx.params["db_url"].startswith("postgresql://verde:stand-in-")
            assert ctx.params["metrics_address"] and ctx.params["log_format"] == "json"
        if command[1:3] == ["provider", "serve"]:
            assert ctx.params["key_path"] == Path(environment["VERDE_KEY"])
        checked += 1
    assert checked == 6


def _exec_start(unit: Path) -> list[str]:
    lines = [ln.split("=", 1)[1] for ln in unit.read_text().splitlines()
             if ln.startswith("ExecStart=")]
    assert len(lines) == 1, unit
    argv = shlex.split(lines[0])
    assert argv[0].endswith("/verde"), argv
    return argv[1:]


@pytest.mark.parametrize("unit", ["verde-arbiter.service", "verde-provider.service"])
def test_systemd_units_run_existing_commands(unit: str, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    for env in ENV:
        monkeypatch.delenv(env, raising=False)
    mounts = {f"/etc/verde/{p.name}": p for p in DEPLOY.glob("*.toml")}
    ctx = parse_verde(_local_config(_exec_start(DEPLOY / unit), mounts))
    assert ctx.params["drain_timeout_s"] > 0
    stop = re.search(r"^TimeoutStopSec=(\d+)$", (DEPLOY / unit).read_text(), re.M)
    assert stop and int(stop.group(1)) > ctx.params["drain_timeout_s"]  # drain, then stop


@pytest.mark.parametrize(("argv", "message"), [
    (["arbiter", "srve"], "no command 'srve'"),
    (["arbiter", "serve", "--key", "k", "--wrkers", "2"], "No such option"),
    (["provider", "serve", "--key", "k", "--log-format", "xml"], "'xml' is not one of"),
    (["arbiter"], "subcommand is missing"),
    (["arbiter", "serve", "--key", "k", "--owner"], "requires an argument"),
])
def test_the_command_check_catches_what_does_not_exist(argv: list[str], message: str) -> None:
    with pytest.raises(click.UsageError, match=message):
        parse_verde(argv)
