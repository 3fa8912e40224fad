"""A real Flower run on 127.0.0.1: Flower's simulation engine with 10 clients on digits.

``flower_digits_app.py`` runs in a subprocess (Ray's processes bound to 127.0.0.1, stopped with
everything they started afterwards). Digits (scikit-learn's bundled copy) is split i.i.d. over
10 clients; 3 of them are Byzantine through verde's ``attack_mod("ipm", eps=4)`` (each sends -4x
its own update). Flower's FedAvg collapses; RobustStrategy("multi_krum", f=3) stays within 3
points of the attack-free run. With the mods off, RobustStrategy("mean") gives FedAvg's model,
round by round.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray", reason="Flower's simulation engine needs flwr[simulation]")

APP = Path(__file__).with_name("flower_digits_app.py")
ROOT = Path(__file__).resolve().parents[4]
CLIENTS, BYZANTINE = 10, 3
pytestmark = pytest.mark.slow


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
    """Every live process below ``pid`` (Ray starts its daemons detached)."""
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


def _run(tmp: Path, data: Path, mode: str, byzantine: int) -> dict:
    """One simulation in a subprocess that may reach 127.0.0.1 only.

    Ray would otherwise bind to the machine's own address and, in its dashboard's usage
    module, ask the cloud metadata service which cloud it runs on; it skips that when it finds
    a cluster config in ~/ray_bootstrap_config.yaml. So: HOME is the test's folder with such
    a file, the node is 127.0.0.1 (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 makes Ray's own
    address lookup answer the loopback address), telemetry and usage stats are off.
    """
    out = tmp / f"{mode}.json"
    (tmp / "ray_bootstrap_config.yaml").write_text("provider:\n  type: local\n")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{APP.parent}",
           "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
           "RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_DOCKER_CPU_WARNING": "1",
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "HOME": str(tmp)}
    proc = subprocess.Popen([sys.executable, str(APP), str(data), str(out), mode,
                             str(byzantine)], env=env, cwd=tmp, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        log, _ = proc.communicate(timeout=900)
    finally:
        pids = [proc.pid, *_descendants(proc.pid)]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            time.sleep(0.5)
        if proc.poll() is None:
            proc.wait()
    if not out.exists():
        raise AssertionError(f"the run wrote no result (exit {proc.returncode}):\n{log[-4000:]}")
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("flower")
    _write_digits(tmp / "digits.npz")
    return tmp, tmp / "digits.npz"


@pytest.fixture(scope="module")
def clean(digits):
    return _run(*digits, "clean", 0)


def test_without_attack_the_mean_strategy_is_fedavg(clean):
    assert clean["max_difference_vs_fedavg"] < 1e-5
    assert clean["mean"]["accuracy"] > 0.85  # the task is learnt in 3 rounds
    assert clean["mean"]["excluded"] == 0


def test_byzantine_clients_collapse_fedavg_but_not_the_verde_strategy(digits, clean):
    attacked = _run(*digits, "attacked", BYZANTINE)
    reference = clean["mean"]["accuracy"]
    assert attacked["fedavg"]["accuracy"] < 0.3, attacked["fedavg"]["accuracy"]
    assert attacked["robust"]["accuracy"] >= reference - 0.03, (attacked["robust"], reference)
    assert attacked["robust"]["excluded"] >= BYZANTINE
