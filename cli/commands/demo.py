"""``verde demo``: the whole story on 127.0.0.1 in one command (see arbiter/demo.py)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where keys, the SQLite database and certificates go (default: a temp dir).")
@click.option("--in-process", is_flag=True,
              help="Run the protocol in this process without gRPC or a database "
                   "(verde.protocol.demo).")
def demo(workdir: Path | None, in_process: bool) -> None:
    """Three providers (one cheating), an arbiter on SQLite, a dispute and its verdict."""
    if in_process:
        from verde.protocol.demo import run_demo as run_in_process

        run_in_process(lambda e: click.echo(e.message) if e.kind != "run" else None)
        return
    from arbiter.demo import run_demo
    from verde.protocol.dispute.verify import verify_verdict_certificate

    def check(certificate: dict[str, object]) -> str:
        v = verify_verdict_certificate(certificate)
        return f"winner {v.winner[:16] if v.winner else 'none'}, reason {v.reason}" + (
            ", operator recomputed" if v.recomputed else "")

    outcome = run_demo(click.echo, workdir=workdir, verify=check)
    if not outcome.honest or not outcome.disputes:
        raise click.ClickException("the demo did not reach a verdict for the honest result")
