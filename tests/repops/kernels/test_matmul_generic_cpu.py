"""Same bits on a CPU without FMA or AVX: numba compiled for ``NUMBA_CPU_NAME=generic``.

Why: the blocked product vectorises across output elements with whatever vector width the
target has, and ``llvm.fma`` becomes a correctly rounded software routine where there is no
FMA instruction. Neither may change a bit. A subprocess compiles every kernel for the generic
target (its own numba cache directory) and prints the outputs' bytes; they must equal the
host-compiled results of this process. Also checks the host build really uses vector FMA.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import llvmlite.binding
import numpy as np
import pytest

RunCompiled = Callable[..., str]  # conftest fixture type

SCRIPT = r"""
import hashlib, sys
import torch
from repops.kernels.matmul import mm, addmm, bmm
from repops.kernels.conv import convolution
from repops.kernels.attention import flash_attention_for_cpu

def rand(*shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)

outs = [
    mm(rand(13, 300, seed=1), rand(300, 70, seed=2)),  # serial path
    mm(rand(130, 300, seed=14), rand(300, 70, seed=15)),  # parallel path
    mm(rand(400, 300, seed=16), rand(300, 20, seed=17)),  # parallel path, narrow tiles
    addmm(rand(70, seed=3), rand(13, 30, seed=4), rand(30, 70, seed=5), beta=0.5, alpha=2.0),
    bmm(rand(3, 5, 9, seed=6), rand(3, 9, 4, seed=7)),
    convolution(rand(2, 4, 7, 6, seed=8), rand(6, 2, 3, 2, seed=9), rand(6, seed=10),
                [2, 1], [1, 2], [1, 2], False, [0, 0], 2),
    flash_attention_for_cpu(rand(1, 2, 5, 8, seed=11), rand(1, 2, 6, 8, seed=12),
                            rand(1, 2, 6, 8, seed=13), 0.0, True)[0],
]
for t in outs:
    print(hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest())
import re
import numpy as np
from repops.kernels import matmul_core as core
asm = ""
for fn in (core._gemm_serial, core._items_parallel):
    sig = next(s for s in fn.signatures if str(s[0].dtype) == "float32")
    asm += fn.inspect_asm(sig)
print("VFMA", len(re.findall(r"vfmadd\d+ps", asm)))
"""


def _digests(out: str) -> list[str]:
    return [line for line in out.split() if re.fullmatch(r"[0-9a-f]{64}", line)]


def _vfma(out: str) -> int:
    found = re.findall(r"^VFMA (\d+)$", out, flags=re.MULTILINE)
    assert len(found) == 1, out
    return int(found[0])


@pytest.mark.slow
def test_generic_cpu_build_gives_the_same_bits(tmp_path: Path, run_compiled: RunCompiled) -> None:
    # Fresh cache directories: both builds compile now, so their assembly can be inspected.
    runs = {
        "host": run_compiled(SCRIPT, tmp_path / "host"),
        "generic": run_compiled(SCRIPT, tmp_path / "generic", NUMBA_CPU_NAME="generic"),
    }
    host_d, generic_d = _digests(runs["host"]), _digests(runs["generic"])
    assert len(host_d) == 7, runs["host"]
    assert host_d == generic_d
    # The host build multiplies-adds in vector registers; the generic one has no FMA unit.
    if "+fma" in llvmlite.binding.get_host_cpu_features().flatten():
        assert _vfma(runs["host"]) > 0
    assert _vfma(runs["generic"]) == 0


def test_output_parsers_reject_noise() -> None:
    # The comparisons above would be vacuous if the parsers accepted nothing or everything.
    good = hashlib.sha256(b"x").hexdigest()
    assert _digests(f"warning: something\n{good}\n{good[:-1]}\n") == [good]
    assert _vfma("noise\nVFMA 12\n") == 12
    with pytest.raises(AssertionError):
        _vfma("VFMA 3\nVFMA 4\n")


def test_host_build_computes_exact_small_products() -> None:
    from repops.kernels import matmul_core as core

    a = np.full((1, 7, 300), 0.5, dtype=np.float32)
    b = np.full((1, 300, 70), 3.0, dtype=np.float32)
    np.testing.assert_array_equal(core.gemm(a, b), np.full((1, 7, 70), 450, dtype=np.float32))
