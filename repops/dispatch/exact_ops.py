"""The aten ops whose vendor kernel is reproducible because IEEE-754 leaves it no choice.

An op is on this list only if EVERY output element is either (a) a pure data movement of input
elements (copy, view, gather, select, where, comparison, conversion with round-to-nearest-even),
or (b) ONE correctly rounded IEEE operation (+ - * / sqrt, or an exact function such as floor,
abs, fmod, max) of its inputs, after the exact C1 widening of float16/bfloat16 to binary32.
Such an element has a single possible value on every CPU, thread count, vector width and layout:
a vector path and a scalar tail path of the vendor kernel cannot differ, because there is nothing
to reorder and nothing to contract into an fma.

Not listed although IEEE makes it one operation: ``sqrt`` -- torch's CPU kernel calls MKL VML,
which is not correctly rounded (see :mod:`repops.dispatch.ieee_ops`, which replaces it).

Everything else (sums, means, norms, a + alpha*b with alpha != 1, addcmul, lerp, transcendental
functions, ...) must come from a repops kernel. The reasoning for each group is written out in
``repops/spec/dispatch.md`` section 2; keep that file and this one in step.

Entries are *overload packet* names (``"mul"`` covers ``aten.mul.Tensor``, ``aten.mul.Scalar``
and ``aten.mul.out``); the in-place packet (``"mul_"``) is derived by dropping the trailing
underscore. Packets that are exact only for some arguments carry a predicate in
:data:`CONDITIONAL`; a failing predicate sends the op to the strict-mode refusal path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

#: Pure data movement: views, reshapes, copies, concatenation, indexing, factories, metadata.
DATA_MOVEMENT: frozenset[str] = frozenset(
    {
        # views and reshapes
        "view", "_unsafe_view", "_reshape_alias", "reshape", "as_strided", "permute", "t",
        "transpose", "expand", "slice", "select", "unsqueeze", "squeeze", "unbind", "split",
        "split_with_sizes", "chunk", "narrow", "unfold", "diagonal", "movedim", "alias",
        "view_as_real", "view_as_complex", "_conj", "conj", "resolve_conj", "resolve_neg",
        "_neg_view", "detach", "lift_fresh", "lift_fresh_copy", "lift", "flatten",
        "squeeze_copy", "unsqueeze_copy", "view_copy", "permute_copy", "t_copy",
        "transpose_copy", "expand_copy", "slice_copy", "select_copy", "alias_copy",
        "detach_copy", "split_copy", "split_with_sizes_copy", "unbind_copy", "diagonal_copy",
        "as_strided_copy",
        # copies and conversions (round-to-nearest-even, or exact truncation float -> int)
        "clone", "contiguous", "copy", "copy_", "_to_copy", "_copy_from",
        "_copy_from_and_resize", "to",
        # assembling and re-arranging
        "cat", "stack", "flip", "roll", "repeat", "repeat_interleave", "constant_pad_nd",
        "tril", "triu", "diag_embed",
        # backward of views: zeros plus a strided copy, no accumulation
        "select_backward", "slice_backward", "as_strided_scatter", "slice_scatter",
        "select_scatter", "diagonal_scatter", "diagonal_backward",
        # gathering and non-accumulating scattering
        "index", "_unsafe_index", "index_select", "gather", "embedding", "masked_select",
        "index_fill", "masked_fill", "masked_scatter", "where", "nonzero", "take",
        # factories and fills (every element is the given constant)
        "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "zeros",
        "zeros_like", "ones", "ones_like", "full", "full_like", "new_zeros", "new_ones",
        "new_full", "scalar_tensor", "fill", "zero", "resize", "resize_as", "set",
        # metadata, assertions and scalar reads
        "_local_scalar_dense", "item", "_assert_tensor_metadata", "_assert_async",
        "_functional_assert_async", "sym_size", "sym_stride", "sym_numel",
        "sym_storage_offset", "is_same_size", "_has_compatible_shallow_copy_type",
    }
)  # fmt: skip

#: Factories that return uninitialised memory. The mode fills their result with zeros: a
#: traced output must have one defined value (its digest is committed to and an arbiter must
#: be able to recompute it), and garbage bytes differ between runs.
UNINITIALISED: frozenset[str] = frozenset(
    {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided"}
)

#: One correctly rounded IEEE operation per element (or an exact function of one element).
SINGLE_IEEE_OP: frozenset[str] = frozenset(
    {
        "mul", "div", "neg", "abs", "reciprocal", "fmod", "remainder",
        "floor", "ceil", "trunc", "frac", "sign", "sgn", "signbit", "copysign",
        "maximum", "minimum", "fmax", "fmin", "clamp", "clamp_min", "clamp_max", "relu",
        "threshold", "threshold_backward", "hardtanh", "hardtanh_backward",
        "leaky_relu", "leaky_relu_backward", "nan_to_num", "heaviside",
        "eq", "ne", "lt", "le", "gt", "ge", "isnan", "isinf", "isfinite", "isposinf",
        "isneginf", "logical_and", "logical_or", "logical_xor", "logical_not",
        "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not",
        "bitwise_left_shift", "bitwise_right_shift", "any", "all", "count_nonzero",
    }
)  # fmt: skip


def _scalar_is(value: Any, target: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == target


def _alpha_is_one(args: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
    """add/sub/rsub: ``a + alpha*b`` is one rounding only when alpha == 1 (no fma contraction)."""
    alpha = kwargs.get("alpha", args[2] if len(args) > 2 else 1)
    return _scalar_is(alpha, 1)


def _round_without_decimals(args: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
    """round(x) is exact (half to even); round(x, decimals=d) multiplies and divides by 10^d."""
    decimals = kwargs.get("decimals", args[1] if len(args) > 1 else 0)
    return bool(decimals == 0)


def _scatter_without_reduce(args: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
    """scatter with reduce='add'/'multiply' accumulates in an unspecified order."""
    return kwargs.get("reduce", args[4] if len(args) > 4 else None) is None


def _index_put_without_accumulate(args: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
    """index_put(accumulate=True) sums colliding updates in an unspecified order."""
    accumulate = kwargs.get("accumulate", args[3] if len(args) > 3 else False)
    return accumulate is False


def _integral_arange(args: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
    """arange computes start + i*step: exact only when every element is a small integer."""
    bounds = [a for a in args if isinstance(a, (int, float)) and not isinstance(a, bool)]
    bounds += [kwargs[k] for k in ("start", "end", "step") if k in kwargs]
    return all(isinstance(b, int) and abs(b) <= 2**24 for b in bounds)


def _stable_sort(args: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
    """sort/argsort move data, but only a stable sort fixes the order of equal keys."""
    return kwargs.get("stable") is True


#: Packets that are exact only for some arguments; the predicate sees (args, kwargs).
CONDITIONAL: dict[str, Callable[[Sequence[Any], Mapping[str, Any]], bool]] = {
    "add": _alpha_is_one,
    "sub": _alpha_is_one,
    "rsub": _alpha_is_one,
    "round": _round_without_decimals,
    "scatter": _scatter_without_reduce,
    "index_put": _index_put_without_accumulate,
    "_index_put_impl": _index_put_without_accumulate,
    "arange": _integral_arange,
    "sort": _stable_sort,
    "argsort": _stable_sort,
}

EXACT_PACKETS: frozenset[str] = DATA_MOVEMENT | SINGLE_IEEE_OP

#: Packets whose ops must never be treated as exact, even on integer data: they draw randomness
#: (routed to repops.rng) or are composites handled elsewhere (foreach).
_NEVER_INTEGER_RULE_PREFIXES: tuple[str, ...] = ("_foreach_",)


def packet_name(func: torch._ops.OpOverload) -> str:
    """The overload packet name without an in-place underscore: aten.mul_.Tensor -> 'mul'."""
    name: str = func.overloadpacket.__name__
    if name.endswith("_") and not name.endswith("__"):
        name = name[:-1]
    return name


def exactness(
    func: torch._ops.OpOverload,
) -> tuple[bool, Callable[[Sequence[Any], Mapping[str, Any]], bool] | None]:
    """(is listed, predicate or None) for an aten overload."""
    if func.namespace != "aten":
        return False, None
    name = packet_name(func)
    if name in CONDITIONAL:
        return True, CONDITIONAL[name]
    return name in EXACT_PACKETS, None


def integer_rule_applies(func: torch._ops.OpOverload) -> bool:
    """Whether an unlisted op may still run when no tensor it reads or writes is floating.

    Integer and bool arithmetic is exact and associative (wrapping), so any order gives the
    same bits. The caller checks the inputs before and the outputs after the vendor call.
    """
    if func.namespace != "aten":
        return False
    return not func.overloadpacket.__name__.startswith(_NEVER_INTEGER_RULE_PREFIXES)


def is_floating(t: torch.Tensor) -> bool:
    """Whether a tensor holds floating or complex values (the integer rule's exclusion)."""
    return t.dtype.is_floating_point or t.dtype.is_complex
