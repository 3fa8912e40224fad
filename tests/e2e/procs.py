"""Real ``verde`` processes on 127.0.0.1 for the end-to-end tests (helpers).

Every service is started through the CLI (``verde provider serve`` / ``verde arbiter serve``)
with ``--listen 127.0.0.1:0``, so the operating system picks a free port; the port is read
back from the one line the service prints on stderr. Each process runs in its own process
group and is stopped by the module fixture's ``finally`` (``Cluster.stop_all``: SIGTERM, then
SIGKILL of the whole group), whatever the test did.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from proofs import SigningKey

LISTENING = re.compile(r"listening on (127\.0\.0\.1):(\d+)")
METRICS = re.compile(r"metrics (127\.0\.0\.1:\d+)")
START_TIMEOUT_S = 240.0  # two busy cores: importing torch alone can take tens of seconds


def free_ports(n: int) -> list[int]:
    """``n`` ports free on 127.0.0.1 now, for files that must name addresses before the
    services start (a committee file); the OS picks them."""
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def verde_command() -> list[str]:
    """The ``verde`` console script of this interpreter's environment (or ``python -c``)."""
    script = Path(sys.executable).parent / "verde"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from cli.entry import main; main()"]


def child_env() -> dict[str, str]:
    """Environment for child processes: one BLAS thread each (many processes, few cores)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    env.pop("VERDE_DEBUG", None)
    return env


@dataclass
class Service:
    """One running ``verde ... serve`` process."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0
    argv: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def metrics(self) -> str:
        """HOST:PORT of the service's Prometheus endpoint (started with --metrics)."""
        match = METRICS.search(self.log())
        if match is None:
            raise AssertionError(f"{self.name} serves no metrics:\n{self.log()[-1000:]}")
        return match.group(1)

    def terminate(self) -> None:
        """SIGTERM, once (a graceful drain); the caller waits for the exit."""
        _signal_group(self.proc, signal.SIGTERM)

    def kill_hard(self) -> None:
        """SIGKILL the whole process group at once (a crash: nothing is flushed or closed)."""
        _signal_group(self.proc, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, grace_s: float = 15.0) -> None:
        if self.proc.poll() is None:
            _signal_group(self.proc, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace_s)
        _signal_group(self.proc, signal.SIGKILL)  # stragglers of the group, if any
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)  # start_new_session=True: the group id is the child's pid


def _start(name: str, argv: Sequence[str], log_path: Path,
           command: Sequence[str] | None = None, env: dict[str, str] | None = None) -> Service:
    log_file = log_path.open("wb")
    proc = subprocess.Popen([*(command or verde_command()), *argv], stdin=subprocess.DEVNULL,
                            stdout=log_file, stderr=subprocess.STDOUT,
                            env={**child_env(), **(env or {})}, start_new_session=True)
    log_file.close()
    return Service(name, proc, log_path, argv=list(argv))


def _await_port(svc: Service, timeout_s: float = START_TIMEOUT_S) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        match = LISTENING.search(svc.log())
        if match:
            svc.port = int(match.group(2))
            return
        if not svc.alive():
            raise RuntimeError(f"{svc.name} exited with {svc.proc.returncode}:\n"
                               f"{svc.log()[-2000:]}")
        time.sleep(0.1)
    raise RuntimeError(f"{svc.name} did not start within {timeout_s:g}s:\n{svc.log()[-2000:]}")


class Cluster:
    """Starts ``verde`` services and keeps track of them so the fixture can stop them all."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.services: list[Service] = []

    def key(self, name: str) -> Path:
        """A deterministic Ed25519 key file ``name.pem`` (seeded by the name)."""
        path = self.workdir / f"{name}.pem"
        if not path.exists():
            SigningKey.from_seed(name.encode().ljust(32, b"\0")[:32]).save(path)
        return path

    def public_key(self, name: str) -> str:
        return SigningKey.load(self.key(name)).public_key.hex()

    def start_many(self, specs: Sequence[tuple[str, Sequence[str]]], *,
                   command: Sequence[str] | None = None,
                   env: dict[str, str] | None = None) -> list[Service]:
        """Start several services at once (their imports overlap) and wait for their ports.

        ``command`` replaces the ``verde`` command (e.g. a previous release's code).
        """
        started = []
        for name, argv in specs:
            svc = _start(name, argv, self.workdir / f"{name}.log", command, env)
            self.services.append(svc)
            started.append(svc)
        for svc in started:
            _await_port(svc)
        return started

    def provider_argv(self, name: str, fault: str | None = None) -> list[str]:
        argv = ["provider", "serve", "--key", str(self.key(name)), "--listen", "127.0.0.1:0"]
        return argv + (["--fault", fault] if fault else [])

    def arbiter_argv(self, name: str, db_url: str, *extra: str) -> list[str]:
        return ["arbiter", "serve", "--key", str(self.key(name)), "--listen", "127.0.0.1:0",
                "--db", db_url, *extra]

    def start_three_providers_and_arbiter(self, fault: str) -> list[Service]:
        """p1 and p2 honest, p3 following ``fault``, and an arbiter on SQLite (``arb``)."""
        return self.start_many([
            ("p1", self.provider_argv("p1")),
            ("p2", self.provider_argv("p2")),
            ("p3", self.provider_argv("p3", fault)),
            ("arb", self.arbiter_argv("arb", f"sqlite:///{self.workdir / 'arb.db'}")),
        ])

    def stop_all(self) -> None:
        for svc in self.services:
            _signal_group(svc.proc, signal.SIGTERM)
        for svc in self.services:
            svc.stop()


def run_verde(args: Sequence[str], *, timeout_s: float = 600.0,
              cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run one ``verde`` command to completion in its own process group."""
    proc = subprocess.Popen([*verde_command(), *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env(), cwd=cwd, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"verde {' '.join(args)} ran past {timeout_s:g}s:\n"
                             f"{err[-2000:]}") from None
    finally:
        if proc.poll() is None:  # pragma: no cover - interrupted
            _signal_group(proc, signal.SIGKILL)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def write_config(path: Path, section: str, **settings: object) -> Path:
    """A service config file: ``[section]`` with ``settings`` (keys are flag names)."""
    lines = [f"[{section}]"] + [f"{key.replace('_', '-')} = {json.dumps(value)}"
                                for key, value in settings.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_in_pty(args: Sequence[str], *, timeout_s: float = 600.0, columns: int = 120
               ) -> tuple[int, str]:
    """Run ``verde ARGS`` on a pseudo-terminal (stdout and stderr both): what a user sees."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {**child_env(), "TERM": "xterm-256color", "COLUMNS": str(columns)}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([*verde_command(), *args], stdin=follower, stdout=follower,
                            stderr=follower, env=env, start_new_session=True)
    os.close(follower)
    chunks = []
    end = time.monotonic() + timeout_s
    try:
        while time.monotonic() < end:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    data = os.read(leader, 1 << 16)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        else:
            raise AssertionError(f"verde {' '.join(args)} ran past {timeout_s:g}s")
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=30)
        os.close(leader)
    return code, b"".join(chunks).decode(errors="replace")


def job_toml(path: Path, *, seed: int, steps: int = 8, batch_size: int = 8,
             program: str = "mlp") -> Path:
    path.write_text(f'program = "{program}"\nsteps = {steps}\nbatch_size = {batch_size}\n'
                    f'seed = {seed}\n[dataset]\nname = "digits"\n'
                    '[optimizer]\nname = "sgd"\nlr = 0.1\n')
    return path


def job_spec(*, seed: int, steps: int = 8, batch_size: int = 8) -> dict[str, object]:
    """The same job as :func:`job_toml`, as the dict the services take."""
    return {"program": "mlp", "dataset": {"name": "digits"},
            "optimizer": {"name": "sgd", "lr": 0.1}, "steps": steps,
            "batch_size": batch_size, "seed": seed}


def assert_one_error_line(result: subprocess.CompletedProcess[str], code: int,
                          *fragments: str) -> str:
    """The CLI's contract for bad input: exit ``code``, ONE stderr line, no traceback."""
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode == code, (result.returncode, result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("verde: error: "), lines
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])
    return lines[0]


@dataclass(frozen=True)
class Event:
    seq: int
    kind: str
    payload: str


def read_events(db_url: str, dispute_id: str | None = None) -> dict[str, list[Event]]:
    """Every dispute's event log straight from the database (SQLAlchemy, the service models).

    Only the columns every schema revision has are read, so older databases read too.
    """
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from arbiter.storage.models import DisputeEventRow as E

    engine = create_engine(db_url)
    try:
        with Session(engine) as s:
            q = select(E.dispute_id, E.seq, E.kind, E.payload_json).order_by(E.dispute_id, E.id)
            if dispute_id is not None:
                q = q.where(E.dispute_id == dispute_id)
            out: dict[str, list[Event]] = {}
            for did, seq, kind, payload in s.execute(q):
                out.setdefault(did, []).append(Event(seq, kind, payload))
            return out
    finally:
        engine.dispose()


def read_disputes(db_url: str) -> dict[str, tuple[str, str | None, str | None]]:
    """dispute id -> (status, owner, verdict JSON), straight from the database (only these
    columns, so a database at an older schema revision reads too)."""
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from arbiter.storage.models import DisputeRow

    engine = create_engine(db_url)
    try:
        with Session(engine) as s:
            rows = s.execute(select(DisputeRow.dispute_id, DisputeRow.status, DisputeRow.owner,
                                    DisputeRow.verdict_json))
            return {did: (status, owner, verdict) for did, status, owner, verdict in rows}
    finally:
        engine.dispose()


def check_event_log(events: list[Event]) -> None:
    """A well-formed log: seq 0..n without gaps or repeats, opened first, at most one end."""
    assert [e.seq for e in events] == list(range(len(events))), [e.seq for e in events]
    assert events[0].kind == "opened"
    ends = [e for e in events if e.kind in ("decided", "failed")]
    assert len(ends) <= 1 and (not ends or ends[0] is events[-1]), [e.kind for e in events]


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(address: str, timeout_s: float = 10.0) -> Samples:
    """Every sample of ``http://ADDRESS/metrics``: (name, labels) -> value."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://{address}/metrics", timeout=timeout_s) as reply:
        text = reply.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 if none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def check_no_double_processing(events: list[Event]) -> None:
    """seq strictly increasing from 0; one answer per (party, round) unless byte-identical."""
    check_event_log(events)
    answers: dict[tuple[str, int], str] = {}
    for e in events:
        if e.kind in ("answer", "timeout"):
            doc = json.loads(e.payload)
            key = (doc["party"], doc["round"])
            if key in answers:
                assert answers[key] == e.payload, f"two different events for {key}"
            answers[key] = e.payload


def fresh_database(postgres_url: str, name: str) -> str:
    """A new, empty database on the test server (so no other arbiter sees our disputes)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"{name}_{time.time_ns()}"
    engine = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return make_url(postgres_url).set(database=name).render_as_string(hide_password=False)


def wait_until(predicate: Callable[[], object], what: str, timeout_s: float = 600) -> None:
    """Poll ``predicate`` every 20 ms until it is true; fail naming ``what`` after the time."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def event_owners(db_url: str, did: str) -> list[str | None]:
    """Which arbiter committed each event of dispute ``did``, in order (None: written before
    events recorded it, or the opening)."""
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from arbiter.storage.models import DisputeEventRow

    engine = create_engine(db_url)
    try:
        with Session(engine) as s:
            return list(s.scalars(select(DisputeEventRow.owner).where(
                DisputeEventRow.dispute_id == did).order_by(DisputeEventRow.seq)))
    finally:
        engine.dispose()


def baseline_verdict(workdir: Path, seed: int, entries: list[tuple[str, str]]
                     ) -> dict[str, object]:
    """The verdict of an uninterrupted arbiter (an engine in this process, on SQLite) over
    the dispute of :func:`job_spec` ``seed`` between ``entries``."""
    from arbiter.engine import ArbiterEngine
    from arbiter.provider_client import GrpcProviderPeer
    from arbiter.storage import Store, open_database

    store = Store(open_database(f"sqlite:///{workdir / f'baseline-{seed}.db'}"))
    engine = ArbiterEngine(store, SigningKey.generate(), GrpcProviderPeer, owner="baseline",
                           lease_s=600, deadline_s=60, observers=())
    try:
        did = engine.open_dispute(job_spec(seed=seed), entries).dispute_id
        assert engine.work_once(did)
        rec = store.dispute(did)
        assert rec.status == "decided", rec.error
        return dict(json.loads(rec.verdict_json or "{}"))
    finally:
        engine.close()
        store.db.close()
