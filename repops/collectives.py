"""A reproducible all-reduce: the bits of one process summing the partitions in order.

Why: ``torch.distributed.all_reduce`` adds the ranks' tensors in an order set by the backend's
algorithm (ring, tree, halving-doubling) and by the world size, so the same global batch gives
different bits on 2 and on 4 workers. Here the unit of work is a *partition* (e.g. a
micro-batch's gradient), the job fixes P partitions and their order, and the sum is defined
as the left fold, elementwise, in the partitions' dtype::

    out = (((g_0 + g_1) + g_2) + ... ) + g_{P-1}

which :func:`sum_partitions` computes in one process. Each coordinate's sum involves only
that coordinate, so any split of the *coordinates* over ranks gives the same bits, whatever
the world size: rank r owns partitions ``partition_range(r, W, P)`` (contiguous blocks in rank
order), sends every other rank its slice of coordinates of each partition (one all-to-all),
folds the P values of its own slice in partition order, and the slices are all-gathered.
Each rank sends and receives about P*d/W + d values (an all-gather of the partitions would be
P*d). Elementwise IEEE additions are correctly rounded, so no instruction set, thread count
or vector width changes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from repops.errors import UnsupportedInputError


def partition_range(rank: int, world_size: int, num_partitions: int) -> range:
    """The partitions rank ``rank`` owns: a contiguous block, blocks in rank order."""
    if not 0 <= rank < world_size:
        raise UnsupportedInputError(f"rank {rank} is outside a world of {world_size}")
    if num_partitions < world_size:
        raise UnsupportedInputError(f"{num_partitions} partitions cannot be spread over "
                                    f"{world_size} ranks (every rank needs at least one)")
    return range(rank * num_partitions // world_size,
                 (rank + 1) * num_partitions // world_size)


def _check_parts(parts: Sequence[torch.Tensor], what: str) -> tuple[torch.Size, torch.dtype]:
    if len(parts) == 0:
        raise UnsupportedInputError(f"{what}: need at least one partition")
    shape, dtype = parts[0].shape, parts[0].dtype
    for i, p in enumerate(parts):
        if not isinstance(p, torch.Tensor) or p.shape != shape or p.dtype != dtype:
            raise UnsupportedInputError(f"{what}: partition {i} is not a tensor of shape "
                                        f"{tuple(shape)} and dtype {dtype}")
        if p.device.type != "cpu" or not p.is_floating_point():
            raise UnsupportedInputError(f"{what}: partitions must be floating-point CPU "
                                        f"tensors (partition {i} is {p.dtype} on {p.device})")
    return shape, dtype


def sum_partitions(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    """The reference: the left fold g_0 + g_1 + ... + g_{P-1}, elementwise (a new tensor)."""
    _check_parts(parts, "sum_partitions")
    out = parts[0].detach().clone()
    for p in parts[1:]:
        out.add_(p)
    return out


def reproducible_all_reduce(local_parts: Sequence[torch.Tensor], num_partitions: int,
                            group: Any = None) -> torch.Tensor:
    """The sum of all P partitions, bit-identical to :func:`sum_partitions` on any world size.

    ``local_parts``: this rank's partitions ``partition_range(rank, W, P)``, in order. Every
    rank gets the full sum (a new tensor of the partitions' shape and dtype). Collective: every
    rank of ``group`` must call it with the same P and partition shape.
    """
    import torch.distributed as dist

    rank, world = dist.get_rank(group), dist.get_world_size(group)
    mine = partition_range(rank, world, num_partitions)
    if len(local_parts) != len(mine):
        raise UnsupportedInputError(f"rank {rank} owns partitions {mine.start}..{mine.stop - 1}"
                                    f" ({len(mine)}), got {len(local_parts)}")
    shape, dtype = _check_parts(local_parts, "reproducible_all_reduce")
    if world == 1:
        return sum_partitions(local_parts)
    d = int(torch.Size(shape).numel())
    bounds = [r * d // world for r in range(world + 1)]
    widths = [bounds[r + 1] - bounds[r] for r in range(world)]
    counts = [len(partition_range(r, world, num_partitions)) for r in range(world)]
    flat = [p.detach().reshape(-1) for p in local_parts]
    send = torch.cat([torch.cat([f[bounds[r]:bounds[r + 1]] for f in flat])
                      for r in range(world)])
    recv = torch.empty(num_partitions * widths[rank], dtype=dtype)
    dist.all_to_all_single(recv, send, output_split_sizes=[c * widths[rank] for c in counts],
                           input_split_sizes=[len(flat) * w for w in widths], group=group)
    rows = recv.reshape(num_partitions, widths[rank])  # partition order: blocks in rank order
    mine_sum = rows[0].clone()
    for p in range(1, num_partitions):
        mine_sum.add_(rows[p])
    width = max(widths)
    padded = torch.zeros(width, dtype=dtype)
    padded[:widths[rank]] = mine_sum
    slices = [torch.empty(width, dtype=dtype) for _ in range(world)]
    dist.all_gather(slices, padded, group=group)
    out = torch.cat([s[:w] for s, w in zip(slices, widths, strict=True)])
    return out.reshape(shape)
