"""Generate jobs' tokens are what a model's logits and the written sampler say: greedy tokens
against the written forward and plain ``transformers``, the sampler's settings on hand-built
logits, stop tokens and pads."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from verde.protocol.graph.execution import execution_context, step_stream
from verde.protocol.jobs import generation as written
from verde.protocol.jobs.context import JobContext
from verde.protocol.jobs.generation import LOGITS, Generation, done_entry, tokens_entry
from verde.protocol.provider.generation_engine import (
    decode_prompts,
    parameters_of,
)

from .generate_jobs import (
    GREEDY,
    HF_CONFIGS,
    PROMPT_LENGTHS,
    VOCAB,
    final_tokens,
    generate_spec,
    written_roots,
)

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


