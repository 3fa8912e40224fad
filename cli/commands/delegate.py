"""``verde delegate``: run a job on several providers; an arbiter settles disagreements."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cli.options import client_key_option, programs_option, tls_options
from cli.output import emit
from cli.progress import progress_view

if TYPE_CHECKING:
    from proofs import SigningKey


@click.command()
@click.argument("job", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--provider", "providers", multiple=True, required=True,
              help="Provider address host:port (repeat for each provider).")
@click.option("--arbiter", "arbiter_addr", default=None, help="Arbiter address host:port.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for what the job made, verified against the signed final "
                   "state (model.safetensors, for hf jobs with config.json; outputs.safetensors "
                   "for inference; generations.json and receipts/ for generate jobs), "
                   "result.json, job.json and verdict certificates.")
@click.option("--tokenizer", type=click.Path(file_okay=False, exists=True, path_type=Path),
              default=None, help="A local model directory whose tokenizer turns a generate "
              "job's tokens into text in generations.json.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@programs_option
@tls_options
@client_key_option
def delegate(*, job: Path, providers: tuple[str, ...], arbiter_addr: str | None,
             out_dir: Path | None, tokenizer: Path | None, as_json: bool, tls: object,
             client_key: SigningKey) -> None:
    """Send JOB (.toml or .json spec) to every --provider and return the honest result.

    The local files JOB names (a file dataset, a Hugging Face model directory's config and
    weights) are uploaded to every provider first, content-addressed; the job that is sent
    names none of them, so providers, the arbiter and `verde verify` need no copies.

    Progress (uploads, training steps, dispute rounds, fetches) goes to stderr: live bars on a
    terminal, plain lines otherwise, nothing with --json (stdout then holds the JSON document
    alone).
    """
    from arbiter.arbiter_client import ArbiterClient
    from arbiter.delegate import delegate as run_delegation
    from arbiter.delegate import resolution_json
    from arbiter.provider_client import GrpcProviderPeer
    from arbiter.transfer import fetch_results, upload_inputs
    from verde.protocol.jobs.portable import portable_job
    from verde.protocol.jobs.spec_file import load_job_spec

    portable = portable_job(load_job_spec(job))
    spec = portable.spec
    decode = None
    if tokenizer is not None:  # read before any work starts: a missing one is one line now
        from verde.protocol.jobs.hf.tokenize import token_decoder

        decode = token_decoder(tokenizer)

    def peer(addr: str) -> GrpcProviderPeer:
        return GrpcProviderPeer(addr, tls=tls, client_key=client_key)  # type: ignore[arg-type]

    arbiter = (ArbiterClient(arbiter_addr, tls=tls, client_key=client_key)  # type: ignore[arg-type]
               if arbiter_addr else None)
    written: list[str] = []
    try:
        with progress_view(as_json) as view:
            upload_inputs(portable, list(providers), peer, progress=view.transfer)
            outcome = run_delegation(
                spec, list(providers), arbiter, report=view.note, progress=view.steps,
                rounds=view.rounds, verdicts=view.finished, peer_factory=peer)
            if out_dir is not None and outcome.honest:
                written = fetch_results(spec, outcome, peer, out_dir, progress=view.transfer,
                                        decode=decode)
    finally:
        if arbiter is not None:
            arbiter.close()
    doc = resolution_json(spec, outcome)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for d in outcome.disputes:
            if d.certificate is not None:
                (out_dir / f"verdict-{d.dispute_id[:16]}.json").write_text(
                    json.dumps(d.certificate, indent=2, sort_keys=True))
        (out_dir / "job.json").write_text(json.dumps(spec.to_dict(), indent=2, sort_keys=True))
        if doc["result"] is not None:
            (out_dir / "result.json").write_text(
                json.dumps(doc["result"], indent=2, sort_keys=True))
        doc["files"] = sorted(written + ["job.json"]
                              + (["result.json"] if doc["result"] is not None else []))
    human = (f"job {spec.job_id}\nhonest providers: {', '.join(outcome.honest) or 'none'}\n"
             f"dishonest providers: {', '.join(outcome.cheaters) or 'none'}\n"
             f"disputes: {len(outcome.disputes)}"
             + (f"\nwritten to {out_dir}: {', '.join(doc['files'])}" if out_dir else ""))
    emit(doc, as_json=as_json, human=human)
    if not outcome.honest:
        raise click.exceptions.Exit(1)
