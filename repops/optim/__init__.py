"""repops optimizers and gradient clipping with written update orders (spec/dispatch.md).

:mod:`repops.optim.functional` is the one core (out-of-place updates); the classes are
drop-ins for ``torch.optim`` built on it.
"""

from repops.optim import functional
from repops.optim.adam import Adam, AdamW
from repops.optim.clip import clip_grad_norm_
from repops.optim.functional import (
    AdamCorrections,
    adam_update,
    clip_grad_norms,
    float_power,
    sgd_update,
)
from repops.optim.sgd import SGD

__all__ = [
    "SGD",
    "Adam",
    "AdamCorrections",
    "AdamW",
    "adam_update",
    "clip_grad_norm_",
    "clip_grad_norms",
    "float_power",
    "functional",
    "sgd_update",
]
