"""The kernel registry: every kernel module is listed, merges cleanly, and conflicts raise."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

from repops.dispatch import registry
from repops.dispatch.registry import KernelRegistryError, _merge, resolve_overload

KERNELS_DIR = Path(registry.__file__).resolve().parents[1] / "kernels"


def test_every_kernel_module_on_disk_is_listed() -> None:
    on_disk = {
        f"repops.kernels.{p.stem}"
        for p in KERNELS_DIR.glob("*.py")
        if "ATEN_KERNELS" in p.read_text()
    }
    assert on_disk <= set(registry.KERNEL_MODULES)


def test_the_table_merges_and_names_real_overloads() -> None:
    table = registry.kernel_table()
    assert torch.ops.aten.mm.default in table
    assert registry.kernel_source("aten.mm.default") == "repops.kernels.matmul"
    assert registry.kernel_source("aten.sqrt.default") is not None
    assert len(registry.covered_ops()) == len(table)


def _fake_module(name: str, entries: dict) -> str:
    module = types.ModuleType(name)
    module.ATEN_KERNELS = entries  # type: ignore[attr-defined]
    sys.modules[name] = module
    return name


def test_a_name_claimed_twice_is_an_error() -> None:
    a = _fake_module("repops_test_kernels_a", {"aten.mm.default": torch.mm})
    b = _fake_module("repops_test_kernels_b", {"aten.mm.default": torch.mm})
    try:
        with pytest.raises(KernelRegistryError, match="claimed by both"):
            _merge((a, b), keep_sources=True)
    finally:
        del sys.modules[a], sys.modules[b]


def test_bad_entries_are_errors() -> None:
    bad_name = _fake_module("repops_test_kernels_c", {"aten.no_such.default": torch.mm})
    not_callable = _fake_module("repops_test_kernels_d", {"aten.mm.default": 3})
    try:
        with pytest.raises(KernelRegistryError, match="not a registered"):
            _merge((bad_name,), keep_sources=True)
        with pytest.raises(KernelRegistryError, match="not callable"):
            _merge((not_callable,), keep_sources=True)
    finally:
        del sys.modules[bad_name], sys.modules[not_callable]
    with pytest.raises(ValueError, match="look like"):
        resolve_overload("mm")


def test_plain_cases_are_shortcuts_of_the_modules_own_kernels() -> None:
    registry.kernel_table()
    assert registry.plain_case_for(torch.ops.aten.mm.default) is not None
    assert registry.plain_case_for(torch.ops.aten.addmm.default) is None  # none given
    stray = _fake_module("repops_test_kernels_e", {"aten.mm.default": torch.mm})
    sys.modules[stray].PLAIN_CASES = {"aten.bmm.default": lambda args: None}  # type: ignore[attr-defined]
    not_a_dict = _fake_module("repops_test_kernels_f", {"aten.mm.default": torch.mm})
    sys.modules[not_a_dict].PLAIN_CASES = [torch.mm]  # type: ignore[attr-defined]
    try:
        with pytest.raises(KernelRegistryError, match="shortcut of one of the module's own"):
            _merge((stray,), keep_sources=True)
        with pytest.raises(KernelRegistryError, match="PLAIN_CASES is not a dict"):
            _merge((not_a_dict,), keep_sources=True)
    finally:
        del sys.modules[stray], sys.modules[not_a_dict]
