"""Service configuration files: every flag settable, precedence, every problem at once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from cli import exit_codes
from cli.commands import arbiter_cmd, provider
from cli.config import ConfigError, settings_of
from cli.main import cli
from cli.options import Address, DatabaseUrl


def _sample(param: click.Option, tmp: Path) -> tuple[Any, Any]:
    """A TOML value for ``param`` different from its default, and the value click makes."""
    t = param.type
    if param.is_flag:
        return True, True
    if isinstance(t, Address) and param.multiple:  # --worker-at: a list in the file
        return ["127.0.0.1:9123"], ("127.0.0.1:9123",)
    if isinstance(t, Address):
        return "127.0.0.1:9123", "127.0.0.1:9123"
    if isinstance(t, DatabaseUrl):
        return "postgresql://verde@db.example/verde", "postgresql://verde@db.example/verde"
    if isinstance(t, click.Choice):
        choice = next(c for c in t.choices if c != param.default)
        return choice, choice
    if isinstance(t, click.IntRange):
        value = max(3, t.min if t.min is not None else 3)
        return value, value
    if isinstance(t, click.FloatRange):
        return 7.5, 7.5
    if isinstance(t, click.Path):
        path = tmp / f"{param.name}.file"
        if t.file_okay:
            path.write_text("x")
        else:
            path.mkdir(exist_ok=True)
        return path.name, path  # relative: resolved against the file's folder
    if param.name == "programs":  # loaded when the file is read: a real program file
        from tests.verde.protocol.test_program_code import write_program

        name = "config_" + "".join(c if c.isalnum() else "_" for c in tmp.name)
        path = write_program(tmp / f"{name}.py", name)
        return [str(path)], (str(path),)
    return f"{param.name}-value", f"{param.name}-value"


def _toml_value(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


@pytest.mark.parametrize(("section", "command"), [("arbiter", arbiter_cmd.serve),
                                                  ("provider", provider.serve)])
def test_every_flag_of_a_service_can_be_set_in_its_file(tmp_path: Path, section: str,
                                                        command: click.Command,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ("VERDE_KEY", "VERDE_DB_URL", "VERDE_TLS_KEY"):
        monkeypatch.delenv(env, raising=False)
    settings = settings_of(command)
    assert {"key", "listen", "metrics", "log-format", "log-level", "drain-timeout",
            "tls-cert"} <= set(settings)
    expected, lines = {}, [f"[{section}]"]
    for name, param in settings.items():
        raw, value = _sample(param, tmp_path)
        if name == "deadline":
            raw, value = 5.0, 5.0  # must stay below the lease
        if name == "lease":
            raw, value = 20.0, 20.0  # above two deadlines (a committee arbiter's rule)
        lines.append(f"{name} = {_toml_value(raw)}")
        if param.expose_value:
            expected[param.name] = value
    path = tmp_path / "service.toml"
    path.write_text("\n".join(lines) + "\n")
    ctx = command.make_context("serve", ["--config", str(path)])
    for name, value in expected.items():
        assert ctx.params[name] == value, name
    doc = CliRunner().invoke(cli, ["config", "check", str(path), "--check-files", "--json"])
    assert doc.exit_code == 0, doc.output
    assert json.loads(doc.output)["sections"] == [section]


def _arbiter_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "arbiter.toml"
    path.write_text("[arbiter]\nkey = \"arb.pem\"\n" + body)
    return path


def test_flags_override_env_and_env_overrides_the_file(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = _arbiter_file(tmp_path, 'db = "sqlite:///from-file.db"\nworkers = 2\n')
    monkeypatch.delenv("VERDE_DB_URL", raising=False)
    serve = arbiter_cmd.serve
    ctx = serve.make_context("serve", ["--config", str(path)])
    assert ctx.params["db_url"] == "sqlite:///from-file.db" and ctx.params["workers"] == 2
    assert ctx.params["key_path"] == tmp_path / "arb.pem"  # relative to the file's folder
    monkeypatch.setenv("VERDE_DB_URL", "sqlite:///from-env.db")
    ctx = serve.make_context("serve", ["--config", str(path)])
    assert ctx.params["db_url"] == "sqlite:///from-env.db"
    ctx = serve.make_context("serve", ["--config", str(path), "--db", "sqlite:///flag.db",
                                       "--workers", "9"])
    assert ctx.params["db_url"] == "sqlite:///flag.db" and ctx.params["workers"] == 9


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = _arbiter_file(tmp_path, 'workers = 0\nlisten = "nowhere"\ncolour = "red"\n'
                                   'lease = 10.0\ndeadline = 20.0\nlog-level = "loud"\n'
                                   'log_level = "info"\n')
    with pytest.raises(ConfigError) as info:
        arbiter_cmd.serve.make_context("serve", ["--config", str(path)])
    message = str(info.value)
    assert "\n" not in message
    for fragment in ("workers", "listen: expected HOST:PORT", "colour: unknown setting",
                     "log-level", "set twice"):
        assert fragment in message, (fragment, message)
    res = CliRunner().invoke(cli, ["config", "check", str(path)])
    assert res.exit_code == exit_codes.BAD_INPUT
    problems = [ln for ln in res.output.splitlines() if ln.startswith("  error: ")]
    assert len(problems) == 5, res.output
    # The cross-field check runs once the values themselves are fine.
    fixed = _arbiter_file(tmp_path, "lease = 10.0\ndeadline = 20.0\n")
    res = CliRunner().invoke(cli, ["config", "check", str(fixed)])
    assert res.exit_code == exit_codes.BAD_INPUT and "deadline (20s) < lease (10s)" in res.output


def test_committee_settings_go_together_and_fit_the_lease(tmp_path: Path) -> None:
    (tmp_path / "committee.json").write_text("{}")
    (tmp_path / "member.bls").write_text("{}")
    lone = _arbiter_file(tmp_path, 'committee = "committee.json"\n')
    res = CliRunner().invoke(cli, ["config", "check", str(lone)])
    assert res.exit_code == exit_codes.BAD_INPUT and "go together" in res.output
    tight = _arbiter_file(tmp_path, 'committee = "committee.json"\nbls-key = "member.bls"\n'
                                    'deadline = 30.0\nlease = 60.0\n')
    res = CliRunner().invoke(cli, ["config", "check", str(tight)])
    assert res.exit_code == exit_codes.BAD_INPUT and "two deadlines" in res.output
    ok = _arbiter_file(tmp_path, 'committee = "committee.json"\nbls-key = "member.bls"\n'
                                 'deadline = 20.0\nlease = 60.0\n')
    assert CliRunner().invoke(cli, ["config", "check", str(ok)]).exit_code == 0


def test_unknown_keys_get_a_suggestion_and_tables_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('loose = 1\n[arbiter]\nkey = "k.pem"\nworker = 3\n[provder]\n'
                    'listen = "x"\n')
    doc = json.loads(CliRunner().invoke(cli, ["config", "check", str(path), "--json"]).output)
    assert doc["problems"] == [
        "loose: setting outside a table, put it under [arbiter] or [provider]",
        "[arbiter] worker: unknown setting (did you mean 'workers'?)",
        "[provder]: unknown table, expected [arbiter] or [provider]"]


def test_bad_files_are_one_problem_each(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[arbiter\nkey = 1\n")
    res = CliRunner().invoke(cli, ["config", "check", str(bad), "--json"])
    assert res.exit_code == exit_codes.BAD_INPUT
    assert "not valid TOML" in json.loads(res.output)["problems"][0]
    res = CliRunner().invoke(cli, ["config", "check", str(tmp_path / "missing.toml")])
    assert res.exit_code == exit_codes.BAD_INPUT and "no such file" in res.output
    only_provider = tmp_path / "p.toml"
    only_provider.write_text('[provider]\nkey = "k.pem"\n')
    with pytest.raises(ConfigError, match=r"no \[arbiter\] table \(found \[provider\]\)"):
        arbiter_cmd.serve.make_context("serve", ["--config", str(only_provider)])


def test_files_must_exist_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    monkeypatch.delenv("VERDE_KEY", raising=False)
    path = tmp_path / "p.toml"
    path.write_text('[provider]\nkey = "/etc/verde/provider.pem"\n'
                    'tls-cert = "/etc/verde/tls.crt"\ntls-key = "/etc/verde/tls.key"\n')
    assert CliRunner().invoke(cli, ["config", "check", str(path)]).exit_code == 0
    res = CliRunner().invoke(cli, ["config", "check", str(path), "--check-files"])
    assert res.exit_code == exit_codes.BAD_INPUT and "tls.crt" in res.output
    no_key = tmp_path / "nokey.toml"
    no_key.write_text("[provider]\n")
    res = CliRunner().invoke(cli, ["config", "check", str(no_key)])
    assert "key: required" in res.output and "VERDE_KEY" in res.output
    monkeypatch.setenv("VERDE_KEY", "/etc/verde/provider.pem")
    assert CliRunner().invoke(cli, ["config", "check", str(no_key)]).exit_code == 0


def test_a_password_in_the_file_is_a_warning_and_never_printed(tmp_path: Path) -> None:
    path = _arbiter_file(tmp_path, 'db = "postgresql://verde:s3cret@db/verde"\n')
    for args in ([], ["--json"]):
        res = CliRunner().invoke(cli, ["config", "check", str(path), *args])
        assert res.exit_code == 0
        assert "holds a password" in res.output and "VERDE_DB_URL" in res.output
        assert "s3cret" not in res.output
    lone_cert = _arbiter_file(tmp_path, 'tls-cert = "c.pem"\n')
    res = CliRunner().invoke(cli, ["config", "check", str(lone_cert)])
    assert res.exit_code == exit_codes.BAD_INPUT and "tls-cert and tls-key go together" in \
        res.output


def test_migrate_reads_only_its_own_keys_of_the_arbiter_table(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    monkeypatch.delenv("VERDE_DB_URL", raising=False)
    path = _arbiter_file(tmp_path, 'db = "sqlite:///x.db"\nworkers = 2\n')
    ctx = arbiter_cmd.migrate.make_context("migrate", ["--config", str(path)])
    assert ctx.params["db_url"] == "sqlite:///x.db"
