"""Which vector unit numba compiles repops' kernels for: vector width, register count, ISA name.

Why: the matrix-product micro-kernel (:mod:`repops.kernels._gemm_tile`) sizes its register tile
to the target — 32 AVX-512 registers hold a 12 x 32 binary32 tile, 16 AVX2 registers a 6 x 16
one — and the bench reports which ISA the kernels were built for. The target is not the host
CPU's name: ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` narrow it (``generic`` is x86-64 SSE2
without an FMA unit), and named CPUs imply features LLVM knows and we do not want to tabulate.
So this module asks LLVM itself: it compiles one ``<16 x float>`` fma for numba's own target
(triple, CPU name and feature string of numba's CPU codegen) and reads the registers and
instructions the assembly uses. Nothing of this changes a bit of any result — it only picks how
many independent output elements one instruction handles.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import llvmlite.binding as llvm
from llvmlite import ir


@dataclass(frozen=True)
class VectorTarget:
    """What the kernels are compiled for: ``lanes32`` binary32 lanes per vector register,
    ``registers`` vector registers, ``isa`` a short name for reports, ``hardware_fma`` whether
    fma is one instruction (else a correctly rounded software routine: same bits, slower)."""

    isa: str
    lanes32: int
    registers: int
    hardware_fma: bool

    def lanes(self, bits: int) -> int:
        """Lanes of a vector register for a float of ``bits`` bits (32 or 64)."""
        return max(1, self.lanes32 * 32 // bits)


def _probe_module(triple: str) -> str:
    mod = ir.Module(name="repops_isa_probe")
    mod.triple = triple
    vty = ir.VectorType(ir.FloatType(), 16)
    fnty = ir.FunctionType(vty, [vty, vty, vty])
    fma = ir.Function(mod, fnty, name="llvm.fma.v16f32")
    fn = ir.Function(mod, fnty, name="probe")
    builder = ir.IRBuilder(fn.append_basic_block())
    builder.ret(builder.call(fma, fn.args))
    return str(mod)


@functools.cache
def probe(triple: str, cpu: str, features: str) -> VectorTarget:
    """The vector target LLVM generates code for, given numba's codegen triple/CPU/features."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    tm = llvm.Target.from_triple(triple).create_target_machine(cpu=cpu, features=features)
    asm = tm.emit_assembly(llvm.parse_assembly(_probe_module(triple)))
    if triple.startswith(("aarch64", "arm64")):
        return VectorTarget("neon", 4, 32, bool(re.search(r"\bfmla\b", asm)))
    fused = bool(re.search(r"\bvfmadd\w*", asm))
    if "zmm" in asm:
        return VectorTarget("avx512", 16, 32, fused)
    if "ymm" in asm:
        return VectorTarget("avx2+fma" if fused else "avx", 8, 16, fused)
    return VectorTarget("sse2+fma" if fused else "sse2", 4, 16, fused)


def codegen_target(codegen: object) -> VectorTarget:
    """The vector target of a numba codegen (the one compiling the current kernel)."""
    triple, cpu, features = codegen.magic_tuple()  # type: ignore[attr-defined]
    return probe(triple, cpu, features)


@functools.cache
def numba_target() -> VectorTarget:
    """The vector target of numba's CPU codegen in this process (initialises numba's CPU
    target; call it when kernels are about to run, not at import). numba fixes its target
    when it starts, so one answer per process."""
    from numba.core.registry import cpu_target

    return codegen_target(cpu_target.target_context.codegen())
