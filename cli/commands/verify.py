"""``verde verify CERT``: check a verdict certificate offline (exit 1 if it is not valid)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from cli import exit_codes
from cli.options import programs_option
from cli.output import emit, error_line


@click.command()
@click.argument("cert", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--arbiter-key", "arbiter_keys", multiple=True,
              help="Trust only certificates signed by this arbiter public key (hex; repeat).")
@click.option("--committee", "committee_path",
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Committee file: accept only a verdict co-signed by at least its threshold "
                   "of its members.")
@click.option("--no-recompute", is_flag=True,
              help="Skip re-executing the disputed operator (signatures and proofs only).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@programs_option
def verify(cert: Path, arbiter_keys: tuple[str, ...], committee_path: Path | None,
           no_recompute: bool, as_json: bool) -> None:
    """Replay a verdict certificate's dispute and check every signature, proof and the verdict.

    A verdict of a committee dispute needs the co-signatures of its threshold of members;
    with --committee the dispute must have been run by that committee.
    """
    from arbiter.committee import CommitteeRoster
    from verde.protocol.dispute.committee import CommitteeError
    from verde.protocol.dispute.errors import InvalidVerdictCertificate
    from verde.protocol.dispute.verify import verify_verdict_certificate

    if not cert.is_file():
        raise click.BadParameter(f"{cert} does not exist or is not a file", param_hint="CERT")
    committee = CommitteeRoster.load(committee_path).committee if committee_path else None
    try:
        checked = verify_verdict_certificate(cert, trusted_arbiters=list(arbiter_keys) or None,
                                             recompute=not no_recompute,
                                             trusted_committee=committee)
    except (CommitteeError, InvalidVerdictCertificate) as exc:  # checked, and false
        error_line(f"{cert}: {exc}")
        raise click.exceptions.Exit(exit_codes.FALSE) from None
    doc = {"valid": True, **dataclasses.asdict(checked)}
    human = (f"valid verdict certificate for job {checked.job_id[:16]}, dispute "
             f"{checked.dispute_id[:16]}\narbiter {checked.arbiter}\nwinner  {checked.winner}\n"
             f"losers  {', '.join(checked.losers.values()) or 'none'}\nreason  {checked.reason}"
             + ("\noperator recomputed" if checked.recomputed else "")
             + (f"\nco-signed by {len(checked.committee_signers)} committee members"
                if checked.committee_signers else ""))
    emit(doc, as_json=as_json, human=human)
