"""Running verde as a service: config files, metrics, JSON logs and the terminal, end to end.

Both providers (tests/e2e/conftest.py) and the arbiter are started from TOML config files as
real processes on 127.0.0.1 with JSON logs and Prometheus endpoints. ``verde delegate`` runs
on a pseudo-terminal; the providers answer through relays (``tests.e2e.relay``) that scrape the
arbiter's ``/metrics`` over HTTP before every answer they forward: the counters must move as
the dispute does and end equal to what the database recorded; every
log line must parse as JSON and the dispute id must follow the dispute through every phase;
the terminal shows rich bars, ``--json`` prints the JSON document and nothing else, and a pipe
gets plain lines.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cli import exit_codes
from tests.e2e.conftest import relayed_providers
from tests.e2e.procs import (
    Cluster,
    Samples,
    job_toml,
    read_events,
    run_in_pty,
    run_verde,
    sample,
    scrape,
    write_config,
)

pytestmark = pytest.mark.slow
SEED = 31
PHASES = ["step_leaves", "graph_open", "graph_descent", "graph_leaf", "inputs"]


@pytest.fixture(scope="module")
def ops_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    cluster = Cluster(tmp_path_factory.mktemp("operations"))
    db_url = f"sqlite:///{cluster.workdir / 'arbiter.db'}"
    cluster.key("ops-arbiter")
    config = write_config(cluster.workdir / "arbiter.toml", "arbiter", key="ops-arbiter.pem",
                          listen="127.0.0.1:0", db=db_url, metrics="127.0.0.1:0",
                          log_format="json", log_level="debug", workers=1)
    samples: list[Samples] = []
    try:
        (arb,) = cluster.start_many([("ops-arbiter",
                                      ["arbiter", "serve", "--config", str(config)])])
        # The arbiter waits for each answer while the relay scrapes: every sample is taken
        # at a known point of the dispute, whatever the machine's load.
        with relayed_providers(cluster, lambda _n: samples.append(scrape(arb.metrics))
                               ) as (honest, cheat):
            job = job_toml(cluster.workdir / "job.toml", seed=SEED)
            before = {svc.name: scrape(svc.metrics) for svc in (honest, cheat)}
            samples.append(scrape(arb.metrics))
            argv = ["delegate", str(job), "--provider", honest.address, "--provider",
                    cheat.address, "--arbiter", arb.address]
            code, screen = run_in_pty(argv)
            samples.append(_settled(arb.metrics))
            after = {svc.name: scrape(svc.metrics) for svc in (honest, cheat)}
            yield {"cluster": cluster, "arbiter": arb, "honest": honest, "cheat": cheat,
                   "db": db_url, "argv": argv, "code": code, "screen": screen,
                   "samples": samples, "before": before, "after": after,
                   "honest_key": cluster.public_key("cfg-honest")}
    finally:
        cluster.stop_all()


def _settled(metrics: str, timeout_s: float = 60.0) -> Samples:
    """The arbiter's metrics once the verdict it stored is counted too (the client may read
    the stored verdict a moment before the arbiter's observers ran)."""
    end = time.monotonic() + timeout_s
    while True:
        now = scrape(metrics)
        if sample(now, "verde_arbiter_disputes_finished_total") >= 1 or \
                time.monotonic() > end:
            return now
        time.sleep(0.05)


def _dispute(env: dict[str, Any]) -> tuple[str, list[Any]]:
    logs = read_events(env["db"])
    assert len(logs) == 1, list(logs)
    (did, events), = logs.items()
    return did, events


def test_delegate_on_a_terminal_draws_rich_progress(ops_env: dict[str, Any]) -> None:
    screen = ops_env["screen"]
    assert ops_env["code"] == exit_codes.OK, screen[-3000:]
    assert "\x1b[" in screen and "━" in screen, screen[-2000:]  # live bars
    for fragment in (f"train {ops_env['honest'].address}", "8/8 steps", "dispute ", "round ",
                     f"honest providers: {ops_env['honest'].address}",
                     f"dishonest providers: {ops_env['cheat'].address}"):
        assert fragment in screen, (fragment, screen[-2000:])
    assert ": step 8/8" not in screen  # the plain lines are for pipes, not terminals
    assert "Traceback" not in screen


def test_metrics_move_as_the_dispute_does(ops_env: dict[str, Any]) -> None:
    _, events = _dispute(ops_env)
    samples: list[Samples] = ops_env["samples"]
    answers = [json.loads(e.payload) for e in events if e.kind == "answer"]
    counted = [sample(s, "verde_arbiter_dispute_events_total") for s in samples]
    assert counted == sorted(counted), "a counter went down"
    running = [(sample(s, "verde_arbiter_dispute_events_total"),
                sample(s, "verde_arbiter_disputes_driving"))
               for s in samples if sample(s, "verde_arbiter_disputes_finished_total") == 0]
    final = samples[-1]
    between = {n for n, _ in running if 0 < n < counted[-1]}
    assert len(between) >= 3, running  # seen moving with the dispute, not only before/after
    assert any(driving == 1 for _, driving in running)
    assert counted[-1] == len(answers) == sample(final, "verde_arbiter_dispute_events_total",
                                                 kind="answer")
    for phase in ["step_descent", *PHASES]:
        assert sample(final, "verde_arbiter_dispute_events_total", phase=phase) >= 2, phase
        assert sample(final, "verde_arbiter_round_duration_seconds_count", phase=phase) >= 1
    assert sample(final, "verde_arbiter_disputes_finished_total", outcome="decided") == 1
    assert sample(final, "verde_arbiter_verdicts_total", reason="recomputed_operator") == 1
    assert sample(final, "verde_arbiter_disputes_claimed_total", resumed="false") == 1
    assert sample(final, "verde_arbiter_disputes_driving") == 0
    assert sample(final, "verde_arbiter_disputes", status="decided") == 1
    assert sample(final, "verde_arbiter_queue_depth") == 0
    assert sample(final, "grpc_server_handled_total", grpc_method="OpenDispute",
                  grpc_code="OK") == 1
    assert sample(final, "grpc_server_handled_total", grpc_method="GetDispute") >= 1
    assert sample(final, "verde_db_query_seconds_count", operation="update") >= len(answers)
    # The providers: 8 steps trained and committed, every dispute answer served.
    verdict = json.loads(events[-1].payload)
    for name, svc in (("cfg-honest", ops_env["honest"]), ("cfg-cheat", ops_env["cheat"])):
        before, after = ops_env["before"][name], ops_env["after"][name]
        party = next(p for p, k in verdict["keys"].items()
                     if (k == ops_env["honest_key"]) == (name == "cfg-honest"))

        def delta(metric: str, after: Samples = after, before: Samples = before,
                  **labels: str) -> float:
            return sample(after, metric, **labels) - sample(before, metric, **labels)

        assert delta("verde_provider_steps_total") == 8, name
        assert delta("verde_provider_jobs_accepted_total") == 1, name
        assert delta("verde_provider_commitment_seconds_count") == 1, name
        assert delta("grpc_server_handled_total", grpc_method="Answer", grpc_code="OK") == \
            sum(a["party"] == party for a in answers), name
        assert svc.alive()


def test_json_logs_parse_and_follow_the_dispute(ops_env: dict[str, Any]) -> None:
    did, events = _dispute(ops_env)
    lines = [json.loads(line) for line in ops_env["arbiter"].log().splitlines()]
    ours = [d for d in lines if d.get("dispute_id") == did]
    kinds = [d["event"] for d in ours]
    assert kinds[:2] == ["dispute.opened", "dispute.claimed"] and kinds[-1] == "dispute.decided"
    assert [d["phase"] for d in ours if d["event"] == "dispute.phase"] == PHASES
    answered = [(d["party"], d["round"]) for d in ours if d["event"] == "dispute.answer"]
    assert answered == [(json.loads(e.payload)["party"], json.loads(e.payload)["round"])
                        for e in events if e.kind == "answer"]
    assert {d["phase"] for d in ours if d["event"] == "dispute.answer"} == {"step_descent",
                                                                          *PHASES}
    assert ours[-1]["winner_key"] == ops_env["honest_key"]
    assert all(d["level"] in ("debug", "info") for d in ours)
    assert lines[0]["event"] == "service.started" and "metrics" in lines[0]
    for svc in (ops_env["honest"], ops_env["cheat"]):
        docs = [json.loads(line) for line in svc.log().splitlines()]
        jobs = [d["event"] for d in docs if d["event"].startswith("job.")
                and d.get("job_id") == ours[0]["job_id"]]
        assert jobs == ["job.accepted", "job.running", "job.done"], (svc.name, jobs)


def test_json_output_contains_nothing_else(ops_env: dict[str, Any]) -> None:
    """The same job again (its dispute is decided): on a terminal, --json is one document."""
    code, screen = run_in_pty([*ops_env["argv"], "--json"])
    assert code == exit_codes.OK, screen
    doc = json.loads(screen.replace("\r\n", "\n"))
    assert doc["honest_providers"] == [ops_env["honest"].address]
    assert doc["disputes"][0]["dispute_id"] == _dispute(ops_env)[0]


def test_a_pipe_gets_plain_lines(ops_env: dict[str, Any]) -> None:
    res = run_verde(ops_env["argv"])
    assert res.returncode == exit_codes.OK, res.stderr
    assert "\x1b[" not in res.stderr and "\r" not in res.stderr
    lines = res.stderr.splitlines()
    assert f"{ops_env['honest'].address}: step 8/8" in lines
    assert any(line.strip().startswith("verdict: ") for line in lines), lines
    assert res.stdout.startswith("job ")
