"""The PyTorch integration of repops: dispatch mode, exact-op list, tracing and replay."""

from repops.dispatch.encoding import RefKey, TraceEncodingError, ref_key
from repops.dispatch.mode import (
    NestedModeError,
    NonReproducibleWarning,
    ReproducibleMode,
    reproducible,
)
from repops.dispatch.replay import execute_node
from repops.dispatch.trace import (
    KeptValueChanged,
    ScalarResultError,
    Tracer,
    TracerInUseError,
    UntracedTensorError,
    written_tensors,
)
from repops.dispatch.trace_node import LeafRecord, TraceNode, default_digest
from repops.dispatch.tracing_mode import TracingMode, tracing

__all__ = [
    "KeptValueChanged",
    "LeafRecord",
    "NestedModeError",
    "NonReproducibleWarning",
    "RefKey",
    "ReproducibleMode",
    "ScalarResultError",
    "TraceEncodingError",
    "TraceNode",
    "Tracer",
    "TracerInUseError",
    "TracingMode",
    "UntracedTensorError",
    "default_digest",
    "execute_node",
    "ref_key",
    "reproducible",
    "tracing",
    "written_tensors",
]
