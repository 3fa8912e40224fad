"""A job written against this machine's files, turned into one any machine can run.

Why: a user's spec names local files -- a dataset file, a Hugging Face model directory with its
weights -- but providers, the arbiter and an offline verifier run elsewhere. The portable spec
names nothing local: a file dataset by its sample root and description (``n_samples``,
``fields``; ``verde.protocol.jobs.uploaded_datasets``), a model directory's config inline
(``Program.portable_config``), and weights taken from local files as the job's uploaded
initial parameters (``init.params``, ``verde.protocol.jobs.initial``: parameters only, the
provider zero-fills optimizer slots). The uploads are content-addressed, so a provider checks
what it received against the spec, never the uploader. The certificate of a dispute carries
this spec, so ``verde verify`` needs none of the original files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from verde.protocol.jobs.context import JobContext
from verde.protocol.jobs.datasets import describe_dataset, load_dataset
from verde.protocol.jobs.initial import with_initial_parameters
from verde.protocol.jobs.registry import get_program
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.jobs.uploaded_datasets import dataset_upload


@dataclass
class PortableJob:
    """The spec to send, and the states to upload to every provider before submitting it."""

    spec: JobSpec
    local: JobSpec
    #: (what, state) pairs: "dataset" (``dataset/<field>`` entries), "parameters".
    uploads: list[tuple[str, dict[str, torch.Tensor]]] = field(default_factory=list)

    @property
    def upload_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for _, s in self.uploads for t in s.values())


def portable_job(local: JobSpec) -> PortableJob:
    """The portable form of ``local`` (whose files are on this machine) and its uploads."""
    doc = local.to_dict()
    uploads: list[tuple[str, dict[str, torch.Tensor]]] = []
    if local.dataset["name"] == "file":
        dataset = load_dataset(local.dataset)
        doc["dataset"] = {"name": "file", "root": local.dataset["root"],
                          **describe_dataset(dataset)}
        uploads.append(("dataset", dataset_upload(dataset)))
    program = get_program(local.program)
    # A program whose config names local files says how it travels (the hf program: a model
    # directory); the others travel as they are, from seeded parameters.
    hook = getattr(program, "portable_config", None)
    doc["config"], local_weights = (hook(local.config) if hook is not None
                                    else (dict(local.config), False))
    spec = JobSpec.from_mapping(doc)
    if local_weights and not local.init:
        ctx = JobContext.from_spec(local)
        params = program.initial_parameters(ctx.module, local.seed)
        spec, params_upload = with_initial_parameters(spec, params)
        uploads.append(("parameters", params_upload))
    return PortableJob(spec, local, uploads)
