"""One rank of DDP training on digits with verde's hook (see tests/gloo_ranks.py)."""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
import torch.distributed as dist


def _init(rank: int, world: int, port: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)


def train(rank: int, world: int, opts: dict) -> dict:
    from sklearn.datasets import load_digits
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel as DDP

    from verde.engines.torch_distributed import (
        ByzantineHookState,
        byzantine_comm_hook,
        robust_comm_hook,
        robust_state,
    )

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    perm = torch.from_numpy(np.random.default_rng(0).permutation(len(y)))
    test, train_idx = perm[:450], perm[450:]
    root = train_idx[:64]  # a small trusted batch every rank holds (FLTrust's root data)
    shard = train_idx[64:].tensor_split(world)[rank]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    ddp = DDP(model, bucket_cap_mb=opts.get("bucket_cap_mb", 25.0))
    state = robust_state(opts["rule"], f=opts["f"], mode=opts["mode"])
    if rank == opts.get("byzantine", -1):
        ddp.register_comm_hook(ByzantineHookState(state, opts["attack"], opts["params"]),
                               byzantine_comm_hook)
    else:
        ddp.register_comm_hook(state, robust_comm_hook)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.5)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(opts["steps"]):
        if state.rule.needs_reference:
            ref = torch.autograd.grad(loss_fn(model(x[root]), y[root]), list(model.parameters()))
            state.reference = dict(zip(model.parameters(), ref, strict=True))
        opt.zero_grad()
        loss_fn(ddp(x[shard]), y[shard]).backward()
        opt.step()
    with torch.no_grad():
        acc = float((model(x[test]).argmax(dim=1) == y[test]).float().mean())
    return {"accuracy": acc, "mode": state.mode}


def main() -> None:
    _, rank, world, port, out = sys.argv[1], *map(int, sys.argv[2:5]), sys.argv[5]
    opts = json.loads(sys.argv[6]) if len(sys.argv) > 6 else {}
    _init(rank, world, port)
    try:
        result = train(rank, world, opts)
        dist.barrier()  # see tests/gloo_ranks.py: no rank tears gloo down early
    finally:
        dist.destroy_process_group()
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    main()
