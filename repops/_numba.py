"""Shared numba plumbing for every repops kernel.

Why this exists: reproducibility across CPUs depends on two compiler promises that numba does
not make by default. (1) A fused multiply-add must appear exactly where SPEC.md says and
nowhere else: with ``fastmath=False`` LLVM never contracts ``a * b + c`` on its own, and
:func:`fma` below emits the ``llvm.fma`` intrinsic, which is correctly rounded on every target
(a hardware FMA instruction where one exists, a correctly rounded software routine otherwise).
(2) No reassociation, no approximate reciprocals, no flush-to-zero: that is ``fastmath=False``.

Every kernel module decorates with :data:`jit` / :data:`pjit` rather than calling ``numba.njit``
with its own flags, so the flags live in one place. Nothing is compiled at import time: numba
compiles lazily on first call and caches to disk, in repops' own cache directory: importing
repops changes nothing of numba's process-wide configuration (another library's kernels keep
their cache and compile flags).
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numba
from llvmlite import ir
from numba import types
from numba.core import caching
from numba.core.compiler_lock import global_compiler_lock
from numba.extending import intrinsic


@functools.cache
def _source_digest() -> str:
    """Digest of every repops source file (computed once, on the first kernel use).

    numba invalidates a cached kernel only when *its own* file changes, but kernels inline jit
    functions from other files (exp_f32 inside softmax and attention...). Keying repops' cache
    by all of repops' sources means an edit anywhere recompiles everything once, and a stale
    kernel can never be loaded.
    """
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    """Where repops' compiled kernels are cached: ``$NUMBA_CACHE_DIR/verde-repops/<digest>``
    when the user set ``NUMBA_CACHE_DIR``, else ``$XDG_CACHE_HOME/verde/numba/<digest>``
    (``~/.cache`` by default). Only repops' own kernels are stored there."""
    if numba.config.CACHE_DIR:
        return Path(numba.config.CACHE_DIR) / "verde-repops" / _source_digest()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "verde" / "numba" / _source_digest()


class _RepopsLocator(caching._CacheLocator):
    """numba cache locator for repops' kernels only: files under :func:`cache_root`, stamped
    with the digest of all repops sources (not of the kernel's own file)."""

    def __init__(self, py_func: Callable[..., Any], py_file: str) -> None:
        self._lineno = py_func.__code__.co_firstlineno
        self._py_file = py_file  # numba's "cannot cache" warning names it
        self._subpath = self.get_suitable_cache_subpath(py_file)

    def get_cache_path(self) -> str:
        return str(cache_root() / self._subpath)

    def get_source_stamp(self) -> str:
        return _source_digest()

    def get_disambiguator(self) -> str:
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func: Callable[..., Any], py_file: str) -> _RepopsLocator:
        return cls(py_func, py_file)


class _RepopsCacheImpl(caching.CompileResultCacheImpl):
    _locator_classes = [_RepopsLocator]  # noqa: RUF012 - numba's class attribute


class _RepopsFunctionCache(caching.FunctionCache):
    _impl_class = _RepopsCacheImpl


class _LazyCache(caching._Cache):
    """A kernel's on-disk cache, created on its first compile or load rather than when the
    module defining the kernel is imported (so importing repops hashes and creates nothing).
    An unwritable cache directory means no caching, not an error."""

    def __init__(self, py_func: Callable[..., Any]) -> None:
        self._py_func = py_func
        self._real: caching._Cache | None = None
        self._lock = threading.Lock()

    def _cache(self) -> caching._Cache:
        with self._lock:
            if self._real is None:
                try:
                    real: caching._Cache = _RepopsFunctionCache(self._py_func)
                    real._impl.locator.ensure_cache_path()
                except OSError:
                    real = caching.NullCache()
                self._real = real
            return self._real

    @property
    def cache_path(self) -> str:
        return self._cache().cache_path

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        return self._cache().load_overload(sig, target_context)

    def save_overload(self, sig: Any, data: Any) -> None:
        self._cache().save_overload(sig, data)

    def enable(self) -> None:
        self._cache().enable()

    def disable(self) -> None:
        self._cache().disable()

    def flush(self) -> None:
        self._cache().flush()


@contextmanager
def _slp_vectorize() -> Iterator[None]:
    """SLP vectorisation while a repops kernel compiles, and only then.

    It packs isomorphic independent operations (the 16 LSUM lanes of SPEC C4) into vector
    registers; without fast-math it never reassociates, so no bit changes — it only lets one
    AVX-512 register hold the 16 lanes. numba reads the flag when it builds each library's pass
    pipeline, inside the compile, which holds numba's global compiler lock: no other function
    compiles while it is set, and the previous value is restored afterwards.
    """
    before = numba.config.SLP_VECTORIZE
    numba.config.SLP_VECTORIZE = 1
    try:
        yield
    finally:
        numba.config.SLP_VECTORIZE = before


#: Flags every repops kernel is compiled with. ``fastmath`` must stay False (see module doc).
#: Caching is on, in repops' own cache (see :class:`_LazyCache`).
JIT_OPTIONS: dict[str, Any] = {
    "fastmath": False,
    "nogil": True,
    # IEEE semantics for x / 0 (inf or nan, no ZeroDivisionError check that blocks SIMD).
    "error_model": "numpy",
}


def _repops_dispatcher(fn: Callable[..., Any], **options: Any) -> Any:
    """numba's dispatcher for ``fn`` with repops' cache and compile settings (per function:
    nothing of numba's process-wide configuration changes)."""
    disp = numba.njit(**JIT_OPTIONS, **options)(fn)
    disp._cache = _LazyCache(fn)
    compile_now = disp.compile

    def compile_with_slp(sig: Any) -> Any:
        with global_compiler_lock, _slp_vectorize():
            return compile_now(sig)

    disp.compile = compile_with_slp
    return disp


def jit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Compile a serial kernel with the repops flags."""
    return _repops_dispatcher(fn)


def inline_jit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Compile a scalar function that numba splices into every compiled caller.

    Why: a loop over an array vectorises only if the function applied to each element is
    inlined, and LLVM's inliner gives up on functions past a size threshold (a GELU with its
    exp and Mills-ratio parts is past it), leaving a scalar call per element, 5-20x slower.
    numba's ``inline="always"`` inlines at its own IR level, before LLVM sees the loop. Same
    operations, same bits; called from Python it compiles like :func:`jit`.
    """
    return _repops_dispatcher(fn, inline="always")


def pjit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Compile a kernel whose ``numba.prange`` loops run across *independent output elements*.

    SPEC.md forbids splitting one element's reduction across threads; a ``prange`` must only
    ever range over output rows/columns/tiles, each computed entirely by one thread.
    """
    return _repops_dispatcher(fn, parallel=True)


@intrinsic
def fma(typingctx: Any, a: Any, b: Any, c: Any) -> Any:  # pragma: no cover - compiled
    """Correctly rounded ``a * b + c`` (one rounding), for float32 or float64 operands.

    All three operands must already have the same float type; mixing is a typing error rather
    than a silent conversion, because a conversion would change which rounding happens where.
    """
    if not (isinstance(a, types.Float) and a == b == c):
        return None
    llty = ir.FloatType() if a == types.float32 else ir.DoubleType()

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        fnty = ir.FunctionType(llty, [llty, llty, llty])
        fn = builder.module.declare_intrinsic("llvm.fma", [llty], fnty)
        return builder.call(fn, args)

    return a(a, b, c), codegen


def set_num_threads(n: int) -> None:
    """Set numba's worker count (results never depend on it; tests vary it to prove that)."""
    if n < 1:
        raise ValueError(f"thread count must be >= 1, got {n}")
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


def thread_count() -> int:
    """The calling thread's numba worker count, as ``numba.get_num_threads()`` returns it.

    Why not call that directly: it checks that the pool is launched (a lock) on every call,
    1.9 µs on a 2-core VM against 0.3 µs for the count itself, and a 128^3 product asks once
    per call. The pool is launched on the first call here; numba's own count function is used
    when this numba has no such internal (then every call pays the check).
    """
    n = _count_threads()()
    return n if n > 0 else numba.get_num_threads()  # numba raises its own error for <= 0


#: numba's internal per-thread count (numba.np.ufunc.parallel), defined once the pool launches.
_RAW_COUNT = "_get_num_threads"


@functools.cache
def _count_threads() -> Callable[[], int]:
    numba.get_num_threads()  # launches the pool; the raw count below needs it
    from numba.np.ufunc import parallel

    raw = getattr(parallel, _RAW_COUNT, None)
    return raw if callable(raw) else numba.get_num_threads
