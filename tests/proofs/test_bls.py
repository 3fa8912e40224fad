"""BLS committees (py_ecc, proof-of-possession scheme). Pairings cost about a second each in
pure Python, so these tests are few and small; the ones with many pairings are marked slow."""

from __future__ import annotations

import pytest

from proofs import InvalidSignature, MalformedInput, RogueKeyError, bls

SEEDS = [bytes([i]) * 32 for i in range(1, 4)]
MESSAGE = b"verde/test committee message"


def _flip(data: bytes, pos: int) -> bytes:
    return data[:pos] + bytes([data[pos] ^ 0x01]) + data[pos + 1 :]


def test_keygen_is_deterministic_and_checks_the_seed() -> None:
    a, b = bls.keygen(SEEDS[0]), bls.keygen(SEEDS[0])
    assert a == b and a.public_key == b.public_key
    assert len(a.public_key) == bls.PUBLIC_KEY_SIZE
    assert bls.keygen(SEEDS[1]).public_key != a.public_key
    assert bls.keygen(SEEDS[0], key_info=b"other").public_key != a.public_key
    assert str(a.scalar) not in repr(a)
    with pytest.raises(MalformedInput, match="at least 32"):
        bls.keygen(b"short")


def test_single_signature_verifies_and_rejects_wrong_message() -> None:
    sk = bls.keygen(SEEDS[0])
    sig = bls.sign(sk, MESSAGE)
    assert len(sig) == bls.SIGNATURE_SIZE
    bls.verify_signature(sk.public_key, MESSAGE, sig)
    with pytest.raises(InvalidSignature):
        bls.verify_signature(sk.public_key, MESSAGE + b"!", sig)


def test_malformed_inputs_are_rejected_without_pairings() -> None:
    sk = bls.keygen(SEEDS[0])
    pk = sk.public_key
    with pytest.raises(MalformedInput):
        bls.verify_committee([], MESSAGE, b"\x00" * 96)
    with pytest.raises(MalformedInput):
        bls.verify_committee([(pk[:-1], b"\x00" * 96)], MESSAGE, b"\x00" * 96)
    with pytest.raises(MalformedInput, match="twice"):
        bls.verify_committee([(pk, b"\x00" * 96), (pk, b"\x00" * 96)], MESSAGE, b"\x00" * 96)
    with pytest.raises(MalformedInput, match="G1"):
        bls.verify_committee([(b"\x00" * 48, b"\x00" * 96)], MESSAGE, b"\x00" * 96)
    with pytest.raises(MalformedInput):
        bls.verify_committee([(pk, b"\x00" * 95)], MESSAGE, b"\x00" * 96)
    with pytest.raises(MalformedInput):
        bls.aggregate_signatures([])
    with pytest.raises(MalformedInput):
        bls.sign(sk.scalar, MESSAGE)  # type: ignore[arg-type]


@pytest.mark.slow
def test_committee_aggregate_verifies_once_and_tampering_fails() -> None:
    sks = [bls.keygen(s) for s in SEEDS]
    members = [(sk.public_key, bls.prove_possession(sk)) for sk in sks]
    aggregate = bls.aggregate_signatures([bls.sign(sk, MESSAGE) for sk in sks])
    bls.verify_committee(members, MESSAGE, aggregate)
    with pytest.raises(InvalidSignature):
        bls.verify_committee(members, MESSAGE + b"!", aggregate)
    with pytest.raises(InvalidSignature):  # one member did not sign
        partial = bls.aggregate_signatures([bls.sign(sk, MESSAGE) for sk in sks[:2]])
        bls.verify_committee(members, MESSAGE, partial)
    with pytest.raises(InvalidSignature):  # a flipped bit in the aggregate
        bls.verify_committee(members, MESSAGE, _flip(aggregate, 40))
    with pytest.raises(RogueKeyError):  # a member's PoP swapped for another's
        bls.verify_committee([members[0], (members[1][0], members[2][1])], MESSAGE, aggregate)


@pytest.mark.slow
def test_rogue_key_attack_is_stopped_by_proof_of_possession() -> None:
    """Without PoPs, an attacker alone forges a committee signature including an honest key."""
    from py_ecc.bls import G2ProofOfPossession as scheme
    from py_ecc.bls.g2_primitives import G1_to_pubkey, pubkey_to_G1
    from py_ecc.optimized_bls12_381 import G1, add, multiply, neg

    honest = bls.keygen(SEEDS[0])
    x = bls.keygen(SEEDS[2])
    rogue_pk = G1_to_pubkey(add(multiply(G1, x.scalar), neg(pubkey_to_G1(honest.public_key))))
    forged = bls.sign(x, MESSAGE)  # made without the honest key
    # The attack works against plain aggregation (demonstrates what PoP defends against):
    assert scheme.FastAggregateVerify([honest.public_key, rogue_pk], MESSAGE, forged)
    committee = [
        (honest.public_key, bls.prove_possession(honest)),
        (bytes(rogue_pk), bls.prove_possession(x)),  # the attacker cannot prove rogue_pk
    ]
    with pytest.raises(RogueKeyError):
        bls.verify_committee(committee, MESSAGE, forged)
