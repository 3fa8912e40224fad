"""Fetching a job's verified final state from a provider (the client side of the exchange):
named entries (trained weights), an inference job's outputs, every sample's (one state
entry per step's batch, ``out/<step>``), or a generate job's tokens, every prompt's.

The signed result names the final state root; every fetched tensor is checked against it with
:func:`verde.protocol.peers.state.verify_state_entries` (Verde, Arun et al. 2025: state
commitments), so neither the transport nor the provider needs to be trusted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers.protocol import StateExchangePeer
from verde.protocol.peers.result import InvalidResult, ResultClaim, check_result
from verde.protocol.peers.state import verify_state_entries


def fetch_final_state(
    peer: StateExchangePeer,
    job_id: str,
    n_steps: int,
    names: Sequence[str],
    *,
    structure: Mapping[str, tuple[tuple[int, ...], torch.dtype]] | None = None,
) -> tuple[ResultClaim, dict[str, torch.Tensor]]:
    """The peer's checked signed result and the verified entries ``names`` of its final state.

    Raises ``InvalidResult`` if the result is not a valid one signed by this peer for
    ``job_id`` with ``n_steps`` steps, ``InvalidStateEntries`` if an entry does not verify.
    """
    claim = checked_result(peer, job_id, n_steps)
    entries = peer.fetch_state(job_id, names)
    tensors = verify_state_entries(entries, claim.final_state, names, job_id=job_id,
                                   structure=structure)
    return claim, tensors


def checked_result(peer: StateExchangePeer, job_id: str, n_steps: int) -> ResultClaim:
    """The peer's signed result for ``job_id``, checked, and signed by that peer."""
    claim = check_result(peer.result(job_id), job_id, n_steps)
    if claim.signer_hex != peer.identity.hex():
        raise InvalidResult(f"result for job {job_id} is signed by {claim.signer_hex[:16]}, "
                            f"not by the provider asked ({peer.identity.hex()[:16]})")
    return claim


def fetch_outputs(
    peer: StateExchangePeer,
    spec: JobSpec,
    *,
    per_request: int = 64,
) -> tuple[ResultClaim, torch.Tensor, list[int]]:
    """Every sample's outputs of an inference job, each batch verified against the signed
    final state root: (the checked result, outputs stacked over all steps' samples in order,
    the dataset index of each row). Fetches ``per_request`` batches per request."""
    from verde.protocol.jobs.context import JobContext, output_entry

    if spec.kind != "infer":
        raise ValueError(f"job {spec.job_id[:16]} is a {spec.kind} job, not an inference job")
    if not isinstance(per_request, int) or per_request < 1:
        raise ValueError(f"per_request must be a positive int, got {per_request!r}")
    ctx = JobContext.from_spec(spec)
    structure = ctx.state_structure()
    names = [output_entry(s) for s in range(1, spec.steps + 1)]
    claim: ResultClaim | None = None
    batches: dict[str, torch.Tensor] = {}
    for start in range(0, len(names), per_request):
        chunk = names[start:start + per_request]
        claim, got = fetch_final_state(peer, spec.job_id, spec.steps, chunk,
                                       structure={n: structure[n] for n in chunk})
        batches.update(got)
    assert claim is not None  # an inference job has at least one step
    indices = [i for s in range(1, spec.steps + 1) for i in ctx.batch_indices(s)]
    return claim, torch.cat([batches[n] for n in names]), indices


@dataclass(frozen=True)
class Generations:
    """A generate job's verified outputs: every prompt's token buffer and done flag, the
    signed result they are proven against, and the entries' proofs (for receipts)."""

    claim: ResultClaim
    tokens: dict[int, torch.Tensor]
    done: dict[int, bool]
    entries: list[dict[str, Any]]

    def document(self, spec: JobSpec, decode: Callable[[list[int]], str] | None = None,
                 ) -> dict[str, Any]:
        """What ``verde delegate`` writes as ``generations.json``: per prompt, its tokens, the
        generated ones (through the stop token when it stopped) and, with ``decode``, text."""
        from verde.protocol.peers.receipt import generated_tokens

        g = spec.generation
        prompts = []
        for p in sorted(self.tokens):
            ids = [int(t) for t in self.tokens[p].tolist()]
            n = g["prompt_lengths"][p]
            new = generated_tokens(ids[n:], self.done[p], g["stop_tokens"])
            entry: dict[str, Any] = {"prompt": p, "prompt_tokens": ids[:n], "tokens": new,
                                     "stopped": self.done[p]}
            if decode is not None:
                entry["prompt_text"], entry["text"] = decode(ids[:n]), decode(new)
            prompts.append(entry)
        return {"job_id": spec.job_id, "provider": self.claim.signer_hex,
                "final_state": self.claim.final_state.hex(), "prompts": prompts}

    def receipt(self, spec: JobSpec, prompt: int) -> dict[str, Any]:
        """The offline-checkable receipt of one prompt (``verde.protocol.peers.receipt``)."""
        from verde.protocol.peers.receipt import build_receipt

        if self.claim.signed is None:
            raise ValueError("generations without their signed result make no receipt")
        return build_receipt(spec, self.claim.signed, prompt, tokens=self.tokens[prompt],
                             done=torch.tensor(self.done[prompt]), entries=self.entries)


def fetch_generations(peer: StateExchangePeer, spec: JobSpec, *, per_request: int = 64,
                      ) -> Generations:
    """Every prompt's tokens of a generate job, verified against the signed final state root
    (``per_request`` prompts per request)."""
    from verde.protocol.jobs.context import JobContext
    from verde.protocol.jobs.generation import done_entry, tokens_entry

    if spec.kind != "generate":
        raise ValueError(f"job {spec.job_id[:16]} is a {spec.kind} job, not a generate job")
    if not isinstance(per_request, int) or per_request < 1:
        raise ValueError(f"per_request must be a positive int, got {per_request!r}")
    structure = JobContext.from_spec(spec).state_structure()
    prompts = len(spec.generation["prompt_lengths"])
    claim = checked_result(peer, spec.job_id, spec.steps)
    tokens: dict[int, torch.Tensor] = {}
    done: dict[int, bool] = {}
    entries: list[dict[str, Any]] = []
    for start in range(0, prompts, per_request):
        chunk = range(start, min(prompts, start + per_request))
        names = [n for p in chunk for n in (tokens_entry(p), done_entry(p))]
        fetched = peer.fetch_state(spec.job_id, names)
        got = verify_state_entries(fetched, claim.final_state, names, job_id=spec.job_id,
                                   structure={n: structure[n] for n in names})
        entries.extend(fetched.payload["entries"])
        for p in chunk:
            tokens[p] = got[tokens_entry(p)]
            done[p] = bool(got[done_entry(p)])
    return Generations(claim, tokens, done, entries)
