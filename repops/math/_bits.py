"""Bit reinterpretation between floats and integers inside numba kernels.

Why: building ``2**k`` and splitting a float into exponent and significand are exact integer
operations on the IEEE encoding; doing them with float arithmetic (``ldexp``, ``frexp``) would
call libm, which SPEC.md C7 forbids. An LLVM ``bitcast`` is a no-op on every target.
"""

from __future__ import annotations

from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


def _bitcast(src: Any, dst: Any, lldst: ir.Type) -> Any:
    def make(typingctx: Any, x: Any) -> Any:
        if x != src:
            return None

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return builder.bitcast(args[0], lldst)

        return dst(x), codegen

    return make


@intrinsic
def f32_as_i32(typingctx: Any, x: Any) -> Any:  # pragma: no cover - compiled
    """The int32 whose bits are those of the float32 ``x``."""
    return _bitcast(types.float32, types.int32, ir.IntType(32))(typingctx, x)


@intrinsic
def i32_as_f32(typingctx: Any, x: Any) -> Any:  # pragma: no cover - compiled
    """The float32 whose bits are those of the int32 ``x``."""
    return _bitcast(types.int32, types.float32, ir.FloatType())(typingctx, x)


@intrinsic
def f64_as_i64(typingctx: Any, x: Any) -> Any:  # pragma: no cover - compiled
    """The int64 whose bits are those of the float64 ``x``."""
    return _bitcast(types.float64, types.int64, ir.IntType(64))(typingctx, x)


@intrinsic
def i64_as_f64(typingctx: Any, x: Any) -> Any:  # pragma: no cover - compiled
    """The float64 whose bits are those of the int64 ``x``."""
    return _bitcast(types.int64, types.float64, ir.DoubleType())(typingctx, x)


@intrinsic
def ieee_div(typingctx: Any, a: Any, b: Any) -> Any:  # pragma: no cover - compiled
    """``a / b`` with IEEE semantics (x/0 = +-inf, 0/0 = NaN) for two operands of one float type.

    Why: numba's default ``error_model='python'`` makes ``/`` raise ZeroDivisionError on a zero
    divisor (and the check blocks vectorisation); this emits the bare LLVM ``fdiv``.
    """
    if not (isinstance(a, types.Float) and a == b):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.fdiv(args[0], args[1])

    return a(a, b), codegen


@intrinsic
def select(typingctx: Any, cond: Any, a: Any, b: Any) -> Any:  # pragma: no cover - compiled
    """``a if cond else b`` as one LLVM ``select``: both operands are already computed, and no
    branch is left for the vectoriser to remove (numba lowers ``x if c else y`` to branches,
    which LLVM does not always flatten inside a long function)."""
    if not isinstance(cond, types.Boolean) or a != b:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.select(args[0], args[1], args[2])

    return a(cond, a, b), codegen


@intrinsic
def maximum(typingctx: Any, a: Any, b: Any) -> Any:  # pragma: no cover - compiled
    """IEEE 754-2019 ``maximum`` of two floats of one type (``llvm.maximum``): NaN if either
    is NaN, and -0 < +0. The result of a chain of them is the same in any grouping.

    Why: a running maximum written as ``m = x if x > m else m`` is a select chain LLVM will
    not vectorise without fast-math (its result, for zeros of both signs, depends on the
    order); a ``maximum`` chain is order-free, so LLVM vectorises it.
    """
    if not (isinstance(a, types.Float) and a == b):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        llty = context.get_value_type(signature.args[0])
        name = "llvm.maximum.f32" if signature.args[0] == types.float32 else "llvm.maximum.f64"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(llty, [llty, llty]),
                                            name)
        return builder.call(fn, args)

    return a(a, b), codegen
