"""repops' random numbers (SPEC.md C8): Philox4x32-10 streams and the operations built on them.

``PhiloxStream(seed, stream)`` holds the whole state (seed, stream id, block offset); the
functions of :mod:`repops.rng.ops` (uniform_, normal_, bernoulli_, native_dropout, randint,
randperm, ...) and :mod:`repops.rng.init` (kaiming/xavier) draw from it. The exact mapping
from tensor elements to Philox counters is in repops/spec/elementwise.md.
"""

from repops.rng.stream import PhiloxStream, RngStateError

__all__ = ["PhiloxStream", "RngStateError"]
