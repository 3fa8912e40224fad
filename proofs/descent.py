"""Dispute descent: walk two Merkle trees of the same size down to their first differing leaf.

Why: in refereed delegation (Canetti, Riva, Rothblum 2011; Verde, Arun et al. 2025) two parties
committed to different roots over the same number of leaves. The referee asks both, one level
per round, for the two child hashes of the current node, and checks each answer against the
parent hash that party already committed to: a pair that does not hash to it is a detected lie
and that party loses. If both answers are consistent, the left children differ or they do not:
if they differ the first differing leaf is on the left, otherwise on the right (a consistent
pair with equal left and equal right children would give equal parents — a SHA-256
collision). After ``ceil(log2(n))`` rounds the referee holds the index of the first differing
leaf and each party's committed leaf hash there, and needs to judge one leaf.

Positions and the split rule are those of ``proofs.merkle`` (RFC 6962 shape): the node
``NodePosition(lo, hi)`` has children ``[lo, lo + k)`` and ``[lo + k, hi)``, ``k`` the largest
power of two below ``hi - lo``; a party answers with ``MerkleTree.children(position)``.

Two forms: ``Descent`` is a resumable state machine for an arbiter that persists every round
before acting (``to_json``/``from_json``; loading replays and re-checks the transcript), and
``first_divergent_leaf`` drives it with two query callables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from proofs.canonical import as_json_object, hex_decode, require_field, require_keys
from proofs.errors import (
    DescentFinished,
    InconsistentAnswer,
    MalformedInput,
    NoDivergence,
    UnsupportedVersion,
)
from proofs.merkle import HASH_SIZE, NodePosition, check_n_leaves, leaf_hash, node_hash

DESCENT_FORMAT_VERSION = 1
Answer = tuple[bytes, bytes]


@dataclass(frozen=True)
class DescentRound:
    """One recorded round: both parties' child pairs at ``position`` and the side taken."""

    position: NodePosition
    answer_a: Answer
    answer_b: Answer
    went: str  # "left" or "right"

    def to_json(self) -> dict[str, Any]:
        return {
            "position": self.position.to_json(),
            "a": [h.hex() for h in self.answer_a],
            "b": [h.hex() for h in self.answer_b],
            "went": self.went,
        }


@dataclass(frozen=True)
class DescentResult:
    """Where two trees first differ: the leaf index and each party's committed leaf hash."""

    leaf_index: int
    leaf_hash_a: bytes
    leaf_hash_b: bytes
    rounds: tuple[DescentRound, ...]

    @property
    def leaf_position(self) -> NodePosition:
        return NodePosition(self.leaf_index, self.leaf_index + 1)


def _check_answer(answer: Any, parent: bytes) -> tuple[Answer | None, str | None]:
    """Return (the pair, None) if it hashes to ``parent``, else (None, why it is a lie)."""
    if not isinstance(answer, tuple | list) or len(answer) != 2:
        return None, f"answer must be a (left, right) pair, got {type(answer).__name__}"
    pair = []
    for side, h in zip(("left", "right"), answer, strict=True):
        if not isinstance(h, bytes | bytearray) or len(h) != HASH_SIZE:
            return None, f"{side} child is not a {HASH_SIZE}-byte hash"
        pair.append(bytes(h))
    left, right = pair
    if node_hash(left, right) != parent:
        return None, "children do not hash to the committed parent"
    return (left, right), None


class Descent:
    """Resumable descent between party ``a`` and party ``b`` (see the module docstring)."""

    def __init__(self, n_leaves: int, root_a: bytes, root_b: bytes) -> None:
        self.n_leaves = check_n_leaves(n_leaves, minimum=1)
        self.root_a = _hash_arg(root_a, "root_a")
        self.root_b = _hash_arg(root_b, "root_b")
        if self.root_a == self.root_b:
            raise NoDivergence("the two roots are equal: the trees agree")
        self._position = NodePosition(0, n_leaves)
        self._parents = (self.root_a, self.root_b)
        self._rounds: list[DescentRound] = []

    @classmethod
    def start(cls, n_leaves: int, root_a: bytes, root_b: bytes) -> Descent:
        """Begin a descent; raises ``NoDivergence`` if the roots are equal."""
        return cls(n_leaves, root_a, root_b)

    @property
    def done(self) -> bool:
        return self._position.is_leaf

    @property
    def position(self) -> NodePosition:
        """The node both parties currently hold different hashes for."""
        return self._position

    def next_position(self) -> NodePosition | None:
        """The inner node to ask both parties about next, or ``None`` when finished."""
        return None if self.done else self._position

    @property
    def current_hashes(self) -> tuple[bytes, bytes]:
        """Each party's committed hash of the current node (a, b)."""
        return self._parents

    @property
    def leaf_index(self) -> int:
        self._require_done()
        return self._position.lo

    @property
    def leaf_hashes(self) -> tuple[bytes, bytes]:
        """Each party's committed leaf hash (a, b) at the first differing leaf."""
        self._require_done()
        return self._parents

    @property
    def rounds(self) -> tuple[DescentRound, ...]:
        return tuple(self._rounds)

    def record(self, answer_a: Any, answer_b: Any) -> DescentRound:
        """Check both answers for the current position and descend one level.

        Raises ``InconsistentAnswer`` naming every party whose answer does not hash to the
        parent it committed to (state unchanged), ``DescentFinished`` if already at the leaf.
        """
        if self.done:
            raise DescentFinished(f"descent already reached leaf {self._position.lo}")
        checked: dict[str, Answer] = {}
        reasons: dict[str, str] = {}
        for party, answer, parent in (
            ("a", answer_a, self._parents[0]),
            ("b", answer_b, self._parents[1]),
        ):
            pair, why = _check_answer(answer, parent)
            if why is not None:
                reasons[party] = why
            else:
                checked[party] = pair  # type: ignore[assignment]
        if reasons:
            raise InconsistentAnswer(tuple(sorted(reasons)), self._position, reasons)
        pair_a, pair_b = checked["a"], checked["b"]
        asked = self._position
        left, right = asked.children()
        if pair_a[0] != pair_b[0]:
            went, self._position, self._parents = "left", left, (pair_a[0], pair_b[0])
        else:
            went, self._position, self._parents = "right", right, (pair_a[1], pair_b[1])
        done_round = DescentRound(asked, pair_a, pair_b, went)
        self._rounds.append(done_round)
        return done_round

    def check_leaf(self, party: str, leaf_data: bytes) -> None:
        """Check that ``leaf_data`` is what ``party`` committed to at the differing leaf.

        Raises ``InconsistentAnswer`` for that party if ``leaf_hash(leaf_data)`` differs.
        """
        self._require_done()
        if party not in ("a", "b"):
            raise ValueError(f"party must be 'a' or 'b', got {party!r}")
        expected = self._parents[0 if party == "a" else 1]
        if not isinstance(leaf_data, bytes | bytearray) or leaf_hash(leaf_data) != expected:
            raise InconsistentAnswer(
                (party,), self._position, {party: "leaf data does not hash to the committed leaf"}
            )

    def result(self) -> DescentResult:
        self._require_done()
        return DescentResult(self.leaf_index, self._parents[0], self._parents[1], self.rounds)

    def _require_done(self) -> None:
        if not self.done:
            raise DescentFinished(f"descent not finished: next position is {self._position}")

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict of everything needed to resume (hashes as hex)."""
        return {
            "version": DESCENT_FORMAT_VERSION,
            "n_leaves": self.n_leaves,
            "root_a": self.root_a.hex(),
            "root_b": self.root_b.hex(),
            "rounds": [r.to_json() for r in self._rounds],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str | bytes) -> Descent:
        """Resume from ``to_json`` output; the transcript is replayed and re-checked."""
        what = "Descent"
        obj = as_json_object(data, what)
        version = require_field(obj, "version", int, what)
        if version != DESCENT_FORMAT_VERSION:
            raise UnsupportedVersion(f"{what}: unknown version {version!r}")
        require_keys(obj, {"version", "n_leaves", "root_a", "root_b", "rounds"}, what)
        descent = cls(
            require_field(obj, "n_leaves", int, what),
            hex_decode(require_field(obj, "root_a", str, what), f"{what}.root_a", HASH_SIZE),
            hex_decode(require_field(obj, "root_b", str, what), f"{what}.root_b", HASH_SIZE),
        )
        for i, raw in enumerate(require_field(obj, "rounds", list, what)):
            where = f"{what}.rounds[{i}]"
            if not isinstance(raw, dict):
                raise MalformedInput(f"{where}: expected an object")
            require_keys(raw, {"position", "a", "b", "went"}, where)
            position = NodePosition.from_json(require_field(raw, "position", list, where))
            if position != descent.position:
                raise MalformedInput(
                    f"{where}: position {position} but replay is at {descent.position}"
                )
            answers = []
            for party in ("a", "b"):
                pair = require_field(raw, party, list, where)
                if len(pair) != 2:
                    raise MalformedInput(f"{where}.{party}: expected two hashes")
                answers.append(tuple(hex_decode(h, f"{where}.{party}", HASH_SIZE) for h in pair))
            try:
                replayed = descent.record(answers[0], answers[1])
            except InconsistentAnswer as exc:
                raise MalformedInput(f"{where}: stored round fails replay ({exc})") from exc
            if replayed.went != require_field(raw, "went", str, where):
                raise MalformedInput(f"{where}: recorded side does not match the replay")
        return descent


def _hash_arg(value: Any, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise MalformedInput(f"{what} must be {HASH_SIZE} bytes")
    return bytes(value)


Query = Callable[[NodePosition], Any]


def first_divergent_leaf(
    n_leaves: int, root_a: bytes, root_b: bytes, query_a: Query, query_b: Query
) -> DescentResult:
    """Run a descent to the end, asking ``query_x(position) -> (left, right)`` once per level.

    Raises ``NoDivergence`` if the roots are equal and ``InconsistentAnswer`` on a lie.
    """
    descent = Descent.start(n_leaves, root_a, root_b)
    while (position := descent.next_position()) is not None:
        descent.record(query_a(position), query_b(position))
    return descent.result()
