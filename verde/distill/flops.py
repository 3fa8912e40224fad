"""FLOP counts of a model's forward pass, to state a verifier's cost relative to the service.

Counts come from ``torch.utils.flop_counter.FlopCounterMode``, which derives the FLOPs of
matrix products and convolutions (Linear and Conv layers) from tensor shapes; elementwise ops
(ReLU, softmax, bias adds) are not counted, which is the usual convention and makes the ratio
independent of the CPU the models run on.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from verde.distill.errors import DistillArgumentError


def forward_flops(model: nn.Module, example: torch.Tensor) -> int:
    """FLOPs of one forward pass of ``model`` on ``example``, per input in the batch."""
    if not isinstance(example, torch.Tensor) or example.ndim == 0 or example.shape[0] < 1:
        raise DistillArgumentError("example must be a tensor with a batch dimension of size >= 1")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(example)
    finally:
        model.train(was_training)
    total = int(counter.get_total_flops())
    if total == 0:
        raise DistillArgumentError(
            "model has no Linear/Conv/matmul FLOPs on this example; cannot state a relative cost"
        )
    return total // int(example.shape[0])


def relative_cost(verifier: nn.Module, service: nn.Module, example: torch.Tensor) -> float:
    """Verifier FLOPs divided by service FLOPs on the same example input."""
    return forward_flops(verifier, example) / forward_flops(service, example)
