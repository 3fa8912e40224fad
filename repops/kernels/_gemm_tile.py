"""The register-tile micro-kernel of the matrix product, written in LLVM IR (SPEC C5 order).

Why IR and not a numba loop: the micro-kernel is where a GEMM reaches (or misses) the machine's
peak, and it only gets there when an ``MR x NR`` tile of accumulators stays in vector registers
for a whole run of k and every step is ``NR / W`` vector loads of B, ``MR`` broadcasts of A and
``MR * NR / W`` vector fmas (Goto & van de Geijn, "Anatomy of High-Performance Matrix
Multiplication", ACM TOMS 2008; Van Zee & van de Geijn, "BLIS", ACM TOMS 2015). numba's
auto-vectoriser reaches that shape for some tiles on some CPUs and not for others; emitting
the vector loop directly (explicit ``<W x float>`` phis and ``llvm.fma.v*`` calls) makes it the
same on every target, and LLVM still does register allocation and scheduling for the CPU.

The tile is sized from the target's vector unit (:mod:`repops.kernels._target`) at compile
time: 32 registers (AVX-512, NEON) hold 12 x 2 vectors (or 24 x 1 for narrow products), 16
registers (AVX2, SSE2) hold 6 x 2 (or 12 x 1). Whatever the tile, each accumulator lane is one
output element's C5 chain: it starts at +0.0 (or at the value parked in C by the previous
k-block, an exact store and load), and takes one correctly rounded fma per k, k increasing.
``llvm.fma`` is an fma instruction where the target has one and a correctly rounded software
routine where it has not (``NUMBA_CPU_NAME=generic``), so the bits never depend on the tile.
"""

from __future__ import annotations

from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from repops.kernels._target import VectorTarget, codegen_target

#: Tile kinds: a tile of 2 vectors per row (most products), or of 1 vector per row (products
#: with at most one vector of columns, where a wider tile would be mostly padding).
WIDE = 0
NARROW = 1


def tile_shape(kind: int, target: VectorTarget, bits: int) -> tuple[int, int, int]:
    """``(MR, vectors per row, lanes per vector)`` of the tile ``kind`` for floats of ``bits``."""
    rows = 12 if target.registers >= 32 else 6
    if kind == WIDE:
        return rows, 2, target.lanes(bits)
    return 2 * rows, 1, target.lanes(bits)


def _dims(context: Any, kind: int, dtype: Any) -> tuple[int, int, int]:
    return tile_shape(kind, codegen_target(context.codegen()), dtype.bitwidth)


@intrinsic
def tile_dims(typingctx: Any, kind: Any, like: Any) -> Any:  # pragma: no cover - compiled
    """``(MR, NR)`` of tile ``kind`` (runtime int) for the dtype of ``like`` (an array or a
    typed pointer), as the micro-kernel compiled in the same function uses them."""
    if not isinstance(kind, types.Integer) or not isinstance(like, (types.Array, types.CPointer)):
        return None
    pair = types.UniTuple(types.intp, 2)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        i64 = ir.IntType(64)
        k = context.cast(builder, args[0], signature.args[0], types.intp)
        is_wide = builder.icmp_signed("==", k, ir.Constant(i64, WIDE))
        out = []
        for part in (0, 1):
            values = []
            for kd in (WIDE, NARROW):
                mr, nv, w = _dims(context, kd, like.dtype)
                values.append(mr if part == 0 else nv * w)
            out.append(builder.select(is_wide, ir.Constant(i64, values[0]),
                                      ir.Constant(i64, values[1])))
        return context.make_tuple(builder, pair, out)

    return pair(kind, like), codegen


class _TileEmitter:
    """Emits one ``MR x (NV*W)`` tile loop into the current function."""

    def __init__(self, builder: ir.IRBuilder, dtype: Any, mr: int, nv: int, w: int) -> None:
        self.b = builder
        self.mr, self.nv, self.w = mr, nv, w
        fty = ir.FloatType() if dtype.bitwidth == 32 else ir.DoubleType()
        self.vty = ir.VectorType(fty, w)
        self.align = dtype.bitwidth // 8
        suffix = f"v{w}f{dtype.bitwidth}"
        fnty = ir.FunctionType(self.vty, [self.vty] * 3)
        self.fma = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.fma.{suffix}")
        self.i64 = ir.IntType(64)

    def const(self, v: int) -> ir.Constant:
        return ir.Constant(self.i64, v)

    def vptr(self, base: Any, offset: Any) -> Any:
        return self.b.bitcast(self.b.gep(base, [offset]), self.vty.as_pointer())

    def c_slots(self, c: Any, ldc: Any) -> list[Any]:
        b = self.b
        slots = []
        for r in range(self.mr):
            row = b.gep(c, [b.mul(ldc, self.const(r))])
            slots.extend(self.vptr(row, self.const(v * self.w)) for v in range(self.nv))
        return slots

    def emit(self, kc: Any, a_src: tuple[Any, Any, Any], b_src: tuple[Any, Any],
             c_dst: tuple[Any, Any], *, resume: Any, done: Any) -> None:
        """The tile loop over ``kc`` steps; ``a_src`` is (pointer, row stride, k stride),
        ``b_src`` (pointer, k stride), ``c_dst`` (pointer, row stride). Branches to ``done``
        once the tile is stored back to C."""
        a, ars, acs = a_src
        bp, brs = b_src
        c, ldc = c_dst
        b = self.b
        fn = b.function
        load_bb = fn.append_basic_block("tile.resume")
        head_bb = fn.append_basic_block("tile.head")
        body_bb = fn.append_basic_block("tile.body")
        exit_bb = fn.append_basic_block("tile.exit")
        entry_bb = b.block
        b.cbranch(resume, load_bb, head_bb)

        b.position_at_end(load_bb)
        parked = [b.load(p, align=self.align) for p in self.c_slots(c, ldc)]
        b.branch(head_bb)

        b.position_at_end(head_bb)
        k = b.phi(self.i64)
        k.add_incoming(self.const(0), entry_bb)
        k.add_incoming(self.const(0), load_bb)
        zero = ir.Constant(self.vty, [0.0] * self.w)  # +0.0: the C5 starting value
        accs = []
        for saved in parked:
            acc = b.phi(self.vty)
            acc.add_incoming(zero, entry_bb)
            acc.add_incoming(saved, load_bb)
            accs.append(acc)
        b.cbranch(b.icmp_unsigned("<", k, kc), body_bb, exit_bb)

        b.position_at_end(body_bb)
        brow = b.gep(bp, [b.mul(k, brs)])
        bvec = [b.load(self.vptr(brow, self.const(v * self.w)), align=self.align)
                for v in range(self.nv)]
        acol = b.gep(a, [b.mul(k, acs)])
        undef = ir.Constant(self.vty, ir.Undefined)
        splat_mask = ir.Constant(ir.VectorType(ir.IntType(32), self.w), [0] * self.w)
        updated = []
        for r in range(self.mr):
            x = b.load(b.gep(acol, [b.mul(ars, self.const(r))]))
            xs = b.shuffle_vector(b.insert_element(undef, x, ir.Constant(ir.IntType(32), 0)),
                                  undef, splat_mask)
            updated.extend(b.call(self.fma, [xs, bvec[v], accs[r * self.nv + v]])
                           for v in range(self.nv))
        k_next = b.add(k, self.const(1))
        b.branch(head_bb)
        k.add_incoming(k_next, body_bb)
        for acc, new in zip(accs, updated, strict=True):
            acc.add_incoming(new, body_bb)

        b.position_at_end(exit_bb)
        for acc, p in zip(accs, self.c_slots(c, ldc), strict=True):
            b.store(acc, p, align=self.align)
        b.branch(done)


@intrinsic
def micro_tile(  # noqa: PLR0917 - one argument per pointer, offset and stride
    typingctx: Any, kind: Any, kc: Any, a: Any, aoff: Any, ars: Any, acs: Any,
    bp: Any, boff: Any, brs: Any, c: Any, coff: Any, ldc: Any, resume: Any,
) -> Any:  # pragma: no cover - compiled
    """One tile ``C[0:MR, 0:NR] (+)= A[0:MR, 0:kc] B[0:kc, 0:NR]`` in the C5 order.

    ``a``, ``bp``, ``c`` are typed pointers (:func:`repops.kernels._raw.ptr`). Element
    ``(r, k)`` of A is ``a[aoff + r*ars + k*acs]``; row k of B is the ``NR`` contiguous values
    at ``bp[boff + k*brs]``; element ``(r, j)`` of C is ``c[coff + r*ldc + j]`` (offsets and
    strides in elements). ``resume`` false starts every chain at +0.0, true continues the
    chains parked in C. The caller guarantees that every address in the tile is inside its
    array (it pads edge tiles itself).
    """
    pointers = (a, bp, c)
    if not all(isinstance(x, types.CPointer) for x in pointers):
        return None
    if len({x.dtype for x in pointers}) != 1:
        return None
    if a.dtype not in (types.float32, types.float64):
        return None
    args = (kind, kc, a, aoff, ars, acs, bp, boff, brs, c, coff, ldc, resume)

    def codegen(context: Any, builder: Any, signature: Any, llargs: Any) -> Any:
        sig_args = signature.args

        def i64(i: int) -> Any:
            return context.cast(builder, llargs[i], sig_args[i], types.int64)

        def base(i: int, off: int) -> Any:
            return builder.gep(llargs[i], [i64(off)])

        ptr_a, ptr_b, ptr_c = base(2, 3), base(6, 7), base(9, 10)
        resume_bit = context.cast(builder, llargs[12], sig_args[12], types.boolean)
        fn = builder.function
        done = fn.append_basic_block("tile.done")
        wide_bb = fn.append_basic_block("tile.wide")
        narrow_bb = fn.append_basic_block("tile.narrow")
        is_wide = builder.icmp_signed("==", i64(0), ir.Constant(ir.IntType(64), WIDE))
        builder.cbranch(is_wide, wide_bb, narrow_bb)
        for kd, bb in ((WIDE, wide_bb), (NARROW, narrow_bb)):
            builder.position_at_end(bb)
            emitter = _TileEmitter(builder, a.dtype, *_dims(context, kd, a.dtype))
            emitter.emit(i64(1), (ptr_a, i64(4), i64(5)), (ptr_b, i64(8)), (ptr_c, i64(11)),
                         resume=resume_bit, done=done)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return types.void(*args), codegen
