"""Names of the dispute queries (the vocabulary shared by providers and the arbiter).

Each query kind, its params and the payload of its signed answer:

* ``step_children``  {position: [lo, hi]} -> {position, children: [left hex, right hex]}
* ``step_leaves``    {indices: [i...]} -> {leaves: [{index, data: state root hex, proof}]}
* ``graph_commit``   {step} -> {step, root, n_nodes, final: {node, proof}}
* ``graph_children`` {step, position} -> {step, position, children}
* ``graph_leaves``   {step, indices} -> {step, leaves: [{node, proof}]}
* ``node_inputs``    {step, node} -> {step, node, inputs: [...]} (see
``verde.protocol.provider.answers``)
"""

from __future__ import annotations

STEP_CHILDREN = "step_children"
STEP_LEAVES = "step_leaves"
GRAPH_COMMIT = "graph_commit"
GRAPH_CHILDREN = "graph_children"
GRAPH_LEAVES = "graph_leaves"
NODE_INPUTS = "node_inputs"
ALL_KINDS = (STEP_CHILDREN, STEP_LEAVES, GRAPH_COMMIT, GRAPH_CHILDREN, GRAPH_LEAVES, NODE_INPUTS)
