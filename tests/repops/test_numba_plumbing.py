"""repops._numba: importing repops and running its kernels leaves numba's process-wide
configuration alone; repops' kernels cache in their own directory, other code in numba's.

Why: a library that rewrites ``numba.config.CACHE_DIR`` or compile flags at import moves every
other numba user's cache and changes how their code compiles (issue 13, item 6).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numba
import pytest

from repops import _numba

RunCompiled = Callable[..., str]  # conftest fixture type

FOREIGN = """
import numba

@numba.njit(cache=True)
def plus_one(x):
    return x + 1
"""

SCRIPT = r"""
import json, sys
from pathlib import Path
import numba
import numpy as np

KEYS = ("CACHE_DIR", "SLP_VECTORIZE", "LOOP_VECTORIZE", "OPT", "CPU_NAME", "CPU_FEATURES")
def config():
    return {k: getattr(numba.config, k) for k in KEYS}

report = {"before": config()}
import repops
from repops.kernels import matmul, softmax, norms  # kernel modules import, compile nothing
from repops import _numba
report["after_import"] = config()
root = Path(numba.config.CACHE_DIR)
report["files_after_import"] = sorted(str(p) for p in root.rglob("*"))
from repops.math.exp import exp_f32
exp_f32(np.float32(1.0))  # compiles (or loads) one kernel
report["after_kernel"] = config()
report["repops_cache"] = exp_f32.stats.cache_path
report["repops_root"] = str(_numba.cache_root())
sys.path.insert(0, FOREIGN_DIR)
import foreign_numba_user
foreign_numba_user.plus_one(1)
report["foreign_cache"] = foreign_numba_user.plus_one.stats.cache_path
report["after_foreign"] = config()
print("REPORT " + json.dumps(report))
"""


def _report(out: str) -> dict:
    lines = [line for line in out.splitlines() if line.startswith("REPORT ")]
    assert len(lines) == 1, out
    return json.loads(lines[0][len("REPORT "):])


@pytest.mark.slow
def test_repops_changes_no_numba_configuration(tmp_path: Path, run_compiled: RunCompiled) -> None:
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "foreign_numba_user.py").write_text(FOREIGN)
    cache = tmp_path / "cache"
    script = f"FOREIGN_DIR = {str(tmp_path / 'foreign')!r}\n" + SCRIPT
    out = run_compiled(script, cache)
    rep = _report(out)
    assert rep["before"]["CACHE_DIR"] == str(cache)
    for stage in ("after_import", "after_kernel", "after_foreign"):
        assert rep[stage] == rep["before"], stage
    # Importing computes and creates nothing; the first kernel creates repops' own directory.
    assert rep["files_after_import"] == []
    assert Path(rep["repops_cache"]).is_relative_to(rep["repops_root"])
    assert Path(rep["repops_root"]).is_relative_to(cache / "verde-repops")
    # Another library's cached kernel stays where numba puts it, outside repops' directory.
    assert Path(rep["foreign_cache"]).is_relative_to(cache)
    assert not Path(rep["foreign_cache"]).is_relative_to(cache / "verde-repops")
    assert any(Path(rep["foreign_cache"]).glob("foreign_numba_user.plus_one-*.nbi"))


def test_report_parser_rejects_noise() -> None:
    assert _report('warning\nREPORT {"a": 1}\n') == {"a": 1}
    with pytest.raises(AssertionError):
        _report("REPORT {}\nREPORT {}\n")


def test_slp_flag_is_set_only_while_compiling() -> None:
    before = numba.config.SLP_VECTORIZE
    with _numba._slp_vectorize():
        assert numba.config.SLP_VECTORIZE == 1
    assert before == numba.config.SLP_VECTORIZE
    with pytest.raises(RuntimeError), _numba._slp_vectorize():
        raise RuntimeError("a failed compile restores the flag too")
    assert before == numba.config.SLP_VECTORIZE


def test_kernels_use_repops_cache_and_plain_njit_does_not() -> None:
    # The repops decorator installs its lazy cache; numba's own decorator is untouched by it.
    kernel = _numba.jit(lambda x: x + 1)
    assert isinstance(kernel._cache, _numba._LazyCache)
    assert kernel._cache._real is None  # nothing located or hashed before the first compile
    plain = numba.njit(lambda x: x + 1)
    assert not isinstance(plain._cache, _numba._LazyCache)


def test_thread_count_follows_numba_in_every_thread() -> None:
    """The fast count is numba's own per-thread count, after each set, in a new thread too."""
    import threading

    before = numba.get_num_threads()
    try:
        for n in (1, numba.config.NUMBA_NUM_THREADS):
            _numba.set_num_threads(n)
            assert _numba.thread_count() == numba.get_num_threads() == n
        seen: list[int] = []
        worker = threading.Thread(target=lambda: seen.append(_numba.thread_count()))
        worker.start()
        worker.join()
        assert seen == [numba.config.NUMBA_NUM_THREADS]  # a new thread starts at numba's default
    finally:
        numba.set_num_threads(before)


def test_thread_count_falls_back_without_numba_internal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A numba without the raw count internal still gets the right count (through numba's API)."""
    monkeypatch.setattr(_numba, "_RAW_COUNT", "_not_in_this_numba")
    _numba._count_threads.cache_clear()
    try:
        assert _numba._count_threads() is numba.get_num_threads
        assert _numba.thread_count() == numba.get_num_threads()
    finally:
        monkeypatch.undo()
        _numba._count_threads.cache_clear()
    assert _numba._count_threads() is not numba.get_num_threads
