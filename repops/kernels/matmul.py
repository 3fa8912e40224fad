"""aten matrix products (mm, addmm, bmm, baddbmm, mv, dot) with the order of spec/linalg.md.

Why: BLAS libraries choose blocking, split-K and vector width per CPU and thread count, so the
same product differs in its last bits between machines. Here every element of a product is the
C5 chain (one fma per term, k increasing, from +0.0), computed by the blocked core in
:mod:`repops.kernels.matmul_core`; alpha, beta and the bias are applied afterwards with the
separately rounded operations spec/linalg.md lists, and the result is rounded once to the
output dtype (C1).

Every public function takes exactly the arguments of the aten overload it implements and
returns what that overload returns, so the dispatch mode calls ``fn(*args, **kwargs)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np
import torch

from repops._numba import fma, pjit
from repops._tensor import compute_dtype, from_compute, to_compute
from repops.errors import RepopsInputError, UnsupportedInputError
from repops.kernels.matmul_core import epilogue_into, plain_product_into, product_into


class MatmulShapeError(RepopsInputError):
    """A matrix-product argument has the wrong number of dims or mismatched sizes."""


@pjit
def _row_dots(a, x):  # type: ignore[no-untyped-def]
    """``out[i] = C5 chain over k of a[i, k] * x[k]`` (mv/dot, and products with N == 1)."""
    m, kk = a.shape
    out = np.zeros(m, dtype=a.dtype)
    for i in numba.prange(m):
        acc = out[i]  # +0.0: the C5 starting value
        for k in range(kk):
            acc = fma(a[i, k], x[k], acc)
        out[i] = acc
    return out


def _check_float(name: str, t: Any) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise UnsupportedInputError(
            f"{name} has dtype {t.dtype}; repops matrix products take float16, bfloat16, "
            "float32 or float64"
        )
    return t


def _check_dims(name: str, t: torch.Tensor, ndim: int) -> None:
    if t.dim() != ndim:
        raise MatmulShapeError(f"{name} must be {ndim}-D, got shape {tuple(t.shape)}")


def _same_dtype(op: str, *named: tuple[str, torch.Tensor]) -> torch.dtype:
    dtypes = {t.dtype for _, t in named}
    if len(dtypes) != 1:
        listing = ", ".join(f"{n}={t.dtype}" for n, t in named)
        raise MatmulShapeError(f"{op}: all tensors must have one dtype, got {listing}")
    return named[0][1].dtype


_NUMPY_DTYPE = {torch.float32: np.dtype(np.float32), torch.float64: np.dtype(np.float64)}


def _compute(t: torch.Tensor) -> torch.Tensor:
    """``t`` widened to its compute dtype, keeping its strides (no copy for float32/float64):
    the blocked core reads any layout itself, in the logical order (C3)."""
    if not t.is_cpu:
        raise UnsupportedInputError(f"the numba backend runs on CPU tensors, got device {t.device}")
    if t.dtype not in _NUMPY_DTYPE:  # the checks above allow floats only
        t = t.to(compute_dtype(t.dtype))
    return t.resolve_neg() if t.is_neg() else t


def product(
    a: torch.Tensor,
    b: torch.Tensor,
    bias: torch.Tensor | None = None,
    beta: float = 1.0,
    alpha: float = 1.0,
) -> torch.Tensor:
    """``beta * bias + alpha * (a @ b)`` for (batch, M, K) and (batch, K, N) tensors as a
    compute-dtype (batch, M, N) tensor, or for 2-D (M, K) and (K, N) as (M, N), in the order of
    spec/linalg.md §2 (the C5 product when there is no bias and ``alpha == 1``).

    Any strides are accepted: the core reads them in logical order, so a transposed view (as in
    the backward of ``linear``) gives the same bits as its contiguous copy. The bias is added
    tile by tile while the product is in cache, never materialised at the product's shape.
    2-D operands are one product of batch 1 read in place (a small product pays for every view
    made around it: batch views cost more than a 128^3 product's packing).
    """
    a, b = _compute(a), _compute(b)
    if a.dim() == 2:
        nb, (m, kk), n = 1, a.shape, b.shape[1]
        out_shape: tuple[int, ...] = (m, n)
        sa, sb = (0, *a.stride()), (0, *b.stride())
    else:
        nb, m, kk = a.shape
        n = b.shape[2]
        out_shape = (nb, m, n)
        sa, sb = a.stride(), b.stride()
    c = torch.empty(out_shape, dtype=a.dtype)
    bias_op = None
    if bias is not None and beta != 0:  # beta == 0: torch never reads self (even NaN/inf)
        e = _compute(bias).expand(out_shape)  # broadcast dims get stride 0
        bias_op = (e.data_ptr(), (0, *e.stride()) if a.dim() == 2 else e.stride())
    dtype = _NUMPY_DTYPE[a.dtype]
    if n == 1 and nb == 1 and m > 0:  # one chain per row, then the same epilogue
        rows, vec = (a, b[:, 0]) if a.dim() == 2 else (a[0], b[0, :, 0])
        dots = _row_dots(rows.detach().numpy(), vec.detach().contiguous().numpy())
        c.view(-1).copy_(torch.from_numpy(dots))
        epilogue_into(c.data_ptr(), (nb, m, n), bias_op, dtype=dtype, beta=beta, alpha=alpha)
        return c
    product_into(c.data_ptr(), (nb, m, kk, n), (a.data_ptr(), sa), (b.data_ptr(), sb), bias_op,
                 dtype=dtype, beta=beta, alpha=alpha)
    return c


def _rounded(c: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The one rounding of C1 (RNE) from the compute dtype to the output dtype."""
    return c if c.dtype == dtype else c.to(dtype)


def _check_bias(bias: torch.Tensor, beta: float, shape: tuple[int, ...]) -> None:
    """``self`` of addmm/baddbmm must broadcast to the product's shape (unless beta == 0)."""
    if beta == 0:
        return
    try:
        fits = torch.broadcast_shapes(bias.shape, shape) == shape
    except RuntimeError:
        fits = False
    if not fits:
        raise MatmulShapeError(
            f"self of shape {tuple(bias.shape)} does not broadcast to the product's shape {shape}"
        )


def _scalar(name: str, v: Any) -> float:
    if isinstance(v, torch.Tensor):
        v = v.item()
    if isinstance(v, complex):
        raise UnsupportedInputError(f"{name} must be real, got {v!r}")
    return float(v)


def mm(self: torch.Tensor, mat2: torch.Tensor) -> torch.Tensor:
    """aten.mm.default: ``self @ mat2`` for 2-D tensors."""
    _check_float("self", self)
    _check_float("mat2", mat2)
    _check_dims("self", self, 2)
    _check_dims("mat2", mat2, 2)
    dtype = _same_dtype("mm", ("self", self), ("mat2", mat2))
    if self.shape[1] != mat2.shape[0]:
        raise MatmulShapeError(
            f"mm: self is {tuple(self.shape)} and mat2 is {tuple(mat2.shape)}; inner sizes differ"
        )
    return _rounded(product(self, mat2), dtype)


def addmm(
    self: torch.Tensor,
    mat1: torch.Tensor,
    mat2: torch.Tensor,
    *,
    beta: Any = 1,
    alpha: Any = 1,
) -> torch.Tensor:
    """aten.addmm.default: ``beta * self + alpha * (mat1 @ mat2)`` (order in spec/linalg.md)."""
    _check_float("self", self)
    _check_float("mat1", mat1)
    _check_float("mat2", mat2)
    _check_dims("mat1", mat1, 2)
    _check_dims("mat2", mat2, 2)
    dtype = _same_dtype("addmm", ("self", self), ("mat1", mat1), ("mat2", mat2))
    if mat1.shape[1] != mat2.shape[0]:
        raise MatmulShapeError(
            f"addmm: mat1 is {tuple(mat1.shape)} and mat2 is {tuple(mat2.shape)}; "
            "inner sizes differ"
        )
    b, a = _scalar("beta", beta), _scalar("alpha", alpha)
    _check_bias(self, b, (mat1.shape[0], mat2.shape[1]))
    return _rounded(product(mat1, mat2, self, b, a), dtype)


def bmm(self: torch.Tensor, mat2: torch.Tensor) -> torch.Tensor:
    """aten.bmm.default: batched ``self[b] @ mat2[b]`` for 3-D tensors."""
    _check_float("self", self)
    _check_float("mat2", mat2)
    _check_dims("self", self, 3)
    _check_dims("mat2", mat2, 3)
    dtype = _same_dtype("bmm", ("self", self), ("mat2", mat2))
    if self.shape[0] != mat2.shape[0] or self.shape[2] != mat2.shape[1]:
        raise MatmulShapeError(
            f"bmm: self is {tuple(self.shape)} and mat2 is {tuple(mat2.shape)}; batch or inner "
            "sizes differ"
        )
    return _rounded(product(self, mat2), dtype)


def baddbmm(
    self: torch.Tensor,
    batch1: torch.Tensor,
    batch2: torch.Tensor,
    *,
    beta: Any = 1,
    alpha: Any = 1,
) -> torch.Tensor:
    """aten.baddbmm.default: ``beta * self + alpha * bmm(batch1, batch2)``."""
    _check_float("self", self)
    _check_float("batch1", batch1)
    _check_float("batch2", batch2)
    _check_dims("batch1", batch1, 3)
    _check_dims("batch2", batch2, 3)
    dtype = _same_dtype("baddbmm", ("self", self), ("batch1", batch1), ("batch2", batch2))
    if batch1.shape[0] != batch2.shape[0] or batch1.shape[2] != batch2.shape[1]:
        raise MatmulShapeError(
            f"baddbmm: batch1 is {tuple(batch1.shape)} and batch2 is {tuple(batch2.shape)}; "
            "batch or inner sizes differ"
        )
    b, a = _scalar("beta", beta), _scalar("alpha", alpha)
    _check_bias(self, b, (batch1.shape[0], batch1.shape[1], batch2.shape[2]))
    return _rounded(product(batch1, batch2, self, b, a), dtype)


def mv(self: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
    """aten.mv.default: ``self @ vec`` for a 2-D ``self`` and 1-D ``vec``."""
    _check_float("self", self)
    _check_float("vec", vec)
    _check_dims("self", self, 2)
    _check_dims("vec", vec, 1)
    dtype = _same_dtype("mv", ("self", self), ("vec", vec))
    if self.shape[1] != vec.shape[0]:
        raise MatmulShapeError(
            f"mv: self is {tuple(self.shape)} and vec is {tuple(vec.shape)}; inner sizes differ"
        )
    return from_compute(_row_dots(to_compute(self), to_compute(vec)), dtype)


def dot(self: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
    """aten.dot.default: the C5 chain of two 1-D tensors (a 0-d result)."""
    _check_float("self", self)
    _check_float("tensor", tensor)
    _check_dims("self", self, 1)
    _check_dims("tensor", tensor, 1)
    dtype = _same_dtype("dot", ("self", self), ("tensor", tensor))
    if self.shape[0] != tensor.shape[0]:
        raise MatmulShapeError(
            f"dot: self has {self.shape[0]} elements and tensor has {tensor.shape[0]}"
        )
    r = _row_dots(to_compute(self).reshape(1, -1), to_compute(tensor))
    return from_compute(r, dtype).reshape(())


def _plain_pair(
    args: tuple[Any, ...], ndim: int
) -> tuple[torch.Tensor, torch.Tensor, np.dtype] | None:
    """``(a, b, numpy dtype)`` when ``args`` are two plain ``ndim``-D strided CPU tensors of
    one float32/float64 dtype with no negation bit (what the core reads in place), else None."""
    if len(args) != 2:
        return None
    a, b = args
    if type(a) is not torch.Tensor or type(b) is not torch.Tensor or b.dtype is not a.dtype:
        return None
    dtype = _NUMPY_DTYPE.get(a.dtype)
    if dtype is None or not (a.is_cpu and b.is_cpu) or a.is_neg() or b.is_neg():
        return None
    if a.layout is not torch.strided or b.layout is not torch.strided:  # sparse, mkldnn
        return None
    return (a, b, dtype) if a.dim() == ndim and b.dim() == ndim else None


def plain_mm(args: tuple[Any, ...]) -> torch.Tensor | None:
    """:func:`mm` of two plain float32/float64 CPU matrices (the product of many columns a
    training step runs most), with only the checks that case needs; None otherwise.

    Same bits and layout as :func:`mm` (one core, one contiguous output); it exists because
    the general path's checks cost as much as a 64^3 product (see repops.dispatch.registry).
    """
    pair = _plain_pair(args, 2)
    if pair is None:
        return None
    a, b, dtype = pair
    (m, kk), (k_b, n) = a.shape, b.shape
    if kk != k_b or n == 1:
        return None
    c = a.new_empty(m, n)  # torch.empty's dtype keyword alone costs half a microsecond
    (sa1, sa2), (sb1, sb2) = a.stride(), b.stride()
    plain_product_into(c.data_ptr(), 1, m, kk, n, a.data_ptr(), 0, sa1, sa2, b.data_ptr(), 0,
                       sb1, sb2, dtype)
    return c


def plain_bmm(args: tuple[Any, ...]) -> torch.Tensor | None:
    """:func:`bmm` of two plain float32/float64 CPU batches (attention's products); None for
    anything else. Same bits and layout as :func:`bmm`."""
    pair = _plain_pair(args, 3)
    if pair is None:
        return None
    a, b, dtype = pair
    (nb, m, kk), (nb_b, k_b, n) = a.shape, b.shape
    if nb != nb_b or kk != k_b or (n == 1 and nb == 1):
        return None
    c = a.new_empty(nb, m, n)
    (sa0, sa1, sa2), (sb0, sb1, sb2) = a.stride(), b.stride()
    plain_product_into(c.data_ptr(), nb, m, kk, n, a.data_ptr(), sa0, sa1, sa2, b.data_ptr(),
                       sb0, sb1, sb2, dtype)
    return c


ATEN_KERNELS: dict[str, Callable[..., Any]] = {
    "aten.mm.default": mm,
    "aten.addmm.default": addmm,
    "aten.bmm.default": bmm,
    "aten.baddbmm.default": baddbmm,
    "aten.mv.default": mv,
    "aten.dot.default": dot,
}

#: Shortcuts of the kernels above for their common case (see repops.dispatch.registry).
PLAIN_CASES: dict[str, Callable[[tuple[Any, ...]], torch.Tensor | None]] = {
    "aten.mm.default": plain_mm,
    "aten.bmm.default": plain_bmm,
}
