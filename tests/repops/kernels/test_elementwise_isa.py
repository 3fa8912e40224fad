"""Same bits for repops.math and Philox when numba compiles for a generic CPU (no AVX/FMA).

DESIGN.md §2: "different hardware" is tested on one machine by compiling with
``NUMBA_CPU_NAME=generic`` in a subprocess (fma then becomes a correctly rounded software
routine, vector widths change) and comparing digests with a host-CPU compile.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

RunCompiled = Callable[..., str]  # conftest fixture type

SCRIPT = r"""
import hashlib, sys
import numpy as np
from repops.kernels.elementwise_maps import UNARY_MAPS, BINARY_MAPS
from repops.rng import PhiloxStream
from repops.rng.ops import normal_values

rng = np.random.default_rng(0)
x = np.concatenate([
    rng.integers(0, 2**32, 40000, dtype=np.uint64).astype(np.uint32).view(np.float32),
    rng.normal(0, 5, 40000).astype(np.float32),
])
h = hashlib.sha256()
for name in ("exp", "log", "tanh", "erf", "sin", "cos", "gelu_erf", "sigmoid", "silu", "expm1",
             "pow_cube", "pow_reciprocal", "pow_inv_square", "pow_sqrt"):
    out = np.empty_like(x)
    UNARY_MAPS[name](x, out)
    h.update(np.where(np.isnan(out), np.float32(np.nan), out).tobytes())
out = np.empty_like(x)
BINARY_MAPS["pow"](np.abs(x), x[::-1].copy(), out)
h.update(np.where(np.isnan(out), np.float32(np.nan), out).tobytes())
BINARY_MAPS["silu_backward"](x[::-1].copy(), x, out)
h.update(np.where(np.isnan(out), np.float32(np.nan), out).tobytes())
h.update(PhiloxStream(2**63 + 1, 5, 2**33).words(10001).tobytes())
h.update(normal_values(PhiloxStream(3), 1001).tobytes())
sys.stdout.write(h.hexdigest())
"""


@pytest.mark.slow
def test_generic_cpu_gives_the_same_bits(
    generic_numba_cache: Path, run_compiled: RunCompiled
) -> None:
    host = run_compiled(SCRIPT, None).strip()
    generic = run_compiled(SCRIPT, generic_numba_cache, NUMBA_CPU_NAME="generic",
                           NUMBA_NUM_THREADS="1").strip()
    assert len(host) == 64
    assert host == generic


def test_digest_is_sensitive_to_one_bit() -> None:
    a = np.ones(8, dtype=np.float32)
    b = a.copy()
    b.view(np.uint32)[3] ^= 1
    assert hashlib.sha256(a.tobytes()).digest() != hashlib.sha256(b.tobytes()).digest()
