"""Shared numba plumbing for every repops kernel.

Why this exists: reproducibility across CPUs depends on two compiler promises that numba does
not make by default. (1) A fused multiply-add must appear exactly where SPEC.md says and
nowhere else: with ``fastmath=False`` LLVM never contracts ``a * b + c`` on its own, and
:func:`fma` below emits the ``llvm.fma`` intrinsic, which is correctly rounded on every target
(a hardware FMA instruction where one exists, a correctly rounded software routine otherwise).
(2) No reassociation, no approximate reciprocals, no flush-to-zero: that is ``fastmath=False``.

Every kernel module decorates with :data:`jit` / :data:`pjit` rather than calling ``numba.njit``
with its own flags, so the flags live in one place. Nothing is compiled at import time: numba
compiles lazily on first call (and caches to disk with ``cache=True``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
from llvmlite import ir
from numba import types
from numba.extending import intrinsic


def _source_keyed_cache_dir() -> str:
    """A numba cache directory keyed by the digest of every repops source file.

    numba invalidates a cached kernel only when *its own* file changes, but kernels inline jit
    functions from other files (exp_f32 inside softmax and attention...). Keying the whole
    cache by all of repops' sources means an edit anywhere recompiles everything once, and a
    stale kernel can never be loaded. ``NUMBA_CACHE_DIR`` set by the user wins.
    """
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return str(base / "verde" / "numba" / digest.hexdigest()[:16])


if not os.environ.get("NUMBA_CACHE_DIR"):
    numba.config.CACHE_DIR = _source_keyed_cache_dir()

# SLP vectorisation packs isomorphic independent operations (the 16 LSUM lanes of SPEC C4)
# into vector registers. Without fast-math it never reassociates, so no bit changes; it only
# lets one AVX-512 register hold the 16 lanes. numba reads it when it builds its CPU codegen.
numba.config.SLP_VECTORIZE = 1

#: Flags every repops kernel is compiled with. ``fastmath`` must stay False (see module doc).
JIT_OPTIONS: dict[str, Any] = {
    "fastmath": False,
    "cache": True,
    "nogil": True,
    # IEEE semantics for x / 0 (inf or nan, no ZeroDivisionError check that blocks SIMD).
    "error_model": "numpy",
}


def jit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Compile a serial kernel with the repops flags."""
    return numba.njit(**JIT_OPTIONS)(fn)


def pjit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Compile a kernel whose ``numba.prange`` loops run across *independent output elements*.

    SPEC.md forbids splitting one element's reduction across threads; a ``prange`` must only
    ever range over output rows/columns/tiles, each computed entirely by one thread.
    """
    return numba.njit(parallel=True, **JIT_OPTIONS)(fn)


@intrinsic
def fma(typingctx: Any, a: Any, b: Any, c: Any) -> Any:  # pragma: no cover - compiled
    """Correctly rounded ``a * b + c`` (one rounding), for float32 or float64 operands.

    All three operands must already have the same float type; mixing is a typing error rather
    than a silent conversion, because a conversion would change which rounding happens where.
    """
    if not (isinstance(a, types.Float) and a == b == c):
        return None
    llty = ir.FloatType() if a == types.float32 else ir.DoubleType()

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        fnty = ir.FunctionType(llty, [llty, llty, llty])
        fn = builder.module.declare_intrinsic("llvm.fma", [llty], fnty)
        return builder.call(fn, args)

    return a(a, b, c), codegen


def set_num_threads(n: int) -> None:
    """Set numba's worker count (results never depend on it; tests vary it to prove that)."""
    if n < 1:
        raise ValueError(f"thread count must be >= 1, got {n}")
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
