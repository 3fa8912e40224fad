"""The service model as a verde program: flagged requests become an ``infer`` job.

Why: ``verde.distill`` escalates a flagged answer to a second provider and a referee
(:mod:`verde.distill.escalation`); for the referee to be a verde dispute (Verde, Arun et al.
2025) the re-run must be a verde job, so the service model must be a verde program (the
built-in ``mlp``/``cnn`` or the ``hf`` program) run from the service's parameters. This module
builds that job and reads its answers; talking to providers and an arbiter is the services
layer's (``arbiter.refereed_escalation``).

The job: ``kind = "infer"`` of the program, started from the service's parameters (uploaded as
``init.params``, :mod:`verde.protocol.jobs.initial`), over a dataset made of the requests'
inputs (uploaded content-addressed under its sample root,
:mod:`verde.protocol.jobs.uploaded_datasets`), in order: the job's sample ``i`` is request row
``i``. Its committed per-sample outputs are the program's logits; the answers the client
compares are :func:`verde.distill.escalation.answers_from_logits` of them, so an honest service
that runs the same program under ``repops.reproducible()`` answers the same bits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from verde.distill.escalation import answers_from_logits
from verde.protocol.jobs.context import PARAM, JobContext
from verde.protocol.jobs.datasets import Dataset, describe_dataset
from verde.protocol.jobs.errors import JobSpecError
from verde.protocol.jobs.initial import with_initial_parameters
from verde.protocol.jobs.portable import PortableJob
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.jobs.uploaded_datasets import dataset_upload


@dataclass(frozen=True)
class ServiceModel:
    """The model an inference service runs, as a verde program and its parameters.

    ``parameters`` are keyed by the program module's parameter names (``named_parameters()``
    of the module the program builds). Each request input becomes field ``input_field`` of one
    sample, reshaped (an exact copy) to ``sample_shape``, or flattened when it is ``None`` (what
    the built-in ``mlp`` and ``cnn`` programs read). The built-in classifiers declare a label
    field (``label_field``) even for inference, which never reads it: it is filled with zeros.
    ``batch_size`` caps the job's batch; the outputs do not depend on it under repops.
    """

    program: str
    parameters: Mapping[str, torch.Tensor]
    config: Mapping[str, Any] = field(default_factory=dict)
    backend: str = "repops"
    input_field: str = "x"
    label_field: str | None = "y"
    sample_shape: tuple[int, ...] | None = None
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.parameters, Mapping) or not self.parameters or not all(
                isinstance(t, torch.Tensor) for t in self.parameters.values()):
            raise JobSpecError("service model: parameters must map parameter names to tensors")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) \
                or self.batch_size < 1:
            raise JobSpecError(f"service model: batch_size must be a positive int, got "
                               f"{self.batch_size!r}")
        if self.label_field == self.input_field:
            raise JobSpecError("service model: label_field must differ from input_field")

    def dataset(self, inputs: torch.Tensor) -> Dataset:
        """The job's dataset: one sample per request row, in order."""
        if not isinstance(inputs, torch.Tensor) or inputs.ndim < 1 or inputs.shape[0] < 1:
            raise JobSpecError("service model: inputs must be a tensor with at least one row")
        if inputs.dtype == torch.bfloat16:  # datasets are numpy arrays: no bfloat16 there
            raise JobSpecError("service model: inputs are bfloat16, which a dataset cannot "
                               "hold; send float32 (or float16) requests")
        rows = inputs.detach().cpu().contiguous()
        shape = (-1,) if self.sample_shape is None else tuple(self.sample_shape)
        try:
            x = rows.reshape(rows.shape[0], *shape)
        except RuntimeError as exc:
            raise JobSpecError(f"service model: inputs of shape {tuple(rows.shape)} do not "
                               f"reshape to samples of shape {shape}: {exc}") from None
        fields = {self.input_field: x.numpy().copy()}
        if self.label_field is not None:
            fields[self.label_field] = np.zeros(rows.shape[0], dtype=np.int64)
        return Dataset(fields)

    def infer_job(self, inputs: torch.Tensor) -> PortableJob:
        """The ``infer`` job over ``inputs`` and its uploads (dataset, parameters)."""
        dataset = self.dataset(inputs)
        n = dataset.n_samples
        batch = min(n, self.batch_size)
        spec = JobSpec.from_mapping({
            "program": self.program, "kind": "infer", "config": dict(self.config),
            "dataset": {"name": "file", "root": dataset.root.hex(), **describe_dataset(dataset)},
            "steps": math.ceil(n / batch), "batch_size": batch, "seed": self.seed,
            "backend": self.backend})
        self._check_parameters(spec)
        spec, params = with_initial_parameters(spec, self.parameters)
        return PortableJob(spec, spec, [("dataset", dataset_upload(dataset)),
                                        ("parameters", params)])

    def _check_parameters(self, spec: JobSpec) -> None:
        structure = JobContext.from_spec(spec).state_structure()
        expected = {n[len(PARAM):]: shape for n, (shape, _) in structure.items()
                    if n.startswith(PARAM)}
        missing = sorted(set(expected) - set(self.parameters))
        extra = sorted(set(self.parameters) - set(expected))
        if missing or extra:
            raise JobSpecError(f"service model: program {self.program!r} has parameters "
                               f"{sorted(expected)[:8]}; missing {missing[:5]}, unexpected "
                               f"{extra[:5]}")
        for name, shape in expected.items():
            got = tuple(self.parameters[name].shape)
            if got != tuple(shape):
                raise JobSpecError(f"service model: parameter {name!r} has shape {got}, the "
                                   f"program's has {tuple(shape)} for these inputs")


def job_answers(spec: JobSpec, outputs: torch.Tensor, indices: list[int]) -> torch.Tensor:
    """The answers (softmax rows, one per sample in dataset order) of an inference job's
    verified outputs (``verde.protocol.peers.fetch.fetch_outputs``)."""
    return answers_from_logits(outputs_in_order(spec, outputs, indices))


def outputs_in_order(spec: JobSpec, outputs: torch.Tensor, indices: list[int]) -> torch.Tensor:
    """One output row per sample, in dataset order: the job's last batch wraps around to the
    first samples (``verde.protocol.jobs.batching``), and those extra rows are dropped."""
    n = int(spec.dataset["n_samples"])
    if indices[:n] != list(range(n)):
        raise JobSpecError(f"job {spec.job_id[:16]}: outputs are not in dataset order")
    return outputs[:n]
