"""Graph nodes as the protocol sees them: Merkle leaves, the commit node, reference names.

Every node of a step graph is a :class:`repops.TraceNode`. A provider commits to a Merkle tree
whose leaf ``k`` is ``NODE_DOMAIN || canonical_json(node.to_json())`` (:func:`node_leaf`); the
domain tag carries the graph format version, so leaves of different formats never collide.
The last node of every step is ``verde.commit_state``: its arguments bind every entry of the
step's resulting state to the node output (or leaf) that produced it, and its one output digest
is that state's commitment root -- a provider cannot present an honest graph and a dishonest
state, or the other way round (Verde, Arun et al. 2025).

Tensor references are repops' hashable keys (``("node", i, j)`` / ``("leaf", name)``); on the
wire they are JSON (``{"node": i, "out": j}`` / ``{"leaf": name}``) and tensors sent beside a
message are keyed by :func:`ref_name`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proofs import canonical_json
from repops import TraceNode
from repops.dispatch.encoding import RefKey, ref_key

#: The graph format: version 2 records repops' TraceNode (exact float encoding, output
#: metadata beside the digests). Bumping it changes every graph root.
GRAPH_FORMAT_VERSION = 2
NODE_DOMAIN = b"verde/graph-node/v2\x00"
COMMIT_OP = "verde.commit_state"
#: The state entry that holds a step's RNG position ``[seed, step]`` (not a tensor reference).
RNG_ENTRY = "rng"


def node_leaf(node: TraceNode) -> bytes:
    """The Merkle leaf data of a node: domain tag || canonical JSON of the whole record."""
    return NODE_DOMAIN + canonical_json(node.to_json())


def commit_node(index: int, entries: Mapping[str, Mapping[str, Any]], step: int,
                state_root: bytes | None) -> TraceNode:
    """The ``verde.commit_state`` node: state entry name -> ref JSON (the RNG entry is
    ``{"rng_step": step}``), one output digest, the state root (None in shape-only replays)."""
    args = {"entries": {**{k: dict(v) for k, v in entries.items()}, RNG_ENTRY: {"rng_step": step}}}
    return TraceNode(index, COMMIT_OP, args, (state_root,), ())


def input_refs(node: TraceNode) -> list[RefKey]:
    """The distinct tensors judging ``node`` needs, in argument order (the order a provider
    lists them in, and the arbiter expects them in)."""
    if node.op == COMMIT_OP:
        entries = node.args.get("entries", {})
        refs = [ref_key(v) for k, v in sorted(entries.items()) if k != RNG_ENTRY]
    else:
        refs = node.input_refs()
    return list(dict.fromkeys(refs))


def ref_json(key: RefKey) -> dict[str, Any]:
    """``{"node": i, "out": j}`` or ``{"leaf": name}`` for a ref key."""
    if key[0] == "node":
        return {"node": key[1], "out": key[2]}
    return {"leaf": key[1]}


def ref_name(key: RefKey) -> str:
    """A string name for a ref (the key of a tensor sent beside a message)."""
    if key[0] == "node":
        return f"node:{key[1]}:{key[2]}"
    return f"leaf:{key[1]}"
