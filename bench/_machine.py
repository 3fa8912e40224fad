"""The CPU model and instruction-set extensions every bench line carries (Linux /proc/cpuinfo)."""

from __future__ import annotations

import os
import platform

_ISA = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "amx_tile")


def machine() -> dict[str, object]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name") and ":" in line:
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and ":" in line:
                    flags = set(line.split(":", 1)[1].split())
                if flags and model:
                    break
    except OSError:
        pass
    return {"cpu_model": model, "isa": [f for f in _ISA if f in flags], "cpus": os.cpu_count()}
