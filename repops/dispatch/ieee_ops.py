"""IEEE operations that look exact but whose torch CPU kernel is not: sqrt.

torch's CPU ``sqrt`` calls MKL VML (``vsSqrt``/``vdSqrt``) on contiguous inputs, which is not
correctly rounded: on 100 000 random binary32 inputs about 17% of results differ from the
correctly rounded square root (binary64: about 1%), and non-contiguous inputs take another
path. IEEE 754 requires sqrt to be correctly rounded, and numpy's ``np.sqrt`` is the hardware
instruction (SSE/AVX ``sqrtps``/``sqrtpd``, NEON ``fsqrt``), correctly rounded on every CPU. So
repops computes sqrt with numpy in the C1 compute type and rounds once to the output dtype.

These entries are *fallbacks*: the registry uses them only for overloads no kernel module
provides (the elementwise kernels may take sqrt over later).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from repops._tensor import from_compute, to_compute
from repops.errors import UnsupportedInputError


def sqrt(self: torch.Tensor) -> torch.Tensor:
    """aten.sqrt.default: correctly rounded sqrt of each element (integers promote as torch)."""
    if self.dtype.is_complex:
        raise UnsupportedInputError(f"aten.sqrt.default: complex input {self.dtype} unsupported")
    out_dtype = self.dtype if self.dtype.is_floating_point else torch.get_default_dtype()
    src = self if self.dtype.is_floating_point else self.to(out_dtype)
    values = to_compute(src)
    if (values < 0).any():  # NaN results, as IEEE says; only then pay for errstate
        with np.errstate(invalid="ignore"):
            result = np.sqrt(values)
    else:
        result = np.sqrt(values)
    return from_compute(result, out_dtype)


ATEN_KERNELS: dict[str, Callable[..., Any]] = {"aten.sqrt.default": sqrt}
