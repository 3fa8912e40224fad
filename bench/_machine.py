"""What machine a bench line was measured on: CPU model, instruction sets, threads, versions.

Every bench script adds ``machine_info()`` to its JSON line, because a ratio measured on one CPU
says little about another (repops' kernels are compiled for the host's instruction set unless
``NUMBA_CPU_NAME`` narrows it; torch picks its vector path by ``ATEN_CPU_CAPABILITY``).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

_ISA_FLAGS = ("avx512f", "avx512bw", "avx512vl", "avx2", "fma", "avx", "sse4_2", "asimd", "sve")


def _cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in info:
            info[key.strip()] = value.strip()
    return info


def _family_model(info: dict[str, str]) -> str:
    """x86 family/model/stepping (or ARM implementer/part): the model name alone can be as
    vague as "AMD EPYC", which covers Zen 1 to Zen 5 (family 23: Zen 1-2, 25: Zen 3-4,
    26: Zen 5), with different vector units."""
    if "cpu family" in info:
        return f"family {info['cpu family']} model {info.get('model', '?')} " \
               f"stepping {info.get('stepping', '?')}"
    if "CPU implementer" in info:
        return f"implementer {info['CPU implementer']} part {info.get('CPU part', '?')}"
    return ""


def machine_info() -> dict[str, Any]:
    """CPU model, the ISA extensions it has (of those that matter here), core and thread
    counts, and what the kernels were compiled for (``NUMBA_CPU_NAME``, or the host)."""
    import torch

    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    return {
        "cpu_model": info.get("model name") or platform.processor() or platform.machine(),
        "cpu_family_model": _family_model(info),
        "cpu_isa": [f for f in _ISA_FLAGS if f in flags],
        "cpu_count": os.cpu_count(),
        "numba_cpu_name": os.environ.get("NUMBA_CPU_NAME", "host"),
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
