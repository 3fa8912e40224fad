"""The PyTorch integration of repops: dispatch mode, exact-op list, tracing and replay."""

from repops.dispatch.encoding import RefKey, TraceEncodingError, ref_key
from repops.dispatch.mode import (
    NestedModeError,
    NonReproducibleWarning,
    ReproducibleMode,
    reproducible,
)
from repops.dispatch.replay import execute_node
from repops.dispatch.trace import LeafRecord, TraceNode, Tracer, TracerInUseError, default_digest

__all__ = [
    "LeafRecord",
    "NestedModeError",
    "NonReproducibleWarning",
    "RefKey",
    "ReproducibleMode",
    "TraceEncodingError",
    "TraceNode",
    "Tracer",
    "TracerInUseError",
    "default_digest",
    "execute_node",
    "ref_key",
    "reproducible",
]
