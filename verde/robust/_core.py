"""Input normalisation shared by every rule.

Why one core: each rule should see the same thing — a 2-D ``(n, d)`` array of worker vectors in
the caller's own backend (numpy or torch), dtype and device — and hand back one vector that the
core turns into the caller's type, dtype, device and per-worker shape. Inputs are never written:
the 2-D view of a stacked input is only read, and every derived array is a fresh copy.

Most rules decide *which* workers to trust from an ``n x n`` Gram matrix (computed once, in
float64 by default) and then take a weighted combination of the rows. The decision runs in
numpy on that tiny matrix; only the Gram product, the final combination and coordinate-wise
sorts touch all ``d`` coordinates, and those run in the input's own backend (so on the GPU for
CUDA tensors).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from verde.robust.errors import BreakdownConditionError, RobustInputError

Array = Any  # np.ndarray | torch.Tensor; kept loose so both backends type-check.

#: Coordinates per chunk for coordinate-wise rules (sorts along the worker axis).
COORDINATE_CHUNK = 1 << 16


@dataclass
class Stack:
    """Worker vectors as a read-only 2-D array plus what is needed to give results back."""

    data: Array  # (n, d), caller's backend and dtype; never written
    is_torch: bool
    item_shape: tuple[int, ...]
    work_dtype: Any  # dtype for Gram products and combinations (float64 unless deterministic)
    deterministic: bool = False  # running under repops.reproducible(): torch ops only
    weights: np.ndarray | None = None  # per-row weights (example counts) for subset averages
    _work: Array | None = field(default=None, repr=False)
    _gram: np.ndarray | None = field(default=None, repr=False)
    _finite: np.ndarray | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return int(self.data.shape[0])

    @property
    def d(self) -> int:
        return int(self.data.shape[1])

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    def work(self) -> Array:
        """The vectors in the work dtype (a copy when the dtype differs; cached)."""
        if self._work is None:
            if self.is_torch:
                self._work = self.data.to(self.work_dtype)
            else:
                self._work = self.data.astype(self.work_dtype, copy=False)
        return self._work

    def native(self) -> Array:
        """The vectors in their own dtype, or float32 for half precision (no copy otherwise).

        For work with no cancellation (norms, dot products with one vector, averages of a few
        rows) the input precision is enough, and skipping the float64 copy halves the traffic.
        """
        x = self.data
        if self.is_torch:
            return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        return x.astype(np.float32) if x.dtype == np.float16 else x

    def gram(self) -> np.ndarray:
        """``X X^T`` as a float64 numpy ``(n, n)`` matrix (cached)."""
        if self._gram is None:
            w = self.work()
            with np.errstate(invalid="ignore", over="ignore"):
                g = w @ w.T
            self._gram = to_numpy(g).astype(np.float64)
        return self._gram

    def finite_rows(self) -> np.ndarray:
        """Boolean mask of rows whose every entry is finite (cached)."""
        if self._finite is None:
            if self.is_torch:
                self._finite = to_numpy(torch.isfinite(self.data).all(dim=1))
            else:
                self._finite = np.isfinite(self.data).all(axis=1)
        return self._finite

    def combine(self, weights: np.ndarray) -> Array:
        """``sum_i weights[i] * x_i``; rows with zero weight are not read.

        Uses the float64 copy when a Gram product already made one; otherwise the input
        precision (float32 for half precision): a weighted average of at most n rows has no
        cancellation to guard against, and skipping a float64 copy of the selected rows saves
        large temporary allocations.
        """
        w = np.asarray(weights, dtype=np.float64)
        idx = np.flatnonzero(w)
        if idx.size == 0:
            return self.zeros()
        x = self._work if self._work is not None else self.native()
        if self.finite_rows().all():
            return self.from_numpy(w, like=x) @ x
        sel = self.index(idx)
        return self.from_numpy(w[idx], like=x) @ x[sel]

    def mix(self, weights: np.ndarray, native: bool = False) -> Array:
        """``W @ X`` for an ``(m, n)`` weight matrix, in the work dtype (or the native one).

        Non-finite rows are never multiplied (0 * inf would be NaN); an output row that puts
        weight on a non-finite row is NaN, which is what its exact value is.
        """
        w = np.asarray(weights, dtype=np.float64)
        good = self.finite_rows()
        x = self.native() if native else self.work()
        if good.all():
            return self.from_numpy(w, like=x) @ x
        gi = np.flatnonzero(good)
        out = self.from_numpy(w[:, gi], like=x) @ x[self.index(gi)]
        tainted = np.flatnonzero((w[:, ~good] != 0).any(axis=1))
        if tainted.size:
            out[self.index(tainted)] = float("nan")
        return out

    def subset_average(self, chosen: np.ndarray) -> Array:
        """The average of the rows ``chosen``: uniform, or by ``weights`` when the caller gave
        them (example counts). A chosen set whose weights are all zero falls back to uniform.
        """
        idx = np.asarray(chosen, dtype=np.int64)
        w = np.zeros(self.n)
        share = None if self.weights is None else self.weights[idx]
        if share is None or not share.sum() > 0:
            w[idx] = 1.0 / idx.size
        else:
            w[idx] = share / share.sum()
        return self.combine(w)

    def rows(self, idx: np.ndarray) -> Stack:
        """A new stack holding only the rows ``idx`` (a copy; the work copy is sliced too)."""
        sel = self.index(np.asarray(idx, dtype=np.int64))
        sub = Stack(self.data[sel], self.is_torch, self.item_shape, self.work_dtype,
                    self.deterministic,
                    None if self.weights is None else self.weights[np.asarray(idx, np.int64)])
        if self._work is not None:
            sub._work = self._work[sel]
        if self._gram is not None:
            ix = np.asarray(idx, dtype=np.int64)
            sub._gram = self._gram[np.ix_(ix, ix)]
        return sub

    def index(self, idx: np.ndarray) -> Array:
        if self.is_torch:
            return torch.as_tensor(idx, dtype=torch.long, device=self.data.device)
        return idx

    def from_numpy(self, a: np.ndarray, like: Array | None = None) -> Array:
        """A numpy array moved into this stack's backend (work dtype unless ``like`` given)."""
        if self.is_torch:
            ref = self.data if like is None else like
            dtype = self.work_dtype if like is None else like.dtype
            return torch.as_tensor(np.ascontiguousarray(a), device=ref.device).to(dtype)
        dtype = self.work_dtype if like is None else like.dtype
        return np.asarray(a, dtype=dtype)

    def zeros(self) -> Array:
        if self.is_torch:
            return torch.zeros(self.d, dtype=self.work_dtype, device=self.data.device)
        return np.zeros(self.d, dtype=self.work_dtype)

    def restore(self, vec: Array) -> Array:
        """One result vector back in the caller's type, dtype, device and per-worker shape.

        Always a fresh array, so a result never aliases (and can never be used to mutate) an input.
        """
        if self.is_torch:
            if (isinstance(vec, torch.Tensor) and vec.dtype == self.data.dtype
                    and vec.device == self.data.device
                    and vec.untyped_storage().data_ptr()
                    != self.data.untyped_storage().data_ptr()):
                return vec.reshape(self.item_shape)  # freshly computed: no second copy
            out = torch.as_tensor(vec).to(device=self.data.device, dtype=self.data.dtype,
                                          copy=True)
            return out.reshape(self.item_shape)
        if (isinstance(vec, np.ndarray) and vec.dtype == self.data.dtype and vec.flags.owndata
                and not np.may_share_memory(vec, self.data)):
            return vec.reshape(self.item_shape)  # freshly computed: no second copy
        out = np.array(to_numpy(vec), dtype=self.data.dtype, copy=True)
        return out.reshape(self.item_shape)

    def restore_stack(self, mat: Array) -> Array:
        """An ``(m, d)`` result back as a fresh stacked ``(m, *item_shape)`` array of the caller."""
        m = int(mat.shape[0])
        if self.is_torch:
            if (isinstance(mat, torch.Tensor) and mat.dtype == self.data.dtype
                    and mat.device == self.data.device
                    and mat.untyped_storage().data_ptr()
                    != self.data.untyped_storage().data_ptr()):
                return mat.reshape((m, *self.item_shape))  # freshly computed: no second copy
            out = torch.as_tensor(mat).to(device=self.data.device, dtype=self.data.dtype,
                                          copy=True)
            return out.reshape((m, *self.item_shape))
        if (isinstance(mat, np.ndarray) and mat.dtype == self.data.dtype and mat.flags.owndata
                and not np.may_share_memory(mat, self.data)):
            return mat.reshape((m, *self.item_shape))  # freshly computed: no second copy
        out = np.array(to_numpy(mat), dtype=self.data.dtype, copy=True)
        return out.reshape((m, *self.item_shape))


def to_numpy(a: Array) -> np.ndarray:
    """A numpy view/copy of a backend array (torch tensors are detached and moved to CPU)."""
    if isinstance(a, torch.Tensor):
        t = a.detach().cpu()
        return t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()
    return np.asarray(a)


def _is_float_np(a: np.ndarray) -> bool:
    return bool(np.issubdtype(a.dtype, np.floating))


def as_stack(inputs: Any, name: str = "inputs", deterministic: bool = False) -> Stack:
    """Normalise a list/tuple of arrays or tensors, or one stacked ``(n, ...)`` array, to a Stack.

    Raises :class:`RobustInputError` for empty, ragged, mixed-backend or non-floating input.
    """
    if isinstance(inputs, torch.Tensor | np.ndarray):
        if inputs.ndim < 1 or inputs.shape[0] == 0:
            raise RobustInputError(f"{name}: need a non-empty stack of worker vectors, got shape "
                                   f"{tuple(inputs.shape)}")
        stacked = inputs.detach() if isinstance(inputs, torch.Tensor) else inputs
        item_shape = tuple(int(s) for s in inputs.shape[1:])
    elif isinstance(inputs, Sequence) and not isinstance(inputs, str | bytes):
        items = list(inputs)
        if not items:
            raise RobustInputError(f"{name}: need at least one worker vector, got an empty list")
        kinds = {isinstance(v, torch.Tensor) for v in items}
        if len(kinds) != 1 or not all(isinstance(v, torch.Tensor | np.ndarray) for v in items):
            raise RobustInputError(f"{name}: every worker vector must be a numpy array, or every "
                                   "one a torch tensor; got a mix or other objects")
        shapes = {tuple(v.shape) for v in items}
        if len(shapes) != 1:
            raise RobustInputError(f"{name}: worker vectors differ in shape: {sorted(shapes)}")
        dtypes = {v.dtype for v in items}
        if len(dtypes) != 1:
            raise RobustInputError(f"{name}: worker vectors differ in dtype: {dtypes}")
        if isinstance(items[0], torch.Tensor):
            devices = {v.device for v in items}
            if len(devices) != 1:
                raise RobustInputError(f"{name}: worker tensors are on different devices")
            stacked = torch.stack([v.detach() for v in items])
        else:
            stacked = np.stack(items)
        item_shape = tuple(int(s) for s in items[0].shape)
    else:
        raise RobustInputError(f"{name}: expected a list of numpy arrays / torch tensors or one "
                               f"stacked array, got {type(inputs).__name__}")
    is_torch = isinstance(stacked, torch.Tensor)
    if is_torch:
        if not stacked.is_floating_point():
            raise RobustInputError(f"{name}: worker vectors must be floating point, got "
                                   f"{stacked.dtype}")
        data = stacked.reshape(stacked.shape[0], -1)
        work = torch.float32 if deterministic else torch.float64
    else:
        if not _is_float_np(stacked):
            raise RobustInputError(f"{name}: worker vectors must be floating point, got "
                                   f"{stacked.dtype}")
        data = stacked.reshape(stacked.shape[0], -1)
        work = np.float32 if deterministic else np.float64
    if data.shape[1] == 0:
        raise RobustInputError(f"{name}: worker vectors are empty (0 coordinates)")
    return Stack(data=data, is_torch=is_torch, item_shape=item_shape, work_dtype=work,
                 deterministic=deterministic)


def check_weights(weights: Any, n: int) -> np.ndarray | None:
    """``None``, or one finite non-negative weight per worker with a positive sum (float64)."""
    if weights is None:
        return None
    w = np.asarray(to_numpy(weights) if isinstance(weights, torch.Tensor) else weights,
                   dtype=np.float64).reshape(-1)
    if w.shape[0] != n:
        raise RobustInputError(f"weights: need one weight per worker vector ({n}), got "
                               f"{w.shape[0]}")
    if not np.isfinite(w).all() or (w < 0).any() or not w.sum() > 0:
        raise RobustInputError("weights: need finite, non-negative weights with a positive sum")
    return w


def check_f(f: int, name: str = "f") -> int:
    """``f`` must be a non-negative int (bool rejected)."""
    if isinstance(f, bool) or not isinstance(f, int | np.integer) or f < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {f!r}")
    return int(f)


def require(condition: bool, rule: str, n: int, f: int, text: str) -> None:
    """Raise :class:`BreakdownConditionError` naming the rule and its condition."""
    if not condition:
        raise BreakdownConditionError(
            f"{rule} needs {text}; got n={n}, f={f} (too many faulty workers for this rule)"
        )


def pairwise_sq_distances(stack: Stack) -> np.ndarray:
    """Squared Euclidean distances from the Gram matrix (float64, clipped at 0, diagonal 0).

    Rows with a non-finite entry are at distance +inf from every other row, so no rule that
    ranks by distance ever picks them.
    """
    g = stack.gram()
    sq = np.diag(g).copy()
    with np.errstate(invalid="ignore", over="ignore"):
        d = sq[:, None] + sq[None, :] - 2.0 * g
    np.maximum(d, 0.0, out=d)
    bad = ~stack.finite_rows()
    if bad.any():
        d[bad, :] = np.inf
        d[:, bad] = np.inf
    np.fill_diagonal(d, 0.0)
    return d


def drop_nonfinite(stack: Stack, f: int) -> tuple[Stack, int]:
    """Remove rows with non-finite entries; each removed row is certainly faulty, so f shrinks.

    Used by rules that weight or clip vectors (geometric median, clipping, spectral filters),
    for which an infinite vector has no usable direction. Conditions on (n, f) are checked on
    the original sizes before this; removing k rows and k faults preserves all of them.
    """
    ok = stack.finite_rows()
    if ok.all():
        return stack, f
    keep = np.flatnonzero(ok)
    if keep.size == 0:
        raise RobustInputError("every worker vector has a non-finite entry; nothing to aggregate")
    return stack.rows(keep), max(f - int((~ok).sum()), 0)


def row_sq_norms(stack: Stack) -> np.ndarray:
    """Squared norms of the rows (float64 numpy), inf exactly for the non-finite rows.

    Computed in the input precision; only when some norm comes out non-finite is the exact
    finiteness mask computed, and finite rows whose squared norm overflowed are redone in
    float64.
    """
    sq = np.diag(stack.gram()).copy() if stack._gram is not None else _sq_norms_direct(stack)
    odd = ~np.isfinite(sq)
    if odd.any():
        finite = stack.finite_rows()
        for i in np.flatnonzero(odd & finite):
            row = to_numpy(stack.data[int(i)]).astype(np.float64)
            sq[i] = float(row @ row)
        sq[~finite] = np.inf
    return sq


def _sq_norms_direct(stack: Stack) -> np.ndarray:
    w = stack.native()
    if stack.is_torch:
        return to_numpy(torch.linalg.vector_norm(w, dim=1)).astype(np.float64) ** 2
    with np.errstate(invalid="ignore", over="ignore"):
        return np.einsum("ij,ij->i", w, w).astype(np.float64)
