"""A real Flower deployment on 127.0.0.1: a SuperLink and 10 SuperNodes started here, two runs.

Digits (scikit-learn's bundled copy) split i.i.d. over 10 clients; 3 of them Byzantine
through verde's ``attack_mod("ipm", eps=4)`` (each sends -4x its own update). Flower's FedAvg
collapses; RobustStrategy("multi_krum", f=3) stays within 3 points of the attack-free run.
With the mods off, RobustStrategy("mean") gives FedAvg's model, round by round.

Flower's deployment engine starts one ClientApp process per message, so the runs are kept to
3 rounds of 20 local epochs; a few minutes on 2 cores. Each ClientApp process must reach its
SuperNode within 30 s of the task being claimed (Flower's heartbeat interval) or the task is
claimed again by a new process; on a machine oversubscribed many times over (other jobs) that
never happens, so the test skips when the load average is above 8 per core.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

APP = Path(__file__).parent / "digits_app"
CLIENTS = 10
BYZANTINE = 3
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited early: {log.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}: {log.read_text()[-2000:]}")


def _write_digits(path: Path) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(y))
    test, train = perm[:450], perm[450:]
    arrays = {"x_test": x[test], "y_test": y[test]}
    for i, part in enumerate(np.array_split(train, CLIENTS)):
        arrays[f"x{i}"], arrays[f"y{i}"] = x[part], y[part]
    np.savez(path, **arrays)


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (Flower's daemons start their helpers detached)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM the started processes and everything they started, SIGKILL what is left."""
    pids = [p for proc in procs for p in (proc.pid, *_descendants(proc.pid))]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 15
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    """(run(mode, byzantine) -> results dict), with every process stopped afterwards."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > 8 * cores:
        pytest.skip(f"load average {load:.0f} on {cores} cores: Flower's ClientApp processes "
                    "could not start within its 30 s claim window")
    tmp = tmp_path_factory.mktemp("flower")
    home = tmp / "home"
    home.mkdir()
    port = _free_port()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "local"\n\n[superlink.local]\naddress = "127.0.0.1:{port}"\n'
        'insecure = true\n')
    data = tmp / "digits.npz"
    _write_digits(data)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "FLWR_HOME": str(home), "FLWR_TELEMETRY_ENABLED": "0",
           "FLWR_DISABLE_UPDATE_CHECK": "1", "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
           "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    procs: list[subprocess.Popen] = []

    def start(args: list[str], name: str) -> tuple[subprocess.Popen, Path]:
        log = tmp / f"{name}.log"
        fh = log.open("w")
        proc = subprocess.Popen([str(bin_dir / args[0]), *args[1:]], stdout=fh,
                                stderr=subprocess.STDOUT, env=env, cwd=tmp)
        procs.append(proc)
        return proc, log

    try:
        link, log = start(["flower-superlink", "--insecure", "--host", "127.0.0.1", "--port",
                           str(port)], "superlink")
        _wait_for_port(port, link, log)
        for i in range(CLIENTS):
            node_port = _free_port()
            node, nlog = start(["flower-supernode", "--insecure", "--superlink",
                                f"127.0.0.1:{port}", "--host", "127.0.0.1", "--port",
                                str(node_port), "--node-config",
                                f"partition-id={i} num-partitions={CLIENTS}"], f"node{i}")
            _wait_for_port(node_port, node, nlog)

        def run(mode: str, byzantine: int) -> dict:
            out = tmp / f"{mode}.json"
            config = (f"data='{data}' out='{out}' mode='{mode}' byzantine={byzantine} "
                      "rounds=3 rule='multi_krum'")
            done = subprocess.run([str(bin_dir / "flwr"), "run", str(APP), "local", "--stream",
                                   "--run-config", config], check=False, env=env, cwd=tmp,
                                  capture_output=True, text=True, timeout=900)
            if not out.exists():
                raise AssertionError(f"the run wrote no result (exit {done.returncode}):\n"
                                     f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
            return json.loads(out.read_text())

        yield run
    finally:
        _stop(procs)


@pytest.fixture(scope="module")
def clean(federation):
    return federation("clean", 0)


def test_without_attack_the_mean_strategy_is_fedavg(clean):
    assert clean["max_difference_vs_fedavg"] < 1e-5
    assert clean["mean"]["accuracy"] > 0.85  # the task is learnt in 3 rounds
    assert clean["mean"]["excluded"] == 0


def test_byzantine_clients_collapse_fedavg_but_not_the_verde_strategy(federation, clean):
    attacked = federation("attacked", BYZANTINE)
    reference = clean["mean"]["accuracy"]
    assert attacked["fedavg"]["accuracy"] < 0.3, attacked["fedavg"]["accuracy"]
    assert attacked["robust"]["accuracy"] >= reference - 0.03, (attacked["robust"], reference)
    assert attacked["robust"]["excluded"] >= BYZANTINE
