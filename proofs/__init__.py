"""proofs: canonical tensor digests, Merkle trees, descent, signatures and certificates.

Everything here is pure hashing and signing: no protocol, no network, no torch import (torch
tensors are read by duck typing). See DESIGN.md section 3. Modules, one concept each:

* ``canonical``   — the one canonical JSON encoding for everything signed or hashed
* ``digest``      — canonical SHA-256 digest of a tensor
* ``merkle``      — RFC 6962 Merkle trees and inclusion proofs
* ``state``       — commitment to a named collection of tensors (a state dict)
* ``descent``     — dispute descent to the first differing leaf
* ``identity``    — Ed25519 keys and key files
* ``messages``    — context-bound signed messages and equivocation proofs
* ``bls``         — BLS committee signatures with proofs of possession
* ``certificate`` — versioned certificates and their verification
* ``errors``      — ``ProofError`` and its subclasses
"""

from proofs import bls
from proofs.canonical import canonical_json, hex_decode, parse_json
from proofs.certificate import (
    CERTIFICATE_VERSION,
    VerifiedCertificate,
    attach_committee,
    committee_message,
    issue_certificate,
    register_certificate_checker,
    registered_certificate_kinds,
    unregister_certificate_checker,
    verify_certificate,
)
from proofs.descent import Descent, DescentResult, DescentRound, first_divergent_leaf
from proofs.digest import digest_hex, tensor_digest
from proofs.errors import (
    CanonicalEncodingError,
    ContextMismatch,
    DescentFinished,
    InconsistentAnswer,
    InvalidCertificate,
    InvalidCertificateBody,
    InvalidProof,
    InvalidSignature,
    KeyFileError,
    KeyFileExistsError,
    MalformedInput,
    NoDivergence,
    NotAnEquivocation,
    ProofError,
    RogueKeyError,
    UnknownCertificateKind,
    UnsupportedTensorError,
    UnsupportedVersion,
    UntrustedSigner,
    VerificationError,
    WrongSigner,
)
from proofs.identity import SigningKey, VerifyKey
from proofs.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    InclusionProof,
    MerkleTree,
    NodePosition,
    leaf_hash,
    merkle_root,
    node_hash,
    verify_inclusion,
)
from proofs.messages import (
    EquivocationProof,
    MessageContext,
    SignedMessage,
    check_equivocation,
    sign_message,
    verify_equivocation,
    verify_message,
)
from proofs.state import StateCommitment, state_digest, state_leaf, verify_state_entry

__all__ = [
    "CERTIFICATE_VERSION",
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CanonicalEncodingError",
    "ContextMismatch",
    "Descent",
    "DescentFinished",
    "DescentResult",
    "DescentRound",
    "EquivocationProof",
    "InclusionProof",
    "InconsistentAnswer",
    "InvalidCertificate",
    "InvalidCertificateBody",
    "InvalidProof",
    "InvalidSignature",
    "KeyFileError",
    "KeyFileExistsError",
    "MalformedInput",
    "MerkleTree",
    "MessageContext",
    "NoDivergence",
    "NodePosition",
    "NotAnEquivocation",
    "ProofError",
    "RogueKeyError",
    "SignedMessage",
    "SigningKey",
    "StateCommitment",
    "UnknownCertificateKind",
    "UnsupportedTensorError",
    "UnsupportedVersion",
    "UntrustedSigner",
    "VerificationError",
    "VerifiedCertificate",
    "VerifyKey",
    "WrongSigner",
    "attach_committee",
    "bls",
    "canonical_json",
    "check_equivocation",
    "committee_message",
    "digest_hex",
    "first_divergent_leaf",
    "hex_decode",
    "issue_certificate",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "parse_json",
    "register_certificate_checker",
    "registered_certificate_kinds",
    "sign_message",
    "state_digest",
    "state_leaf",
    "tensor_digest",
    "unregister_certificate_checker",
    "verify_certificate",
    "verify_equivocation",
    "verify_inclusion",
    "verify_message",
    "verify_state_entry",
]
