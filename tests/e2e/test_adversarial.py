"""Disputes nobody can game (issue 15), over real ``verde`` processes on 127.0.0.1.

One set of processes for the module: an honest provider, a cheater (corrupts an operator), a
provider that withholds a dispute answer, a "victim" whose vouched address was taken over by
the cheater (``--advertise`` the cheater's address), and an arbiter with short deadlines.

The framing and front-running scenarios of the issue end with the honest provider never
losing, and the client that opens the dispute itself -- ``verde delegate``, after a cheater
opened it first with a made-up address -- gets the honest verdict. Each check of an endpoint
record has its negative case: an unknown key, another key answering at the address, an
expired or forged record.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from arbiter.arbiter_client import ArbiterClient
from arbiter.provider_client import GrpcProviderPeer
from cli import exit_codes
from proofs import SigningKey
from tests.e2e.procs import Cluster, job_spec, job_toml, run_verde
from verde.protocol.peers.endpoints import sign_endpoint

CHEAT = "compute=corrupt_op,step=3"
WITHHOLD = "compute=corrupt_op,step=3,answer=refuse"
DEADLINE_S = 8
DEAD = "127.0.0.1:1"  # nothing listens there


def _result(address: str, spec: dict[str, Any]) -> str:
    with GrpcProviderPeer(address) as peer:
        job = peer.submit(spec)
        peer.wait(job, timeout_s=600)
        return json.dumps(peer.result(job).to_json(), sort_keys=True)


def _record(address: str) -> str:
    with GrpcProviderPeer(address) as peer:
        return json.dumps(peer.endpoint().to_json(), sort_keys=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    cluster = Cluster(tmp_path_factory.mktemp("adversarial"))
    db = cluster.workdir / "arb.db"
    try:
        honest, cheat, withhold, arb = cluster.start_many([
            ("honest", cluster.provider_argv("honest")),
            ("cheat", cluster.provider_argv("cheat", CHEAT)),
            ("withhold", cluster.provider_argv("withhold", WITHHOLD)),
            ("arb", cluster.arbiter_argv("arb", f"sqlite:///{db}", "--workers", "6",
                                         "--deadline", str(DEADLINE_S), "--lease", "60")),
        ])
        # The victim computes honestly but the address it vouches for is the cheater's.
        (victim,) = cluster.start_many([
            ("victim", [*cluster.provider_argv("victim"), "--advertise", cheat.address])])
        client = ArbiterClient(arb.address)
        yield {"cluster": cluster, "db": db, "honest": honest, "cheat": cheat,
               "withhold": withhold, "victim": victim, "arb": arb, "client": client}
        client.close()
    finally:
        cluster.stop_all()


def _lost(world: dict[str, Any], name: str) -> int:
    key = world["cluster"].public_key(name)
    with sqlite3.connect(world["db"]) as conn:
        row = conn.execute("SELECT disputes_lost FROM providers WHERE public_key = ?",
                           (key,)).fetchone()
    return int(row[0]) if row else 0


def _wait(world: dict[str, Any], did: str) -> Any:
    return world["client"].wait(did, timeout_s=600, poll_s=0.3)


def _verdict(status: Any) -> dict[str, Any]:
    assert status.status == "decided", (status.status, status.error)
    return dict(json.loads(status.verdict_json))


def test_framing_with_a_dead_address_is_no_loss_and_the_client_still_wins(world) -> None:  # type: ignore[no-untyped-def]
    spec = job_spec(seed=41, steps=6)
    honest, cheat = world["honest"].address, world["cheat"].address
    res = {n: _result(a, spec) for n, a in (("honest", honest), ("cheat", cheat))}
    client: ArbiterClient = world["client"]
    framed = client.open_dispute(spec, [(cheat, res["cheat"]), (DEAD, res["honest"])])
    st = _wait(world, framed)
    assert st.status == "unreachable", (st.status, st.error, st.verdict_json)
    assert "party b" in st.error and "could not be reached" in st.error
    assert _lost(world, "honest") == 0
    # The client opens the same dispute with the records its providers gave it: resumed, and
    # decided for the honest provider.
    again = client.open_dispute(spec, [(cheat, res["cheat"], _record(cheat)),
                                       (honest, res["honest"], _record(honest))])
    assert again == framed
    verdict = _verdict(_wait(world, again))
    assert verdict["winner"] == "b" and verdict["losers"] == ["a"], verdict
    assert verdict["keys"]["b"] == world["cluster"].public_key("honest")
    assert _lost(world, "honest") == 0


def test_front_running_cheater_cannot_preempt_the_clients_delegation(world) -> None:  # type: ignore[no-untyped-def]
    """The cheater opens the dispute first, naming a dead address for the honest provider;
    ``verde delegate`` then opens it itself and gets the honest result."""
    cluster: Cluster = world["cluster"]
    seed = 42
    spec = job_spec(seed=seed, steps=6)
    honest, cheat = world["honest"].address, world["cheat"].address
    res = {n: _result(a, spec) for n, a in (("honest", honest), ("cheat", cheat))}
    client: ArbiterClient = world["client"]
    # Both orders: the client's run names the parties in the order of its --provider flags.
    first = [client.open_dispute(spec, [(cheat, res["cheat"]), (DEAD, res["honest"])]),
             client.open_dispute(spec, [(DEAD, res["honest"]), (cheat, res["cheat"])])]
    job = job_toml(cluster.workdir / "front.toml", seed=seed, steps=6)
    out = run_verde(["delegate", str(job), "--provider", honest, "--provider", cheat,
                     "--arbiter", world["arb"].address, "--json"])
    assert out.returncode == exit_codes.OK, out.stderr[-2000:]
    doc = json.loads(out.stdout)
    assert doc["honest_providers"] == [honest] and doc["dishonest_providers"] == [cheat]
    assert doc["result"]["signer"] == cluster.public_key("honest")
    assert doc["disputes"][0]["dispute_id"] in first
    assert _lost(world, "honest") == 0


def test_a_hijacked_address_is_unreachable_not_a_loss(world) -> None:  # type: ignore[no-untyped-def]
    """The victim vouched for an address the cheater now holds: the cheater answers there,
    with its own key. The challenge fails; the victim does not lose."""
    spec = job_spec(seed=43, steps=6)
    victim, cheat = world["victim"].address, world["cheat"].address
    res = {n: _result(a, spec) for n, a in (("victim", victim), ("cheat", cheat))}
    record = _record(victim)
    assert json.loads(record)["payload"]["address"] == cheat
    did = world["client"].open_dispute(spec, [(victim, res["victim"], record),
                                              (cheat, res["cheat"], _record(cheat))])
    st = _wait(world, did)
    assert st.status == "unreachable", (st.status, st.error)
    assert "party a" in st.error and "holds key" in st.error, st.error
    assert _lost(world, "victim") == 0


def test_silence_at_a_vouched_address_counts_against_the_silent_party(world) -> None:  # type: ignore[no-untyped-def]
    """The positive side: a party that proves its key but withholds an answer loses, and the
    timeout event names the record it was silent at."""
    spec = job_spec(seed=44, steps=6)
    honest, withhold = world["honest"].address, world["withhold"].address
    res = {n: _result(a, spec) for n, a in (("honest", honest), ("withhold", withhold))}
    did = world["client"].open_dispute(spec, [(withhold, res["withhold"]),
                                              (honest, res["honest"])])
    verdict = _verdict(_wait(world, did))
    assert verdict["losers"] == ["a"] and verdict["winner"] == "b", verdict
    assert verdict["faults"]["a"]["code"] == "missed_deadline", verdict["faults"]
    with sqlite3.connect(world["db"]) as conn:
        rows = conn.execute("SELECT payload_json FROM dispute_events WHERE dispute_id = ? "
                            "AND kind = 'timeout'", (did,)).fetchall()
    assert rows, "no timeout event"
    event = json.loads(rows[0][0])
    assert event["endpoint"]["payload"]["address"] == withhold
    assert event["endpoint"]["signer"] == world["cluster"].public_key("withhold")


@pytest.mark.parametrize("case", ["unknown_key", "expired", "forged"])
def test_bad_endpoint_records_are_refused_at_open(world, case: str) -> None:  # type: ignore[no-untyped-def]
    cluster: Cluster = world["cluster"]
    spec = job_spec(seed=41, steps=6)
    honest, cheat = world["honest"].address, world["cheat"].address
    res = {n: _result(a, spec) for n, a in (("honest", honest), ("cheat", cheat))}
    honest_key = SigningKey.load(cluster.key("honest"))
    if case == "unknown_key":
        doc = sign_endpoint(SigningKey.generate(), honest).to_json()
    elif case == "expired":
        doc = sign_endpoint(honest_key, honest, ttl_s=60, now=time.time() - 7200).to_json()
    else:
        doc = sign_endpoint(honest_key, honest).to_json()
        doc["payload"]["address"] = DEAD
    with pytest.raises(Exception) as info:
        world["client"].open_dispute(spec, [(cheat, res["cheat"]),
                                            (honest, res["honest"], json.dumps(doc))])
    assert getattr(info.value, "code", None) is grpc.StatusCode.INVALID_ARGUMENT, info.value
    assert {"unknown_key": "not by the party", "expired": "expired",
            "forged": "endpoint record"}[case] in str(info.value)
