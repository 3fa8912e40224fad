"""State exchange in process: upload a state 0, run a job from it, fetch proven final entries."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from proofs.state import StateCommitment
from tests.verde.protocol.init_jobs import init_spec, perturbed_state
from verde.protocol.dispute.driver import run_dispute
from verde.protocol.dispute.state import DisputeState
from verde.protocol.faults import CheatingProvider, FaultPlan
from verde.protocol.jobs.context import GRAD, PARAM, RNG, JobContext
from verde.protocol.jobs.errors import JobSpecError
from verde.protocol.peers import LocalPeer, StateExchangePeer
from verde.protocol.peers.errors import InvalidStateEntries, StateRootMismatch
from verde.protocol.peers.fetch import fetch_final_state
from verde.protocol.peers.messages import TensorBlob
from verde.protocol.peers.result import InvalidResult, check_result
from verde.protocol.peers.state import (
    StateEntries,
    state_root_hex,
    state_to_blobs,
    verify_state_entries,
)
from verde.protocol.provider.errors import MissingInitialState, UnknownQueryError
from verde.protocol.provider.provider import Provider
from verde.protocol.provider.uploads import StateStore

from .conftest import key


@pytest.fixture(scope="module")
def state0() -> dict[str, torch.Tensor]:
    return perturbed_state(0.5)


@pytest.fixture(scope="module")
def ran(state0) -> tuple[Provider, LocalPeer]:  # type: ignore[no-untyped-def]
    provider = Provider(key("state-x"), "state-x")
    peer = LocalPeer(provider)
    assert peer.put_state(state_to_blobs(state0)) == state_root_hex(state0)
    peer.submit(init_spec(state0).to_dict())
    return provider, peer


def test_init_job_runs_from_the_uploaded_state_and_final_entries_verify(ran, state0) -> None:  # type: ignore[no-untyped-def]
    provider, peer = ran
    assert isinstance(peer, StateExchangePeer)
    spec = init_spec(state0)
    record = provider.jobs[spec.job_id]
    assert record.step_roots[0] == spec.init_root  # state 0 is the upload, not the seeded init
    names = [n for n in state0 if n.startswith(PARAM)]
    ctx = JobContext.from_spec(spec)
    claim, tensors = fetch_final_state(peer, spec.job_id, spec.steps, names,
                                       structure=ctx.state_structure())
    final = provider.state_at(record, spec.steps)
    assert claim.final_state == StateCommitment.from_tensors(final).root
    assert list(tensors) == names
    assert all(torch.equal(tensors[n], final[n]) for n in names)
    assert not all(torch.equal(tensors[n], state0[n]) for n in names)  # it trained
    assert peer.bytes_received > sum(t.numel() * 4 for t in tensors.values())


def test_two_providers_agree_on_an_init_job(ran, state0) -> None:  # type: ignore[no-untyped-def]
    provider, _ = ran
    spec = init_spec(state0)
    other = Provider(key("state-z"))
    other.put_state(state0)
    other.submit(spec)
    assert other.result(spec.job_id).payload == provider.result(spec.job_id).payload
    seeded = Provider(key("state-y"))
    plain = spec.with_changes(init=None)
    seeded.submit(plain)
    assert seeded.result(plain.job_id).payload["final_state"] != \
        provider.result(spec.job_id).payload["final_state"]


def test_submit_before_upload_fails_at_submit(state0) -> None:  # type: ignore[no-untyped-def]
    provider = Provider(key("state-missing"))
    spec = init_spec(state0)
    with pytest.raises(MissingInitialState,
                       match=f"job {spec.job_id}: starts from state {spec.init['root']}, which "
                             "was not uploaded to this provider"):
        provider.submit(spec)
    assert spec.job_id not in provider.jobs
    provider.put_state(state0)  # once uploaded, the same job runs
    provider.submit(spec)
    assert spec.job_id in provider.jobs


def test_uploaded_state_with_the_wrong_structure_is_refused(state0) -> None:  # type: ignore[no-untyped-def]
    provider = Provider(key("state-wrong"))
    missing = {n: t for n, t in state0.items() if n != RNG}
    provider.put_state(missing)
    with pytest.raises(JobSpecError, match=r"missing entries \['rng'\]"):
        provider.submit(init_spec(missing))
    name = next(n for n in state0 if n.startswith(PARAM))
    reshaped = {**state0, name: state0[name].reshape(-1)}
    provider.put_state(reshaped)
    with pytest.raises(JobSpecError, match=name):
        provider.submit(init_spec(reshaped))
    wrong_rng = {**state0, RNG: torch.tensor([5, 1])}
    provider.put_state(wrong_rng)
    with pytest.raises(JobSpecError, match="rng"):
        provider.submit(init_spec(wrong_rng))
    assert not provider.jobs


def test_accepted_state_survives_eviction(state0) -> None:  # type: ignore[no-untyped-def]
    provider = Provider(key("state-evict"), uploads=StateStore(max_states=1))
    spec = init_spec(state0)
    provider.put_state(state0)
    provider.accept(spec)
    provider.put_state(perturbed_state(0.25))  # evicts state0 from the store
    assert spec.init["root"] not in provider.uploads
    provider.run(spec)
    assert provider.jobs[spec.job_id].step_roots[0] == spec.init_root
    with pytest.raises(MissingInitialState):  # nothing pinned any more, nothing stored
        provider.accept(spec)


def _entries(ran, state0, names):  # type: ignore[no-untyped-def]
    provider, peer = ran
    spec = init_spec(state0)
    return spec, check_result(provider.result(spec.job_id), spec.job_id, spec.steps), \
        peer.fetch_state(spec.job_id, names)


def test_tampered_entries_do_not_verify(ran, state0) -> None:  # type: ignore[no-untyped-def]
    names = [n for n in state0 if n.startswith(PARAM)][:2]
    spec, claim, good = _entries(ran, state0, names)
    root = claim.final_state
    verify_state_entries(good, root, names, job_id=spec.job_id)
    a, b = names

    blob = good.blobs[a]
    flipped = bytes([blob.data[0] ^ 1]) + blob.data[1:]
    bad = StateEntries(good.payload, {**good.blobs, a: TensorBlob(blob.dtype, blob.shape, flipped)})
    with pytest.raises(InvalidStateEntries, match="does not have the digest"):
        verify_state_entries(bad, root, names)

    bad = StateEntries(good.payload, {**good.blobs, a: TensorBlob(blob.dtype, blob.shape,
                                                                  blob.data[:-4])})
    with pytest.raises(InvalidStateEntries, match="do not fit"):
        verify_state_entries(bad, root, names)

    swapped = {**good.blobs, a: good.blobs[b], b: good.blobs[a]}
    with pytest.raises(InvalidStateEntries, match="digest"):
        verify_state_entries(StateEntries(good.payload, swapped), root, names)

    entries = [dict(e) for e in good.payload["entries"]]
    proof = dict(entries[0]["proof"])
    proof["siblings"] = ["00" * 32, *proof["siblings"][1:]]
    entries[0]["proof"] = proof
    with pytest.raises(InvalidStateEntries, match="not proven"):
        verify_state_entries(StateEntries({**good.payload, "entries": entries}, good.blobs),
                             root, names)

    entries = [dict(e) for e in good.payload["entries"]]
    entries[0]["digest"] = entries[1]["digest"]  # claim b's digest for a: proof fails
    with pytest.raises(InvalidStateEntries, match="not proven"):
        verify_state_entries(StateEntries({**good.payload, "entries": entries}, good.blobs),
                             root, names)

    with pytest.raises(InvalidStateEntries, match="signed result commits to"):
        verify_state_entries(good, spec.init_root, names)  # type: ignore[arg-type]
    with pytest.raises(InvalidStateEntries, match="for job"):
        verify_state_entries(good, root, names, job_id="0" * 64)
    with pytest.raises(InvalidStateEntries, match="missing"):
        verify_state_entries(good, root, [*names, RNG])
    with pytest.raises(InvalidStateEntries, match="extra"):
        verify_state_entries(good, root, [a])
    only_a = StateEntries({**good.payload, "entries": good.payload["entries"][:1]}, good.blobs)
    with pytest.raises(InvalidStateEntries, match="missing"):
        verify_state_entries(only_a, root, names)
    with pytest.raises(InvalidStateEntries, match="payload has fields"):
        verify_state_entries(StateEntries({"entries": []}, {}), root, names)
    ctx = JobContext.from_spec(spec)
    structure = {**ctx.state_structure(), a: ((1, 2), torch.float32)}
    with pytest.raises(InvalidStateEntries, match="the job's state has"):
        verify_state_entries(good, root, names, structure=structure)
    with pytest.raises(ValueError, match="repeat"):
        verify_state_entries(good, root, [a, a])


def test_fetch_errors_unknown_job_and_names(ran, state0) -> None:  # type: ignore[no-untyped-def]
    provider, peer = ran
    spec = init_spec(state0)
    with pytest.raises(UnknownQueryError, match="has not run job"):
        peer.fetch_state("0" * 64, [RNG])
    with pytest.raises(UnknownQueryError, match=r"no entries \['param/nope'\]"):
        peer.fetch_state(spec.job_id, [RNG, "param/nope"])
    with pytest.raises(UnknownQueryError, match="non-empty list"):
        provider.fetch_state(spec.job_id, [])
    with pytest.raises(UnknownQueryError, match="distinct"):
        provider.fetch_state(spec.job_id, [RNG, RNG])


class _Misfiling(Provider):
    """Acknowledges every upload under the wrong root."""

    def put_state(self, state):  # type: ignore[no-untyped-def]
        super().put_state(state)
        return "ab" * 32


def test_peer_put_state_checks_the_acknowledged_root(state0) -> None:  # type: ignore[no-untyped-def]
    peer = LocalPeer(_Misfiling(key("state-misfile")))
    with pytest.raises(StateRootMismatch, match=state_root_hex(state0)):
        peer.put_state(state_to_blobs(state0))


def test_fetch_final_state_refuses_a_result_signed_by_someone_else(ran, state0) -> None:  # type: ignore[no-untyped-def]
    provider, _ = ran
    spec = init_spec(state0)
    impostor = Provider(key("state-impostor"))
    impostor.jobs[spec.job_id] = dataclasses.replace(provider.jobs[spec.job_id])
    with pytest.raises(InvalidResult, match="not by the provider asked"):
        fetch_final_state(LocalPeer(impostor), spec.job_id, spec.steps, [RNG])


def test_gradient_job_from_an_uploaded_state(state0) -> None:  # type: ignore[no-untyped-def]
    kind = {"kind": "gradient", "optimizer": {}, "samples": [3, 1, 4, 1, 5], "steps": 1,
            "batch_size": 5, "checkpoint_interval": 1}
    start = perturbed_state(0.5, **kind)
    spec = init_spec(start, **kind)
    peer = LocalPeer(Provider(key("state-grad")))
    peer.put_state(state_to_blobs(start))
    peer.submit(spec.to_dict())
    names = sorted(n for n in start if n.startswith(GRAD))
    _, grads = fetch_final_state(peer, spec.job_id, 1, names,
                                 structure=JobContext.from_spec(spec).state_structure())
    assert names and all(g.abs().sum() > 0 for g in grads.values())


def test_dispute_over_an_init_job_reaches_the_uploaded_state(state0) -> None:  # type: ignore[no-untyped-def]
    spec = init_spec(state0)
    honest = Provider(key("state-d-honest"))
    cheater = CheatingProvider(key("state-d-cheat"), plan=FaultPlan("corrupt_op", step=1, node=2))
    for p in (honest, cheater):
        p.put_state(state0)
        p.submit(spec)
    peers = {"a": LocalPeer(cheater), "b": LocalPeer(honest)}
    state = DisputeState(spec, peers["a"].result(spec.job_id), peers["b"].result(spec.job_id))
    verdict = run_dispute(state, peers)
    assert verdict.winner == "b" and verdict.reason == "recomputed_operator"


def test_dispute_over_a_gradient_job_from_an_uploaded_state() -> None:
    kind = {"kind": "gradient", "optimizer": {}, "samples": [7, 2, 9], "steps": 1,
            "batch_size": 3, "checkpoint_interval": 1}
    start = perturbed_state(2.0, **kind)
    spec = init_spec(start, **kind)
    honest = Provider(key("state-g-honest"))
    cheater = CheatingProvider(key("state-g-cheat"), plan=FaultPlan("corrupt_op", step=1, node=4))
    for p in (honest, cheater):
        p.put_state(start)
        p.submit(spec)
    peers = {"a": LocalPeer(honest), "b": LocalPeer(cheater)}
    assert peers["a"].result(spec.job_id).payload != peers["b"].result(spec.job_id).payload
    state = DisputeState(spec, peers["a"].result(spec.job_id), peers["b"].result(spec.job_id))
    verdict = run_dispute(state, peers)
    assert verdict.winner == "a" and verdict.reason == "recomputed_operator"
