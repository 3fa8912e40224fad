"""Reproducible all-reduce: the same bits at world sizes 1, 2 and 4 over loopback gloo."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from repops.collectives import partition_range, sum_partitions
from repops.errors import UnsupportedInputError

HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("gloo_ranks", HERE.parent / "gloo_ranks.py")
gloo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gloo)
_wspec = importlib.util.spec_from_file_location("collectives_worker",
                                                HERE / "collectives_worker.py")
worker = importlib.util.module_from_spec(_wspec)
_wspec.loader.exec_module(worker)

P, SIZE = 8, 10_007  # an odd size: coordinate slices of unequal widths


def _reference() -> bytes:
    return sum_partitions([worker.partition(i, SIZE) for i in range(P)]).numpy().tobytes()


@pytest.mark.slow
def test_same_bits_at_world_sizes_1_2_4(tmp_path):
    expect = _reference()
    plain_differs = False
    for world in (1, 2, 4):
        results = gloo.run_ranks(HERE / "collectives_worker.py", "allreduce", world, tmp_path,
                                 {"P": P, "size": SIZE}, timeout=300)
        for r in results:
            assert bytes.fromhex(r["ours"]) == expect, f"world size {world} differs"
        if world == 4:  # negative control: the backend's all-reduce is not the written order
            plain_differs = bytes.fromhex(results[0]["plain"]) != expect
    assert plain_differs


def test_reference_is_the_left_fold_and_order_matters():
    parts = [torch.tensor([1e8, 1.0]), torch.tensor([1.0, 1e8]), torch.tensor([-1e8, -1e8])]
    assert sum_partitions(parts).tolist() == [0.0, 0.0]  # (1e8 + 1) - 1e8 in float32
    assert sum_partitions([parts[0], parts[2], parts[1]]).tolist() == [1.0, 0.0]


def test_partition_ranges_cover_every_partition_once():
    for world in (1, 2, 3, 4):
        got = [p for r in range(world) for p in partition_range(r, world, 10)]
        assert got == list(range(10))


@pytest.mark.parametrize("parts,match", [([], "at least one"),
                                         ([torch.zeros(2), torch.zeros(3)], "shape"),
                                         ([torch.zeros(2, dtype=torch.int64)], "floating")])
def test_bad_partitions_raise(parts, match):
    with pytest.raises(UnsupportedInputError, match=match):
        sum_partitions(parts)


def test_too_many_ranks_for_the_partitions():
    with pytest.raises(UnsupportedInputError, match="cannot be spread"):
        partition_range(0, 4, 3)
