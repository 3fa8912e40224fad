"""Generate jobs: bad specs get one clear error naming the input, every generation cheat loses
its dispute (from either side), honest providers decoding differently agree, and admission
accepts the jobs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from verde.protocol.dispute.driver import run_dispute
from verde.protocol.dispute.errors import NoDisputeError
from verde.protocol.dispute.state import DisputeState
from verde.protocol.faults import CheatingProvider, FaultPlan
from verde.protocol.faults.plan import GENERATE_FAULTS
from verde.protocol.graph.admission import admit_job
from verde.protocol.jobs.context import JobContext
from verde.protocol.jobs.errors import JobSpecError
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers import LocalPeer
from verde.protocol.peers.result import check_result
from verde.protocol.provider.provider import Provider

from .conftest import key
from .generate_jobs import (
    FULL,
    GREEDY,
    PROMPT_LENGTHS,
    TOP_P,
    VOCAB,
    generate_doc,
    generate_spec,
    prompt_arrays,
    write_prompts,
)

# --- 4. spec validation ------------------------------------------------------------------------


def test_a_valid_generate_spec_fills_in_steps_batch_size_and_prompt_lengths(tmp: Path) -> None:
    spec = generate_spec(tmp, "gpt2", TOP_P)
    assert spec.steps == len(PROMPT_LENGTHS) * 4 and spec.batch_size == 1
    assert spec.generation["prompt_lengths"] == list(PROMPT_LENGTHS)
    assert spec.generation["top_k"] == 0 and spec.generation["stop_tokens"] == []
    listed = generate_doc(tmp, "gpt2", {**TOP_P, "prompt_lengths": list(PROMPT_LENGTHS)},
                          steps=32, batch_size=1)
    assert JobSpec.from_mapping(listed).job_id == spec.job_id  # the same job, spelled out


@pytest.mark.parametrize(("changes", "generation", "message"), [
    ({"steps": 31}, None, r"one step per prompt and position \(32\), got steps = 31"),
    ({"batch_size": 2}, None, r"batch_size is 1"),
    ({}, {"max_tokens": 3}, r"generation: unknown key\(s\) \['max_tokens'\]"),
    ({}, {"top_p": 0}, r"generation\.top_p must be a number in \(0\.0, 1\.0\], got 0"),
    ({}, {"top_p": 1.5}, r"generation\.top_p must be a number in \(0\.0, 1\.0\], got 1\.5"),
    ({}, {"temperature": -0.5}, r"generation\.temperature must be a number .* got -0\.5"),
    ({}, {"max_new_tokens": 0}, r"generation\.max_new_tokens must be an integer"),
    ({}, {"stop_tokens": [-1]}, r"generation\.stop_tokens must be a list"),
    ({}, {"prompt_lengths": [3, 7, 5, 5, 2, 5, 7, 5]},
     r"generation\.prompt_lengths \[3, 7, 5, 5, 2, 5, 7, 5\] differ from the dataset's"),
    ({"kind": "train", "optimizer": {"name": "sgd", "lr": 0.1}, "steps": 2, "batch_size": 2},
     {"max_new_tokens": 2}, r"only generate jobs take a generation table, not train jobs"),
], ids=["steps", "batch-size", "unknown-key", "top-p-0", "top-p-above-1", "temperature",
        "max-new-tokens", "stop-tokens", "prompt-lengths", "train-with-generation"])
def test_a_bad_generate_spec_is_refused_naming_the_input(
        tmp: Path, changes: dict[str, Any], generation: dict[str, Any] | None,
        message: str) -> None:
    doc = generate_doc(tmp, "gpt2", {**GREEDY, **(generation or {})}, **changes)
    with pytest.raises(JobSpecError, match=message):
        JobSpec.from_mapping(doc)


def test_a_generate_job_needs_a_causal_lm(tmp: Path) -> None:
    doc = generate_doc(tmp, "gpt2")
    doc["config"] = {**doc["config"], "task": "sequence-classification", "num_labels": 3}
    arrays = prompt_arrays()
    doc["dataset"] = write_prompts(tmp, {**arrays, "labels": arrays["input_ids"][:, 0] % 3},
                                   "labelled")
    with pytest.raises(JobSpecError, match="a generate job needs task causal-lm, not "
                                           "sequence-classification"):
        admit_job(JobSpec.from_mapping(doc))
    with pytest.raises(JobSpecError, match=r"program 'mlp' supports kinds .*, not 'generate'"):
        JobSpec.from_mapping({**doc, "program": "mlp", "config": {}})


def test_the_gpt_program_needs_context_for_prompt_and_new_tokens(tmp: Path) -> None:
    longest = max(PROMPT_LENGTHS) + GREEDY["max_new_tokens"] - 1
    ok = generate_spec(tmp, "gpt", config={**generate_doc(tmp, "gpt")["config"],
                                           "context": longest})
    assert JobContext.from_spec(ok).generation.prompt_lengths == PROMPT_LENGTHS
    for context in (longest - 1, 0):
        spec = generate_spec(tmp, "gpt", config={**generate_doc(tmp, "gpt")["config"],
                                                 "context": context})
        with pytest.raises(JobSpecError, match=rf"needs config context >= the longest prompt "
                                               rf"plus its new tokens \({longest}\), got "
                                               rf"{context}"):
            JobContext.from_spec(spec)


def test_prompts_must_be_right_padded(tmp: Path) -> None:
    arrays = prompt_arrays()
    arrays["attention_mask"][2] = np.roll(arrays["attention_mask"][2], 1)  # left-padded row
    doc = generate_doc(tmp, "gpt2")
    doc["dataset"] = write_prompts(tmp, arrays, "left-padded")
    with pytest.raises(JobSpecError, match="prompt 2's attention_mask is not a run of ones "
                                           "then zeros"):
        JobSpec.from_mapping(doc)
    arrays["attention_mask"][4] = 0
    arrays["attention_mask"][2] = prompt_arrays()["attention_mask"][2]
    doc["dataset"] = write_prompts(tmp, arrays, "empty-prompt")
    with pytest.raises(JobSpecError, match="prompt 4 is empty"):
        JobSpec.from_mapping(doc)


# --- 5. disputes --------------------------------------------------------------------------------

#: (fault, model, sampling, the cheater's side, the operator the arbiter recomputes and its
#: step, or None where the cheater is caught contradicting its own commitments first). The fault
#: step is 10: prompt 2, position 1.
DISPUTES: list[tuple[str, str, dict[str, Any], str, tuple[str, int] | None]] = [
    # the graph claims the job's weights: the first op that read a quantised one is recomputed
    ("quantised_model", "gpt2", TOP_P, "a", ("aten.embedding.default", 1)),
    # from position 1 on: prompt 0's position 1, the first op on a zeroed matrix
    ("cheaper_model", "llama", GREEDY, "b", ("aten.t.default", 2)),
    ("wrong_sample", "gpt2", GREEDY, "b", ("aten.argmax.default", 10)),  # the greedy sampler
    ("wrong_sample", "llama", TOP_P, "a", ("aten.gather.default", 10)),  # the top-p sampler
    ("truncate", "llama", FULL, "a", ("aten.gather.default", 10)),  # claims a stop was sampled
    ("truncate", "gpt2", TOP_P, "b", None),  # no stop token to claim: its state lies
    ("changed_prompt", "gpt", TOP_P, "b", ("aten.select.int", 9)),  # prompt 2's first step
    ("tampered_cache", "llama", GREEDY, "a", None),
]


def test_the_dispute_table_covers_every_generation_fault() -> None:
    assert {d[0] for d in DISPUTES} == set(GENERATE_FAULTS)
    assert {d[3] for d in DISPUTES} == {"a", "b"}


@pytest.mark.parametrize(("fault", "arch", "generation", "side", "recomputed"), DISPUTES,
                         ids=[f"{d[0]}-{d[1]}-{d[3]}" for d in DISPUTES])
def test_every_generation_cheat_loses_its_dispute(
        tmp: Path, fault: str, arch: str, generation: dict[str, Any], side: str,
        recomputed: tuple[str, int] | None) -> None:
    spec = generate_spec(tmp, arch, generation)
    honest = Provider(key("honest"), "honest", generate_batch=3)
    cheater = CheatingProvider(key("cheater"), "cheater", plan=FaultPlan(fault, step=10))
    honest.submit(spec)
    cheater.submit(spec)
    claims = {name: check_result(p.result(spec.job_id), spec.job_id, spec.steps)
              for name, p in (("honest", honest), ("cheater", cheater))}
    assert claims["honest"].key != claims["cheater"].key  # the cheat shows in the result
    other = "b" if side == "a" else "a"
    peers = {side: LocalPeer(cheater), other: LocalPeer(honest)}
    state = DisputeState(spec, peers["a"].result(spec.job_id), peers["b"].result(spec.job_id))
    verdict = run_dispute(state, peers)
    assert verdict.winner == other and verdict.losers == (side,), verdict.to_json()
    if recomputed is not None:
        assert verdict.reason == "recomputed_operator"
        assert (verdict.ruling["op"], verdict.ruling["step"]) == recomputed
    else:
        assert verdict.reason == "fault" and side in verdict.faults
    json.dumps(verdict.to_json())


@pytest.mark.parametrize("arch", ["gpt2", "llama", "gpt"])
def test_honest_providers_batching_and_caching_differently_agree(tmp: Path, arch: str) -> None:
    spec = generate_spec(tmp, arch, FULL)
    one = Provider(key("honest"), "one-at-a-time", generate_batch=1, kv_cache=False)
    eight = Provider(key("honest-2"), "batched-cached", generate_batch=8, kv_cache=True)
    one.submit(spec)
    eight.submit(spec)
    a = check_result(one.result(spec.job_id), spec.job_id, spec.steps)
    b = check_result(eight.result(spec.job_id), spec.job_id, spec.steps)
    assert a.key == b.key
    with pytest.raises(NoDisputeError, match="both results are equal"):
        DisputeState(spec, one.result(spec.job_id), eight.result(spec.job_id))
    # negative: another seed (other draws) is another result
    reseeded = spec.with_changes(seed=6)
    one.submit(reseeded)
    assert check_result(one.result(reseeded.job_id), reseeded.job_id,
                        reseeded.steps).key != a.key


# --- 6. admission ------------------------------------------------------------------------------


@pytest.mark.parametrize(("arch", "generation"), [("gpt2", TOP_P), ("llama", FULL),
                                                  ("gpt", GREEDY)])
def test_admission_accepts_generate_jobs(tmp: Path, arch: str,
                                         generation: dict[str, Any]) -> None:
    spec = generate_spec(tmp, arch, generation)
    ctx = admit_job(spec, thorough=True)  # real trace of step 1 == its shape-only replay
    assert ctx.spec.job_id == spec.job_id


def test_admission_refuses_prompts_outside_the_vocabulary(tmp: Path) -> None:
    arrays = prompt_arrays()
    arrays["input_ids"][1, 0] = VOCAB + 3
    doc = generate_doc(tmp, "gpt2")
    doc["dataset"] = write_prompts(tmp, arrays, "out-of-vocab")
    with pytest.raises(JobSpecError, match=rf"input_ids must be in \[0, {VOCAB}\)"):
        admit_job(JobSpec.from_mapping(doc), thorough=True)
