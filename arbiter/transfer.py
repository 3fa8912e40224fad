"""What travels around a delegated job over gRPC: the job's inputs to every provider before it
is submitted, and what the user came for from an honest provider after it is settled.

Inputs are content-addressed uploads (``verde.protocol.jobs.portable``): every provider gets
the same states and returns their roots, checked against ours. Results are read from one
honest provider and checked against the signed final state root the resolution accepted
(``verde.protocol.peers.fetch``), then written as files a user loads without verde:
``model.safetensors`` (for ``hf`` jobs with ``config.json`` beside it, so
``transformers.AutoModel...from_pretrained(DIR)`` works), or for an inference job
``outputs.safetensors`` with every sample's outputs and their dataset indices.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from arbiter.errors import ArbiterError
from arbiter.provider_client import GrpcProviderPeer
from verde.protocol.dispute.multi import Resolution
from verde.protocol.jobs.context import PARAM, JobContext
from verde.protocol.jobs.portable import PortableJob
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers.fetch import fetch_final_state, fetch_generations, fetch_outputs
from verde.protocol.peers.result import check_result
from verde.protocol.peers.state import state_to_blobs

#: (what, done, total) bytes of a transfer, for progress bars.
Transfer = Callable[[str, int, int], None]
OUTPUTS_FILE = "outputs.safetensors"
MODEL_FILE = "model.safetensors"
GENERATIONS_FILE = "generations.json"
RECEIPTS_DIR = "receipts"


def upload_inputs(job: PortableJob, providers: Sequence[str],
                  peer_factory: Callable[[str], GrpcProviderPeer], *,
                  progress: Transfer | None = None) -> dict[str, Any]:
    """Upload ``job``'s states to every provider; returns what was sent (for the report)."""
    total = job.upload_bytes * len(providers)
    done = 0
    roots: dict[str, str] = {}
    for addr in providers:
        with peer_factory(addr) as peer:
            for what, state in job.uploads:
                roots[what] = peer.put_state(state_to_blobs(state))
                done += sum(t.numel() * t.element_size() for t in state.values())
                if progress is not None:
                    progress("upload", done, total)
    return {"uploads": roots, "upload_bytes": job.upload_bytes}


def fetch_results(spec: JobSpec, outcome: Resolution,
                  peer_factory: Callable[[str], GrpcProviderPeer], out_dir: Path, *,
                  progress: Transfer | None = None,
                  decode: Callable[[list[int]], str] | None = None) -> list[str]:
    """Write the accepted result's weights or outputs into ``out_dir``; the files written.

    A generate job writes ``generations.json`` (tokens, and text with ``decode``, e.g.
    ``verde.protocol.jobs.hf.tokenize.token_decoder``) and one receipt per prompt under
    ``receipts/``.

    Reads from the first honest provider, every tensor checked against the final state root
    the resolution accepted.
    """
    if not outcome.honest:
        raise ArbiterError("no honest provider: nothing verified to fetch")
    addr = outcome.honest[0]
    accepted = check_result(outcome.results[addr], spec.job_id, spec.steps)
    ctx = JobContext.from_spec(spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    with peer_factory(addr) as peer:
        if spec.kind == "generate":
            written = _write_generations(spec, peer, accepted.final_state, addr, out_dir,
                                         decode=decode)
        elif spec.kind == "infer":
            claim, outputs, indices = fetch_outputs(peer, spec)
            check_same_root(claim.final_state, accepted.final_state, addr)
            _save({"outputs": outputs, "indices": torch.tensor(indices, dtype=torch.int64)},
                  out_dir / OUTPUTS_FILE)
            written = [OUTPUTS_FILE]
        else:
            names = [PARAM + n for n in ctx.param_names]
            structure = ctx.state_structure()
            claim, tensors = fetch_final_state(peer, spec.job_id, spec.steps, names,
                                               structure={n: structure[n] for n in names})
            check_same_root(claim.final_state, accepted.final_state, addr)
            if spec.program == "hf":
                from verde.protocol.jobs.hf.export import export_model_directory

                export_model_directory(ctx, tensors, out_dir)
                written = ["config.json", MODEL_FILE]
            else:
                _save({n[len(PARAM):]: t for n, t in tensors.items()}, out_dir / MODEL_FILE)
                written = [MODEL_FILE]
        if progress is not None:
            progress("fetch", peer.bytes_received, peer.bytes_received)
    return written


def _write_generations(spec: JobSpec, peer: GrpcProviderPeer, accepted: bytes, addr: str,
                       out_dir: Path, *, decode: Callable[[list[int]], str] | None,
                       ) -> list[str]:
    gens = fetch_generations(peer, spec)
    check_same_root(gens.claim.final_state, accepted, addr)
    (out_dir / GENERATIONS_FILE).write_text(
        json.dumps(gens.document(spec, decode), indent=2, sort_keys=True))
    receipts = out_dir / RECEIPTS_DIR
    receipts.mkdir(exist_ok=True)
    for p in sorted(gens.tokens):
        (receipts / f"prompt-{p}.json").write_text(json.dumps(gens.receipt(spec, p),
                                                              sort_keys=True))
    return [GENERATIONS_FILE, f"{RECEIPTS_DIR}/"]  # one receipt per prompt: prompt-<p>.json


def check_same_root(got: bytes, accepted: bytes, addr: str) -> None:
    """The fetched result must be the one the resolution accepted (same final state root)."""
    if got != accepted:
        raise ArbiterError(f"provider {addr} now signs final state {got.hex()[:16]}, not the "
                           f"accepted {accepted.hex()[:16]}")


def _save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(path),
              metadata={"format": "pt"})
