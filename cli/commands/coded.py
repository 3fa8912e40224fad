"""``verde train-coded``: train with gradient coding over several providers."""

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


@click.command("train-coded")
@click.argument("job", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--provider", "providers", multiple=True, required=True,
              help="Provider address host:port (repeat; one per coded worker).")
@click.option("--arbiter", "arbiter_addr", default=None,
              help="Arbiter address host:port (settles replicas that disagree; without it "
                   "this process referees).")
@click.option("--code", type=click.Choice(["fractional", "replicated"]), default="fractional",
              show_default=True, help="fractional: tolerate stragglers; replicated: also "
                                      "detect/correct Byzantine providers.")
@click.option("--stragglers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Providers that may be slow or gone in each step (s).")
@click.option("--replication", type=click.IntRange(min=1), default=3, show_default=True,
              help="Replicas per partition (replicated code).")
@click.option("--byzantine", type=click.IntRange(min=0), default=1, show_default=True,
              help="Faulty providers to tolerate (replicated code, f).")
@click.option("--detect-only", is_flag=True,
              help="Replicated code with r >= f+s+1: detect and dispute, no majority vote.")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Steps to run (default: the job's steps).")
@click.option("--step-timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds to wait for a decodable set of answers per step.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the final parameters (safetensors) and the report.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@programs_option
@tls_options
@client_key_option
def train_coded(*, job: Path, providers: tuple[str, ...], arbiter_addr: str | None, code: str,
                stragglers: int, replication: int, byzantine: int, detect_only: bool,
                steps: int | None, step_timeout: float | None, out_dir: Path | None,
                as_json: bool, tls: object, client_key: SigningKey) -> None:
    """Train JOB (a train job spec) with gradient coding over every --provider.

    Each step's batch is cut into partitions; each partition's gradient is a one-step verde
    job on the providers the code assigns. The step continues as soon as the answers decode;
    replicas that disagree are settled by verde disputes, naming the faulty provider.
    """
    from arbiter.arbiter_client import ArbiterClient
    from arbiter.coded import build_code, training_json
    from arbiter.coded import train_coded as run_training
    from arbiter.provider_client import GrpcProviderPeer
    from verde.protocol.jobs.spec_file import load_job_spec

    spec = load_job_spec(job)
    gcode = build_code(code, len(providers), stragglers=stragglers, replication=replication,
                       byzantine=byzantine, detect_only=detect_only)
    arbiter = (ArbiterClient(arbiter_addr, tls=tls, client_key=client_key)  # type: ignore[arg-type]
               if arbiter_addr else None)
    total = steps or spec.steps
    try:
        with progress_view(as_json) as view:
            coded_job, run = run_training(
                spec, gcode, list(providers), arbiter, total, report=view.note,
                step_timeout_s=step_timeout,
                progress=lambda done, n: view.steps("coded training", done, n),
                transfer=view.transfer, rounds=view.rounds, verdicts=view.finished,
                peer_factory=lambda a: GrpcProviderPeer(  # type: ignore[arg-type]
                    a, tls=tls, client_key=client_key))
    finally:
        if arbiter is not None:
            arbiter.close()
    doc = training_json(coded_job, run, list(providers))
    if out_dir is not None:
        from safetensors.torch import save_file

        out_dir.mkdir(parents=True, exist_ok=True)
        save_file({n: t.contiguous() for n, t in run.params.items()},
                  str(out_dir / "params.safetensors"))
        (out_dir / "report.json").write_text(json.dumps(doc, indent=2, sort_keys=True))
    faulty = sorted({p for d in doc["disputes"] for p in d["dishonest"]})
    human = (f"job {doc['job_id']}: {len(run.outcomes)} coded steps over {len(providers)} "
             f"providers ({doc['partitions']} partitions)\nfinal state: {doc['final_state']}\n"
             f"disputes: {len(doc['disputes'])}; faulty providers: {', '.join(faulty) or 'none'}")
    emit(doc, as_json=as_json, human=human)
