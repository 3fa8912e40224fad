"""``verde verify CERT``: check a verdict certificate or a generation receipt offline (exit 1
if it is not valid)."""

from __future__ import annotations

import dataclasses
import json
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
    """Replay a verdict certificate's dispute and check every signature, proof and the verdict;
    or check a generation receipt (one prompt's tokens, proven against a provider's signed
    result; with --arbiter-key given, a receipt is refused: it carries no arbiter signature).

    A verdict of a committee dispute needs the co-signatures of its threshold of members;
    with --committee the dispute must have been run by that committee.
    """
    from arbiter.committee import CommitteeRoster
    from verde.protocol.dispute.committee import CommitteeError
    from verde.protocol.dispute.errors import InvalidVerdictCertificate
    from verde.protocol.dispute.verify import verify_verdict_certificate

    if not cert.is_file():
        raise click.BadParameter(f"{cert} does not exist or is not a file", param_hint="CERT")
    receipt = _receipt_document(cert)
    if receipt is not None:
        _verify_receipt(cert, receipt, arbiter_keys, as_json)
        return
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


def _receipt_document(path: Path) -> dict[str, object] | None:
    """The file's JSON if it is a generation receipt (by its ``kind``), else None."""
    from verde.protocol.peers.receipt import RECEIPT_KIND

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) and doc.get("kind") == RECEIPT_KIND else None


def _verify_receipt(path: Path, doc: dict[str, object], arbiter_keys: tuple[str, ...],
                    as_json: bool) -> None:
    from verde.protocol.peers.receipt import InvalidReceipt, verify_receipt

    if arbiter_keys:
        raise click.BadParameter("a generation receipt is signed by a provider, not an "
                                 "arbiter", param_hint="--arbiter-key")
    try:
        checked = verify_receipt(doc)
    except InvalidReceipt as exc:
        error_line(f"{path}: {exc}")
        raise click.exceptions.Exit(exit_codes.FALSE) from None
    emit({"valid": True, **dataclasses.asdict(checked)}, as_json=as_json,
         human=f"valid generation receipt for job {checked.job_id[:16]}, prompt "
               f"{checked.prompt}\nprovider {checked.signer}\n"
               f"tokens   {checked.generated}" + ("  (stopped)" if checked.stopped else ""))
