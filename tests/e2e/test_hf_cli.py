"""Bring your own model, CLI only: Hugging Face model directories and a text file in, verified
weights and outputs out, over real ``verde`` processes on 127.0.0.1.

Three providers (one corrupting an operator), an arbiter on SQLite. The test writes a
BERT-style encoder checkpoint with a tokenizer (a vocabulary file of its own) and a GPT-2-style
decoder from small configs, dropout on, into a temp directory; nothing is downloaded. The user
tokenises a text file with ``verde data tokenize``, delegates with ``--out``, loads the result
with ``transformers``, runs an inference job on what came back, and checks the dispute's
certificate with ``verde verify`` from another directory after moving every original file away.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cli import exit_codes
from tests.e2e.procs import Cluster, assert_one_error_line, run_verde

transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.slow

FAULT = "compute=corrupt_op,step=2"
WORDS = ["good", "great", "fine", "nice", "bad", "awful", "poor", "sad", "the", "film", "was",
         "food", "very", "quite", "service", "day"]
POSITIVE, NEGATIVE = WORDS[:4], WORDS[4:8]


def _write_bert(directory: Path) -> Path:
    """A MiniLM-like checkpoint: a BERT encoder without a head, and its WordPiece vocabulary.
    (A wider initialisation than HF's 0.02: a model this small starting at 0.02 learns nothing
    in a dozen steps, with plain torch just as with verde.)"""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    directory.mkdir(parents=True)
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    transformers.BertTokenizer(str(directory / "vocab.txt")).save_pretrained(directory)
    config = transformers.BertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32, hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1, initializer_range=0.2)
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(directory)
    return directory


def _write_gpt2(directory: Path) -> Path:
    config = transformers.GPT2Config(vocab_size=32, n_positions=16, n_embd=16, n_layer=2,
                                     n_head=2, resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1)
    torch.manual_seed(1)
    transformers.GPT2LMHeadModel(config).save_pretrained(directory)
    return directory


def _sentences(path: Path, n: int = 16) -> Path:
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        label = i % 2
        words = list(rng.choice(POSITIVE if label else NEGATIVE, 2)) + list(
            rng.choice(WORDS[8:], 3))
        rng.shuffle(words)
        lines.append(f"{label}\t{' '.join(words)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _token_file(path: Path, n: int = 12, length: int = 10) -> Path:
    """Sequences of a seeded chain (each token has two likely successors), some padded."""
    rng = np.random.default_rng(1)
    successors = rng.integers(0, 32, size=(32, 2))
    ids = np.zeros((n, length), dtype=np.int64)
    ids[:, 0] = rng.integers(0, 32, size=n)
    for t in range(1, length):
        ids[:, t] = successors[ids[:, t - 1], rng.integers(0, 2, size=n)]
    mask = np.ones_like(ids)
    mask[::3, -3:] = 0
    np.savez(path, input_ids=ids, attention_mask=mask)
    return path


def _toml(path: Path, *, model: Path, task: str, data: Path, root: str, kind: str = "train",
          steps: int, lr: float = 0.02, extra: str = "") -> Path:
    optimizer = f'[optimizer]\nname = "adamw"\nlr = {lr}\n' if kind == "train" else ""
    path.write_text(
        f'program = "hf"\nkind = "{kind}"\nsteps = {steps}\nbatch_size = 4\nseed = 5\n'
        f'checkpoint_interval = 2\n[config]\ntask = "{task}"\nmodel = "{model}"\n{extra}'
        f'[dataset]\nname = "file"\nlocation = "{data}"\nroot = "{root}"\n{optimizer}')
    return path


def _delegate(ctx: dict[str, Any], job: Path, out: Path) -> dict[str, Any]:
    p1, p2, p3 = ctx["p"]
    res = run_verde(["delegate", str(job), "--provider", p1.address, "--provider", p2.address,
                     "--provider", p3.address, "--arbiter", ctx["arb"].address,
                     "--out", str(out), "--json"], timeout_s=900)
    assert res.returncode == exit_codes.OK, res.stderr[-3000:]
    return dict(json.loads(res.stdout))


@pytest.fixture(scope="module")
def hf_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    cluster = Cluster(tmp_path_factory.mktemp("hf-cli"))
    work = cluster.workdir / "user"
    work.mkdir()
    try:
        p1, p2, p3, arb = cluster.start_three_providers_and_arbiter(FAULT)
        ctx: dict[str, Any] = {"cluster": cluster, "p": (p1, p2, p3), "arb": arb, "work": work}
        bert = _write_bert(work / "minilm")
        text = _sentences(work / "sentences.txt")
        tok = run_verde(["data", "tokenize", str(text), "--model", str(bert), "--labels",
                         "--seq-len", "8", "--out", str(work / "sentences.npz"), "--json"])
        assert tok.returncode == exit_codes.OK, tok.stderr
        ctx["tokenized"] = json.loads(tok.stdout)
        bert_job = _toml(work / "bert.toml", model=bert, task="sequence-classification",
                         data=work / "sentences.npz", root=ctx["tokenized"]["root"], steps=12,
                         lr=0.003, extra="num_labels = 2\n")
        ctx["bert"] = (bert_job, _delegate(ctx, bert_job, work / "bert-out"), work / "bert-out")
        gpt2 = _write_gpt2(work / "gpt2")
        tokens = _token_file(work / "tokens.npz")
        root = json.loads(run_verde(["data", "root", str(tokens), "--json"]).stdout)["root"]
        gpt2_job = _toml(work / "gpt2.toml", model=gpt2, task="causal-lm", data=tokens,
                         root=root, steps=4)
        ctx["gpt2"] = (gpt2_job, _delegate(ctx, gpt2_job, work / "gpt2-out"), work / "gpt2-out")
        infer_job = _toml(work / "infer.toml", model=work / "bert-out",
                          task="sequence-classification", data=work / "sentences.npz",
                          root=ctx["tokenized"]["root"], kind="infer", steps=4)
        ctx["infer"] = (infer_job, _delegate(ctx, infer_job, work / "infer-out"),
                        work / "infer-out")
        yield ctx
    finally:
        cluster.stop_all()


def _reference(job: Path) -> tuple[Any, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The job run in this process by an honest provider: (context, state 0, final state)."""
    from proofs import SigningKey
    from verde.protocol.jobs.context import JobContext
    from verde.protocol.jobs.portable import portable_job
    from verde.protocol.jobs.spec_file import load_job_spec
    from verde.protocol.provider.provider import Provider

    job_spec = portable_job(load_job_spec(job))
    provider = Provider(SigningKey.from_seed(b"r" * 32), "reference")
    for _, state in job_spec.uploads:
        provider.put_state(state)
    provider.submit(job_spec.spec)
    record = provider.jobs[job_spec.spec.job_id]
    return (JobContext.from_spec(job_spec.spec), record.checkpoints.load(0),
            provider.state_at(record, job_spec.spec.steps))


def _mean_loss(ctx: Any, state: dict[str, torch.Tensor]) -> float:
    """Mean training loss over the whole dataset, dropout off (plain torch)."""
    from verde.protocol.jobs.context import PARAM

    batch = {k: torch.from_numpy(v) for k, v in ctx.dataset.fields.items()}
    params = {n: state[PARAM + n] for n in ctx.param_names}
    params.update(ctx.program.step_buffers(ctx.module, batch))
    ctx.module.eval()
    try:
        with torch.no_grad():
            return float(torch.func.functional_call(
                _Loss(ctx), {"model." + k: v for k, v in params.items()}, (batch,)))
    finally:
        ctx.module.train()


class _Loss(torch.nn.Module):
    def __init__(self, ctx: Any) -> None:
        super().__init__()
        self.ctx, self.model = ctx, ctx.module

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.ctx.program.loss(self.model, batch)


@pytest.mark.parametrize("which", ["bert", "gpt2", "infer"])
def test_the_cheater_is_named(hf_cluster: dict[str, Any], which: str) -> None:
    _, doc, out = hf_cluster[which]
    p1, p2, p3 = hf_cluster["p"]
    assert sorted(doc["honest_providers"]) == sorted([p1.address, p2.address])
    assert doc["dishonest_providers"] == [p3.address]
    assert [d for d in doc["disputes"] if p3.address in d["between"]]
    assert {"job.json", "result.json"} <= set(doc["files"])
    assert list(out.glob("verdict-*.json"))


@pytest.mark.parametrize(("which", "auto"), [("bert", "AutoModelForSequenceClassification"),
                                             ("gpt2", "AutoModelForCausalLM")])
def test_weights_load_with_transformers_and_equal_a_reference_run(
        hf_cluster: dict[str, Any], which: str, auto: str) -> None:
    from verde.protocol.jobs.context import PARAM

    job, doc, out = hf_cluster[which]
    assert {"config.json", "model.safetensors"} <= set(doc["files"])
    loaded = getattr(transformers, auto).from_pretrained(out)
    ctx, initial, final = _reference(job)
    assert ctx.spec.job_id == doc["job_id"]
    got = dict(loaded.named_parameters())
    for name in ctx.param_names:
        assert torch.equal(got[name].detach(), final[PARAM + name]), name
    # Training did what training does: the loss on the training data went down.
    before, after = _mean_loss(ctx, initial), _mean_loss(ctx, final)
    assert after < before - 0.01, (before, after)


def test_an_inference_job_returns_every_samples_outputs(hf_cluster: dict[str, Any]) -> None:
    from safetensors.torch import load_file

    _, doc, out = hf_cluster["infer"]
    assert "outputs.safetensors" in doc["files"]
    got = load_file(str(out / "outputs.safetensors"))
    data = np.load(hf_cluster["work"] / "sentences.npz")
    n = data["input_ids"].shape[0]
    assert got["indices"].tolist() == list(range(n))
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        hf_cluster["bert"][2], attn_implementation="eager").eval()
    with torch.no_grad():
        logits = model(input_ids=torch.from_numpy(data["input_ids"]),
                       attention_mask=torch.from_numpy(data["attention_mask"])).logits
    assert got["outputs"].shape == logits.shape
    torch.testing.assert_close(got["outputs"], logits, rtol=1e-4, atol=1e-5)


def test_verify_works_elsewhere_with_the_original_files_moved_away(
        hf_cluster: dict[str, Any], tmp_path: Path) -> None:
    work: Path = hf_cluster["work"]
    certs = {which: next(hf_cluster[which][2].glob("verdict-*.json"))
             for which in ("bert", "gpt2")}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    copies = [shutil.copy(c, elsewhere / f"{w}.json") for w, c in certs.items()]
    moved = tmp_path / "moved"
    shutil.move(str(work), str(moved))
    try:
        for cert in copies:
            res = run_verde(["verify", Path(cert).name, "--json"], cwd=elsewhere)
            assert res.returncode == exit_codes.OK, res.stderr[-2000:]
            checked = json.loads(res.stdout)
            assert checked["valid"] and checked["recomputed"]
        # a certificate whose job was altered does not verify
        text = Path(copies[0]).read_text()
        assert '"seed": 5' in text
        bad = elsewhere / "bad.json"
        bad.write_text(text.replace('"seed": 5', '"seed": 6'))
        res = run_verde(["verify", bad.name], cwd=elsewhere)
        assert res.returncode == exit_codes.FALSE, res.stderr[-2000:]
    finally:
        shutil.move(str(moved), str(work))


def test_data_commands_refuse_bad_input_in_one_line(hf_cluster: dict[str, Any],
                                                     tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("not-a-label\tthe film\n")
    res = run_verde(["data", "tokenize", str(bad), "--model", str(hf_cluster["work"] /
                     "minilm"), "--labels", "--seq-len", "8", "--out", str(tmp_path / "x.npz")])
    assert_one_error_line(res, exit_codes.BAD_INPUT, "line 1")
    res = run_verde(["data", "root", str(bad)])
    assert_one_error_line(res, exit_codes.BAD_INPUT, "expected a .npz or .safetensors")
