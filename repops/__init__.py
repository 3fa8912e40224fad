"""repops: reproducible PyTorch operators.

The same inputs give the same output bits on any thread count, batch size, memory layout, CPU
instruction set and (later) GPU, because every operator's order of floating-point operations
is written down in ``repops/SPEC.md`` and enforced by the kernels.

``with repops.reproducible(): ...`` routes every aten op to a repops kernel or an IEEE-exact
vendor op (strict mode refuses anything else); ``repops.Tracer`` records the op graph (also
of plain torch, under ``repops.tracing(tracer)``);
``repops.execute_node`` recomputes one recorded op; ``repops.optim`` holds optimizers with
written update orders. Importing repops compiles and loads nothing: kernel modules are imported
on first use of the mode.
"""

from repops import optim
from repops._numba import set_num_threads
from repops.dispatch import (
    KeptValueChanged,
    NestedModeError,
    NonReproducibleWarning,
    ReproducibleMode,
    ScalarResultError,
    TraceEncodingError,
    TraceNode,
    Tracer,
    TracerInUseError,
    UntracedTensorError,
    default_digest,
    execute_node,
    ref_key,
    reproducible,
    tracing,
)
from repops.errors import RepopsError, RepopsInputError, UnsupportedInputError, UnsupportedOpError

__all__ = [
    "KeptValueChanged",
    "NestedModeError",
    "NonReproducibleWarning",
    "RepopsError",
    "RepopsInputError",
    "ReproducibleMode",
    "ScalarResultError",
    "TraceEncodingError",
    "TraceNode",
    "Tracer",
    "TracerInUseError",
    "UnsupportedInputError",
    "UnsupportedOpError",
    "UntracedTensorError",
    "default_digest",
    "execute_node",
    "optim",
    "ref_key",
    "reproducible",
    "set_num_threads",
    "tracing",
]
