"""Committee attestations: BLS signatures over BLS12-381 with proofs of possession.

Why: several arbiters (or providers) can sign one verdict, their signatures aggregate into one
96-byte signature, and a verifier checks all of them with one aggregate verification. This
module follows the proof-of-possession scheme of the IETF BLS signature draft
(draft-irtf-cfrg-bls-signature, section 3.3, ciphersuite
``BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_``), implemented by ``py_ecc``'s
``G2ProofOfPossession``: public keys in G1 (48 bytes), signatures in G2 (96 bytes).

Why proofs of possession: with plain aggregation, an attacker can publish a *rogue key*
``pk_x = g^x - pk_honest`` and alone produce an aggregate that "verifies" for a committee
containing the honest key. Requiring each member's key to come with a PoP (a signature over the
key itself under a separate domain tag) proves the member knows its secret key, which rules this
out; after that, ``FastAggregateVerify`` over one message is sound. ``verify_committee`` checks
every PoP first and raises ``RogueKeyError`` on any failure.

Cost: py_ecc is pure Python; one pairing check takes about a second. Successful PoP checks are
memoised (per process, bounded), so a committee seen twice costs one aggregate verification.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from proofs.canonical import require_bytes
from proofs.errors import InvalidSignature, MalformedInput, RogueKeyError

PUBLIC_KEY_SIZE = 48
SIGNATURE_SIZE = 96
MIN_SEED_SIZE = 32
CIPHERSUITE = "BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"


@dataclass(frozen=True)
class BlsSecretKey:
    """A BLS secret scalar. ``repr`` shows the public key only."""

    scalar: int = field(repr=False)

    def __post_init__(self) -> None:
        if not _scheme()._is_valid_privkey(self.scalar):
            raise MalformedInput("BLS secret key scalar is out of range")

    @property
    def public_key(self) -> bytes:
        return bytes(_scheme().SkToPk(self.scalar))

    def __repr__(self) -> str:
        return f"BlsSecretKey(public={self.public_key.hex()})"


def keygen(seed: bytes, key_info: bytes = b"") -> BlsSecretKey:
    """Derive a secret key from ``seed`` (>= 32 secret random bytes) with the draft's KeyGen."""
    seed = require_bytes(seed, "BLS seed")
    if len(seed) < MIN_SEED_SIZE:
        raise MalformedInput(f"BLS seed must be at least {MIN_SEED_SIZE} bytes, got {len(seed)}")
    return BlsSecretKey(_scheme().KeyGen(seed, require_bytes(key_info, "key_info")))


def sign(secret_key: BlsSecretKey, message: bytes) -> bytes:
    """The 96-byte BLS signature of ``message``."""
    _require_secret(secret_key)
    return bytes(_scheme().Sign(secret_key.scalar, require_bytes(message, "message")))


def prove_possession(secret_key: BlsSecretKey) -> bytes:
    """The proof of possession of ``secret_key`` (a signature over its public key, POP tag)."""
    _require_secret(secret_key)
    return bytes(_scheme().PopProve(secret_key.scalar))


def verify_possession(public_key: bytes, pop: bytes) -> None:
    """Raise ``RogueKeyError`` unless ``pop`` proves possession of ``public_key``'s secret."""
    public_key = _public_key_arg(public_key)
    pop = require_bytes(pop, "BLS proof of possession", SIGNATURE_SIZE)
    _verify_possession_cached(public_key, pop)


@lru_cache(maxsize=1024)
def _verify_possession_cached(public_key: bytes, pop: bytes) -> None:
    # lru_cache stores only normal returns: a failure is re-checked (and raised) every time.
    if not _safe(_scheme().PopVerify, public_key, pop):
        raise RogueKeyError(f"BLS key {public_key.hex()[:16]}... has no valid proof of possession")


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Raise ``InvalidSignature`` unless ``signature`` is ``public_key``'s over ``message``."""
    public_key = _public_key_arg(public_key)
    signature = require_bytes(signature, "BLS signature", SIGNATURE_SIZE)
    if not _safe(_scheme().Verify, public_key, require_bytes(message, "message"), signature):
        raise InvalidSignature("BLS signature is invalid")


def aggregate_signatures(signatures: Sequence[bytes]) -> bytes:
    """Aggregate signatures (over the same message, for ``verify_committee``) into one."""
    sigs = [require_bytes(s, f"signatures[{i}]", SIGNATURE_SIZE) for i, s in enumerate(signatures)]
    if not sigs:
        raise MalformedInput("cannot aggregate zero signatures")
    try:
        return bytes(_scheme().Aggregate(sigs))
    except (ValueError, TypeError, AssertionError) as exc:
        raise InvalidSignature(f"a signature is not a valid G2 point: {exc}") from exc


def verify_committee(
    members: Sequence[tuple[bytes, bytes]], message: bytes, aggregate: bytes
) -> None:
    """Check that every member signed ``message`` and that ``aggregate`` combines them.

    ``members`` are ``(public_key, proof_of_possession)`` pairs, all distinct. Raises
    ``RogueKeyError`` if a member's PoP is invalid, ``InvalidSignature`` if the aggregate does
    not verify, ``MalformedInput`` for bad sizes, an empty committee or a repeated key.
    """
    if isinstance(members, str | bytes) or not isinstance(members, Sequence) or not members:
        raise MalformedInput("a committee needs a non-empty list of (public_key, pop) pairs")
    keys: list[bytes] = []
    for i, member in enumerate(members):
        if not isinstance(member, tuple | list) or len(member) != 2:
            raise MalformedInput(f"members[{i}] must be a (public_key, pop) pair")
        keys.append(_public_key_arg(member[0], f"members[{i}] public key"))
    if len(set(keys)) != len(keys):
        raise MalformedInput("a committee lists the same BLS public key twice")
    aggregate = require_bytes(aggregate, "aggregate signature", SIGNATURE_SIZE)
    message = require_bytes(message, "message")
    for key, (_, pop) in zip(keys, members, strict=True):
        verify_possession(key, pop)
    if not _safe(_scheme().FastAggregateVerify, keys, message, aggregate):
        raise InvalidSignature(
            f"the aggregate signature does not verify for these {len(keys)} committee members"
        )


def _scheme() -> Any:
    """py_ecc's PoP ciphersuite, imported on first use (the import alone takes ~0.5 s)."""
    from py_ecc.bls.ciphersuites import G2ProofOfPossession

    return G2ProofOfPossession


def _public_key_arg(value: bytes, what: str = "BLS public key") -> bytes:
    raw = require_bytes(value, what, PUBLIC_KEY_SIZE)
    if not _safe(_scheme().KeyValidate, raw):
        raise MalformedInput(f"{what} is not a valid BLS12-381 G1 public key")
    return raw


def _require_secret(secret_key: BlsSecretKey) -> None:
    if not isinstance(secret_key, BlsSecretKey):
        raise MalformedInput(f"expected a BlsSecretKey, got {type(secret_key).__name__}")


def _safe(check: object, *args: object) -> bool:
    """Run a py_ecc check; malformed points make py_ecc raise, which counts as a failure."""
    try:
        return bool(check(*args))  # type: ignore[operator]
    except (ValueError, TypeError, AssertionError, IndexError):
        return False
