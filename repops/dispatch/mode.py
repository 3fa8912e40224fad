"""``repops.reproducible()``: a TorchDispatchMode that sends every aten op to a reproducible path.

A TorchDispatchMode sits below autograd, so it sees the aten ops of the forward pass, the ops
autograd runs in ``.backward()`` (when backward runs inside the block) and the optimizer's ops.
Each op is routed by :func:`repops.dispatch.routing.route_for`; in strict mode (default) an op
with no reproducible path raises :class:`repops.errors.UnsupportedOpError` naming it, instead of
silently running the vendor kernel. ``strict=False`` runs the vendor kernel, warns once per op
and records that the run is not reproducible (``mode.reproducible``, ``tracer.reproducible``).

State: the mode changes nothing global. The mode stack is thread-local (torch), thread counts
are never touched, the kernel table is a read-only cache, and ``__exit__`` always pops the mode
and releases the tracer, also when the block raises. One mode per thread: entering a second
``reproducible()`` inside an active one raises :class:`NestedModeError` (the inner kernels'
own torch calls would otherwise be routed and traced by the outer mode). Two threads may each
run their own block; a Tracer can be attached to only one active block at a time.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch.utils._python_dispatch import TorchDispatchMode, _get_current_dispatch_mode_stack

from repops.dispatch import dynamo_guard, exact_ops
from repops.dispatch.foreach import run_foreach
from repops.dispatch.layout import match_vendor_layout
from repops.dispatch.registry import PlainCases, kernel_table, plain_cases
from repops.dispatch.routing import Route, RouteKind, route_for
from repops.dispatch.trace import Tracer, is_structure_only
from repops.errors import RepopsError, UnsupportedInputError, UnsupportedOpError


class NestedModeError(RepopsError):
    """``repops.reproducible()`` entered while one is already active in this thread."""


class NonReproducibleWarning(UserWarning):
    """strict=False ran a vendor kernel that is not reproducible."""


#: See dynamo_guard: None where torch's own wrapper keeps dynamo out of the hook.
_eval_frame_callback = dynamo_guard.eval_frame_callback

_ALLOWED_SUBCLASS_NAMES = frozenset({"FakeTensor", "Parameter", "Buffer"})


def _scan(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[bool, bool, bool]:
    """(any floating tensor, any structure-only tensor, any Python float) in the arguments."""
    floating = structure = pyfloat = False
    stack: list[Any] = [*args, *kwargs.values()]
    while stack:
        v = stack.pop()
        if isinstance(v, torch.Tensor):
            if v.dtype.is_floating_point or v.dtype.is_complex:
                floating = True
            if is_structure_only(v):
                structure = True
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, float):
            pyfloat = True
    return floating, structure, pyfloat


def _flat_tensors(value: Any, out: list[torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        out.append(value)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _flat_tensors(v, out)
    return out


def op_outputs(
    func: torch._ops.OpOverload, args: tuple[Any, ...], kwargs: Mapping[str, Any], result: Any
) -> list[torch.Tensor]:
    """The tensors an op produced: its returned tensors, or (for ops returning nothing) the
    arguments it wrote to."""
    outs = _flat_tensors(result, [])
    if outs or not func._schema.is_mutable:
        return outs
    for i, a in enumerate(func._schema.arguments):
        if a.alias_info is not None and a.alias_info.is_write:
            value = args[i] if i < len(args) else kwargs.get(a.name)
            _flat_tensors(value, outs)
    return outs


class ReproducibleMode(TorchDispatchMode):
    """The dispatch mode behind :func:`reproducible`; see the module docstring."""

    #: Whether ops run on repops kernels (False in modes that run vendor kernels).
    uses_repops_kernels: ClassVar[bool] = True

    def __init__(
        self, strict: bool = True, tracer: Tracer | None = None, seed: Any = None
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # torch's own, unannotated
        if not isinstance(strict, bool):
            raise ValueError(f"strict must be a bool, got {strict!r}")
        if tracer is not None and not isinstance(tracer, Tracer):
            raise ValueError(f"tracer must be a repops.Tracer or None, got {type(tracer).__name__}")
        if seed is not None and type(seed).__name__ != "PhiloxStream" and (
            isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64
        ):
            raise ValueError(
                "seed must be an int in [0, 2**64), a repops.rng.PhiloxStream or None, "
                f"got {seed!r}"
            )
        self.strict = strict
        self.tracer = tracer
        self.seed = seed
        #: False once any non-reproducible vendor kernel ran (only possible with strict=False).
        self.reproducible = True
        self.nonreproducible_ops: list[str] = []
        self._rng: Any = None
        self._active = False
        self._state_lock = threading.Lock()
        #: Plain-case shortcuts by overload, tried before routing (see registry); none while
        #: tracing (every op must be recorded) or in modes that run vendor kernels.
        self._shortcuts: PlainCases = {}

    @property
    def may_fuse(self) -> bool:
        """Whether code running in this mode may replace a sequence of ops by one kernel of
        the same bits: only when the ops run on repops kernels (not vendor ones) and no
        tracer has to record each op (the optimizers' fused updates ask this)."""
        return self.uses_repops_kernels and self.tracer is None

    # -- entering and leaving ----------------------------------------------------------------
    def __enter__(self) -> ReproducibleMode:
        with self._state_lock:
            if self._active:
                raise NestedModeError("this repops.reproducible() block is already active")
            for mode in _get_current_dispatch_mode_stack():
                if isinstance(mode, ReproducibleMode):
                    raise NestedModeError(
                        "repops.reproducible() is already active in this thread; nest nothing"
                    )
            kernel_table()  # import the kernel modules now, outside any op
            if _eval_frame_callback is not None:
                dynamo_guard.skip_frames_of(ReproducibleMode.__torch_dispatch__.__code__)
            use = self.uses_repops_kernels and self.tracer is None
            self._shortcuts = plain_cases() if use else {}
            if self.tracer is not None:
                self.tracer._attach(self)
            self._active = True
        try:
            super().__enter__()  # type: ignore[no-untyped-call]
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            super().__exit__(exc_type, exc, tb)  # type: ignore[no-untyped-call]
        finally:
            self._release()

    def _release(self) -> None:
        with self._state_lock:
            if self.tracer is not None:
                self.tracer._detach(self)
            self._shortcuts = {}
            self._active = False

    # -- the dispatch hook ---------------------------------------------------------------------
    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        """torch's question at class creation: wrap the hook in ``torch._dynamo.disable``?
        Only where repops' cheaper guard cannot be installed (see dynamo_guard)."""
        return _eval_frame_callback is None

    def __torch_dispatch__(
        self,
        func: torch._ops.OpOverload,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> Any:
        if _eval_frame_callback is not None and _eval_frame_callback() is not None:
            return dynamo_guard.outside_dynamo(type(self)._hook)(
                self, func, types, args, kwargs)
        return self._hook(func, types, args, kwargs)

    def _hook(
        self, func: torch._ops.OpOverload, types: Any, args: tuple[Any, ...],
        kwargs: Mapping[str, Any] | None,
    ) -> Any:
        # The plain case of a kernel first: its shortcut checks its arguments' exact types
        # itself, and this is the path most of a training step's time is spent in.
        shortcut = self._shortcuts.get(func)
        if shortcut is not None and not kwargs:
            result = shortcut(args)
            if result is not None:
                return result
        for t in types:
            if t is not torch.Tensor and t.__name__ not in _ALLOWED_SUBCLASS_NAMES:
                raise UnsupportedInputError(
                    f"{func}: repops.reproducible() does not handle tensor subclass {t.__name__}"
                )
        return self.dispatch(func, tuple(args), dict(kwargs) if kwargs else {})

    def dispatch(
        self, func: torch._ops.OpOverload, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Route one op (also used for the per-tensor ops of a foreach split)."""
        route = route_for(func)
        if route.kind is RouteKind.PASSTHROUGH:
            return func(*args, **kwargs)
        if route.kind is RouteKind.FOREACH:
            return run_foreach(self.dispatch, func, args, kwargs)
        tracer = self.tracer
        if tracer is None:
            if route.kind is RouteKind.RANDOM:
                return self._random(func, args, kwargs)[0]
            return self._execute(route, func, args, kwargs)
        tree = tracer.begin(func, args, kwargs)
        if route.kind is RouteKind.RANDOM:
            result, rng_state = self._random(func, args, kwargs)
            if rng_state is not None:
                tree["rng"] = rng_state
        else:
            result = self._execute(route, func, args, kwargs)
        scalar = result if isinstance(result, bool | int | float | complex) else None
        tracer.record(route.name, tree, op_outputs(func, args, kwargs, result), scalar)
        return result

    def _execute(
        self, route: Route, func: torch._ops.OpOverload, args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if route.plain is not None and not kwargs and func not in self._shortcuts:
            result = route.plain(args)  # the hook did not try it (a traced op)
            if result is not None:
                return result
        kind = route.kind
        if kind is RouteKind.EXACT and route.predicate is None:
            if route.zero_fill:
                result = func(*args, **kwargs)
                return result if is_structure_only(result) else result.zero_()
            return func(*args, **kwargs)
        floating, structure_only, pyfloat = _scan(args, kwargs)
        if kind is RouteKind.EXACT:
            if route.predicate(args, kwargs):  # type: ignore[misc]
                return func(*args, **kwargs)
            reason = "arguments outside the exact case (see repops/spec/dispatch.md)"
            return self._unlisted(route, func, args, kwargs, floating, pyfloat, reason)
        if kind is RouteKind.UNLISTED:
            return self._unlisted(route, func, args, kwargs, floating, pyfloat, "")
        # a repops kernel
        if structure_only:
            return func(*args, **kwargs)  # shapes only: the vendor meta kernel
        if not floating and not pyfloat:
            result = func(*args, **kwargs)  # integer/bool data: exact in any order
            if not any(exact_ops.is_floating(t) for t in op_outputs(func, args, kwargs, result)):
                return result
        if route.exact_case is not None and route.exact_case(args, kwargs):
            return func(*args, **kwargs)
        kernel = route.kernel
        assert kernel is not None  # guaranteed by route_for
        if kind is RouteKind.KERNEL:
            return match_vendor_layout(func, args, kwargs, kernel(*args, **kwargs))
        if kind is RouteKind.KERNEL_INPLACE:
            if route.in_place is not None:  # straight into args[0], when it can
                written = route.in_place(args, kwargs)
                if written is not None:
                    return written
            value = kernel(*args, **kwargs)
            args[0].copy_(value)
            return args[0]
        return self._kernel_out(route, func, args, kwargs)

    def _kernel_out(
        self, route: Route, func: torch._ops.OpOverload, args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        outs = [kwargs[n] for n in route.out_names]
        functional_kwargs = {k: v for k, v in kwargs.items() if k not in route.out_names}
        value = route.kernel(*args, **functional_kwargs)  # type: ignore[misc]
        values = list(value) if isinstance(value, (tuple, list)) else [value]
        for dst, src in zip(outs, values, strict=True):
            if dst.shape != src.shape:
                dst.resize_(src.shape)
            dst.copy_(src)
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _unlisted(  # noqa: PLR0917 - internal, called from two places
        self, route: Route, func: torch._ops.OpOverload, args: tuple[Any, ...],
        kwargs: dict[str, Any], floating: bool, pyfloat: bool, reason: str,
    ) -> Any:
        result = None
        if route.integer_rule and not floating and not pyfloat:
            result = func(*args, **kwargs)
            outs = op_outputs(func, args, kwargs, result)
            if not any(exact_ops.is_floating(t) for t in outs):
                return result
            reason = reason or "it produces floating-point values"
        if self.strict:
            raise UnsupportedOpError(route.name, reason)
        self._note_nonreproducible(route.name)
        return func(*args, **kwargs) if result is None else result

    def _note_nonreproducible(self, name: str) -> None:
        self.reproducible = False
        if name not in self.nonreproducible_ops:
            self.nonreproducible_ops.append(name)
            warnings.warn(
                f"repops.reproducible(strict=False) ran the vendor kernel of {name}: "
                "this run is not reproducible",
                NonReproducibleWarning,
                stacklevel=3,
            )
        if self.tracer is not None:
            self.tracer.mark_nonreproducible(name)

    @property
    def rng(self) -> Any:
        """The PhiloxStream random ops draw from (None without a seed)."""
        from repops.dispatch.random_ops import mode_stream

        return mode_stream(self)

    # -- random ops -------------------------------------------------------------------------------
    def _random(
        self, func: torch._ops.OpOverload, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Any, dict[str, Any] | None]:
        from repops.dispatch import random_ops

        _, structure_only, _ = _scan(args, kwargs)
        device = kwargs.get("device")
        if device is not None and torch.device(device).type == "meta":
            structure_only = True
        return random_ops.run_random(self, func, args, kwargs, structure_only=structure_only)


def reproducible(
    strict: bool = True, tracer: Tracer | None = None, seed: Any = None
) -> ReproducibleMode:
    """``with repops.reproducible(strict=True, tracer=None, seed=None): ...``

    Every aten op inside the block (forward, backward run inside it, optimizer) runs on a
    repops kernel, an IEEE-exact vendor kernel, or raises UnsupportedOpError (strict). ``seed``
    (an int) seeds the Philox stream random ops draw from (stream 0, offset 0); pass a
    ``repops.rng.PhiloxStream`` instead to continue one stream across blocks (e.g. one block
    per training step: keep the stream, checkpoint its ``state_dict()``). Strict mode refuses
    random ops without a seed.
    ``tracer`` records every op (see :class:`repops.Tracer`).
    """
    return ReproducibleMode(strict=strict, tracer=tracer, seed=seed)
