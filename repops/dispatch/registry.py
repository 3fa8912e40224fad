"""The table of repops kernels the dispatch mode routes to, merged lazily from the kernel modules.

Each kernel module exports ``ATEN_KERNELS: dict[str, Callable]`` mapping an aten overload name
(``"aten.mm.default"``) to a function taking exactly that overload's ``(*args, **kwargs)`` and
returning its result. Importing a kernel module may be costly (numba, big tables), so nothing is
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
)


#: repops' own IEEE operations whose vendor kernel is not exact (sqrt); used only for overloads
#: no kernel module provides.
FALLBACK_MODULES: tuple[str, ...] = ("repops.dispatch.ieee_ops",)


class KernelRegistryError(RepopsError):
    """A kernel module's ATEN_KERNELS table is malformed or conflicts with another module's."""


_lock = threading.Lock()
_table: dict[torch._ops.OpOverload, Callable[..., Any]] | None = None
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


def _merge(
    modules: tuple[str, ...], keep_sources: bool = False
) -> dict[torch._ops.OpOverload, Callable[..., Any]]:
    table: dict[torch._ops.OpOverload, Callable[..., Any]] = {}
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
    if not keep_sources:
        _sources.clear()
    for name, module_name in sources.items():
        _sources.setdefault(name, module_name)
    return table


def kernel_table() -> dict[torch._ops.OpOverload, Callable[..., Any]]:
    """The merged kernel table (imports the kernel modules on first call)."""
    global _table  # noqa: PLW0603 - the one process-wide lazily built table
    table = _table
    if table is None:
        with _lock:
            if _table is None:
                merged = _merge(KERNEL_MODULES)
                for op, fn in _merge(FALLBACK_MODULES, keep_sources=True).items():
                    merged.setdefault(op, fn)
                _table = merged
            table = _table
    return table


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
