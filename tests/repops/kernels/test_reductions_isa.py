"""Same bits when numba compiles for a generic x86-64/ARM CPU (no AVX, no FMA instructions).

DESIGN.md §2: "different hardware" is tested on one machine by compiling the kernels with
``NUMBA_CPU_NAME=generic`` in a subprocess; the 16 lanes of C4 must then be emulated with
narrower registers and fma by a correctly rounded software routine, and nothing may change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

RunCompiled = Callable[..., str]  # conftest fixture type

SCRIPT = r"""
import hashlib, sys, torch
from repops.kernels import embedding, losses, norms, reductions, scan, softmax

def run():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(9, 67, generator=g) * torch.exp(2 * torch.randn(9, 67, generator=g))
    w, b = torch.randn(67, generator=g), torch.randn(67, generator=g)
    gy = torch.randn(9, 67, generator=g)
    t = torch.randint(0, 67, (9,), generator=g)
    idx = torch.randint(0, 5, (9,), generator=g)
    y, mean, rstd = norms.native_layer_norm(x, [67], w, b, 1e-5)
    ls = softmax.log_softmax(x, 1, False)
    outs = [
        reductions.sum_dim(x, [1]), reductions.var_correction(x, [0]),
        reductions.linalg_vector_norm(x, 2), softmax.softmax(x, 1, False), ls,
        softmax.log_softmax_backward_data(gy, ls, 1, torch.float32), y, mean, rstd,
        *norms.native_layer_norm_backward(gy, x, [67], mean, rstd, w, b, [True] * 3),
        losses.nll_loss_forward(ls, t, None, 1, -100)[0],
        embedding.embedding_dense_backward(gy, idx, 5, -1, False), scan.cumsum(x, 1),
    ]
    h = hashlib.sha256()
    for o in outs:
        h.update(o.contiguous().numpy().tobytes())
    return h.hexdigest()

if __name__ == "__main__":
    from repops.kernels import _rows
    serial = run()
    _rows.PARALLEL_MIN = 0  # the prange builds of the same kernels
    sys.stdout.write(serial + " " + run())
"""


@pytest.mark.slow
def test_generic_cpu_gives_the_same_bits(
    generic_numba_cache: Path, run_compiled: RunCompiled
) -> None:
    host = run_compiled(SCRIPT, None).split()
    generic = run_compiled(SCRIPT, generic_numba_cache, NUMBA_CPU_NAME="generic").split()
    assert len(host) == 2 and len(host[0]) == 64
    assert host[0] == host[1]  # serial and parallel builds agree
    assert host == generic


def test_digest_script_is_sensitive() -> None:
    # The digest above changes when a single output bit changes (so the comparison can fail).
    a = torch.ones(4)
    b = a.clone()
    b.view(torch.int32)[2] ^= 1
    assert (
        hashlib.sha256(a.numpy().tobytes()).digest() != hashlib.sha256(b.numpy().tobytes()).digest()
    )
