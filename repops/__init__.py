"""repops: reproducible PyTorch operators.

The same inputs give the same output bits on any thread count, batch size, memory layout, CPU
instruction set and (later) GPU, because every operator's order of floating-point operations
is written down in ``repops/SPEC.md`` and enforced by the kernels.
"""

from repops.errors import RepopsError, UnsupportedInputError, UnsupportedOpError

__all__ = ["RepopsError", "UnsupportedInputError", "UnsupportedOpError"]
