"""Metrics of real services in this process, and an arbiter draining mid-dispute.

The endpoints are scraped over HTTP like Prometheus does. Draining is checked where it
matters: the dispute's lease is back in the database at once (not after it expires), new
disputes are refused with UNAVAILABLE and health says NOT_SERVING, and another arbiter
finishes the dispute with the honest provider winning.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from arbiter.arbiter_app import start_arbiter
from arbiter.arbiter_client import ArbiterClient
from arbiter.channels import check_health
from arbiter.engine import ArbiterEngine
from arbiter.errors import ArbiterError
from arbiter.metrics import Metrics, _prometheus
from arbiter.provider_app import start_provider
from arbiter.provider_client import GrpcProviderPeer
from arbiter.storage import Store, open_database
from proofs import SigningKey
from tests.arbiter.conftest import CHEAT, SPEC, key_file, signed_results
from tests.e2e.procs import sample, scrape
from tests.e2e.relay import AnswerHook, HeldAnswer, ProviderRelay
from verde.protocol.peers.state import state_to_blobs


def test_provider_metrics_follow_jobs_calls_and_refusals(cluster: dict[str, Any]) -> None:
    honest = cluster["providers"]["honest"]
    before = scrape(honest.metrics.address)
    spec = {**SPEC, "seed": 11}
    signed_results({"honest": cluster["addrs"]["honest"]}, spec)
    peer = GrpcProviderPeer(cluster["addrs"]["honest"])
    try:
        with pytest.raises(ArbiterError):
            peer.submit({**spec, "steps": 0})
    finally:
        peer.close()
    after = scrape(honest.metrics.address)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("verde_provider_jobs_accepted_total") == 1
    assert delta("verde_provider_steps_total") == spec["steps"]
    assert delta("verde_provider_jobs_finished_total", state="done") == 1
    assert delta("verde_provider_commitment_seconds_count") == 1
    assert delta("verde_provider_training_seconds_count") == 1
    assert delta("verde_provider_jobs_refused_total") == 1
    assert delta("grpc_server_handled_total", grpc_method="SubmitJob", grpc_code="OK") == 1
    assert delta("grpc_server_handled_total", grpc_method="SubmitJob",
                 grpc_code="INVALID_ARGUMENT") == 1
    assert delta("grpc_server_handling_seconds_count", grpc_method="GetResult") >= 1
    assert sample(after, "verde_provider_jobs", state="running") == 0
    assert sample(after, "verde_build_info", service="provider") == 1


def test_upload_limits_count_as_budget_refusals(tmp_path: Path) -> None:
    running = start_provider(key_file(tmp_path, "small"), "127.0.0.1:0",
                             max_state_bytes=1024, metrics="127.0.0.1:0")
    peer = GrpcProviderPeer(f"127.0.0.1:{running.port}")
    try:
        peer.put_state(state_to_blobs({"w": torch.zeros(16)}))
        with pytest.raises(ArbiterError, match="RESOURCE_EXHAUSTED"):
            peer.put_state(state_to_blobs({"w": torch.zeros(1024)}))
        samples = scrape(running.metrics.address)  # type: ignore[union-attr]
        assert sample(samples, "verde_provider_uploads_total") == 1
        assert sample(samples, "verde_provider_upload_bytes_total") == 16 * 4
        assert sample(samples, "verde_budget_refusals_total", grpc_method="PutState") == 1
        # Draining: no new uploads or jobs, health says NOT_SERVING, reads still work.
        assert running.drain(5.0)
        with pytest.raises(ArbiterError, match="UNAVAILABLE"):
            peer.submit(SPEC)
        assert not check_health(peer.channel)
        assert peer.identity == running.host.identity
    finally:
        peer.close()
        running.close(0)


def _events(url: str, did: str) -> list[Any]:
    db = open_database(url, schema="ignore")
    try:
        return Store(db).events(did)
    finally:
        db.close()


def test_a_draining_arbiter_hands_its_dispute_over(tmp_path: Path,
                                                   request: pytest.FixtureRequest) -> None:
    # The providers answer through relays at the addresses they advertise; the relays hold
    # round 2's first answer, so the drain lands mid-round whatever the machine's speed.
    held = HeldAnswer(held=3)
    hook = AnswerHook(held)
    relays = {name: ProviderRelay(hook) for name in ("honest", "cheat")}
    providers = {name: start_provider(key_file(tmp_path, name), "127.0.0.1:0", fault=fault,
                                      advertise=relays[name].address)
                 for name, fault in (("honest", None), ("cheat", CHEAT))}
    for running in providers.values():
        request.addfinalizer(lambda running=running: running.close(0))
    for relay in relays.values():
        request.addfinalizer(relay.close)
    addrs = {name: f"127.0.0.1:{running.port}" for name, running in providers.items()}
    for name, relay in relays.items():
        relay.forward_to(addrs[name])
    results = signed_results(addrs)
    url = f"sqlite:///{tmp_path / 'drain.db'}"
    arb = start_arbiter(key_file(tmp_path, "arb-drain"), "127.0.0.1:0", url, workers=1,
                        owner="first", lease_s=600, deadline_s=60, metrics="127.0.0.1:0")
    client = ArbiterClient(f"127.0.0.1:{arb.port}")
    try:
        held.arm()
        did = client.open_dispute(SPEC, [(addrs["honest"], results["honest"]),
                                         (addrs["cheat"], results["cheat"])])
        assert held.reached.wait(timeout=300), "the dispute never reached round 2"
        drained: list[bool] = []
        draining = threading.Thread(target=lambda: drained.append(arb.drain(60.0)))
        draining.start()
        end = time.monotonic() + 60
        while not arb.engine.draining and time.monotonic() < end:
            time.sleep(0.01)
        held.disarm()  # round 2 finishes; then the worker hands the dispute back
        draining.join(timeout=120)
        assert drained == [True], "the worker did not stop"
        rec = Store(arb.engine.store.db).dispute(did)
        assert (rec.status, rec.owner) == ("running", None)  # released, not left to expire
        committed = _events(url, did)
        assert [e.kind for e in committed] == ["opened"] + ["answer"] * 4  # two whole rounds
        with pytest.raises(ArbiterError, match="UNAVAILABLE"):
            client.open_dispute(SPEC, [(addrs["cheat"], results["cheat"]),
                                       (addrs["honest"], results["honest"])])
        assert not check_health(client.channel)
        assert client.status(did).status == "running"  # reads are still served
        samples = scrape(arb.metrics.address)  # type: ignore[union-attr]
        assert sample(samples, "verde_arbiter_disputes_released_total") == 1
        assert sample(samples, "verde_arbiter_dispute_events_total") == len(committed) - 1
        assert sample(samples, "verde_arbiter_disputes_driving") == 0
        assert sample(samples, "grpc_server_handled_total", grpc_method="OpenDispute",
                      grpc_code="UNAVAILABLE") >= 1
        assert sample(samples, "verde_arbiter_disputes", status="running") == 1
        assert sample(samples, "verde_arbiter_queue_depth") == 1  # waiting for an arbiter
    finally:
        held.disarm()
        client.close()
        arb.close(0)
    # Another arbiter (another owner, long lease) takes it at once and finishes it.
    other = ArbiterEngine(Store(open_database(url)), SigningKey.load(key_file(tmp_path, "o")),
                          GrpcProviderPeer, owner="second", lease_s=600, deadline_s=60)
    try:
        assert other.work_once(did)
        rec = other.store.dispute(did)
    finally:
        other.close()
        other.store.db.close()
    assert rec.status == "decided", rec.error
    verdict = json.loads(rec.verdict_json or "{}")
    honest_key = SigningKey.load(key_file(tmp_path, "honest")).public_key.hex()
    assert verdict["keys"][verdict["winner"]] == honest_key
    after = _events(url, did)
    assert after[: len(committed)] == committed


def test_dispute_gauges_return_to_zero_and_verdicts_count_by_reason() -> None:
    metrics = Metrics(_prometheus(), "arbiter")
    obs = metrics.dispute_observer()
    obs.claimed("d1", "j", "open", 0)
    obs.claimed("d2", "j", "graph_descent", 9)
    obs.advanced("d1", {"type": "answer"}, "step_descent", "step_leaves", 5)
    obs.advanced("d1", {"type": "timeout"}, "step_leaves", "done", 6)
    obs.finished("d1", "decided", {"reason": "fault"}, None)
    obs.lease_lost("d2")
    reg = metrics.registry
    assert reg.get_sample_value("verde_arbiter_disputes_claimed_total",
                                {"resumed": "true"}) == 1
    assert reg.get_sample_value("verde_arbiter_dispute_events_total",
                                {"phase": "step_leaves", "kind": "timeout"}) == 1
    assert reg.get_sample_value("verde_arbiter_verdicts_total", {"reason": "fault"}) == 1
    assert reg.get_sample_value("verde_arbiter_leases_lost_total") == 1
    for phase in ("open", "step_leaves", "graph_descent"):
        assert reg.get_sample_value("verde_arbiter_disputes_driving", {"phase": phase}) == 0


def test_database_latency_and_errors_are_measured(tmp_path: Path) -> None:
    metrics = Metrics(_prometheus(), "arbiter")
    db = open_database(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        metrics.instrument_database(db.engine)
        store = Store(db)
        store.put_job("j" * 64, "{}")
        store.dispute_counts()
        from sqlalchemy import text
        from sqlalchemy.exc import OperationalError

        with pytest.raises(OperationalError), db.engine.connect() as conn:
            conn.execute(text("SELECT * FROM no_such_table"))
    finally:
        db.close()
    reg = metrics.registry
    assert reg.get_sample_value("verde_db_query_seconds_count", {"operation": "insert"}) >= 1
    assert reg.get_sample_value("verde_db_query_seconds_count", {"operation": "select"}) >= 2
    assert reg.get_sample_value("verde_db_errors_total") == 1


WITHOUT_PROMETHEUS = """
import sys
sys.modules["prometheus_client"] = None  # as if verde[metrics] were not installed
from arbiter.provider_app import start_provider
running = start_provider(sys.argv[1], "127.0.0.1:0")
assert running.metrics is None
running.close(0)
print("served without prometheus_client", flush=True)
from cli.main import main
main(["provider", "serve", "--key", sys.argv[1], "--listen", "127.0.0.1:0",
      "--metrics", "127.0.0.1:0"])
"""


def test_services_run_without_prometheus_client_unless_metrics_are_asked(tmp_path: Path
                                                                         ) -> None:
    key = key_file(tmp_path, "plain")
    res = subprocess.run([sys.executable, "-c", WITHOUT_PROMETHEUS, str(key)],
                         check=False, capture_output=True, text=True, timeout=300)
    assert res.stdout.strip() == "served without prometheus_client", res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 3, res.stderr
    assert lines == ["verde: error: --metrics needs the prometheus_client package: "
                     "pip install 'verde[metrics]'"]


def test_a_bad_metrics_address_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--metrics: expected HOST:PORT"):
        start_provider(key_file(tmp_path, "p"), "127.0.0.1:0", metrics="9100")
