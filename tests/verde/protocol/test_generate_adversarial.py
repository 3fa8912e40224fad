"""Generate jobs under adversarial inputs: Hugging Face architectures nobody here wrote, odd or
hostile generation settings and datasets, and logits with exact ties.

The promise under test: an admitted generate job runs, and an honest provider's fast path
(prompts batched by length, a key/value cache where ``hf.decoding`` allows one) commits exactly
the written steps' states (``run_step``), or the job is refused at admission with one clear
``JobSpecError``. A crash after admission, or a fast path that differs from the written step,
loses an honest provider its job or its dispute.

Each bug this review found has its test here, stating the behaviour the fix gives (a refusal
naming the input, or a run whose fast path equals the written steps).
Tiny models built from configs in code (nothing is downloaded): 2 layers, width 16, vocab 40.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from proofs.state import StateCommitment
from verde.protocol.graph.admission import admit_job
from verde.protocol.graph.execution import execution_context
from verde.protocol.jobs.context import JobContext
from verde.protocol.jobs.errors import JobSpecError
from verde.protocol.jobs.generation import LOGITS, tokens_entry
from verde.protocol.jobs.hf.decoding import can_cache
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.provider.generation_engine import (
    decode_prompts,
    generation_states,
    length_batches,
    parameters_of,
)

from .generate_jobs import (
    GPT_CONFIG,
    HF_CONFIGS,
    VOCAB,
    fast_path_roots,
    prompt_arrays,
    write_prompts,
    written_roots,
)

#: Four prompts, two of them of equal length (a batch of 3 holds both).
LENGTHS = (3, 5, 5, 2)
SAMPLED: dict[str, Any] = {"max_new_tokens": 3, "temperature": 0.9, "top_p": 0.9}
#: Fields every small decoder config below shares.
_BASE: dict[str, Any] = {"vocab_size": VOCAB, "hidden_size": 16, "num_hidden_layers": 2,
                         "num_attention_heads": 4, "intermediate_size": 32,
                         "max_position_embeddings": 16, "bos_token_id": 1, "eos_token_id": 2,
                         "pad_token_id": 0}



def hf_doc(tmp: Path, hf_config: Mapping[str, Any], generation: Mapping[str, Any],
           lengths: tuple[int, ...] = LENGTHS, arrays: Mapping[str, np.ndarray] | None = None,
           ) -> dict[str, Any]:
    """A generate job of the ``hf`` program on ``hf_config`` (prompts in ``input_ids``)."""
    arrays = prompt_arrays("input_ids", lengths) if arrays is None else arrays
    digest = hashlib.sha256(b"".join(a.tobytes() for a in arrays.values())).hexdigest()
    name = f"hf-{digest[:16]}"
    return {"program": "hf", "kind": "generate",
            "config": {"task": "causal-lm", "hf_config": dict(hf_config)},
            "dataset": write_prompts(tmp, arrays, name), "generation": dict(generation),
            "seed": 5}


def gpt_doc(tmp: Path, generation: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
            name: str) -> dict[str, Any]:
    """A generate job of the built-in ``gpt`` program (prompts in ``tokens``)."""
    return {"program": "gpt", "kind": "generate", "config": dict(GPT_CONFIG),
            "dataset": write_prompts(tmp, arrays, name), "generation": dict(generation),
            "seed": 5}


#: (batch size, cache): one prompt at a time with the cache, and a batch of 3 (the two prompts
#: of equal length together) with and without it.
FAST_PATHS = ((1, True), (3, False), (3, True))


def assert_fast_path_commits_the_written_steps(
        ctx: JobContext, state: dict[str, torch.Tensor] | None = None,
        ) -> dict[str, torch.Tensor]:
    """Every fast path of :data:`FAST_PATHS` commits the written steps' roots; the final
    written state."""
    state = ctx.initial_state() if state is None else state
    reference, final = written_roots(ctx, state)
    for batch_size, use_cache in FAST_PATHS:
        roots = fast_path_roots(ctx, batch_size=batch_size, use_cache=use_cache,
                                state=state)
        assert roots == reference, (batch_size, use_cache)
    return final


def written_and_plain_logits(ctx: JobContext, hf_config: Mapping[str, Any], prompt: int,
                             ) -> tuple[torch.Tensor, torch.Tensor]:
    """The written forward's last-position logits of prompt ``prompt`` and those of the same
    weights in a ``transformers`` model built the ordinary way (its own masks, eager
    attention): what the model means, computed independently."""
    import transformers

    params = parameters_of(ctx.initial_state())
    n = ctx.generation.prompt_lengths[prompt]
    ids = torch.from_numpy(ctx.dataset.fields["input_ids"][prompt:prompt + 1, :n].copy())
    with execution_context(ctx.spec.backend):
        written = ctx.generation_logits(params, ids)[0]
    table = dict(hf_config)
    config = transformers.AutoConfig.for_model(table.pop("model_type"), **table)
    config._attn_implementation = "eager"
    model = transformers.AutoModelForCausalLM.from_config(  # type: ignore[no-untyped-call]
        config, dtype=torch.float32).eval()
    missing, unexpected = model.load_state_dict(params, strict=False)
    assert not unexpected and len(missing) <= 1  # at most an output matrix tied to the input
    with torch.no_grad():
        plain: torch.Tensor = model(ids).logits[0, -1]
    return written, plain


# --- 1. architectures nobody here wrote -------------------------------------------------------

#: Causal LMs transformers 5.x builds and repops runs: admitted, decoded by recomputing each
#: prefix (only gpt2 and llama use a key/value cache).
FOREIGN: dict[str, dict[str, Any]] = {
    "qwen2": {**_BASE, "num_key_value_heads": 2},
    "phi": dict(_BASE),
    "opt": {"vocab_size": VOCAB, "hidden_size": 16, "num_hidden_layers": 2,
            "num_attention_heads": 4, "ffn_dim": 32, "max_position_embeddings": 16,
            "word_embed_proj_dim": 16, "bos_token_id": 1, "eos_token_id": 2,
            "pad_token_id": 0},
    "gpt_neox": dict(_BASE),
    "falcon": {"vocab_size": VOCAB, "hidden_size": 16, "num_hidden_layers": 2,
               "num_attention_heads": 4, "max_position_embeddings": 16, "bos_token_id": 1,
               "eos_token_id": 2},
}


@pytest.mark.parametrize("arch", sorted(FOREIGN))
def test_a_foreign_architecture_is_admitted_and_its_fast_path_is_the_written_step(
        tmp: Path, arch: str) -> None:
    hf_config = {"model_type": arch, **FOREIGN[arch]}
    ctx = admit_job(JobSpec.from_mapping(hf_doc(tmp, hf_config, SAMPLED)))
    assert not can_cache(ctx.module)  # no cache for what was not tested against the step
    assert sorted(len(b) for b in length_batches(ctx, 3)) == [1, 1, 2]  # batching happens
    assert_fast_path_commits_the_written_steps(ctx)
    # and the written step is the model: plain transformers' logits, to rounding
    written, plain = written_and_plain_logits(ctx, hf_config, 1)
    assert torch.allclose(written, plain, rtol=1e-4, atol=1e-4), (written - plain).abs().max()


#: More of them, run once each (slow): the review's sweep, kept so that a transformers upgrade
#: that changes one of these models' step graphs shows here.
FOREIGN_MORE: dict[str, dict[str, Any]] = {
    "qwen3": {**_BASE, "num_key_value_heads": 2, "head_dim": 4},
    "starcoder2": {**_BASE, "num_key_value_heads": 2, "sliding_window": None},
    "olmo": dict(_BASE),
    "olmo2": {**_BASE, "num_key_value_heads": 2},
    "granite": {**_BASE, "num_key_value_heads": 2},
    "cohere": {**_BASE, "num_key_value_heads": 2},
    "stablelm": {**_BASE, "hidden_size": 32, "num_attention_heads": 2, "num_key_value_heads": 2},
    "persimmon": {**_BASE, "hidden_size": 32, "num_attention_heads": 2},
    "biogpt": dict(_BASE),
    "helium": {**_BASE, "num_key_value_heads": 2, "head_dim": 4},
    "glm": {**_BASE, "num_key_value_heads": 2, "head_dim": 4},
    "arcee": {**_BASE, "num_key_value_heads": 2},
    "smollm3": {**_BASE, "num_key_value_heads": 2, "no_rope_layers": [1, 1]},
    "nemotron": {**_BASE, "num_key_value_heads": 2, "head_dim": 4},
}


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(FOREIGN_MORE))
def test_more_foreign_architectures_decode_the_written_step(tmp: Path, arch: str) -> None:
    hf_config = {"model_type": arch, **FOREIGN_MORE[arch]}
    ctx = admit_job(JobSpec.from_mapping(hf_doc(tmp, hf_config, SAMPLED)))
    assert_fast_path_commits_the_written_steps(ctx)
    written, plain = written_and_plain_logits(ctx, hf_config, 1)
    assert torch.allclose(written, plain, rtol=1e-4, atol=1e-4), (written - plain).abs().max()


def test_a_slightly_other_weight_row_shows_in_a_foreign_architectures_roots(
        tmp: Path) -> None:
    """The negative of the equivalence above: the comparison sees a fast path that decoded
    one output row scaled by 1 + 2**-12."""
    ctx = admit_job(JobSpec.from_mapping(hf_doc(tmp, {"model_type": "phi", **FOREIGN["phi"]},
                                                SAMPLED)))
    state = ctx.initial_state()
    reference, _ = written_roots(ctx, state)
    params = parameters_of(state)
    name = "lm_head.weight"
    nudged = params[name].clone()
    nudged[7] = nudged[7] * (1 + 2**-12)
    decoded = decode_prompts(ctx, {**params, name: nudged}, batch_size=3, use_cache=True)
    roots = [StateCommitment.from_tensors(s).root
             for _, s in generation_states(ctx, state, decoded)]
    assert len(roots) == len(reference) == ctx.spec.steps
    assert roots[0] != reference[0]  # step 1 commits another logit for token 7


#: Architectures or settings an arbiter could not check: refused at admission, naming why.
REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("gemma", {"model_type": "gemma", **_BASE, "num_key_value_heads": 2, "head_dim": 4},
     r"buffer model\.embed_tokens\.embed_scale .* has no known recipe"),
    ("gptj", {"model_type": "gptj", "vocab_size": VOCAB, "n_embd": 16, "n_layer": 2,
              "n_head": 4, "rotary_dim": 4, "n_positions": 16},
     r"buffer transformer\.rotary_emb\.embed_positions .* has no known recipe"),
    # dynamic RoPE rewrites its frequencies with the sequence length: a cache would hold keys
    # rotated at other frequencies than the written step's
    ("llama-dynamic-rope", {**HF_CONFIGS["llama"], "rope_parameters": {
        "rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0}},
     r"rope type 'dynamic' is not supported"),
    ("phi3-longrope", {"model_type": "phi3", **_BASE, "num_key_value_heads": 2,
                       "rope_parameters": {"rope_type": "longrope", "rope_theta": 10000.0,
                                           "short_factor": [1.0, 1.0],
                                           "long_factor": [2.0, 3.0],
                                           "original_max_position_embeddings": 4}},
     r"rope type 'longrope' is not supported"),
]


@pytest.mark.parametrize(("hf_config", "message"), [(c, m) for _, c, m in REFUSED],
                         ids=[name for name, _, _ in REFUSED])
def test_an_architecture_an_arbiter_cannot_check_is_refused_at_admission(
        tmp: Path, hf_config: dict[str, Any], message: str) -> None:
    with pytest.raises(JobSpecError, match=message):
        admit_job(JobSpec.from_mapping(hf_doc(tmp, hf_config, SAMPLED)))


def test_an_alibi_model_gets_one_clear_refusal(tmp: Path) -> None:
    bloom = {"model_type": "bloom", "vocab_size": VOCAB, "hidden_size": 16, "n_layer": 2,
             "n_head": 4}
    with pytest.raises(JobSpecError, match="program hf"):
        admit_job(JobSpec.from_mapping(hf_doc(tmp, bloom, SAMPLED)))


MISTRAL_WINDOW = HF_CONFIGS["mistral"]["sliding_window"]  # 4


def test_a_sliding_window_model_within_its_window_computes_what_the_model_means(
        tmp: Path) -> None:
    """Every sequence within the window: the written logits are plain transformers' (to
    rounding), and the fast path is the written step."""
    lengths = (4, 3, 3)
    doc = hf_doc(tmp, HF_CONFIGS["mistral"], {"max_new_tokens": 1}, lengths)
    ctx = admit_job(JobSpec.from_mapping(doc))
    assert max(lengths) <= MISTRAL_WINDOW and not can_cache(ctx.module)
    written, plain = written_and_plain_logits(ctx, HF_CONFIGS["mistral"], 0)
    assert torch.allclose(written, plain, rtol=1e-4, atol=1e-4)
    assert_fast_path_commits_the_written_steps(ctx)


def test_a_sliding_window_model_past_its_window_is_refused_or_computes_what_it_means(
        tmp: Path) -> None:
    lengths = (7, 3)
    doc = hf_doc(tmp, HF_CONFIGS["mistral"], {"max_new_tokens": 1}, lengths)
    try:
        ctx = admit_job(JobSpec.from_mapping(doc))
    except JobSpecError as exc:
        assert "sliding" in str(exc) or "window" in str(exc)
        return
    written, plain = written_and_plain_logits(ctx, HF_CONFIGS["mistral"], 0)
    assert torch.allclose(written, plain, rtol=1e-4, atol=1e-4), (written - plain).abs().max()


#: A config mistake the model only finds when it runs: stablelm's default partial rotary
#: factor 0.25 of a head dimension of 4 rotates one channel, which its RoPE cannot split.
STABLELM_ONE_ROTARY_CHANNEL = {"model_type": "stablelm", **_BASE}


def test_a_model_that_fails_when_traced_is_refused_at_admission(tmp: Path) -> None:
    spec = JobSpec.from_mapping(hf_doc(tmp, STABLELM_ONE_ROTARY_CHANNEL, SAMPLED))
    with pytest.raises(JobSpecError, match=r"program hf cannot be disputed: The size of tensor"):
        admit_job(spec)


def test_the_cost_estimate_refuses_a_model_that_fails_when_traced_like_admission(
        tmp: Path) -> None:
    from verde.protocol.graph.budget import estimate_cost

    spec = JobSpec.from_mapping(hf_doc(tmp, STABLELM_ONE_ROTARY_CHANNEL, SAMPLED))
    with pytest.raises(JobSpecError, match=r"program hf cannot be disputed"):
        estimate_cost(spec)


# --- 2. odd and hostile generation settings and datasets -------------------------------------

#: (name, model, generation, prompt lengths): each admitted, and its fast path is the written
#: step.
ODD: list[tuple[str, str, dict[str, Any], tuple[int, ...]]] = [
    ("stop-tokens-outside-the-vocabulary", "gpt2",
     {"max_new_tokens": 3, "stop_tokens": [VOCAB, 10**9]}, LENGTHS),
    ("top-k-larger-than-the-vocabulary", "llama",
     {"max_new_tokens": 3, "temperature": 1.0, "top_k": 1000}, LENGTHS),
    ("temperature-1e-6", "gpt2", {"max_new_tokens": 3, "temperature": 1e-6, "top_k": 5},
     LENGTHS),
    # 1e-300 is 0 in float32: the logits divide to +-inf and the softmax to NaNs, the same
    # NaNs on both paths
    ("temperature-1e-300", "gpt2", {"max_new_tokens": 2, "temperature": 1e-300}, LENGTHS),
    ("temperature-1e6", "llama", {"max_new_tokens": 2, "temperature": 1e6, "top_p": 0.5},
     LENGTHS),
    ("repetition-penalty-below-1", "llama",
     {"max_new_tokens": 3, "repetition_penalty": 0.5, "temperature": 0.8}, LENGTHS),
    ("one-new-token", "llama", {"max_new_tokens": 1, "temperature": 0.8, "top_p": 0.9},
     LENGTHS),
    ("one-prompt", "gpt2", {"max_new_tokens": 3, "temperature": 0.8}, (4,)),
    ("prompts-of-length-1", "llama", {"max_new_tokens": 3, "temperature": 0.8}, (1, 1, 1, 2)),
    ("all-prompts-equal", "gpt2", {"max_new_tokens": 2, "temperature": 0.8}, (4,) * 5),
    # the longest prompt plus its new tokens is exactly the model's 16 positions
    ("exactly-the-position-limit", "gpt2", {"max_new_tokens": 10}, (7, 3)),
]


@pytest.mark.parametrize(("arch", "generation", "lengths"), [c[1:] for c in ODD],
                         ids=[c[0] for c in ODD])
def test_an_odd_but_valid_job_runs_and_its_fast_path_is_the_written_step(
        tmp: Path, arch: str, generation: dict[str, Any], lengths: tuple[int, ...]) -> None:
    ctx = admit_job(JobSpec.from_mapping(hf_doc(tmp, HF_CONFIGS[arch], generation, lengths)))
    assert can_cache(ctx.module)
    assert_fast_path_commits_the_written_steps(ctx)


def test_a_prompt_past_the_models_positions_is_refused(tmp: Path) -> None:
    doc = hf_doc(tmp, HF_CONFIGS["gpt2"], {"max_new_tokens": 11}, (7, 3))
    with pytest.raises(JobSpecError, match=r"a prompt plus its new tokens \(17\) exceed the "
                                           r"model's 16 positions"):
        admit_job(JobSpec.from_mapping(doc))


def test_a_default_position_limit_is_enforced_too(tmp: Path) -> None:
    hf_config = {k: v for k, v in HF_CONFIGS["gpt2"].items() if k != "n_positions"}
    doc = hf_doc(tmp, hf_config, {"max_new_tokens": 2}, (1024,))
    with pytest.raises(JobSpecError, match=r"\(1025\) exceed the model's 1024 positions"):
        admit_job(JobSpec.from_mapping(doc))


def test_token_ids_outside_the_vocabulary_are_refused_even_past_a_prompts_end(
        tmp: Path) -> None:
    arrays = prompt_arrays("input_ids", (3, 5))
    arrays["input_ids"][0, 4] = VOCAB + 1  # beyond prompt 0's mask: never read, still refused
    with pytest.raises(JobSpecError, match=rf"input_ids must be in \[0, {VOCAB}\)"):
        admit_job(JobSpec.from_mapping(hf_doc(tmp, HF_CONFIGS["gpt2"], SAMPLED,
                                              arrays=arrays)))
    tokens = prompt_arrays("tokens", (3, 5))
    tokens["tokens"][1, 0] = VOCAB
    with pytest.raises(JobSpecError, match=rf"program gpt: tokens must be in \[0, {VOCAB}\)"):
        admit_job(JobSpec.from_mapping(gpt_doc(tmp, SAMPLED, tokens, "gpt-out-of-vocab")))


def test_the_builtin_gpt_on_a_tokens_dataset_runs_and_refuses_a_short_context(
        tmp: Path) -> None:
    arrays = prompt_arrays("tokens", LENGTHS)
    generation = {**SAMPLED, "repetition_penalty": 1.3, "stop_tokens": [6, 35]}
    ctx = admit_job(JobSpec.from_mapping(gpt_doc(tmp, generation, arrays, "gpt-tokens")))
    assert_fast_path_commits_the_written_steps(ctx)
    # negative: context 12 < the longest prompt (5) plus 9 new tokens less one
    with pytest.raises(JobSpecError, match=r"needs config context >= the longest prompt plus "
                                           r"its new tokens \(13\), got 12"):
        admit_job(JobSpec.from_mapping(gpt_doc(tmp, {"max_new_tokens": 9}, arrays,
                                               "gpt-tokens")))


def test_a_pad_token_outside_the_vocabulary_is_refused_or_runs(tmp: Path) -> None:
    generation = {"max_new_tokens": 3, "temperature": 1.0,
                  "stop_tokens": list(range(1, VOCAB, 2)), "pad_token": VOCAB + 5}
    spec = JobSpec.from_mapping(hf_doc(tmp, HF_CONFIGS["gpt2"], generation, (5, 5, 5, 5)))
    try:
        ctx = admit_job(spec)
    except JobSpecError as exc:
        assert "pad_token" in str(exc)
        return
    assert_fast_path_commits_the_written_steps(ctx)


def test_a_pad_token_outside_the_vocabulary_is_refused_even_without_stop_tokens(
        tmp: Path) -> None:
    """Without stop tokens no pad would ever reach the model, but one rule is clearer than a
    rule that depends on the sampling settings: the pad must be a token the model embeds. The
    last id of the vocabulary is one."""
    generation = {"max_new_tokens": 3, "pad_token": VOCAB + 5, "repetition_penalty": 1.2}
    with pytest.raises(JobSpecError, match=rf"pad_token {VOCAB + 5} is outside the model's "
                                           rf"vocabulary of {VOCAB}"):
        admit_job(JobSpec.from_mapping(hf_doc(tmp, HF_CONFIGS["gpt2"], generation)))
    generation = {**generation, "pad_token": VOCAB - 1, "stop_tokens": [3]}
    ctx = admit_job(JobSpec.from_mapping(hf_doc(tmp, HF_CONFIGS["gpt2"], generation)))
    assert_fast_path_commits_the_written_steps(ctx)


def test_the_builtin_gpt_generates_from_prompts_of_length_1(tmp: Path) -> None:
    arrays = {"tokens": prompt_arrays("tokens", (1, 1, 1))["tokens"]}
    ctx = admit_job(JobSpec.from_mapping(gpt_doc(tmp, SAMPLED, arrays, "gpt-width-1")))
    assert_fast_path_commits_the_written_steps(ctx)


# --- 3. exact ties in the logits ---------------------------------------------------------------


def tied_parameters(params: Mapping[str, torch.Tensor], every: bool) -> dict[str, torch.Tensor]:
    """``params`` with the vocabulary rows of the embedding and output matrices made equal:
    all of them (``every``) or each odd row a copy of the even one before it, so the logits of
    the tied tokens are the same bits."""
    out = dict(params)
    for name, p in params.items():
        if p.dim() == 2 and p.shape[0] == VOCAB:
            tied = p.clone()
            if every:
                tied[:] = p[0]
            else:
                tied[1::2] = p[0::2]
            out[name] = tied
    return out


@pytest.mark.parametrize(("arch", "generation"), [
    ("gpt2", {"max_new_tokens": 3}),
    ("llama", {"max_new_tokens": 3, "temperature": 0.8, "top_k": 4}),
    ("gpt", {"max_new_tokens": 3, "temperature": 0.8, "top_p": 0.3}),
], ids=["gpt2-greedy", "llama-top-k", "gpt-top-p"])
def test_tied_logits_are_broken_the_same_way_on_both_paths(
        tmp: Path, arch: str, generation: dict[str, Any]) -> None:
    if arch == "gpt":
        doc = gpt_doc(tmp, generation, prompt_arrays("tokens", LENGTHS), "gpt-ties")
    else:
        doc = hf_doc(tmp, HF_CONFIGS[arch], generation)
    ctx = JobContext.from_spec(JobSpec.from_mapping(doc))
    params = parameters_of(ctx.initial_state())
    for every in (True, False):
        state = ctx.initial_state(tied_parameters(params, every))
        final = assert_fast_path_commits_the_written_steps(ctx, state)
        logits = final[LOGITS]
        assert len(set(logits.tolist())) == (1 if every else VOCAB // 2)  # ties, exactly
        generated = [final[tokens_entry(p)][n:].tolist() for p, n in enumerate(LENGTHS)]
        tokens = {t for row in generated for t in row}
        if "top_k" in generation and every:
            assert tokens <= set(range(generation["top_k"]))  # ties keep id order
        elif "temperature" not in generation:
            # greedy: the first index of the maximum, the lower id of a tied pair
            assert (tokens == {0}) if every else all(t % 2 == 0 for t in tokens)
    # negative: without ties the logits differ, and greedy picks odd ids too
    untied = written_roots(ctx)[1]
    assert not torch.equal(untied[LOGITS], logits)
    if "temperature" not in generation:
        assert any(t % 2 == 1 for p, n in enumerate(LENGTHS)
                   for t in untied[tokens_entry(p)][n:].tolist())
