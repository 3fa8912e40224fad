"""``verde delegate``: run a job on several providers; an arbiter settles disagreements."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cli.options import client_key_option, tls_options
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
              help="Directory for verdict certificates and the accepted result.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@tls_options
@client_key_option
def delegate(*, job: Path, providers: tuple[str, ...], arbiter_addr: str | None,
             out_dir: Path | None, as_json: bool, tls: object,
             client_key: SigningKey) -> None:
    """Send JOB (.toml or .json spec) to every --provider and return the honest result.

    Progress (training steps, dispute rounds) goes to stderr: live bars on a terminal, plain
    lines otherwise, nothing with --json (stdout then holds the JSON document alone).
    """
    from arbiter.arbiter_client import ArbiterClient
    from arbiter.delegate import delegate as run_delegation
    from arbiter.delegate import resolution_json
    from arbiter.provider_client import GrpcProviderPeer
    from verde.protocol.jobs.spec import load_job_spec

    spec = load_job_spec(job)
    arbiter = (ArbiterClient(arbiter_addr, tls=tls, client_key=client_key)  # type: ignore[arg-type]
               if arbiter_addr else None)
    try:
        with progress_view(as_json) as view:
            outcome = run_delegation(
                spec, list(providers), arbiter, report=view.note, progress=view.steps,
                rounds=view.rounds, verdicts=view.finished,
                peer_factory=lambda a: GrpcProviderPeer(  # type: ignore[arg-type]
                    a, tls=tls, client_key=client_key))
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
        if doc["result"] is not None:
            (out_dir / "result.json").write_text(
                json.dumps(doc["result"], indent=2, sort_keys=True))
    human = (f"job {spec.job_id}\nhonest providers: {', '.join(outcome.honest) or 'none'}\n"
             f"dishonest providers: {', '.join(outcome.cheaters) or 'none'}\n"
             f"disputes: {len(outcome.disputes)}")
    emit(doc, as_json=as_json, human=human)
    if not outcome.honest:
        raise click.exceptions.Exit(1)
