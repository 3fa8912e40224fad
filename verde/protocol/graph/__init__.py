"""The step graph: how one training step executes, its traced operators, and the commitment.

Phase 2 of Verde (Arun et al. 2025) descends into one step as a sequence of operators --
forward, backward and optimizer -- each re-executable alone. The record of an operator is
repops' :class:`repops.TraceNode` (recorded by :class:`repops.Tracer`, recomputed by
:func:`repops.execute_node`); this package adds only what is protocol: how a step is run
(``execution``), the final ``verde.commit_state`` node, the Merkle leaf encoding of a node and
the names of tensor references (``nodes``), and admission -- which jobs an honest provider
can defend (``admission``).
"""
