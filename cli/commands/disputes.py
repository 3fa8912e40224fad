"""``verde disputes list/show`` and ``verde jobs``: what an arbiter or provider knows."""

from __future__ import annotations

import json

import click

from cli.options import tls_options
from cli.output import emit, table


@click.group()
def disputes() -> None:
    """Inspect disputes on an arbiter."""


@disputes.command("list")
@click.option("--arbiter", "address", required=True, help="Arbiter address host:port.")
@click.option("--status", default="", help="Only disputes in this status.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@tls_options
def list_disputes(address: str, status: str, limit: int, as_json: bool, tls: object) -> None:
    """List disputes, newest first."""
    from arbiter.arbiter_client import ArbiterClient

    with ArbiterClient(address, tls=tls) as client:  # type: ignore[arg-type]
        rows = client.list(status, limit)
    docs = [{"dispute_id": r.dispute_id, "job_id": r.job_id, "status": r.status,
             "phase": r.phase, "rounds": r.rounds,
             "winner": (json.loads(r.verdict_json).get("winner") if r.verdict_json else None)}
            for r in rows]
    if as_json:
        emit(docs, as_json=True)
    else:
        table("disputes", ["dispute", "job", "status", "phase", "rounds", "winner"],
              [[d["dispute_id"][:16], d["job_id"][:16], d["status"], d["phase"], d["rounds"],
                d["winner"] or "-"] for d in docs])


@disputes.command("show")
@click.argument("dispute_id")
@click.option("--arbiter", "address", required=True, help="Arbiter address host:port.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@tls_options
def show(dispute_id: str, address: str, as_json: bool, tls: object) -> None:
    """Show one dispute and its verdict."""
    from arbiter.arbiter_client import ArbiterClient

    with ArbiterClient(address, tls=tls) as client:  # type: ignore[arg-type]
        st = client.status(dispute_id)
    doc = {"dispute_id": st.dispute_id, "job_id": st.job_id, "status": st.status,
           "phase": st.phase, "rounds": st.rounds,
           "verdict": json.loads(st.verdict_json) if st.verdict_json else None,
           "error": st.error or None}
    emit(doc, as_json=as_json)


@click.group()
def jobs() -> None:
    """Inspect jobs on a provider."""


@jobs.command("status")
@click.argument("job_id")
@click.option("--provider", "address", required=True, help="Provider address host:port.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@tls_options
def job_status(job_id: str, address: str, as_json: bool, tls: object) -> None:
    """Show a job's state and progress on a provider."""
    from arbiter.provider_client import GrpcProviderPeer

    with GrpcProviderPeer(address, tls=tls) as peer:  # type: ignore[arg-type]
        st = peer.status(job_id)
    doc = {"job_id": job_id, "state": st.state, "steps_done": st.steps_done,
           "steps_total": st.steps_total, "error": st.error or None}
    emit(doc, as_json=as_json,
         human=f"{job_id}: {st.state} {st.steps_done}/{st.steps_total}"
               + (f" ({st.error})" if st.error else ""))
