"""The service model as a verde program: flagged requests become an ``infer`` job whose
verified outputs, as answers, equal the model's own run under repops bit for bit, whatever the
job's batch size; bad models and inputs get one clear error."""

from __future__ import annotations

import pytest
import torch

from proofs import SigningKey
from verde.distill.escalation import TrustedReplica
from verde.integration.refereed_inference import ServiceModel, job_answers
from verde.protocol.jobs.errors import JobSpecError
from verde.protocol.jobs.registry import get_program
from verde.protocol.peers.fetch import fetch_outputs
from verde.protocol.peers.local import LocalPeer
from verde.protocol.provider.provider import Provider


@pytest.fixture(scope="module")
def mlp() -> torch.nn.Module:
    program = get_program("mlp")
    torch.manual_seed(0)
    return program.build(program.normalize_config({"hidden": 8}),
                         {"x": ((16,), torch.float32), "y": ((), torch.int64)})


def _model(mlp: torch.nn.Module, **changes: object) -> ServiceModel:
    params = {n: p.detach().clone() for n, p in mlp.named_parameters()}
    return ServiceModel("mlp", params, config={"hidden": 8}, **changes)  # type: ignore[arg-type]


def test_job_answers_equal_the_models_run_under_repops(mlp: torch.nn.Module) -> None:
    x = torch.rand(5, 4, 4, generator=torch.Generator().manual_seed(1))  # flattened to 16
    expected = TrustedReplica(torch.nn.Sequential(torch.nn.Flatten(), mlp),
                              reproducible=True).rerun(x)
    provider = Provider(SigningKey.from_seed(b"refereed".ljust(32, b"\0")), "refereed")
    ids = set()
    for batch in (5, 2):  # one batch, and three (the last wraps around to sample 0)
        job = _model(mlp, batch_size=batch).infer_job(x)
        assert [what for what, _ in job.uploads] == ["dataset", "parameters"]
        for _, state in job.uploads:
            provider.put_state(state)
        provider.submit(job.spec)
        _, outputs, indices = fetch_outputs(LocalPeer(provider), job.spec)
        assert torch.equal(job_answers(job.spec, outputs, indices), expected)
        ids.add(job.spec.job_id)
    assert len(ids) == 2


def test_bad_models_and_inputs_get_one_clear_error(mlp: torch.nn.Module) -> None:
    x = torch.rand(2, 16)
    model = _model(mlp)
    with pytest.raises(JobSpecError, match=r"parameter '0\.weight' has shape \(8, 16\)"):
        ServiceModel("mlp", dict(model.parameters), config={"hidden": 8}).infer_job(
            torch.rand(2, 12))
    with pytest.raises(JobSpecError, match=r"missing \['2\.bias'"):
        ServiceModel("mlp", {k: v for k, v in model.parameters.items() if k != "2.bias"},
                     config={"hidden": 8}).infer_job(x)
    with pytest.raises(JobSpecError, match="do not reshape"):
        _model(mlp, sample_shape=(7,)).infer_job(x)
    with pytest.raises(JobSpecError, match="at least one row"):
        model.infer_job(torch.rand(0, 16))
    with pytest.raises(JobSpecError, match="bfloat16"):
        model.infer_job(x.to(torch.bfloat16))
    with pytest.raises(JobSpecError, match="batch_size"):
        _model(mlp, batch_size=0)
    with pytest.raises(JobSpecError, match="parameters must map"):
        ServiceModel("mlp", {})
    with pytest.raises(JobSpecError, match="unknown program"):
        ServiceModel("nope", dict(model.parameters)).infer_job(x)


def test_an_hf_classifier_serves_as_the_model() -> None:
    """The ``hf`` program (a small BERT sequence classifier from an inline config): token ids
    as the input field, the answers equal the program's own outputs under repops."""
    pytest.importorskip("transformers")
    import random

    import repops
    from verde.distill.escalation import answers_from_logits
    from verde.protocol.faults.hf_campaign import hf_config

    hf = hf_config("bert", random.Random(1), 0.0)
    config = {"task": "sequence-classification", "hf_config": hf, "num_labels": 3}
    program = get_program("hf")
    module = program.build(program.normalize_config(dict(config)),
                           {"input_ids": ((6,), torch.int64), "labels": ((), torch.int64)})
    ids = torch.randint(0, hf["vocab_size"], (3, 6), generator=torch.Generator().manual_seed(0))
    model = ServiceModel("hf", {n: p.detach().clone() for n, p in module.named_parameters()},
                         config=config, input_field="input_ids", label_field="labels")
    job = model.infer_job(ids)
    provider = Provider(SigningKey.from_seed(b"refereed-hf".ljust(32, b"\0")), "refereed-hf")
    for _, state in job.uploads:
        provider.put_state(state)
    provider.submit(job.spec)
    _, outputs, indices = fetch_outputs(LocalPeer(provider), job.spec)
    module.eval()
    with torch.no_grad(), repops.reproducible():
        logits = program.outputs(module, {"input_ids": ids})
    expected = answers_from_logits(logits)
    assert expected.shape == (3, 3)
    assert torch.equal(job_answers(job.spec, outputs, indices), expected)
