"""One rank of the reproducible all-reduce test (see tests/gloo_ranks.py).

The test module also loads this file for ``partition``: nothing here may change the test
process at import (tests/gloo_ranks.py gives the ranks OMP_NUM_THREADS=1).
"""

from __future__ import annotations

import json
import sys

import torch
import torch.distributed as dist

from repops.collectives import partition_range, reproducible_all_reduce


def partition(i: int, size: int) -> torch.Tensor:
    """Partition i's 'gradient': values over many magnitudes, so the order of a sum shows."""
    g = torch.Generator().manual_seed(1000 + i)
    scale = torch.pow(10.0, torch.randint(-6, 7, (size,), generator=g).float())
    return torch.randn(size, generator=g) * scale


def main() -> None:
    _, rank, world, port, out = sys.argv[1], *map(int, sys.argv[2:5]), sys.argv[5]
    opts = json.loads(sys.argv[6])
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    try:
        parts = [partition(i, opts["size"]) for i in partition_range(rank, world, opts["P"])]
        ours = reproducible_all_reduce(parts, opts["P"])
        local = parts[0].clone()
        for p in parts[1:]:
            local.add_(p)
        dist.all_reduce(local)  # the backend's own order of additions
        dist.barrier()  # see tests/gloo_ranks.py: no rank tears gloo down early
    finally:
        dist.destroy_process_group()
    with open(out, "w", encoding="utf-8") as fh:
        json.dump({"ours": ours.numpy().tobytes().hex(), "plain": local.numpy().tobytes().hex()},
                  fh)


if __name__ == "__main__":
    main()
