"""Verified generation, CLI only: a GPT-2-style and a Llama-style model (small configs, seeded
weights written with ``save_pretrained``; nothing downloaded) decode 8 prompts of different
lengths on three real ``verde provider`` processes, one of them cheating, with an arbiter on
SQLite, over 127.0.0.1.

The two honest providers decode differently on purpose -- one batches prompts 3 at a time with a
key/value cache, the other one prompt at a time recomputing every prefix -- and must still agree
bit for bit. One cheater per way to cheat at generation (``verde.protocol.faults.generation``);
each test delegates one job to both honest providers and one cheater and checks that the cheater
is named, that the tokens written are an in-process run of the written steps, that a receipt
checks offline (and a tampered one does not), and that the verdict certificate verifies.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cli import exit_codes
from tests.e2e.procs import Cluster, run_verde

transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.slow

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "cat", "dog", "sat", "ran",
         "on", "under", "mat", "tree", "big", "small", "red", "blue", "and", "then", "it",
         "was", "very", "quite", "happy", "sad", "day", "night", "home", "out", "."]
STOP = WORDS.index(".")
FAULT_STEP = 20  # prompt 3, position 2 (6 new tokens per prompt)
LENGTHS = [2, 5, 3, 7, 4, 5, 8, 6]  # two prompts of length 5: batched together
CHEATS = {  # fault -> (model, sampling)
    "quantised_model": ("gpt2", "greedy"),
    "cheaper_model": ("llama", "top_p"),
    "wrong_sample": ("gpt2", "top_p"),
    "truncate": ("llama", "greedy"),
    "changed_prompt": ("llama", "top_p"),
    "tampered_cache": ("gpt2", "greedy"),
}
SAMPLING = {"greedy": "", "top_p": "temperature = 0.9\ntop_p = 0.8\nrepetition_penalty = 1.2\n"}


def _write_model(directory: Path, arch: str) -> Path:
    directory.mkdir(parents=True)
    (directory / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    transformers.BertTokenizer(str(directory / "vocab.txt")).save_pretrained(directory)
    torch.manual_seed(3)
    if arch == "gpt2":
        config = transformers.GPT2Config(vocab_size=len(WORDS), n_positions=32, n_embd=16,
                                         n_layer=2, n_head=2, bos_token_id=2, eos_token_id=3,
                                         initializer_range=0.3)
        transformers.GPT2LMHeadModel(config).save_pretrained(directory)
    else:
        config = transformers.LlamaConfig(vocab_size=len(WORDS), hidden_size=16,
                                          intermediate_size=32, num_hidden_layers=2,
                                          num_attention_heads=4, num_key_value_heads=2,
                                          max_position_embeddings=32, bos_token_id=2,
                                          eos_token_id=3, initializer_range=0.3)
        transformers.LlamaForCausalLM(config).save_pretrained(directory)
    return directory


def _prompts(path: Path) -> Path:
    rng = np.random.default_rng(4)
    ids = np.zeros((len(LENGTHS), max(LENGTHS)), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, n in enumerate(LENGTHS):
        ids[i, :n] = rng.integers(5, len(WORDS) - 1, size=n)
        mask[i, :n] = 1
    np.savez(path, input_ids=ids, attention_mask=mask)
    return path


def _job(path: Path, model: Path, data: Path, root: str, sampling: str) -> Path:
    path.write_text(
        f'program = "hf"\nkind = "generate"\nseed = 11\ncheckpoint_interval = 8\n'
        f'[config]\ntask = "causal-lm"\nmodel = "{model}"\n'
        f'[dataset]\nname = "file"\nlocation = "{data}"\nroot = "{root}"\n'
        f'[generation]\nmax_new_tokens = 6\nstop_tokens = [{STOP}]\n{SAMPLING[sampling]}')
    return path


@pytest.fixture(scope="module")
def generate_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    cluster = Cluster(tmp_path_factory.mktemp("generate-cli"))
    work = cluster.workdir / "user"
    work.mkdir()
    try:
        specs = [("p1", [*cluster.provider_argv("p1"), "--generate-batch", "3"]),
                 ("p2", [*cluster.provider_argv("p2"), "--no-kv-cache", "--generate-batch", "1"])]
        specs += [(f"c-{fault}", cluster.provider_argv(
            f"c-{fault}", f"compute={fault},step={FAULT_STEP}")) for fault in CHEATS]
        specs.append(("arb", cluster.arbiter_argv("arb", f"sqlite:///{cluster.workdir}/a.db")))
        started = dict(zip([name for name, _ in specs], cluster.start_many(specs), strict=True))
        data = _prompts(work / "prompts.npz")
        root = json.loads(run_verde(["data", "root", str(data), "--json"]).stdout)["root"]
        jobs = {}
        for arch in ("gpt2", "llama"):
            model = _write_model(work / arch, arch)
            for sampling in SAMPLING:
                jobs[arch, sampling] = _job(work / f"{arch}-{sampling}.toml", model, data, root,
                                            sampling)
        yield {"cluster": cluster, "svc": started, "jobs": jobs, "work": work}
    finally:
        cluster.stop_all()


def _reference_tokens(job: Path) -> dict[int, list[int]]:
    """The written steps run in this process (no batching, no cache): every prompt's buffer."""
    from verde.protocol.graph.execution import run_step
    from verde.protocol.jobs.context import JobContext
    from verde.protocol.jobs.generation import tokens_entry
    from verde.protocol.jobs.spec_file import load_job_spec

    ctx = JobContext.from_spec(load_job_spec(job))
    state = ctx.initial_state()
    for step in range(1, ctx.spec.steps + 1):
        state = run_step(ctx, state, step)
    return {p: state[tokens_entry(p)].tolist() for p in range(ctx.generation.n_prompts)}


@pytest.mark.parametrize("fault", list(CHEATS))
def test_the_cheater_is_named_and_the_honest_tokens_come_back(
        generate_cluster: dict[str, Any], fault: str) -> None:
    svc, work = generate_cluster["svc"], generate_cluster["work"]
    job = generate_cluster["jobs"][CHEATS[fault]]
    out = work / f"out-{fault}"
    cheater = svc[f"c-{fault}"]
    res = run_verde(["delegate", str(job), "--provider", svc["p1"].address, "--provider",
                     cheater.address, "--provider", svc["p2"].address, "--arbiter",
                     svc["arb"].address, "--out", str(out), "--tokenizer",
                     str(job.parent / CHEATS[fault][0]), "--json"], timeout_s=900)
    assert res.returncode == exit_codes.OK, res.stderr[-3000:]
    doc = json.loads(res.stdout)
    assert sorted(doc["honest_providers"]) == sorted([svc["p1"].address, svc["p2"].address])
    assert doc["dishonest_providers"] == [cheater.address]
    assert {"generations.json", "receipts/", "job.json", "result.json"} <= set(doc["files"])
    assert len(list((out / "receipts").glob("prompt-*.json"))) == len(LENGTHS)

    written = json.loads((out / "generations.json").read_text())
    reference = _reference_tokens(job)
    assert len(written["prompts"]) == len(LENGTHS)
    for entry in written["prompts"]:
        p, n = entry["prompt"], LENGTHS[entry["prompt"]]
        assert entry["prompt_tokens"] == reference[p][:n]
        assert entry["tokens"] == reference[p][n:n + len(entry["tokens"])]
        assert entry["text"] == " ".join(WORDS[t] for t in entry["tokens"])
        if entry["stopped"]:
            assert entry["tokens"][-1] == STOP
            assert set(reference[p][n + len(entry["tokens"]):]) <= {0}  # pad after the stop

    for cert in out.glob("verdict-*.json"):
        check = run_verde(["verify", str(cert), "--json"])
        assert check.returncode == exit_codes.OK, check.stderr


def test_a_receipt_checks_offline_and_a_tampered_one_does_not(
        generate_cluster: dict[str, Any]) -> None:
    out = generate_cluster["work"] / "out-wrong_sample"
    if not out.is_dir():
        pytest.skip("runs after test_the_cheater_is_named_and_the_honest_tokens_come_back")
    receipt = out / "receipts" / "prompt-3.json"
    check = run_verde(["verify", str(receipt), "--json"])
    assert check.returncode == exit_codes.OK, check.stderr
    checked = json.loads(check.stdout)
    written = json.loads((out / "generations.json").read_text())["prompts"][3]
    assert checked["valid"] and checked["prompt"] == 3
    assert checked["generated"] == written["tokens"]

    doc = json.loads(receipt.read_text())
    doc["tokens"][LENGTHS[3]] = (doc["tokens"][LENGTHS[3]] + 1) % len(WORDS)
    forged = generate_cluster["work"] / "forged-receipt.json"
    forged.write_text(json.dumps(doc))
    bad = run_verde(["verify", str(forged)])
    assert bad.returncode == exit_codes.FALSE
    assert "does not hash to the digest" in bad.stderr
    assert "Traceback" not in bad.stderr
