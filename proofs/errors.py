"""Errors raised by proofs.

``ProofError`` is the root of everything proofs raises on purpose. Two families sit below it:

* ``MalformedInput`` (also a ``ValueError``): the input could not even be read — wrong
  length, bad hex, a missing field, an unknown format version, a value canonical JSON cannot
  encode. These name the input and what is wrong with it.
* ``VerificationError``: the input was well formed, was checked, and is false — a Merkle proof
  that does not lead to the root, a bad signature, a lying descent answer, a rogue BLS key.

Verification functions in proofs raise one of these; none of them returns ``False``.
"""

from __future__ import annotations

from typing import Any


class ProofError(Exception):
    """Root of every error proofs raises on purpose."""


# --- input that cannot be read -------------------------------------------------------------


class MalformedInput(ProofError, ValueError):
    """An argument or a serialised object is malformed (wrong type, length, hex, field)."""


class CanonicalEncodingError(MalformedInput):
    """A value cannot be encoded as canonical JSON (NaN/inf, non-str key, bytes, ...)."""


class UnsupportedVersion(MalformedInput):
    """A serialised object carries a format version this code does not know."""


class UnsupportedTensorError(MalformedInput, TypeError):
    """An object given as a tensor is not a supported numpy array or torch tensor."""


class KeyFileError(ProofError):
    """A key file cannot be read: missing, unreadable, corrupt, or not an Ed25519 key."""


class KeyFileExistsError(KeyFileError, FileExistsError):
    """Saving a key would overwrite an existing file and overwriting was not asked for."""


# --- well-formed input that is false --------------------------------------------------------


class VerificationError(ProofError):
    """Something was checked and found false."""


class InvalidProof(VerificationError):
    """A Merkle inclusion proof (or a state-entry proof) does not lead to the claimed root."""


class InvalidSignature(VerificationError):
    """An Ed25519 or BLS signature does not verify for the claimed key and message."""


class ContextMismatch(VerificationError):
    """A validly signed message was signed for another context (job, dispute, round, kind)."""

    def __init__(self, message: str, *, expected: Any = None, actual: Any = None) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class WrongSigner(VerificationError):
    """A validly signed message or certificate was signed by a key other than the one required."""


class NotAnEquivocation(VerificationError):
    """Two messages given as an equivocation are not one (different signer/context, same body)."""


class RogueKeyError(VerificationError):
    """A BLS public key comes without a valid proof of possession (rogue-key defence)."""


class NoDivergence(ProofError):
    """A descent was asked for between two equal roots: there is nothing to dispute."""


class DescentFinished(ProofError):
    """An answer was recorded for a descent that has already reached its leaf."""


class InconsistentAnswer(VerificationError):
    """A party's child pair does not hash to the parent it committed to: a detected lie.

    ``parties`` is ``("a",)``, ``("b",)`` or ``("a", "b")``; ``party`` is ``"a"``, ``"b"`` or
    ``"both"``. ``position`` is the inner node asked about and ``reasons`` maps each lying party
    to a one-line explanation.
    """

    def __init__(self, parties: tuple[str, ...], position: Any, reasons: dict[str, str]) -> None:
        self.parties = parties
        self.party = parties[0] if len(parties) == 1 else "both"
        self.position = position
        self.reasons = dict(reasons)
        detail = "; ".join(f"party {p}: {reasons[p]}" for p in parties)
        super().__init__(f"inconsistent answer at {position}: {detail}")


class InvalidCertificate(VerificationError):
    """A certificate fails a check: signature, committee, trust, or its body checker."""


class UntrustedSigner(InvalidCertificate, WrongSigner):
    """A certificate is validly signed, but by a key outside the trusted set."""


class UnknownCertificateKind(InvalidCertificate):
    """No body checker is registered for the certificate's kind, so its body is unchecked."""


class InvalidCertificateBody(InvalidCertificate):
    """The body checker registered for the certificate's kind rejected the body."""
