"""``verde coded-matmul`` and ``verde coded-infer`` end to end over provider processes.

Four provider processes on 127.0.0.1 (one flipping a sign in every product it computes) and an
arbiter process, driven through the installed ``verde`` command. The cheater holds four of the
sixteen Strassen-like nodes — more than the check relations can correct — so the code names
candidates, second providers recompute them, and the arbiter's disputes name the cheater and
only the cheater; the product written is A @ B. Bad input ends as one line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cli import exit_codes
from tests.e2e.procs import Cluster, assert_one_error_line, run_verde

FAULT = "compute=corrupt_op,node=0"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    c = Cluster(tmp_path_factory.mktemp("coded-compute"))
    try:
        *providers, arb = c.start_many([
            ("m1", c.provider_argv("m1")),
            ("m2", c.provider_argv("m2")),
            ("m3", c.provider_argv("m3")),
            ("m4", c.provider_argv("m4", FAULT)),
            ("arb", c.arbiter_argv("arb", f"sqlite:///{c.workdir / 'arb.db'}")),
        ])
        yield {"providers": providers, "arb": arb, "workdir": c.workdir}
    finally:
        c.stop_all()


def _matrices(workdir: Path) -> tuple[Path, Path, np.ndarray]:
    rng = np.random.default_rng(7)
    a = rng.standard_normal((24, 20)).astype(np.float32)
    b = rng.standard_normal((20, 16)).astype(np.float32)
    np.save(workdir / "a.npy", a)
    np.save(workdir / "b.npy", b)
    return workdir / "a.npy", workdir / "b.npy", a.astype(np.float64) @ b.astype(np.float64)


def _providers(cluster: dict[str, Any], n: int = 4) -> list[str]:
    return [arg for svc in cluster["providers"][:n] for arg in ("--provider", svc.address)]


def test_coded_matmul_names_the_cheater_through_the_arbiter(
        cluster: dict[str, Any], tmp_path: Path) -> None:
    a, b, product = _matrices(tmp_path)
    out = tmp_path / "c.npy"
    res = run_verde(["coded-matmul", str(a), str(b), *_providers(cluster), "--arbiter",
                     cluster["arb"].address, "--out", str(out), "--json"])
    assert res.returncode == exit_codes.OK, res.stderr
    doc = json.loads(res.stdout)
    cheat = cluster["providers"][3].address
    assert doc["named_faulty"] == [cheat]
    for d in doc["disputes"]:
        if d["suspect"] == cheat:
            assert d["dishonest"] == [cheat] and d["reasons"] == ["recomputed_operator"]
        else:  # an honest candidate: confirmed by the second provider, never named
            assert d["dishonest"] == [] and d["suspect"] in d["honest"]
    cheated = {s["share"] for s in doc["shares"] if s["provider"] == cheat}
    assert cheated == {3, 7, 11, 15}
    assert {s["share"] for s in doc["shares"] if s.get("verdict") == "replaced"} == cheated
    np.testing.assert_allclose(np.load(out), product, rtol=1e-4, atol=1e-4)
    assert json.loads(out.with_suffix(".json").read_text())["named_faulty"] == [cheat]
    listed = run_verde(["disputes", "list", "--arbiter", cluster["arb"].address, "--json"])
    assert listed.returncode == exit_codes.OK, listed.stderr
    ids = {d["dispute_id"] for d in json.loads(listed.stdout)}
    assert {i for d in doc["disputes"] for i in d["dispute_ids"]} <= ids


def test_coded_inference_over_honest_providers(cluster: dict[str, Any], tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from verde.protocol.jobs.context import JobContext
    from verde.protocol.jobs.spec import JobSpec

    spec = JobSpec.from_mapping({"program": "mlp", "kind": "infer", "config": {"hidden": 8},
                                 "dataset": {"name": "digits"}, "steps": 1, "batch_size": 12,
                                 "seed": 2})
    ctx = JobContext.from_spec(spec)
    save_file(ctx.program.initial_parameters(ctx.module, 2), str(tmp_path / "p.safetensors"))
    batch = ctx.dataset.batch(list(range(12)))["x"]
    np.save(tmp_path / "x.npy", batch.numpy())
    out = tmp_path / "y.npy"
    res = run_verde(["coded-infer", str(tmp_path / "x.npy"), "--program", "mlp", "--config",
                     '{"hidden": 8}', "--params", str(tmp_path / "p.safetensors"),
                     "--groups", "3", *_providers(cluster, 3), "--out", str(out), "--json"])
    assert res.returncode == exit_codes.OK, res.stderr
    doc = json.loads(res.stdout)
    assert doc["named_faulty"] == [] and len(doc["shares"]) == 3
    got = torch.from_numpy(np.load(out))
    # the same code over in-process workers running the model under repops (the providers'
    # bits), decoded here: the CLI's result is that decoding
    import repops
    from verde.coding.bacc import BACC
    from verde.coding.coded_compute import coded_inference

    params = ctx.program.initial_parameters(ctx.module, 2)

    def model(x: torch.Tensor) -> torch.Tensor:
        # The in-process workers run in threads, one per share, and functional_call swaps the
        # shared module's parameters while it runs: one call at a time (the context's lock).
        # Without it a call can run on what another call restored (CI saw 7.8e13 outputs).
        with ctx.step_lock, repops.reproducible(), torch.no_grad():
            out: torch.Tensor = torch.func.functional_call(ctx.module, params, (x,))
        return out

    want = coded_inference(model, batch, BACC(3, 3)).result
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_bad_inputs_are_one_line(cluster: dict[str, Any], tmp_path: Path) -> None:
    a, b, _ = _matrices(tmp_path)
    np.save(tmp_path / "ints.npy", np.arange(12).reshape(3, 4))
    np.save(tmp_path / "wide.npy", np.ones((5, 3), dtype=np.float32))
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    providers = _providers(cluster, 1)
    assert_one_error_line(run_verde(["coded-matmul", str(tmp_path / "ints.npy"), str(b),
                                     *providers]), exit_codes.BAD_INPUT, "float array")
    assert_one_error_line(run_verde(["coded-matmul", str(a), str(tmp_path / "wide.npy"),
                                     *providers]), exit_codes.BAD_INPUT, "do not multiply")
    assert_one_error_line(run_verde(["coded-matmul", str(tmp_path / "junk.npy"), str(b),
                                     *providers]), exit_codes.BAD_INPUT, "junk.npy")
    assert_one_error_line(run_verde(["coded-matmul", str(tmp_path / "none.npy"), str(b),
                                     *providers]), exit_codes.BAD_INPUT, "no such file")
    assert_one_error_line(run_verde(["coded-infer", str(a), "--program", "mlp", "--params",
                                     str(tmp_path / "none.safetensors"), "--groups", "2",
                                     *providers]), exit_codes.BAD_INPUT, "parameters")
    # the replicated scheme's copies of one product would all sit on the one provider
    assert_one_error_line(run_verde(["coded-matmul", str(a), str(b), "--scheme", "replicated",
                                     *providers]), exit_codes.BAD_INPUT, "same sub-product")
