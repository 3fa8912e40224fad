"""Coded computation benchmark: BACC/SBACC accuracy and decode time, Strassen-like node counts.

Prints ONE JSON line (stdout) and a short table (stderr), with the machine's CPU model and ISA.
Workload for BACC/SBACC: f = tanh(x W + b), a 64 -> 256 layer, on K = 3 inputs of 32 rows
(features ~ N(0, 0.3^2)), N = 32 workers.

* BACC: the largest approximation error over 40 sampled straggler sets for s = 0, 2, 4, 6,
  next to the rigorous worst-case Berrut bound over every set of s stragglers (derivative
  bounds: the encoder's grid estimate row by row, and tanh's smoothness) — ``bound_holds``;
* SBACC (redundancy r = 8; tolerance = 3x the largest honest misfit of calibration runs of the
  same layer on three other input draws): for w = 0..4 wrong workers (each off by 0.05 on
  every output, about a fifth of the outputs' size) next to s = 0 and s = 2 stragglers, over
  20 trials each, how often the wrong workers were located exactly / refused (ambiguous or
  beyond the bound) / decoded with a wrong set, and the largest error of the located decodes;
  ``correctable`` is (r - s) // 2;
* decode time (BACC, and SBACC's fastest over the trials; bench/_timing.best_time otherwise)
  against the time one worker needs for its share;
* the fault-tolerant Strassen-like scheme at n x n float32 (n = 2048 by default): compute
  nodes 16 (two algorithms + 2 PSMMs) against 21 (three copies of Strassen) and 14 (two
  copies); wall time of computing every node in turn on this machine plus decoding, against
  three-copy replication and one plain matmul (best of repeats); one element of node 2 (Strassen)
  or 9 (second algorithm) off by 1e-3 .. 1 (outputs ~45 in size), decoded with the rigorous
  rounding allowance, the probabilistic one, and one calibrated to 10x the honest margin of
  another random product (``honest_flagged`` must stay empty); and, per fault model, the fraction
  of fault sets of each size 1..3 that decode correctly, with the success probability when each
  node is faulty independently with probability p (errors: wrong values at unknown nodes, the
  16-node decoder locating them; erasures: missing nodes).
* over verde providers (in this process, one ``Provider`` each, ``--provider-n`` x
  ``--provider-n`` float32 operands, default 256): every node a committed ``matmul`` job fetched
  with proofs; wall time of the 16-node scheme on 16 providers against three-copy replication
  (21 providers) and one provider computing A @ B as one job; then with one provider flipping a
  sign in every product it computes (one node), and with one holding four nodes (beyond the
  code: its candidates are recomputed): wall time including the disputes, the disputes run, and
  whether exactly the cheater was named and the product equals the honest run's.

Usage: .venv/bin/python bench/coded_computing_bench.py [--n 2048] [--threads 1] [--provider-n 256]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._machine import machine_info
from bench._timing import best_time
from verde.coding import (
    BACC,
    SBACC,
    FaultTolerantStrassen,
    ReplicatedStrassen,
    TooManyFaults,
    composed_derivative_bounds,
)
from verde.coding.strassen_search import determines_output, locatable
from verde.protocol.peers.local import LocalPeer

N, K, R = 32, 3, 8
FEATURES, WIDTH, ROWS, SCALE = 64, 256, 32, 0.3
WRONG_BY = 0.05  # how far a wrong worker's answer is off, per output (outputs ~0.24 in size)
PROBABILITIES = (0.01, 0.05, 0.1)
MAX_TANH_SECOND = 0.7699  # max |tanh''| = 4 / (3 sqrt 3)


def _max_error(estimates: list[torch.Tensor], truth: list[torch.Tensor]) -> float:
    return max(float((e - t).abs().max()) for e, t in zip(estimates, truth, strict=True))


def _layer(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(FEATURES, WIDTH, generator=gen) / FEATURES**0.5,
            torch.randn(WIDTH, generator=gen) * 0.1)


def _inputs(seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1000 + seed)
    return [torch.randn(ROWS, FEATURES, generator=gen) * SCALE for _ in range(K)]


def _derivative_bounds(code: BACC, inputs: list[torch.Tensor], weight: torch.Tensor
                       ) -> tuple[float, float]:
    """(m1, m2) for every output coordinate of tanh(x W + b) composed with the encoder.

    Output (row r, unit k) depends on row r of the share only, so the encoder's derivative
    norms are taken row by row (grid estimates); |grad| <= ||W[:, k]||, |Hessian| <= 0.77
    ||W[:, k]||^2.
    """
    g = float(weight.norm(dim=0).max())
    u1 = u2 = 0.0
    for r in range(ROWS):
        d1, d2 = code.encoder_derivative_norms([x[r] for x in inputs], grid=2001)
        u1, u2 = max(u1, d1), max(u2, d2)
    return composed_derivative_bounds(u1, u2, gradient_bound=g,
                                      hessian_bound=MAX_TANH_SECOND * g * g)


def bacc_section() -> dict[str, object]:
    weight, bias = _layer(0)

    def f(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ weight + bias)

    code = BACC(N, K)
    inputs = _inputs(0)
    truth = [f(x) for x in inputs]
    answers = {i: f(s) for i, s in enumerate(code.encode(inputs))}
    m1, m2 = _derivative_bounds(code, inputs, weight)
    rng = np.random.default_rng(0)
    rows = {}
    for s in (0, 2, 4, 6):
        worst = 0.0
        for _ in range(40 if s else 1):
            gone = set(rng.choice(N, s, replace=False).tolist())
            est = code.decode({i: a for i, a in answers.items() if i not in gone})
            worst = max(worst, _max_error(est, truth))
        bound = code.worst_case_error_bound(s, m1=m1, m2=m2)
        rows[str(s)] = {"max_error": round(worst, 6), "worst_case_bound": round(bound, 6),
                        "bound_holds": worst <= bound}
    decode_s = best_time(lambda: code.decode(answers))
    share = code.encode(inputs)[0]
    worker_s = best_time(lambda: f(share))
    return {"workers": N, "inputs": K, "rows_per_input": ROWS, "layer": [FEATURES, WIDTH],
            "mean_abs_output": round(float(torch.stack(truth).abs().mean()), 4),
            "error_vs_stragglers": rows,
            "derivative_bounds": {"m1": round(m1, 3), "m2": round(m2, 3)},
            "decode_s": decode_s, "worker_share_s": worker_s,
            "decode_over_worker": round(decode_s / worker_s, 3)}


def sbacc_section() -> dict[str, object]:
    probe = SBACC(N, K, R, tolerance=1.0)
    tolerances = []
    rng = np.random.default_rng(1)
    results: dict[str, dict[str, object]] = {}
    decode_times = []
    for s in (0, 2):
        for wrong in range(5):
            counts = {"located": 0, "refused": 0, "wrong_set": 0}
            worst = 0.0
            for trial in range(20):
                weight, bias = _layer(10 + trial)
                # Calibration: the same layer on three other input draws, run by a trusted
                # worker (one draw is not enough: honest misfits vary up to ~4x across draws).
                misfit = max(probe.honest_misfit({i: torch.tanh(x @ weight + bias)
                                                  for i, x in enumerate(probe.encode(
                                                      _inputs(500 + 20 * draw + trial)))})
                             for draw in range(3))
                code = SBACC(N, K, R, tolerance=3 * misfit)
                tolerances.append(code.tolerance)
                inputs = _inputs(10 + trial)
                truth = [torch.tanh(x @ weight + bias) for x in inputs]
                honest = {i: torch.tanh(x @ weight + bias)
                          for i, x in enumerate(code.encode(inputs))}
                gone = [int(i) for i in rng.choice(N, s, replace=False)]
                present = [i for i in range(N) if i not in gone]
                bad = sorted(int(i) for i in rng.choice(present, wrong, replace=False))
                answers = {i: honest[i] for i in present}
                for i in bad:
                    answers[i] = honest[i] + float(rng.choice([-1, 1])) * WRONG_BY
                try:
                    t0 = time.perf_counter()
                    est, report = code.decode_with_report(answers)
                    decode_times.append(time.perf_counter() - t0)
                except TooManyFaults:
                    counts["refused"] += 1
                    continue
                if list(report.faulty) != bad:
                    counts["wrong_set"] += 1
                    continue
                counts["located"] += 1
                worst = max(worst, _max_error(est, truth))
            results[f"s{s}_w{wrong}"] = {**counts, "correctable": code.correctable(s),
                                         "max_error_located": round(worst, 6)}
    share = probe.encode(_inputs(0))[0]
    weight, bias = _layer(0)
    worker_s = best_time(lambda: torch.tanh(share @ weight + bias))
    decode_s = min(decode_times)
    return {"workers": N, "inputs": K, "redundancy": R,
            "tolerance_range": [min(tolerances), max(tolerances)],
            "wrong_by": WRONG_BY, "trials_per_cell": 20,
            "by_stragglers_and_wrong_workers": results,
            "decode_s": decode_s, "worker_share_s": worker_s,
            "decode_over_worker": round(decode_s / worker_s, 3)}


def _error_successes(scheme_kind: str, n_nodes: int) -> list[int]:
    """How many fault sets of each size (0..n) decode correctly under the errors model."""
    if scheme_kind == "replicated3":  # correct iff no sub-product has two faulty copies
        return [math.comb(7, size) * 3**size if size <= 7 else 0 for size in range(n_nodes + 1)]
    if scheme_kind == "replicated2":
        return [1] + [0] * n_nodes
    relations = FaultTolerantStrassen(with_psmms=scheme_kind == "ft16").relations
    rank = np.linalg.matrix_rank(relations)
    return [sum(locatable(relations, f) for f in itertools.combinations(range(n_nodes), size))
            if size < rank else 0 for size in range(n_nodes + 1)]


def _erasure_successes(scheme: FaultTolerantStrassen | ReplicatedStrassen) -> list[int]:
    products = [node.product for node in scheme.nodes]
    n = len(products)
    return [sum(determines_output(products, [i for i in range(n) if i not in gone])
                for gone in itertools.combinations(range(n), size)) if size <= 7 else 0
            for size in range(n + 1)]


def _success_probability(successes: list[int], p: float) -> float:
    n = len(successes) - 1
    return float(sum(c * p**k * (1 - p) ** (n - k) for k, c in enumerate(successes)))


def strassen_section(n: int) -> dict[str, object]:
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(n, n, generator=gen)
    b = torch.randn(n, n, generator=gen)
    ft, three, two = FaultTolerantStrassen(), ReplicatedStrassen(3), ReplicatedStrassen(2)

    def run(scheme: FaultTolerantStrassen | ReplicatedStrassen) -> object:
        return scheme.decode(a, b, scheme.compute_all(a, b))

    t_ft = best_time(lambda: run(ft))
    t_three = best_time(lambda: run(three))
    t_plain = best_time(lambda: a @ b)
    nodes_ft = ft.compute_all(a, b)
    t_decode = best_time(lambda: ft.decode(a, b, nodes_ft))
    calibration = (torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen))
    margin = ft.honest_margin(*calibration, ft.compute_all(*calibration))
    exact = a.double() @ b.double()
    modes = {"rigorous": ft, "probabilistic": FaultTolerantStrassen(rounding="probabilistic"),
             "calibrated_10x": FaultTolerantStrassen(tolerance_scale=10 * margin)}
    single: dict[str, object] = {"output_mean_abs": round(float(exact.abs().mean()), 3),
                                 "calibration_margin": margin}
    for name, scheme in modes.items():
        located: dict[str, object] = {}
        worst = 0.0
        for size, node in itertools.product((1e-3, 1e-2, 1e-1, 1.0), (2, 9)):
            corrupted = dict(nodes_ft)
            corrupted[node] = corrupted[node].clone()
            corrupted[node][3, 7] += size
            try:
                out = scheme.decode(a, b, corrupted)
            except TooManyFaults:
                located[f"{size:g} on node {node}"] = "refused"
                continue
            located[f"{size:g} on node {node}"] = list(out.faulty)
            worst = max(worst, float((out.product.double() - exact).abs().max()))
        single[name] = {"honest_flagged": list(scheme.decode(a, b, nodes_ft).faulty),
                        "element_error_located": located, "max_abs_error_of_product": worst}
    models: dict[str, dict[str, object]] = {}
    for kind, scheme in (("ft16", ft), ("ft14", FaultTolerantStrassen(with_psmms=False)),
                         ("replicated3", three), ("replicated2", two)):
        errors = _error_successes(kind, scheme.n_nodes)
        erasures = _erasure_successes(scheme)
        models[kind] = {
            "nodes": scheme.n_nodes,
            "errors_fraction_corrected": [round(errors[k] / math.comb(scheme.n_nodes, k), 4)
                                          for k in range(1, 4)],
            "erasures_fraction_recovered": [round(erasures[k] / math.comb(scheme.n_nodes, k), 4)
                                            for k in range(1, 4)],
            "p_success_errors": {str(p): round(_success_probability(errors, p), 6)
                                 for p in PROBABILITIES},
            "p_success_erasures": {str(p): round(_success_probability(erasures, p), 6)
                                   for p in PROBABILITIES}}
    return {"n": n, "dtype": "float32",
            "nodes": {"fault_tolerant": ft.n_nodes, "three_copies": three.n_nodes,
                      "two_copies": two.n_nodes, "node_saving_vs_three_copies":
                      round(1 - ft.n_nodes / three.n_nodes, 4)},
            "wall_s": {"fault_tolerant_16": t_ft, "three_copies_21": t_three,
                       "plain_matmul": t_plain, "decode_16": t_decode},
            "wall_ratio_ft_over_three_copies": round(t_ft / t_three, 3),
            "wall_ratio_ft_over_plain": round(t_ft / t_plain, 3),
            "single_element_fault": single,
            "reliability": models}


def _peers(n: int, cheat: str | None = None) -> dict[str, LocalPeer]:
    from proofs import SigningKey
    from verde.protocol.faults.plan import FaultPlan
    from verde.protocol.faults.provider import CheatingProvider
    from verde.protocol.provider.provider import Provider

    def key(label: str) -> SigningKey:
        return SigningKey.from_seed(label.encode().ljust(32, b"\0")[:32])

    peers: dict[str, LocalPeer] = {}
    for i in range(n):
        name = f"p{i}"
        peers[name] = LocalPeer(
            CheatingProvider(key(name), name, plan=FaultPlan("corrupt_op", node=0))
            if name == cheat else Provider(key(name), name))
    return peers


def providers_section(n: int) -> dict[str, object]:
    from verde.coding.coded_compute import Share
    from verde.integration.coded_compute import (
        MatmulShares,
        ProviderCodedRun,
        matmul_on_providers,
        matmul_workers,
    )
    from verde.integration.coded_compute.providers import ProviderShareWorker

    gen = torch.Generator().manual_seed(11)
    a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
    ft, rep = FaultTolerantStrassen(), ReplicatedStrassen(3)

    def timed(scheme: FaultTolerantStrassen | ReplicatedStrassen, peers: dict[str, LocalPeer]
              ) -> tuple[float, ProviderCodedRun]:
        start = time.perf_counter()
        run = matmul_on_providers(a, b, matmul_workers(peers, scheme), scheme=scheme)
        return time.perf_counter() - start, run

    timed(ft, _peers(16))  # warm-up: kernels compiled, programs registered
    honest_s, honest = timed(ft, _peers(16))
    replicated_s, _ = timed(rep, _peers(21))
    single = ProviderShareWorker(_peers(1)["p0"], MatmulShares(), "p0")
    start = time.perf_counter()
    single.run(Share(0, (a, b)))
    single_s = time.perf_counter() - start
    cases = {}
    for label, peers, cheat in (("one_node", _peers(16, "p5"), "p5"),
                                ("four_nodes", _peers(4, "p3"), "p3")):
        wall, run = timed(ft, peers)
        cases[label] = {
            "wall_s": round(wall, 3), "disputes": len(run.disputes),
            "recomputed": len(run.run.refereed), "named": list(run.named),
            "named_only_the_cheater": list(run.named) == [cheat],
            "product_equals_honest": bool(torch.equal(run.result, honest.result)),
        }
    return {"n": n, "ft_16_providers_s": round(honest_s, 3),
            "replicated_21_providers_s": round(replicated_s, 3),
            "one_provider_one_job_s": round(single_s, 3),
            "ft_vs_replicated": round(honest_s / replicated_s, 3),
            "ft_vs_one_job": round(honest_s / single_s, 3), "cheating": cases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--provider-n", type=int, default=256)
    args = parser.parse_args()
    if args.n < 2 or args.n % 2:
        parser.error("--n must be an even int >= 2")
    torch.set_num_threads(args.threads)
    result: dict[str, object] = {"bench": "coded_computing", **machine_info()}
    result["bacc"] = bacc_section()
    result["sbacc"] = sbacc_section()
    result["strassen"] = strassen_section(args.n)
    from repops import _numba

    _numba.set_num_threads(args.threads)
    result["providers"] = providers_section(args.provider_n)
    bacc, st = result["bacc"], result["strassen"]
    print(f"BACC error vs stragglers: {bacc['error_vs_stragglers']}", file=sys.stderr)
    print(f"Strassen-like nodes {st['nodes']}, wall {st['wall_s']}", file=sys.stderr)
    print(f"over providers: {result['providers']}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
