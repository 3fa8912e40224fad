"""Raw element access for compiled code: typed pointers (to an array's first element, or from
an address handed over by Python), loads and stores at a flat element offset.

Why: the matrix-product core reads operands with their own strides (a transposed weight, a
strided slice) instead of copying them to one layout first, and its inner routines take the
packed buffers and the operands interchangeably. As typed pointers they all have one type, so
one compiled routine serves every layout (numba would otherwise compile the whole product once
per combination of operand layouts); and plain pointer arithmetic has none of the
negative-index wraparound numba adds to signed array indexing, which keeps LLVM from
vectorising the packing loops. The caller computes every offset from the strides and keeps it
inside its array, and keeps the arrays alive (:func:`keep`) while their pointers are in use.
"""

from __future__ import annotations

from typing import Any

from numba import types
from numba.extending import intrinsic


@intrinsic
def ptr(typingctx: Any, x: Any) -> Any:  # pragma: no cover - compiled
    """The address of ``x``'s first element, typed as a pointer to its dtype."""
    if not isinstance(x, types.Array):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return context.make_array(signature.args[0])(context, builder, args[0]).data

    return types.CPointer(x.dtype)(x), codegen


@intrinsic
def at_address(typingctx: Any, address: Any, like: Any) -> Any:  # pragma: no cover - compiled
    """The integer ``address`` as a pointer to the dtype of array ``like`` (the caller keeps
    the memory alive: arrays passed from Python by address stay referenced there)."""
    if not isinstance(address, types.Integer) or not isinstance(like, types.Array):
        return None
    pty = types.CPointer(like.dtype)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        value = context.cast(builder, args[0], signature.args[0], types.intp)
        return builder.inttoptr(value, context.get_value_type(pty))

    return pty(address, like), codegen


@intrinsic
def keep(typingctx: Any, x: Any, y: Any) -> Any:  # pragma: no cover - compiled
    """Nothing, but a use of ``x`` and ``y``: numba releases an array after its last use, so
    a function that works through pointers into local arrays calls this after the last one."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return context.get_dummy_value()

    return types.void(x, y), codegen


def _address(context: Any, builder: Any, signature: Any, args: Any) -> Any:
    """The address ``p + i`` of a (pointer, index, ...) intrinsic call."""
    index = context.cast(builder, args[1], signature.args[1], types.intp)
    return builder.gep(args[0], [index])


@intrinsic
def load(typingctx: Any, p: Any, i: Any) -> Any:  # pragma: no cover - compiled
    """``p[i]`` for a typed pointer ``p`` and an integer ``i`` (in elements)."""
    if not isinstance(p, types.CPointer) or not isinstance(i, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.load(_address(context, builder, signature, args))

    return p.dtype(p, i), codegen


@intrinsic
def store(typingctx: Any, p: Any, i: Any, v: Any) -> Any:  # pragma: no cover - compiled
    """``p[i] = v``; a float ``v`` of another width is converted like numpy's assignment (the
    callers store values of the pointee's own dtype, and literal zeros)."""
    if not isinstance(p, types.CPointer) or not isinstance(i, types.Integer):
        return None
    if v != p.dtype and not (isinstance(v, types.Float) and isinstance(p.dtype, types.Float)):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        value = context.cast(builder, args[2], signature.args[2], signature.args[0].dtype)
        builder.store(value, _address(context, builder, signature, args))
        return context.get_dummy_value()

    return types.void(p, i, v), codegen
