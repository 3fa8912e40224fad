"""Generation receipts: one prompt's tokens, provable offline without re-running the job.

Why: the client of a generate job often hands single outputs to third parties (a user, an
auditor). Re-running the job, or even its dispute, is what they cannot do. A provider's
signed result commits to the final state root, and the final state holds every prompt's token
buffer as its own entry (``verde.protocol.jobs.generation``), so one prompt's tokens are proven
by the signed result and one entry's Merkle proof (Verde, Arun et al. 2025: state
commitments). A receipt is that, as one JSON document: the job spec (whose digest is the job
id the provider signed), the signed result, the prompt index, its token buffer and done flag,
and their entries' proofs against the final state root.

What a receipt proves: that the provider who signed the result committed to these tokens for
this prompt of this job. That the tokens are *correct* is what verde's delegation adds: a
result that survived the disputes among several providers (``verde delegate``) is the one an
honest provider computed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from proofs import SignedMessage
from proofs.digest import tensor_digest
from proofs.errors import ProofError
from proofs.merkle import InclusionProof
from proofs.state import verify_state_entry
from verde.errors import VerdeError
from verde.protocol.jobs.errors import JobError
from verde.protocol.jobs.generation import done_entry, tokens_entry
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers.result import InvalidResult, check_result

RECEIPT_KIND = "verde/generation-receipt/v1"
_FIELDS = {"kind", "job", "result", "prompt", "tokens", "done", "entries"}


class InvalidReceipt(VerdeError):
    """A generation receipt that does not prove what it claims (the message says why)."""


@dataclass(frozen=True)
class CheckedReceipt:
    """What a valid receipt proves: this signer committed to these tokens for this prompt."""

    job_id: str
    signer: str
    prompt: int
    prompt_tokens: list[int]
    generated: list[int]
    stopped: bool


def build_receipt(spec: JobSpec, result: SignedMessage, prompt: int, *, tokens: torch.Tensor,
                  done: torch.Tensor, entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A receipt for ``prompt`` from the final-state ``entries`` (name, digest, proof) of its
    token buffer and done flag, as ``StateExchangePeer.fetch_state`` returns them."""
    wanted = {tokens_entry(prompt), done_entry(prompt)}
    picked = [dict(e) for e in entries if e.get("name") in wanted]
    if {e["name"] for e in picked} != wanted:
        raise ValueError(f"build_receipt: entries for {sorted(wanted)} are needed")
    return {"kind": RECEIPT_KIND, "job": spec.to_dict(), "result": result.to_json(),
            "prompt": prompt, "tokens": [int(t) for t in tokens.tolist()],
            "done": bool(done), "entries": sorted(picked, key=lambda e: e["name"])}


def verify_receipt(doc: Any) -> CheckedReceipt:
    """Check a receipt offline; raise ``InvalidReceipt`` saying what does not hold."""
    if not isinstance(doc, Mapping) or set(doc) != _FIELDS or doc.get("kind") != RECEIPT_KIND:
        raise InvalidReceipt(f"not a generation receipt: expected an object with fields "
                             f"{sorted(_FIELDS)} and kind {RECEIPT_KIND!r}")
    try:
        spec = JobSpec.from_mapping(doc["job"])
    except JobError as exc:
        raise InvalidReceipt(f"receipt: its job spec is not valid here ({exc})") from exc
    if spec.kind != "generate":
        raise InvalidReceipt(f"receipt: job {spec.job_id[:16]} is a {spec.kind} job")
    prompt = doc["prompt"]
    g = spec.generation
    n_prompts = len(g["prompt_lengths"])
    if not isinstance(prompt, int) or isinstance(prompt, bool) or not 0 <= prompt < n_prompts:
        raise InvalidReceipt(f"receipt: prompt must be an index in [0, {n_prompts}), "
                             f"got {prompt!r}")
    try:
        claim = check_result(SignedMessage.from_json(doc["result"]), spec.job_id, spec.steps)
    except (InvalidResult, ProofError, ValueError, TypeError, KeyError) as exc:
        raise InvalidReceipt(f"receipt: the signed result does not hold ({exc})") from exc
    tokens = _tokens(doc["tokens"], g["prompt_lengths"][prompt] + g["max_new_tokens"])
    done = doc["done"]
    if not isinstance(done, bool):
        raise InvalidReceipt("receipt: done must be true or false")
    values = {tokens_entry(prompt): torch.tensor(tokens, dtype=torch.int64),
              done_entry(prompt): torch.tensor(done, dtype=torch.bool)}
    entries = doc["entries"]
    if not isinstance(entries, list) or sorted(
            e.get("name", "") for e in entries if isinstance(e, Mapping)) != sorted(values):
        raise InvalidReceipt(f"receipt: entries must prove exactly {sorted(values)}")
    for entry in entries:
        name = entry["name"]
        digest = tensor_digest(values[name])
        if entry.get("digest") != digest.hex():
            raise InvalidReceipt(f"receipt: {name} does not hash to the digest its proof is for")
        try:
            verify_state_entry(claim.final_state, name, digest,
                               InclusionProof.from_json(entry.get("proof")))
        except (ProofError, ValueError, TypeError, KeyError) as exc:
            raise InvalidReceipt(f"receipt: {name} is not proven against the signed final "
                                 f"state ({exc})") from exc
    n = g["prompt_lengths"][prompt]
    generated = generated_tokens(tokens[n:], done, g["stop_tokens"])
    return CheckedReceipt(spec.job_id, claim.signer_hex, prompt, tokens[:n], generated, done)


def _tokens(raw: Any, length: int) -> list[int]:
    if (not isinstance(raw, list) or len(raw) != length
            or not all(isinstance(t, int) and not isinstance(t, bool) for t in raw)):
        raise InvalidReceipt(f"receipt: tokens must be the prompt's whole buffer, {length} "
                             "integers")
    return list(raw)


def generated_tokens(new: list[int], done: bool, stops: Sequence[int]) -> list[int]:
    """The generated tokens: through the first stop token when the prompt stopped."""
    if done:
        for i, token in enumerate(new):
            if token in stops:
                return new[:i + 1]
    return new
