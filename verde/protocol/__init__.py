"""The refereed-delegation protocol (after Verde, Arun et al. 2025).

Layers, each importing only the ones below it (enforced by import-linter):

* ``demo``     — the whole story in one process;
* ``faults``   — the cheating catalogue (providers that deviate on purpose, for tests);
* ``dispute`` and ``provider`` — the arbiter's state machine and the honest provider;
* ``peers``    — messages, signed results, the peer interface and the in-process transport;
* ``graph``    — how a step executes, its traced operator graph and the commitment over it;
* ``jobs``     — job specs, programs, datasets and the step function.

The toolkits beside it (``verde.robust``, ``verde.coding``, ``verde.distill``) never import the
protocol; ``verde.integration`` is where the two meet.
"""
