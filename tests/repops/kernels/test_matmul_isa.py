"""Same bits on every vector ISA: numba compiled for the host, for AVX2 and for a generic CPU.

Why: the blocked product sizes its register tile to the target (12 x 32 binary32 on AVX-512,
6 x 16 on AVX2, 6 x 8 on SSE2) and ``llvm.fma`` becomes a correctly rounded software routine
where there is no FMA instruction (``NUMBA_CPU_NAME=generic``). Neither may change a bit.
Subprocesses compile every kernel for each target (their own numba cache directories) and print
the outputs' digests; they must equal each other. The products cover every path of the core:
serial and parallel, wide and narrow tiles, A and B read in place or packed (row-major,
transposed, strided), ragged edges, K over several k-blocks, float64, batches.
Also checks that each build really uses the vector unit it was compiled for.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import llvmlite.binding
import numpy as np
import pytest

RunCompiled = Callable[..., str]  # conftest fixture type

SCRIPT = r"""
import hashlib, re
import torch
from repops.kernels.matmul import mm, addmm, bmm
from repops.kernels.conv import convolution
from repops.kernels.attention import flash_attention_for_cpu
from repops.kernels import matmul_core as core
from repops.kernels._target import numba_target

def rand(*shape, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(dtype)

strided = rand(80, 270, seed=20)[::2, ::3]  # neither dim contiguous: A is packed
def products():
    return [
        mm(rand(13, 300, seed=1), rand(300, 70, seed=2)),  # ragged tiles
        mm(rand(130, 300, seed=14), rand(300, 70, seed=15)),
        mm(rand(400, 300, seed=16), rand(300, 13, seed=17)),  # narrow tiles
        mm(rand(300, 50, seed=18).t(), rand(300, 40, seed=19)),  # transposed A (read in place)
        mm(rand(300, 100, seed=32).t(), rand(300, 40, seed=33)),  # long k stride: packed on
                                                                  # tiles of under 32 bytes
        mm(rand(60, 80, seed=21), rand(70, 80, seed=22).t()),  # transposed B (packed)
        mm(strided, rand(90, 45, seed=23)),  # strided A (packed)
        mm(rand(20, 64, seed=24), rand(64, 100, seed=25)),  # few rows: B read in place
        mm(rand(30, 1100, seed=26), rand(1100, 40, seed=27)),  # several k-blocks
        mm(rand(30, 40, seed=28, dtype=torch.float64), rand(40, 50, seed=29, dtype=torch.float64)),
        addmm(rand(70, seed=3), rand(13, 30, seed=4), rand(30, 70, seed=5), beta=0.5, alpha=2.0),
        bmm(rand(3, 5, 9, seed=6), rand(3, 9, 4, seed=7)),
        bmm(rand(8, 40, 24, seed=30), rand(8, 24, 50, seed=31)),
        convolution(rand(2, 4, 7, 6, seed=8), rand(6, 2, 3, 2, seed=9), rand(6, seed=10),
                    [2, 1], [1, 2], [1, 2], False, [0, 0], 2),
        flash_attention_for_cpu(rand(1, 2, 5, 8, seed=11), rand(1, 2, 6, 8, seed=12),
                                rand(1, 2, 6, 8, seed=13), 0.0, True)[0],
    ]
for threshold in (1 << 62, 0):  # every product on the serial path, then on the parallel one
    core.SERIAL_BELOW = threshold
    for t in products():
        print(hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest())
asm = ""
for fn in (core._GEMM.serial, core._GEMM.parallel):
    for sig in fn.signatures:
        asm += fn.inspect_asm(sig)
print("ISA", numba_target().isa)
print("VFMA", len(re.findall(r"vfmadd\d+ps", asm)))
print("ZMM", len(re.findall(r"vfmadd\d+ps[^\n]*zmm", asm)))
"""

N_OUTPUTS = 15  # per path


def _digests(out: str) -> list[str]:
    return [line for line in out.split() if re.fullmatch(r"[0-9a-f]{64}", line)]


def _field(out: str, name: str) -> str:
    found = re.findall(rf"^{name} (\S+)$", out, flags=re.MULTILINE)
    assert len(found) == 1, out
    return found[0]


@pytest.mark.slow
def test_every_isa_build_gives_the_same_bits(tmp_path: Path, run_compiled: RunCompiled) -> None:
    host_features = llvmlite.binding.get_host_cpu_features().flatten()
    builds = {"host": {}, "generic": {"NUMBA_CPU_NAME": "generic"}}
    if "+avx512f" in host_features and "+avx2" in host_features and "+fma" in host_features:
        # The AVX2 tile on an AVX-512 host: a CPU name with its own features only.
        builds["avx2"] = {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": ""}
    # Fresh cache directories: every build compiles now, so its assembly can be inspected.
    # Two at a time: each is one compiling process, and the machine has at least two cores.
    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(run_compiled, SCRIPT, tmp_path / name, **env)
                   for name, env in builds.items()}
        runs = {name: f.result() for name, f in futures.items()}
    digests = {name: _digests(out) for name, out in runs.items()}
    assert len(digests["host"]) == 2 * N_OUTPUTS, runs["host"]
    assert digests["host"][:N_OUTPUTS] == digests["host"][N_OUTPUTS:]  # serial == parallel
    for name in builds:
        assert digests[name] == digests["host"], name
    # Each build multiplies-adds on the vector unit it was compiled for.
    assert _field(runs["generic"], "ISA") == "sse2"
    assert int(_field(runs["generic"], "VFMA")) == 0
    if "+fma" in host_features:
        assert int(_field(runs["host"], "VFMA")) > 0
    if "avx2" in runs:
        assert _field(runs["avx2"], "ISA") == "avx2+fma"
        assert int(_field(runs["avx2"], "VFMA")) > 0
        assert int(_field(runs["avx2"], "ZMM")) == 0
        assert _field(runs["host"], "ISA") == "avx512"
        assert int(_field(runs["host"], "ZMM")) > 0


def test_output_parsers_reject_noise() -> None:
    # The comparisons above would be vacuous if the parsers accepted nothing or everything.
    good = hashlib.sha256(b"x").hexdigest()
    assert _digests(f"warning: something\n{good}\n{good[:-1]}\n") == [good]
    assert _field("noise\nVFMA 12\n", "VFMA") == "12"
    with pytest.raises(AssertionError):
        _field("VFMA 3\nVFMA 4\n", "VFMA")


def test_host_build_computes_exact_small_products() -> None:
    from repops.kernels import matmul_core as core

    a = np.full((1, 7, 300), 0.5, dtype=np.float32)
    b = np.full((1, 300, 70), 3.0, dtype=np.float32)
    np.testing.assert_array_equal(core.gemm(a, b), np.full((1, 7, 70), 450, dtype=np.float32))
