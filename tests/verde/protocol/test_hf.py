"""The built-in hf program: HF models from configs or local directories, trained under strict
repops with dropout and padding masks, checkpoints mapped by name, weights exported for
transformers. Nothing is downloaded: every model is a small random config built in code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from proofs import canonical_json
from verde.errors import VerdeInputError
from verde.protocol.graph.admission import admit_job
from verde.protocol.graph.execution import expected_structure, trace_step
from verde.protocol.jobs.context import PARAM, JobContext
from verde.protocol.jobs.errors import JobSpecError
from verde.protocol.jobs.hf.export import export_model_directory
from verde.protocol.jobs.hf.program import model_directory_spec, seeded_hf_parameters
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.provider.provider import Provider

from .conftest import key
from .hf_jobs import hf_doc, hf_spec, tiny_config, write_dataset

transformers = pytest.importorskip("transformers")
ROOT = Path(__file__).resolve().parents[3]
DROPOUT_OP = "aten.bernoulli_.float"


@pytest.mark.parametrize("arch", ["bert", "gpt2", "llama", "vit"])
def test_each_architecture_runs_under_strict_repops_as_the_arbiter_replays_it(
        tmp_path: Path, arch: str) -> None:
    spec = hf_spec(tmp_path, arch)
    ctx = admit_job(spec, thorough=True)  # one real step traced == the shape-only replay
    graph = trace_step(ctx, ctx.initial_state(), 2)
    assert [n.structure() for n in graph.nodes] == expected_structure(ctx, 2)
    ops = {n.op for n in graph.nodes}
    assert DROPOUT_OP in ops  # dropout draws from the step's Philox stream
    assert not [op for op in ops if "scaled_dot_product" in op]  # eager attention
    provider = Provider(key(f"hf-{arch}"), arch)
    provider.submit(spec)
    final = provider.jobs[spec.job_id].states[spec.steps]
    first = ctx.initial_state()
    assert any(not torch.equal(final[k], first[k]) for k in first if k.startswith(PARAM))


def test_the_llama_config_has_grouped_query_attention_and_rotary_buffers(tmp_path) -> None:
    ctx = JobContext.from_spec(hf_spec(tmp_path, "llama"))
    assert ctx.module.config.num_key_value_heads < ctx.module.config.num_attention_heads
    buffers = dict(ctx.module.named_buffers())
    assert "model.rotary_emb.inv_freq" in buffers  # computed inside the step, not captured


def test_another_rope_type_is_refused_by_name(tmp_path: Path) -> None:
    doc = hf_doc(tmp_path, "llama")
    doc["config"]["hf_config"]["rope_scaling"] = {"rope_type": "linear", "factor": 2.0}
    with pytest.raises(JobSpecError, match="rope type 'linear'"):
        admit_job(JobSpec.from_mapping(doc))


def test_training_moves_the_loss(tmp_path: Path) -> None:
    spec = hf_spec(tmp_path, "bert", dropout=0.0, steps=12, batch_size=8,
                   dataset=write_dataset(tmp_path, "bert", "sequence-classification", n=16,
                                         padding=True))
    provider = Provider(key("hf-loss"), "loss")
    provider.submit(spec)
    ctx = JobContext.from_spec(spec)

    def mean_loss(state: dict[str, torch.Tensor]) -> float:
        batch = {k: torch.from_numpy(v) for k, v in ctx.dataset.fields.items()}
        params = {"model." + n: state[PARAM + n] for n in ctx.param_names}
        params.update({"model." + n: b
                       for n, b in ctx.program.step_buffers(ctx.module, batch).items()})
        with torch.no_grad():
            return float(torch.func.functional_call(
                _Loss(ctx), params, (batch,)))

    before = mean_loss(ctx.initial_state())
    after = mean_loss(provider.jobs[spec.job_id].states[spec.steps])
    assert after < before - 0.05, (before, after)


class _Loss(torch.nn.Module):
    def __init__(self, ctx: JobContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.model = ctx.module

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.ctx.program.loss(self.model, batch)


def test_a_model_directory_is_bound_by_digests_not_by_its_path(tmp_path: Path) -> None:
    model = _saved_bert(tmp_path / "model")
    config = model_directory_spec(model, "sequence-classification", num_labels=3)
    doc = {**hf_doc(tmp_path, "bert"), "config": config}
    spec = JobSpec.from_mapping(doc)
    assert "model" not in spec.identity()["config"]
    assert spec.config["weights_digest"] and spec.config["config_digest"]
    moved = shutil.copytree(model, tmp_path / "elsewhere")
    other = JobSpec.from_mapping({**doc, "config": {**config, "model": str(moved)}})
    assert other.job_id == spec.job_id  # same files elsewhere: the same job
    # digests left out are filled in from the directory
    bare = {"task": "sequence-classification", "model": str(model), "num_labels": 3}
    assert JobSpec.from_mapping({**doc, "config": bare}).job_id == spec.job_id


def test_changed_weights_are_refused_naming_both_digests(tmp_path: Path) -> None:
    model = _saved_bert(tmp_path / "model")
    config = model_directory_spec(model, "sequence-classification", num_labels=3)
    _saved_bert(model, seed=1)  # other weights at the same path
    with pytest.raises(JobSpecError, match=config["weights_digest"]) as info:
        JobSpec.from_mapping({**hf_doc(tmp_path, "bert"), "config": config})
    assert isinstance(info.value, VerdeInputError)


def test_checkpoint_names_map_and_a_new_head_is_seeded(tmp_path: Path) -> None:
    model = _saved_bert(tmp_path / "model")  # a BertModel: no "bert." prefix, no classifier
    doc = {**hf_doc(tmp_path, "bert"),
           "config": model_directory_spec(model, "sequence-classification", num_labels=3)}
    spec = JobSpec.from_mapping(doc)
    ctx = JobContext.from_spec(spec)
    state = ctx.initial_state()
    saved = transformers.BertModel.from_pretrained(model).state_dict()
    word = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(state[PARAM + word], saved["embeddings.word_embeddings.weight"])
    seeded = seeded_hf_parameters(ctx.module, spec.seed)
    assert torch.equal(state[PARAM + "classifier.weight"], seeded["classifier.weight"])
    assert not torch.equal(state[PARAM + word], seeded[word])


def test_pickled_checkpoints_are_refused(tmp_path: Path) -> None:
    model = _saved_bert(tmp_path / "model")
    (model / "model.safetensors").rename(model / "pytorch_model.bin")
    with pytest.raises(JobSpecError, match="pickle"):
        model_directory_spec(model, "sequence-classification")


def test_trained_weights_load_with_transformers(tmp_path: Path) -> None:
    spec = hf_spec(tmp_path, "gpt2")
    provider = Provider(key("hf-export"), "export")
    provider.submit(spec)
    final = provider.jobs[spec.job_id].states[spec.steps]
    ctx = JobContext.from_spec(spec)
    out = export_model_directory(ctx, final, tmp_path / "out")
    loaded = transformers.AutoModelForCausalLM.from_pretrained(out)
    got = dict(loaded.named_parameters())
    for name in ctx.param_names:
        assert torch.equal(got[name], final[PARAM + name]), name
    with pytest.raises(JobSpecError, match="missing"):
        export_model_directory(ctx, {}, tmp_path / "out2")


def test_another_transformers_version_is_refused(tmp_path: Path) -> None:
    doc = hf_doc(tmp_path, "bert")
    spec = JobSpec.from_mapping(doc)
    assert spec.config["transformers"] == transformers.__version__
    doc["config"]["transformers"] = "0.0.1"
    with pytest.raises(JobSpecError, match=r"transformers 0\.0\.1"):
        JobSpec.from_mapping(doc)


def test_tasks_check_their_labels(tmp_path: Path) -> None:
    doc = hf_doc(tmp_path, "bert", task="token-classification")
    doc["dataset"] = write_dataset(tmp_path, "bert", "sequence-classification")
    with pytest.raises(JobSpecError, match="labels of shape"):
        admit_job(JobSpec.from_mapping(doc))
    doc = hf_doc(tmp_path, "bert", task="embedding", kind="infer", optimizer={})
    ctx = admit_job(JobSpec.from_mapping(doc))
    assert ctx.output_meta()[0] == (4, ctx.module.config.hidden_size)  # pooled embeddings
    with pytest.raises(JobSpecError, match="no training loss"):
        admit_job(JobSpec.from_mapping(hf_doc(tmp_path, "bert", task="embedding")))


def test_verde_imports_and_runs_without_transformers() -> None:
    code = ("import sys; sys.modules['transformers'] = None\n"
            "from verde.protocol.jobs.spec import JobSpec\n"
            "from verde.errors import VerdeInputError\n"
            "doc = {'program': 'mlp', 'dataset': {'name': 'digits'}, 'steps': 1,"
            " 'batch_size': 2, 'optimizer': {'name': 'sgd'}}\n"
            "print(JobSpec.from_mapping(doc).program)\n"
            "try:\n"
            "    JobSpec.from_mapping({**doc, 'program': 'hf', 'config': {'task': 'embedding'}})\n"
            "except VerdeInputError as exc:\n"
            "    print('REFUSED', exc)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.strip().splitlines()
    assert lines[0] == "mlp"
    assert lines[1].startswith("REFUSED") and "verde[hf]" in lines[1]


def _saved_bert(directory: Path, seed: int = 0) -> Path:
    config = tiny_config("bert")
    config.pop("model_type")
    torch.manual_seed(seed)
    model = transformers.BertModel(transformers.BertConfig(**config))
    model.save_pretrained(directory, safe_serialization=True)
    canonical_json(json.loads((directory / "config.json").read_text()))  # what the job reads
    return directory
