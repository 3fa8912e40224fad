"""Generate jobs: the provider's batched, key/value-cached decode commits exactly the written
steps' states, and the tokens do not depend on threads or the CPU the kernels were compiled for.
(The tokens against references and the sampler: ``test_generate_sampling``; specs, disputes and
admission: ``test_generate_disputes``.)

Tiny models (``generate_jobs``): 8 prompts of lengths 2..7, 4 new tokens each (32 steps)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from repops import _numba
from verde.protocol.jobs.context import JobContext
from verde.protocol.jobs.generation import done_entry
from verde.protocol.jobs.spec import JobSpec
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
    fast_path_roots,
    final_tokens,
    generate_doc,
    generate_spec,
    written_roots,
)

ROOT = Path(__file__).resolve().parents[3]



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
def test_same_tokens_with_kernels_compiled_for_a_generic_cpu(
        tmp: Path, generic_numba_cache: Path) -> None:
    doc = generate_doc(tmp, "llama", FULL)
    script = ("import json, sys; sys.path.insert(0, 'tests/verde/protocol');"
              "from generate_jobs import final_tokens_of_doc;"
              "print(json.dumps(final_tokens_of_doc(json.loads(sys.argv[1]))))")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CPU_NAME"}
    env.update(NUMBA_CPU_NAME="generic", NUMBA_CACHE_DIR=str(generic_numba_cache),
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


