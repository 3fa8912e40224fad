"""repops optimizers and gradient clipping with written update orders (spec/dispatch.md)."""

from repops.optim.adam import Adam, AdamW
from repops.optim.clip import clip_grad_norm_
from repops.optim.sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "clip_grad_norm_"]
