"""Every sample's inference outputs are committed (one state entry per step's batch) and
fetched with proofs; a training job starts from uploaded parameters only (the provider fills
the optimizer slots)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest
import torch

from proofs.state import StateCommitment
from verde.protocol.jobs.context import OUT, PARAM, JobContext, output_entry
from verde.protocol.jobs.errors import JobSpecError
from verde.protocol.jobs.initial import with_initial_parameters
from verde.protocol.peers import LocalPeer
from verde.protocol.peers.errors import InvalidStateEntries
from verde.protocol.peers.fetch import fetch_outputs
from verde.protocol.peers.state import StateEntries, state_to_blobs
from verde.protocol.provider.errors import MissingInitialState
from verde.protocol.provider.provider import Provider

from .conftest import key, tiny_spec


def infer_spec(**changes):
    return tiny_spec(kind="infer", optimizer={}, steps=3, batch_size=5, **changes)


def test_every_samples_outputs_are_committed_and_fetched_with_proofs() -> None:
    spec = infer_spec()
    provider = Provider(key("outputs"), "outputs")
    provider.submit(spec)
    final = provider.jobs[spec.job_id].states[spec.steps]
    assert sorted(k for k in final if k.startswith(OUT)) == [output_entry(s) for s in (1, 2, 3)]
    claim, outputs, indices = fetch_outputs(LocalPeer(provider), spec, per_request=2)
    assert claim.final_state == StateCommitment.from_tensors(final).root
    assert indices == list(range(15)) and outputs.shape == (15, 10)
    ctx = JobContext.from_spec(spec)
    for s in (1, 2, 3):  # each batch as the step computed it
        assert torch.equal(outputs[(s - 1) * 5:s * 5], final[output_entry(s)])
    # and it is the model's output on those samples (plain torch, so a tolerance)
    x = torch.from_numpy(ctx.dataset.fields["x"][:15])
    params = {n: final[PARAM + n] for n in ctx.param_names}
    with torch.no_grad():
        expected = torch.func.functional_call(ctx.module, params, (x,))
    torch.testing.assert_close(outputs, expected, rtol=1e-5, atol=1e-5)


class _TamperingPeer(LocalPeer):
    def fetch_state(self, job_id: str, names: Sequence[str]) -> StateEntries:
        entries = super().fetch_state(job_id, names)
        name = next(iter(entries.blobs))
        blob = entries.blobs[name]
        data = bytearray(blob.data)
        data[0] ^= 1
        return StateEntries(entries.payload,
                            {**entries.blobs, name: dataclasses.replace(blob, data=bytes(data))})


def test_an_altered_output_does_not_verify() -> None:
    spec = infer_spec()
    provider = Provider(key("outputs-tamper"), "tamper")
    provider.submit(spec)
    with pytest.raises(InvalidStateEntries):
        fetch_outputs(_TamperingPeer(provider), spec)
    with pytest.raises(ValueError, match="not an inference job"):
        fetch_outputs(LocalPeer(provider), tiny_spec())


def test_a_job_starts_from_uploaded_parameters_with_zeroed_slots() -> None:
    base = tiny_spec(steps=4)
    ctx = JobContext.from_spec(base)
    params = {n: torch.full_like(t, 0.01) for n, t in
              ctx.program.initial_parameters(ctx.module, 99).items()}
    spec, upload = with_initial_parameters(base, params)
    assert set(upload) == {PARAM + n for n in ctx.param_names}  # no optimizer slots travel
    provider = Provider(key("init-params"), "init")
    peer = LocalPeer(provider)
    assert peer.put_state(state_to_blobs(upload)) == spec.init["params"]
    peer.submit(spec.to_dict())
    record = provider.jobs[spec.job_id]
    assert record.step_roots[0].hex() == spec.init["root"]
    state0 = record.checkpoints.load(0)
    assert all(torch.equal(state0[k], torch.zeros_like(state0[k]))
               for k in state0 if k.startswith("opt/"))
    # the same run as from the full state uploaded by hand
    full = Provider(key("init-full"), "full")
    full.put_state(JobContext.from_spec(spec).initial_state(params))
    full.submit(spec.with_changes(init={"root": spec.init["root"]}))
    assert record.step_roots == full.jobs[spec.with_changes(init={"root": spec.init["root"]})
                                     .job_id].step_roots


def test_missing_or_other_parameters_are_refused_at_submission() -> None:
    base = tiny_spec(steps=2)
    ctx = JobContext.from_spec(base)
    params = ctx.program.initial_parameters(ctx.module, 5)
    spec, upload = with_initial_parameters(base, params)
    with pytest.raises(MissingInitialState, match="were not uploaded"):
        Provider(key("init-missing"), "missing").submit(spec)
    other = {k: v + 1 for k, v in upload.items()}
    provider = Provider(key("init-other"), "other")
    root = provider.put_state(other)
    forged = spec.with_changes(init={"root": spec.init["root"], "params": root})
    with pytest.raises(JobSpecError, match="is not the job's"):
        provider.submit(forged)
