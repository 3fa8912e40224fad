"""Generate jobs: the provider's batched, key/value-cached decode commits exactly the written
steps' states; the tokens do not depend on threads or the CPU the kernels were compiled for;
they are what a model's logits and the written sampler say; bad specs get one clear error;
every generation cheat loses its dispute; and admission accepts the jobs.

Tiny models (``generate_jobs``): 8 prompts of lengths 2..7, 4 new tokens each (32 steps)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from proofs.state import StateCommitment
from repops import _numba
from verde.protocol.dispute.driver import run_dispute
from verde.protocol.dispute.errors import NoDisputeError
from verde.protocol.dispute.state import DisputeState
from verde.protocol.faults import CheatingProvider, FaultPlan
from verde.protocol.faults.plan import GENERATE_FAULTS
from verde.protocol.graph.admission import admit_job
from verde.protocol.graph.execution import execution_context, run_step, step_stream
from verde.protocol.jobs import generation as written
from verde.protocol.jobs.context import JobContext
from verde.protocol.jobs.errors import JobSpecError
from verde.protocol.jobs.generation import LOGITS, Generation, done_entry, tokens_entry
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers import LocalPeer
from verde.protocol.peers.result import check_result
from verde.protocol.provider.generation_engine import (
    decode_batches,
    decode_prompts,
    generation_states,
    length_batches,
    parameters_of,
)
from verde.protocol.provider.provider import Provider

from .conftest import key
from .generate_jobs import (
    FULL,
    GREEDY,
    HF_CONFIGS,
    PROMPT_LENGTHS,
    TOP_P,
    VOCAB,
    fast_path_roots,
    final_tokens,
    generate_doc,
    generate_spec,
    prompt_arrays,
    write_prompts,
)

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("generate")


def written_roots(ctx: JobContext) -> tuple[list[bytes], dict[str, torch.Tensor]]:
    """The state roots of the written steps 1..T (``run_step``), and the final state."""
    state = ctx.initial_state()
    roots = []
    for step in range(1, ctx.spec.steps + 1):
        state = run_step(ctx, state, step)
        roots.append(StateCommitment.from_tensors(state).root)
    return roots, state


# --- 1. the fast path commits the written steps' states ---------------------------------------


@pytest.mark.parametrize(("arch", "generation"), [
    ("gpt2", GREEDY), ("gpt2", FULL), ("llama", TOP_P), ("llama", FULL), ("gpt", TOP_P),
], ids=["gpt2-greedy", "gpt2-sampled", "llama-top-p", "llama-sampled", "gpt-top-p"])
def test_batched_and_cached_decoding_commits_the_written_steps(
        tmp: Path, arch: str, generation: dict[str, Any]) -> None:
    ctx = JobContext.from_spec(generate_spec(tmp, arch, generation))
    # batching happens: the three prompts of length 5 share one batch, the two of length 7
    # another; nothing is ever padded (one length per batch)
    assert sorted(len(b) for b in length_batches(ctx, 3)) == [1, 1, 1, 2, 3]
    assert [b[0] for b in length_batches(ctx, 3)] == sorted(b[0] for b in length_batches(ctx, 3))
    assert max(len(b) for b in length_batches(ctx, 8)) == 3
    reference, final = written_roots(ctx)
    for batch_size in (1, 3, 8):
        for use_cache in (False, True):
            roots = fast_path_roots(ctx, batch_size=batch_size, use_cache=use_cache)
            assert roots == reference, (batch_size, use_cache)
    if generation is FULL:  # the stop tokens ended some prompts: pads and zero logits follow
        assert any(bool(final[done_entry(p)]) for p in range(len(PROMPT_LENGTHS)))


def test_a_torch_backend_generate_job_runs_its_written_steps(tmp: Path) -> None:
    """Vendor kernels promise nothing across batch sizes or a cache: a provider runs a
    ``backend = "torch"`` generate job step by step, and the fast path refuses it."""
    spec = generate_spec(tmp, "gpt2", TOP_P, backend="torch")
    ctx = JobContext.from_spec(spec)
    reference, _ = written_roots(ctx)
    provider = Provider(key("torch-backend"), "torch-backend", generate_batch=8)
    provider.submit(spec)
    assert provider.jobs[spec.job_id].step_roots[1:] == reference
    with pytest.raises(ValueError, match="only under repops"):
        decode_prompts(ctx, parameters_of(ctx.initial_state()), batch_size=3)


def test_states_are_committed_while_later_batches_still_decode(tmp: Path) -> None:
    """A provider holds the logits of the batches not yet committed, not of the whole job: the
    first prompt's states come out after its own batch, before the other batches decode."""
    ctx = JobContext.from_spec(generate_spec(tmp, "gpt2", GREEDY))
    state = ctx.initial_state()
    pulled: list[int] = []

    def watched() -> Any:
        for prompt, decoded in decode_batches(ctx, parameters_of(state), batch_size=3):
            pulled.append(prompt)
            yield prompt, decoded

    states = generation_states(ctx, state, watched())
    step, _ = next(states)
    assert step == 1 and pulled == length_batches(ctx, 3)[0]  # only prompt 0's batch so far
    assert sum(1 for _ in states) == ctx.spec.steps - 1
    assert sorted(pulled) == list(range(len(PROMPT_LENGTHS)))
    # a prompt nobody decoded is one clear error, not a hang or a short job
    partial = decode_prompts(ctx, parameters_of(state), batch_size=3)
    del partial[4]
    with pytest.raises(ValueError, match="prompt 4 was never decoded"):
        list(generation_states(ctx, state, partial))


def test_a_model_whose_cache_is_not_a_plain_append_recomputes_its_prefixes(tmp: Path) -> None:
    """A sliding-window model asked to decode with a cache recomputes instead (HF's cache for
    it keeps only the window, the written step attends every earlier position): the states are
    still the written steps'. Only the architectures tested here are decoded with a cache."""
    from verde.protocol.jobs.hf.decoding import CACHED_MODEL_TYPES, CachedDecoder, can_cache

    windowed = {**HF_CONFIGS["mistral"], "sliding_window": 12}  # every sequence within it
    doc = generate_doc(tmp, "mistral", GREEDY)
    doc["config"]["hf_config"] = windowed
    ctx = JobContext.from_spec(JobSpec.from_mapping(doc))
    assert not can_cache(ctx.module)
    assert can_cache(JobContext.from_spec(generate_spec(tmp, "llama", GREEDY)).module)
    assert {"gpt2", "llama"} == CACHED_MODEL_TYPES
    with pytest.raises(ValueError, match="not decoded with a cache"):
        CachedDecoder(ctx.module, parameters_of(ctx.initial_state()))
    reference, _ = written_roots(ctx)
    assert fast_path_roots(ctx, batch_size=3, use_cache=True) == reference


def test_a_tampered_cache_entry_changes_the_committed_states(tmp: Path) -> None:
    """The negative of the equivalence: the comparison sees one altered cached key."""
    ctx = JobContext.from_spec(generate_spec(tmp, "llama", TOP_P))
    honest = fast_path_roots(ctx, batch_size=3, use_cache=True)

    def tamper(decoder: Any, row: int, prompt: int, position: int) -> None:
        if (prompt, position) == (3, 2):
            decoder.tamper(row)

    tampered = fast_path_roots(ctx, batch_size=3, use_cache=True, cache_hook=tamper)
    first = next(i for i, (a, b) in enumerate(zip(honest, tampered, strict=True)) if a != b)
    assert first + 1 == ctx.generation.step_of(3, 2)  # the first differing step is that one
    # a provider decoding other weights commits other states too
    state = ctx.initial_state()
    params = {k: v * 1.001 for k, v in parameters_of(state).items()}
    other = decode_prompts(ctx, params, batch_size=8, use_cache=True)
    same = decode_prompts(ctx, parameters_of(state), batch_size=8, use_cache=True)
    assert not torch.equal(other[0].logits[0], same[0].logits[0])


# --- 2. threads and the CPU the kernels were compiled for -------------------------------------


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_same_tokens_with_one_and_two_threads(tmp: Path, arch: str) -> None:
    ctx = JobContext.from_spec(generate_spec(tmp, arch, FULL))
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = final_tokens(ctx)
    finally:
        torch.set_num_threads(torch_threads)
    torch.set_num_threads(2)
    _numba.set_num_threads(2)
    try:
        two = final_tokens(ctx, batch_size=3)
    finally:
        _numba.set_num_threads(1)
        torch.set_num_threads(torch_threads)
    assert two == one
    # negative: the tokens are a function of the seed (sampling draws from its stream)
    other = final_tokens(JobContext.from_spec(generate_spec(tmp, arch, FULL, seed=6)))
    assert other["tokens"] != one["tokens"]


@pytest.mark.slow
def test_same_tokens_with_kernels_compiled_for_a_generic_cpu(tmp: Path) -> None:
    doc = generate_doc(tmp, "llama", FULL)
    script = ("import json, sys; sys.path.insert(0, 'tests/verde/protocol');"
              "from generate_jobs import final_tokens_of_doc;"
              "print(json.dumps(final_tokens_of_doc(json.loads(sys.argv[1]))))")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CPU_NAME"}
    env.update(NUMBA_CPU_NAME="generic", NUMBA_CACHE_DIR=str(tmp / "numba-generic"),
               OMP_NUM_THREADS="1",
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", script, json.dumps(doc)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=1800, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    generic = json.loads(res.stdout.strip().splitlines()[-1])
    here = final_tokens(JobContext.from_spec(JobSpec.from_mapping(doc)))
    assert generic == here
    assert generic["root"] != final_tokens(
        JobContext.from_spec(generate_spec(tmp, "llama", FULL, seed=6)))["root"]


# --- 3. the tokens against independent references -------------------------------------------


def plain_transformers_model(arch: str, params: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The same weights in a ``transformers`` model built the ordinary way (its own masks and
    attention kernels, torch's vendor kernels): an independent computation of the logits."""
    import transformers

    table = dict(HF_CONFIGS[arch])
    config = transformers.AutoConfig.for_model(table.pop("model_type"), **table)
    model: torch.nn.Module = transformers.AutoModelForCausalLM.from_config(  # type: ignore[no-untyped-call]
        config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(params, strict=False)
    assert not unexpected
    assert set(missing) <= {"lm_head.weight"}  # tied to the embeddings
    return model.eval()


def plain_torch_disagreements(model: torch.nn.Module, tokens: list[list[int]],
                              committed: list[list[torch.Tensor]], margin: float,
                              ) -> tuple[int, list[str]]:
    """Positions whose greedy token is not plain torch's argmax although plain torch's top-2
    margin exceeds ``margin`` (or whose committed logits are not close to plain torch's); and
    how many positions had such a margin."""
    checked, bad = 0, []
    for p, row in enumerate(tokens):
        n0 = PROMPT_LENGTHS[p]
        for t, logits in enumerate(committed[p]):
            n = n0 + t
            with torch.no_grad():
                plain = model(torch.tensor([row[:n]])).logits[0, -1]
            if not torch.allclose(logits, plain, rtol=1e-4, atol=1e-4):
                bad.append(f"prompt {p} position {t}: logits differ from plain torch by "
                           f"{(logits - plain).abs().max().item():.2e}")
            top2 = torch.topk(plain, 2).values
            if (top2[0] - top2[1]).item() > margin:
                checked += 1
                if int(torch.argmax(plain)) != row[n]:
                    bad.append(f"prompt {p} position {t}: token {row[n]}, plain torch "
                               f"{int(torch.argmax(plain))}")
    return checked, bad


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_greedy_tokens_are_the_argmax_of_the_written_forward_and_of_plain_torch(
        tmp: Path, arch: str) -> None:
    ctx = JobContext.from_spec(generate_spec(tmp, arch, GREEDY))
    state = ctx.initial_state()
    params = parameters_of(state)
    decoded = decode_prompts(ctx, params, batch_size=8, use_cache=True)
    tokens = [decoded[p].tokens[-1].tolist() for p in range(len(PROMPT_LENGTHS))]
    committed = [decoded[p].logits for p in range(len(PROMPT_LENGTHS))]
    # the written forward recomputed alone, prompt by prompt, without cache or batching: its
    # argmax is the token (exact: both are repops)
    for p, row in enumerate(tokens):
        for t in range(GREEDY["max_new_tokens"]):
            n = PROMPT_LENGTHS[p] + t
            with execution_context(ctx.spec.backend):
                logits = ctx.generation_logits(params, torch.tensor([row[:n]]))[0]
            assert torch.equal(logits, committed[p][t])
            assert int(torch.argmax(logits)) == row[n]
    # plain torch (transformers' own forward, vendor kernels): close logits, and the same token
    # wherever its top-2 margin leaves no room for rounding differences
    model = plain_transformers_model(arch, params)
    checked, bad = plain_torch_disagreements(model, tokens, committed, margin=1e-3)
    assert not bad, bad
    assert checked >= 16  # not vacuous: most of the 32 positions have a clear winner
    # negative: a token changed where the margin is clear is reported
    wrong = [list(row) for row in tokens]
    n = PROMPT_LENGTHS[0]
    wrong[0][n] = (wrong[0][n] + 1) % VOCAB
    _, bad = plain_torch_disagreements(model, wrong[:1], committed[:1], margin=0.0)
    assert any("prompt 0 position 0: token" in b for b in bad)


def draw(logits: torch.Tensor, settings: Generation, step: int,
         context: torch.Tensor | None = None) -> int:
    """``sample_token`` under the job semantics, on step ``step``'s stream of seed 11."""
    context = torch.zeros(1, dtype=torch.int64) if context is None else context
    with execution_context("repops", stream=step_stream(11, step)):
        return int(written.sample_token(logits, context, settings))


def settings(**changes: Any) -> Generation:
    table = {"max_new_tokens": 1, "stop_tokens": (), "pad_token": 0, "temperature": 1.0,
             "top_k": 0, "top_p": 1.0, "repetition_penalty": 1.0, "prompt_lengths": (1,)}
    table.update(changes)
    return Generation.from_spec(table)


def random_logits(seed: int, vocab: int = 16) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(vocab) * 2).float()


def test_top_k_one_and_a_tiny_top_p_are_greedy_and_full_sampling_is_not() -> None:
    draws_full = set()
    for s in range(40):
        logits = random_logits(s)
        greedy = int(torch.argmax(logits))
        assert draw(logits, settings(temperature=0.0), s) == greedy
        assert draw(logits, settings(top_k=1), s) == greedy
        assert draw(logits, settings(top_p=1e-6), s) == greedy
        assert draw(logits, settings(temperature=0.7, top_k=1, top_p=0.5), s) == greedy
        draws_full.add(draw(logits, settings(), s) == greedy)
    assert draws_full == {True, False}  # negative: plain sampling does not always pick the max


def test_sampling_frequencies_follow_temperature_top_k_and_top_p() -> None:
    probs = [0.5, 0.3, 0.15, 0.05]
    logits = torch.tensor([math.log(p) for p in probs], dtype=torch.float32)
    n = 600

    def frequencies(**changes: Any) -> np.ndarray:
        counts = np.bincount([draw(logits, settings(**changes), s) for s in range(n)],
                             minlength=4)
        return counts / n

    assert np.allclose(frequencies(), probs, atol=0.06)
    # top-k 2 renormalizes the two most likely tokens
    assert np.allclose(frequencies(top_k=2), [0.625, 0.375, 0, 0], atol=0.06)
    # top-p 0.6: token 1 is kept (mass before it 0.5 < 0.6), token 2 is not (0.8)
    top_p = frequencies(top_p=0.6)
    assert top_p[2] == top_p[3] == 0 and np.allclose(top_p[:2], [0.625, 0.375], atol=0.06)
    # temperature t samples softmax(log p / t): 0.25 sharpens towards the most likely token,
    # 4 flattens
    observed = {t: frequencies(temperature=t) for t in (0.25, 4.0)}
    for t, seen in observed.items():
        assert np.allclose(seen, torch.softmax(logits / t, dim=0).numpy(), atol=0.06), t
    assert observed[0.25][0] > 0.8 and observed[4.0][0] < 0.4


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits() -> None:
    greedy = {"temperature": 0.0}
    positive = torch.tensor([1.0, 2.0, -0.5])
    assert draw(positive, settings(**greedy), 1, torch.tensor([2])) == 1
    # 2.0 / 4 = 0.5 < 1.0: a seen positive logit is divided
    assert draw(positive, settings(**greedy, repetition_penalty=4.0), 1, torch.tensor([1])) == 0
    negative = torch.tensor([-1.0, -0.2, -0.5])
    assert draw(negative, settings(**greedy), 1, torch.tensor([0])) == 1
    # -0.2 * 3 = -0.6 < -0.5: a seen negative logit is multiplied
    assert draw(negative, settings(**greedy, repetition_penalty=3.0), 1, torch.tensor([1])) == 2
    # a penalty below 1 favours seen tokens
    assert draw(positive, settings(**greedy, repetition_penalty=0.25), 1,
                torch.tensor([0])) == 0


def test_a_stop_token_ends_the_prompt_and_pads_after_it() -> None:
    g = settings(stop_tokens=(7,), pad_token=9, max_new_tokens=3)
    tokens = torch.tensor([4, 5, 9, 9, 9])
    done = torch.zeros((), dtype=torch.bool)
    tokens, done = written.write_token(tokens, 2, torch.tensor(6), done, g)
    assert tokens.tolist() == [4, 5, 6, 9, 9] and not bool(done)  # negative: 6 is no stop
    tokens, done = written.write_token(tokens, 3, torch.tensor(7), done, g)
    assert tokens.tolist() == [4, 5, 6, 7, 9] and bool(done)  # the stop token is kept
    logits = torch.arange(5, dtype=torch.float32)
    assert torch.equal(written.committed_logits(logits, torch.tensor(False)), logits)
    after, done_after = written.write_token(tokens, 4, torch.tensor(3), done, g)
    assert after.tolist() == [4, 5, 6, 7, 9] and bool(done_after)  # pad, still done
    assert torch.equal(written.committed_logits(logits, done), torch.zeros(5))


def test_a_stop_token_in_a_job_pads_the_rest_of_that_prompt_only(tmp: Path) -> None:
    base = final_tokens(JobContext.from_spec(generate_spec(tmp, "gpt2", GREEDY)))
    p, n0 = 1, PROMPT_LENGTHS[1]
    stop = base["tokens"][p][n0 + 1]  # the second token prompt 1 generates
    pad = 39 if stop != 39 else 38
    ctx = JobContext.from_spec(generate_spec(tmp, "gpt2", {**GREEDY, "stop_tokens": [stop],
                                                            "pad_token": pad}))
    _, final = written_roots(ctx)
    for q in range(len(PROMPT_LENGTHS)):
        before = base["tokens"][q]
        row = final[tokens_entry(q)].tolist()
        generated = before[PROMPT_LENGTHS[q]:]
        if stop in generated:
            cut = PROMPT_LENGTHS[q] + generated.index(stop) + 1
            assert row == before[:cut] + [pad] * (len(row) - cut)
            assert bool(final[done_entry(q)])
        else:  # negative: prompts that never emit it are unchanged
            assert row == before and not bool(final[done_entry(q)])
    # the last step's prompt was done or not: its committed logits are zeros exactly if done
    last = len(PROMPT_LENGTHS) - 1
    assert bool(final[LOGITS].eq(0).all()) == (stop in base["tokens"][last][
        PROMPT_LENGTHS[last]:-1])


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
