"""Providers that scale out: a job fixes its gradient partitions, not the worker count, so a
provider computing them on 1, 2 or 4 worker processes commits to the same states, and an honest
4-worker provider wins a dispute against a 1-worker cheater."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from proofs import SigningKey
from proofs.state import StateCommitment
from tests.verde.protocol.test_dropout import DROPOUT_OP
from tests.verde.protocol.test_dropout import gpt_doc as dropout_doc
from verde.protocol.dispute.driver import run_dispute
from verde.protocol.dispute.state import DisputeState
from verde.protocol.faults import CheatingProvider, FaultPlan
from verde.protocol.graph.execution import (
    execution_context,
    expected_structure,
    partition_draws,
    run_partitions,
    run_step,
    run_step_from_partitions,
    step_stream,
    trace_step,
)
from verde.protocol.jobs.context import JobContext
from verde.protocol.jobs.errors import JobSpecError
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers import LocalPeer
from verde.protocol.provider.partition_worker import FrameError, answer, read_frame, write_frame
from verde.protocol.provider.provider import Provider
from verde.protocol.provider.workers import PartitionWorkers, ProcessLink, WorkerError


def gpt_doc(**changes: Any) -> dict[str, Any]:
    """A GPT with dropout (test_dropout's job) whose steps are cut into 4 partitions:
    partitions must draw exactly what the sequential step draws."""
    return dropout_doc(**{"steps": 3, "batch_size": 8, "partitions": 4, **changes})


def key(label: str) -> SigningKey:
    return SigningKey.from_seed(label.encode().ljust(32, b"\0")[:32])


def root(state: dict[str, torch.Tensor]) -> bytes:
    return StateCommitment.from_tensors(state).root


# --- the spec ------------------------------------------------------------------------------


def test_one_partition_is_todays_job_and_more_are_another_job() -> None:
    plain = gpt_doc()
    del plain["partitions"]
    assert JobSpec.from_mapping(gpt_doc(partitions=1)).job_id == JobSpec.from_mapping(plain).job_id
    assert "partitions" not in JobSpec.from_mapping(plain).to_dict()
    four = JobSpec.from_mapping(gpt_doc())
    assert four.to_dict()["partitions"] == 4 and four.job_id != JobSpec.from_mapping(plain).job_id


@pytest.mark.parametrize(("value", "message"), [
    (0, "partitions must be an integer in [1, batch_size = 8], got 0"),
    (16, "partitions must be an integer in [1, batch_size = 8], got 16"),
    (True, "partitions must be an integer"),
    ("2", "partitions must be an integer"),
    (3, "partitions 3 does not divide batch_size 8"),
])  # fmt: skip
def test_bad_partitions_are_one_clear_error(value: object, message: str) -> None:
    with pytest.raises(JobSpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        JobSpec.from_mapping(gpt_doc(partitions=value))


def test_only_training_jobs_take_partitions() -> None:
    with pytest.raises(JobSpecError, match="only training jobs take partitions, not infer"):
        JobSpec.from_mapping(gpt_doc(kind="infer", optimizer={}))


@pytest.mark.parametrize("workers", [0, -1, True, "2", 1.5, 257])
def test_bad_worker_counts_are_one_clear_error(workers: object) -> None:
    with pytest.raises(ValueError, match=r"workers must be an integer in \[1, 256\]"):
        Provider(key("p"), "p", workers=workers)  # type: ignore[arg-type]


# --- the step, in one process --------------------------------------------------------------


def test_partitions_computed_apart_and_summed_in_order_give_the_traced_steps_bits() -> None:
    ctx = JobContext.from_spec(JobSpec.from_mapping(gpt_doc()))
    state = ctx.initial_state()
    graph = trace_step(ctx, state, 2)
    assert [n.structure() for n in graph.nodes] == expected_structure(ctx, 2)
    draws = [n for n in graph.nodes if n.op == DROPOUT_OP]
    assert len(draws) == 4 * 4  # four dropout layers in each of the four partitions
    assert partition_draws(ctx) > 0
    assert draws[4].args["rng"]["offset"] == partition_draws(ctx)  # partition 1 starts there
    sequential = run_step(ctx, state, 2)
    assert root(sequential) == root(graph.state)
    for split in ([range(4)], [range(1), range(1, 4)], [range(2), range(2, 4)],
                  [range(p, p + 1) for p in range(4)]):
        parts = [g for r in split for g in run_partitions(ctx, state, 2, r)]
        assert root(run_step_from_partitions(ctx, state, 2, parts)) == root(sequential)
    # a worker drawing partition 1's masks from the start of the stream would differ
    right = run_partitions(ctx, state, 2, range(1, 2))[0]
    with execution_context(ctx.spec.backend, stream=step_stream(ctx.spec.seed, 2)):
        wrong = ctx.partition_gradients(ctx.prepare_leaves(state), ctx.batch(2), range(1, 2))[0]
    assert not all(torch.equal(right[n], wrong[n]) for n in ctx.param_names)


def test_partition_requests_outside_the_job_are_refused() -> None:
    ctx = JobContext.from_spec(JobSpec.from_mapping(gpt_doc()))
    state = ctx.initial_state()
    for bad in (range(0), range(3, 5), range(0, 4, 2)):
        with pytest.raises(ValueError, match="not a contiguous run of the job's 4 partitions"):
            run_partitions(ctx, state, 1, bad)
    with pytest.raises(ValueError, match="expected the gradients of 4 partitions"):
        run_step_from_partitions(ctx, state, 1, run_partitions(ctx, state, 1, range(2)))


def test_frames_round_trip_and_broken_ones_are_refused() -> None:
    buf = io.BytesIO()
    write_frame(buf, {"step": 3}, {"a": torch.arange(6.0).reshape(2, 3)})
    buf.seek(0)
    frame = read_frame(buf)
    assert frame is not None and frame[0] == {"step": 3}
    assert torch.equal(frame[1]["a"], torch.arange(6.0).reshape(2, 3))
    assert read_frame(buf) is None  # clean end
    data = buf.getvalue()
    for broken in (data[:5], data[:-3], data[:16] + b"[1]" + data[19:]):
        with pytest.raises(FrameError):
            read_frame(io.BytesIO(broken))
    header, tensors = answer({"spec": {"program": "nope"}, "step": 1, "first": 0, "stop": 1}, {})
    assert "nope" in header["error"] and tensors == {}


def test_a_worker_imports_the_module_of_a_registered_program_or_says_why_not() -> None:
    doc = {"program": "scaleout-wide-mlp", "dataset": {"name": "digits"},
           "optimizer": {"name": "sgd"}, "steps": 2, "batch_size": 8, "seed": 1,
           "partitions": 2}  # fmt: skip
    header = {"spec": doc, "step": 1, "first": 1, "stop": 2}
    from_main, _ = answer({**header, "program_module": "__main__"}, {})
    assert "defined in the provider's __main__ script" in from_main["error"]
    module = "tests.verde.protocol.scaleout_program"
    # the first request imports the module; it sent no parameters, and the answer says so
    missing, _ = answer({**header, "program_module": module}, {})
    assert "param/0.weight" in missing["error"]
    reply, grads = answer({**header, "program_module": module}, initial_params(doc))
    assert reply == {"ok": True}
    assert sorted(grads) == ["1/0.bias", "1/0.weight", "1/2.bias", "1/2.weight"]


def initial_params(doc: dict[str, Any]) -> dict[str, torch.Tensor]:
    """State 0 of ``doc``, built here after the worker side imported its program."""
    return JobContext.from_spec(JobSpec.from_mapping(doc)).initial_state()


# --- real worker processes -----------------------------------------------------------------


@pytest.fixture(scope="module")
def spec() -> JobSpec:
    return JobSpec.from_mapping(gpt_doc())


@pytest.fixture(scope="module")
def four_workers(spec: JobSpec) -> Iterator[Provider]:
    # keep_values_below=0: dispute answers replay steps from checkpoints (on the workers)
    provider = Provider(key("honest-4"), "honest-4", workers=4, keep_values_below=0)
    provider.submit(spec)
    yield provider
    provider.close()


@pytest.mark.slow
def test_one_two_and_four_workers_commit_to_the_same_states(spec: JobSpec,
                                                             four_workers: Provider) -> None:
    roots = {}
    for workers in (1, 2):
        provider = Provider(key(f"w{workers}"), f"w{workers}", workers=workers)
        try:
            provider.submit(spec)
        finally:
            provider.close()
        roots[workers] = provider.jobs[spec.job_id].step_roots
    roots[4] = four_workers.jobs[spec.job_id].step_roots
    pool = four_workers._partition_workers
    assert pool is not None and len(pool._links) == 4  # the steps really ran on 4 processes
    assert all(isinstance(p, ProcessLink) and p._proc.poll() is None for p in pool._links)
    assert roots[1] == roots[2] == roots[4] and len(roots[1]) == spec.steps + 1


@pytest.mark.slow
def test_a_four_worker_honest_provider_wins_against_a_one_worker_cheater(
        spec: JobSpec, four_workers: Provider) -> None:
    structure = expected_structure(JobContext.from_spec(spec), 2)
    masks = [i for i, node in enumerate(structure) if node["op"] == DROPOUT_OP]
    # the first dropout mask of the last partition (computed by the honest side's 4th worker)
    cheater = CheatingProvider(key("cheater"), "cheater", keep_values_below=0,
                               plan=FaultPlan("corrupt_op", step=2, node=masks[12],
                                              op=DROPOUT_OP))  # fmt: skip
    cheater.submit(spec)
    peers = {"a": LocalPeer(cheater), "b": LocalPeer(four_workers)}
    state = DisputeState(spec, peers["a"].result(spec.job_id), peers["b"].result(spec.job_id))
    verdict = run_dispute(state, peers)
    assert verdict.winner == "b" and verdict.losers == ("a",)
    assert verdict.reason == "recomputed_operator"
    assert verdict.ruling["op"] == DROPOUT_OP and verdict.ruling["step"] == 2


@pytest.mark.slow
def test_a_dead_worker_is_a_clear_error_and_the_next_step_starts_fresh(spec: JobSpec) -> None:
    ctx = JobContext.from_spec(spec)
    state = ctx.initial_state()
    expected = root(run_step(ctx, state, 1))
    with PartitionWorkers(2) as pool:
        assert root(pool.run_step(ctx, state, 1)) == expected
        dead = pool._links[1]
        assert isinstance(dead, ProcessLink)
        dead._proc.kill()
        dead._proc.wait()
        with pytest.raises(WorkerError, match=r"a worker of step 1 of job .* exited"):
            pool.run_step(ctx, state, 1)
        assert pool._links == []
        assert root(pool.run_step(ctx, state, 1)) == expected
