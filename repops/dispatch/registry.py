"""The table of repops kernels the dispatch mode routes to, merged lazily from the kernel modules.

Each kernel module exports ``ATEN_KERNELS: dict[str, Callable]`` mapping an aten overload name
(``"aten.mm.default"``) to a function taking exactly that overload's ``(*args, **kwargs)`` and
returning its result. A module may also export ``PLAIN_CASES``: for some of those names, a
shortcut taking the positional arguments only, which computes the result of the common case
(plain CPU tensors, default scalars) without the mode's generic checks and returns None for
anything else (the mode then takes the general path). A shortcut must give the bits and layout
of the general path; it exists because the mode's per-op cost is as large as a 128^3 product.
``IN_PLACE_CASES`` names functional overloads too: each takes ``(args, kwargs)`` of the
in-place twin (``addcdiv_`` for ``aten.addcdiv.default``), does the op into ``args[0]`` and
returns it -- written there directly when it can (same dtype, shape and layout, no overlap
other than element for element), else computed anew and copied in -- or returns None before
doing anything, and the mode takes its general path (compute, then copy in). The bits are
always those of that general path.
Importing a kernel module may be costly (numba, big tables), so nothing is
imported until the mode is first used; the merged table is then cached for the process.

A name that two modules both claim, or a name that is not an aten overload, is a programming
error of the kernel modules and raises :class:`KernelRegistryError` naming the culprit, rather
than one silently winning.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

import torch

from repops.errors import RepopsError

#: Every module that contributes kernels, in the order they are merged.
KERNEL_MODULES: tuple[str, ...] = (
    "repops.kernels.matmul",
    "repops.kernels.conv",
    "repops.kernels.attention",
    "repops.kernels.reductions",
    "repops.kernels.softmax",
    "repops.kernels.safe_softmax",
    "repops.kernels.norms",
    "repops.kernels.losses",
    "repops.kernels.scan",
    "repops.kernels.extrema",
    "repops.kernels.embedding",
    "repops.kernels.elementwise",
    "repops.kernels.compound_ops",
)


#: repops' own IEEE operations whose vendor kernel is not exact (sqrt); used only for overloads
#: no kernel module provides.
FALLBACK_MODULES: tuple[str, ...] = ("repops.dispatch.ieee_ops",)


class KernelRegistryError(RepopsError):
    """A kernel module's ATEN_KERNELS table is malformed or conflicts with another module's."""


_lock = threading.Lock()
#: Plain-case shortcuts by overload (see the module docstring).
PlainCases = dict[torch._ops.OpOverload, Callable[[tuple[Any, ...]], Any]]

_table: dict[torch._ops.OpOverload, Callable[..., Any]] | None = None
#: In-place shortcuts by functional overload (see the module docstring).
InPlaceCases = dict[torch._ops.OpOverload, Callable[[tuple[Any, ...], dict[str, Any]], Any]]

_plain: PlainCases = {}  # filled with _table
_in_place: InPlaceCases = {}  # filled with _table
_sources: dict[str, str] = {}


def resolve_overload(name: str) -> torch._ops.OpOverload:
    """The OpOverload object for ``"aten.mm.default"``; ValueError if there is none."""
    parts = name.split(".")
    if len(parts) != 3:
        raise ValueError(f"aten overload names look like 'aten.mm.default', got {name!r}")
    namespace, packet, overload = parts
    try:
        found: torch._ops.OpOverload = getattr(getattr(getattr(torch.ops, namespace), packet),
                                               overload)
        return found
    except (AttributeError, RuntimeError):
        raise ValueError(f"{name!r} is not a registered torch operator overload") from None


def _shortcuts(
    module_name: str, module: Any, entries: dict[str, Any], attribute: str
) -> dict[torch._ops.OpOverload, Callable[..., Any]]:
    """A module's PLAIN_CASES or IN_PLACE_CASES by overload: each a callable shortcut of one of
    its own kernels."""
    shortcuts = getattr(module, attribute, {})
    if not isinstance(shortcuts, dict):
        raise KernelRegistryError(f"{module_name}.{attribute} is not a dict")
    found: dict[torch._ops.OpOverload, Callable[..., Any]] = {}
    for name, fn in shortcuts.items():
        if name not in entries or not callable(fn):
            raise KernelRegistryError(
                f"{module_name}.{attribute}[{name!r}] must be a callable shortcut of one of "
                "the module's own ATEN_KERNELS"
            )
        found[resolve_overload(name)] = fn
    return found


def _merge(
    modules: tuple[str, ...], keep_sources: bool = False
) -> tuple[dict[torch._ops.OpOverload, Callable[..., Any]], PlainCases, InPlaceCases]:
    """The kernels of ``modules`` and their plain-case and in-place shortcuts, by overload."""
    table: dict[torch._ops.OpOverload, Callable[..., Any]] = {}
    plain: PlainCases = {}
    in_place: InPlaceCases = {}
    sources: dict[str, str] = {}
    for module_name in modules:
        module = importlib.import_module(module_name)
        entries = getattr(module, "ATEN_KERNELS", None)
        if not isinstance(entries, dict):
            raise KernelRegistryError(f"{module_name} has no ATEN_KERNELS dict")
        for name, fn in entries.items():
            if not callable(fn):
                raise KernelRegistryError(f"{module_name}.ATEN_KERNELS[{name!r}] is not callable")
            if name in sources:
                raise KernelRegistryError(
                    f"{name} is claimed by both {sources[name]} and {module_name}"
                )
            try:
                overload = resolve_overload(name)
            except ValueError as exc:
                raise KernelRegistryError(f"{module_name}.ATEN_KERNELS: {exc}") from None
            sources[name] = module_name
            table[overload] = fn
        plain.update(_shortcuts(module_name, module, entries, "PLAIN_CASES"))
        in_place.update(_shortcuts(module_name, module, entries, "IN_PLACE_CASES"))
    if not keep_sources:
        _sources.clear()
    for name, module_name in sources.items():
        _sources.setdefault(name, module_name)
    return table, plain, in_place


def kernel_table() -> dict[torch._ops.OpOverload, Callable[..., Any]]:
    """The merged kernel table (imports the kernel modules on first call)."""
    global _table  # noqa: PLW0603 - the one process-wide lazily built table
    table = _table
    if table is None:
        with _lock:
            if _table is None:
                merged, plain, in_place = _merge(KERNEL_MODULES)
                for op, fn in _merge(FALLBACK_MODULES, keep_sources=True)[0].items():
                    merged.setdefault(op, fn)
                _plain.update(plain)
                _in_place.update(in_place)
                _table = merged
            table = _table
    return table


def plain_case_for(func: torch._ops.OpOverload) -> Callable[[tuple[Any, ...]], Any] | None:
    """The shortcut of ``func``'s kernel for its common case (see the module docstring)."""
    kernel_table()
    return _plain.get(func)


def in_place_case_for(
    func: torch._ops.OpOverload,
) -> Callable[[tuple[Any, ...], dict[str, Any]], Any] | None:
    """The shortcut that writes the result of the functional overload ``func`` straight into
    its first argument, for the in-place twin (see the module docstring)."""
    kernel_table()
    return _in_place.get(func)


def plain_cases() -> PlainCases:
    """Every plain-case shortcut by overload (the kernel table's; callers must not modify it)."""
    kernel_table()
    return _plain


def kernel_for(func: torch._ops.OpOverload) -> Callable[..., Any] | None:
    """The repops kernel registered for ``func``, or None."""
    return kernel_table().get(func)


def kernel_source(name: str) -> str | None:
    """Which kernel module provides the overload ``name`` (after the table is loaded)."""
    kernel_table()
    return _sources.get(name)


def covered_ops() -> list[str]:
    """Names of all overloads with a repops kernel, sorted."""
    return sorted(str(op) for op in kernel_table())
