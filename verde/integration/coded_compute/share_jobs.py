"""Each share of a coded computation as a verde job.

Why: a share (``verde.coding.coded_compute.Share``) is a pure function of explicit inputs, so
it can be a job every party names by content — which is what lets a provider commit to its
answer, be held to it with Merkle proofs, and lose a dispute over it (Verde, Arun et al. 2025).

- BACC/SBACC (coded inference, Jahani-Nezhad and Maddah-Ali's BACC; SBACC's DCT code): share
  ``j`` is the model run on the ``j``-th encoded group of the batch, i.e. an ``infer`` job of
  the model's program from its parameters over the encoded rows
  (:class:`~verde.integration.refereed_inference.ServiceModel`).
- The fault-tolerant Strassen-like matmul: node ``i`` multiplies two block combinations
  ``x_i @ y_i``, an ``infer`` job of the ``matmul`` program
  (``verde.protocol.jobs.linear_map``) with ``x_i``'s rows as the dataset and ``y_i`` as the
  uploaded ``weight``.

Under ``repops`` the answer is the same bits on every honest provider, so two providers that
disagree about a share can be refereed exactly, even where the code around it is approximate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from verde.coding.coded_compute import Share
from verde.integration.refereed_inference import ServiceModel, outputs_in_order
from verde.protocol.jobs.errors import JobSpecError
from verde.protocol.jobs.portable import PortableJob
from verde.protocol.jobs.spec import JobSpec


class ShareJobs(Protocol):
    """How a kind of share becomes a job, and the job's verified outputs its answer."""

    def job(self, share: Share) -> PortableJob: ...

    def answer(self, spec: JobSpec, outputs: torch.Tensor, indices: list[int]) -> torch.Tensor:
        ...


@dataclass(frozen=True)
class InferenceShares:
    """BACC/SBACC shares: the service model's ``infer`` job over one encoded group."""

    model: ServiceModel

    def job(self, share: Share) -> PortableJob:
        (group,) = share.arguments
        return self.model.infer_job(share_tensor(group, f"share {share.index}"))

    def answer(self, spec: JobSpec, outputs: torch.Tensor, indices: list[int]) -> torch.Tensor:
        return outputs_in_order(spec, outputs, indices)


@dataclass(frozen=True)
class MatmulShares:
    """Strassen-like node products: the ``matmul`` program's job ``x_i @ y_i`` (one batch)."""

    backend: str = "repops"

    def job(self, share: Share) -> PortableJob:
        x, y = (share_tensor(t, f"node {share.index}") for t in share.arguments)
        if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[0]:
            raise JobSpecError(f"node {share.index}: operands {tuple(x.shape)} and "
                               f"{tuple(y.shape)} do not multiply")
        model = ServiceModel("matmul", {"weight": y}, config={"out_features": int(y.shape[1])},
                             backend=self.backend, label_field=None,
                             batch_size=int(x.shape[0]))
        return model.infer_job(x)

    def answer(self, spec: JobSpec, outputs: torch.Tensor, indices: list[int]) -> torch.Tensor:
        return outputs_in_order(spec, outputs, indices)


def share_tensor(value: object, what: str) -> torch.Tensor:
    """A share's operand as a contiguous float32 CPU tensor (what a job's dataset and
    parameters hold); numpy arrays are converted, anything else is refused."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor) or not value.dtype.is_floating_point:
        raise JobSpecError(f"{what}: operands must be float arrays or tensors, got "
                           f"{getattr(value, 'dtype', type(value).__name__)}")
    return value.detach().to("cpu", torch.float32).contiguous()
