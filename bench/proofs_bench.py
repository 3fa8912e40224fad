"""Benchmark of proofs: prints ONE JSON line on stdout (a table goes to stderr).

Measured, each against the obvious alternative in the same run:

* tensor digest of a 256 MiB float32 tensor vs ``hashlib.sha256`` over the same bytes
  (``digest_throughput_ratio`` = hashlib time / digest time; target >= 0.9), and the same with
  one NaN per MiB (every chunk then takes the canonicalising copy);
* Merkle tree build for 1,000,000 leaves vs a bare loop of the same 2n - 1 SHA-256 calls;
* Ed25519 ``sign_message``/``verify_message`` vs raw ``cryptography`` sign/verify of the same
  bytes (the cost of canonical encoding and checks);
* BLS: ``verify_committee`` for 3 members (PoPs already checked and memoised: one aggregate
  verification) vs verifying the 3 signatures one by one, and one PoP verification.

Usage: ``python bench/proofs_bench.py [--quick]`` (``--quick``: 16 MiB, 100,000 leaves, for a
smoke run).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable

import numpy as np

from proofs import MessageContext, SigningKey, bls, sign_message, tensor_digest, verify_message
from proofs.merkle import LEAF_PREFIX, NODE_PREFIX, MerkleTree


def best_of(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_digest(mib: int) -> dict[str, float]:
    x = np.random.default_rng(0).standard_normal(mib * (1 << 20) // 4, dtype=np.float32)
    view = memoryview(x).cast("B")
    t_hashlib = t_digest = float("inf")
    for _ in range(5):  # interleaved, so both see the same machine load
        t_hashlib = min(t_hashlib, best_of(lambda: hashlib.sha256(view).digest(), 1))
        t_digest = min(t_digest, best_of(lambda: tensor_digest(x), 1))
    y = x.copy()
    y[:: (1 << 20) // 4] = np.nan
    t_nan = best_of(lambda: tensor_digest(y), 2)
    return {
        "digest_mib": mib,
        "digest_s": t_digest,
        "hashlib_s": t_hashlib,
        "digest_throughput_ratio": t_hashlib / t_digest,
        "digest_gib_per_s": mib / 1024 / t_digest,
        "digest_with_nans_ratio": t_hashlib / t_nan,
    }


def bench_merkle(n: int) -> dict[str, float]:
    leaves = [i.to_bytes(32, "little") for i in range(n)]
    t_build = best_of(lambda: MerkleTree(leaves), 2)
    inner = b"\x00" * 64

    def bare_hashes() -> None:
        sha = hashlib.sha256
        for leaf in leaves:
            sha(LEAF_PREFIX + leaf).digest()
        for _ in range(n - 1):
            sha(NODE_PREFIX + inner).digest()

    t_bare = best_of(bare_hashes, 2)
    tree = MerkleTree(leaves)
    t_proof = best_of(lambda: [tree.proof(i) for i in range(0, n, n // 1000)], 2) / 1000
    return {
        "merkle_leaves": n,
        "merkle_build_s": t_build,
        "merkle_bare_sha256_loop_s": t_bare,
        "merkle_build_over_bare_loop": t_build / t_bare,
        "merkle_proof_us": t_proof * 1e6,
    }


def bench_ed25519(repeat: int = 2000) -> dict[str, float]:
    key = SigningKey.from_seed(b"\x01" * 32)
    ctx = MessageContext("job", "dispute", 7, "descent.children")
    payload = {"left": "aa" * 32, "right": "bb" * 32}
    msg = sign_message(key, ctx, payload)
    raw = msg.signed_bytes()

    def per_call(fn: Callable[[], object]) -> float:
        return best_of(lambda: [fn() for _ in range(repeat)], 3) / repeat * 1e6

    sign_us = per_call(lambda: sign_message(key, ctx, payload))
    verify_us = per_call(lambda: verify_message(msg, ctx))
    raw_sign_us = per_call(lambda: key._key.sign(raw))
    raw_verify_us = per_call(lambda: key.public_key._key.verify(msg.signature, raw))
    return {
        "ed25519_sign_message_us": sign_us,
        "ed25519_verify_message_us": verify_us,
        "ed25519_raw_sign_us": raw_sign_us,
        "ed25519_raw_verify_us": raw_verify_us,
        "ed25519_verify_overhead_ratio": verify_us / raw_verify_us,
    }


def bench_bls(members: int = 3) -> dict[str, float]:
    message = b"verde/bench committee message"
    sks = [bls.keygen(bytes([i + 1]) * 32) for i in range(members)]
    committee = [(sk.public_key, bls.prove_possession(sk)) for sk in sks]
    sigs = [bls.sign(sk, message) for sk in sks]
    aggregate = bls.aggregate_signatures(sigs)
    start = time.perf_counter()
    bls.verify_possession(*committee[0])
    t_pop = time.perf_counter() - start
    bls.verify_committee(committee, message, aggregate)  # checks and memoises the other PoPs
    t_agg = best_of(lambda: bls.verify_committee(committee, message, aggregate), 1)
    pairs = [(pk, s) for (pk, _), s in zip(committee, sigs, strict=True)]
    t_each = best_of(lambda: [bls.verify_signature(pk, message, s) for pk, s in pairs], 1)
    return {
        "bls_members": members,
        "bls_pop_verify_s": t_pop,
        "bls_aggregate_verify_s": t_agg,
        "bls_individual_verify_s": t_each,
        "bls_aggregate_speedup": t_each / t_agg,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    args = parser.parse_args()
    result: dict[str, float | str] = {"bench": "proofs"}
    result.update(bench_digest(16 if args.quick else 256))
    result.update(bench_merkle(100_000 if args.quick else 1_000_000))
    result.update(bench_ed25519(200 if args.quick else 2000))
    result.update(bench_bls())
    for key, value in result.items():
        shown = f"{value:.4g}" if isinstance(value, float) else value
        print(f"{key:34s} {shown}", file=sys.stderr)
    print(json.dumps({k: round(v, 6) if isinstance(v, float) else v for k, v in result.items()}))


if __name__ == "__main__":
    main()
