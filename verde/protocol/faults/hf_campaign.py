"""A seeded property campaign over Hugging Face jobs: the honest provider never loses.

Each case is a function of its seed: a small random HF config (BERT-style encoder, GPT-2,
Llama-style decoder with grouped-query attention, or ViT), built in code with random
initialisation (nothing is downloaded), crossed with settings (dropout, padding masks, the
attention implementation the config requests -- the adapter runs eager attention whatever it
says --, optimizer, training, inference or, for causal LMs, generation with random decoding
settings) and a random fault plan of the cheating catalogue
(:func:`verde.protocol.faults.plan.random_plan`; for generation, a generation fault or a
corrupted op). An honest provider (for generation: decoding with a random batch size, with or
without the key/value cache) and a cheater run the job; when their results differ, a dispute
settles it and the honest side must win.

Used by ``bench/hf_campaign_bench.py`` (hundreds of cases) and a small slice in the tests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from proofs import SigningKey
from verde.protocol.dispute.driver import DisputeStats, run_dispute
from verde.protocol.dispute.errors import NoDisputeError
from verde.protocol.dispute.state import DisputeState
from verde.protocol.faults.plan import ANSWER_FAULTS, GENERATE_FAULTS, FaultPlan, random_plan
from verde.protocol.faults.provider import CheatingProvider
from verde.protocol.jobs.datasets import file_dataset_root
from verde.protocol.peers import LocalPeer
from verde.protocol.provider.provider import Provider

ARCHITECTURES = ("bert", "gpt2", "llama", "vit")
_TASKS = {
    "bert": ("sequence-classification", "token-classification", "masked-lm"),
    "gpt2": ("causal-lm", "causal-lm", "token-classification"),
    "llama": ("causal-lm", "causal-lm", "token-classification"),
    "vit": ("image-classification",),
}
_DROPOUT_KEYS = {
    "bert": ("hidden_dropout_prob", "attention_probs_dropout_prob"),
    "gpt2": ("resid_pdrop", "embd_pdrop", "attn_pdrop"),
    "llama": ("attention_dropout",),
    "vit": ("hidden_dropout_prob", "attention_probs_dropout_prob"),
}


def hf_config(arch: str, rng: random.Random, dropout: float) -> dict[str, Any]:
    """A small random config of ``arch`` (a ``config.json`` dict)."""
    heads = rng.choice([1, 2, 4])
    hidden = heads * rng.choice([4, 8])
    layers = rng.choice([1, 2])
    vocab = rng.randint(20, 40)
    drop = dict.fromkeys(_DROPOUT_KEYS[arch], dropout)
    if arch == "bert":
        return {"model_type": "bert", "vocab_size": vocab, "hidden_size": hidden,
                "num_hidden_layers": layers, "num_attention_heads": heads,
                "intermediate_size": 2 * hidden, "max_position_embeddings": 16, **drop}
    if arch == "gpt2":
        return {"model_type": "gpt2", "vocab_size": vocab, "n_embd": hidden, "n_layer": layers,
                "n_head": heads, "n_positions": 16, "pad_token_id": 0, **drop}
    if arch == "llama":
        kv = rng.choice([h for h in (1, 2, heads) if heads % h == 0])
        return {"model_type": "llama", "vocab_size": vocab, "hidden_size": hidden,
                "num_hidden_layers": layers, "num_attention_heads": heads,
                "num_key_value_heads": kv, "intermediate_size": 2 * hidden,
                "max_position_embeddings": 16, "pad_token_id": 0, **drop}
    return {"model_type": "vit", "image_size": 8, "patch_size": rng.choice([4, 8]),
            "num_channels": rng.choice([1, 3]), "hidden_size": hidden,
            "num_hidden_layers": layers, "num_attention_heads": heads,
            "intermediate_size": 2 * hidden, **drop}


def dataset_arrays(arch: str, task: str, config: dict[str, Any], rng: random.Random,
                   padding: bool, *, n: int = 12) -> dict[str, np.ndarray]:
    """Random samples for ``task`` (labels in range, padding at the end of some rows)."""
    gen = np.random.Generator(np.random.Philox(key=rng.randrange(2**32)))
    if arch == "vit":
        c, side = config["num_channels"], config["image_size"]
        return {"pixel_values": gen.standard_normal((n, c, side, side)).astype(np.float32),
                "labels": gen.integers(0, 3, n).astype(np.int64)}
    seq = rng.randint(4, 8)
    ids = gen.integers(1, config["vocab_size"], size=(n, seq)).astype(np.int64)
    out = {"input_ids": ids}
    if padding:
        mask = np.ones((n, seq), dtype=np.int64)
        for row in range(0, n, 2):
            mask[row, rng.randint(2, seq):] = 0
        out["attention_mask"] = mask
    if task == "sequence-classification":
        out["labels"] = (ids[:, 0] % 2).astype(np.int64)
    elif task == "token-classification":
        out["labels"] = (ids % 3).astype(np.int64)
    elif task == "masked-lm":
        labels = np.full_like(ids, -100)
        labels[:, 1] = ids[:, 1]
        out["labels"] = labels
    return out


@dataclass
class HFCase:
    """One campaign case: the job spec document, its dataset and the cheater's plan."""

    seed: int
    doc: dict[str, Any]
    plan: FaultPlan
    settings: dict[str, Any] = field(default_factory=dict)


def make_case(seed: int, workdir: str | Path) -> HFCase:
    """The case of ``seed``; its dataset is written under ``workdir``."""
    rng = random.Random(seed)
    arch = ARCHITECTURES[seed % len(ARCHITECTURES)]
    task = rng.choice(_TASKS[arch])
    dropout = rng.choice([0.0, 0.1, 0.3])
    padding = arch != "vit" and rng.random() < 0.6
    attn = rng.choice([None, "eager", "sdpa"])
    config = hf_config(arch, rng, dropout)
    if attn is not None:
        config["attn_implementation"] = attn
    kind = "infer" if rng.random() < 0.15 else "train"
    arrays = dataset_arrays(arch, task, config, rng, padding)
    Path(workdir).mkdir(parents=True, exist_ok=True)
    location = Path(workdir) / f"hf-case-{seed}.npz"
    np.savez(location, **arrays)  # type: ignore[arg-type]  # numpy's stubs are narrow
    job_config: dict[str, Any] = {"task": task, "hf_config": config}
    if task in ("sequence-classification", "image-classification"):
        job_config["num_labels"] = 3 if arch == "vit" else 2
    elif task == "token-classification":
        job_config["num_labels"] = 3
    optimizer = rng.choice([{"name": "sgd", "lr": 0.05, "momentum": 0.9},
                            {"name": "adam", "lr": 0.01}, {"name": "adamw", "lr": 0.01}])
    steps = rng.randint(2, 3)
    doc: dict[str, Any] = {
        "program": "hf", "kind": kind, "config": job_config,
        "dataset": {"name": "file", "location": str(location),
                    "root": file_dataset_root(location)},
        "steps": steps, "batch_size": rng.choice([2, 4]), "seed": rng.randrange(2**31),
        "checkpoint_interval": rng.choice([1, 2]),
    }
    if kind == "train":
        doc["optimizer"] = optimizer
    plan = random_plan(rng, seed)
    if kind == "infer" and plan.compute == "wrong_init":  # no parameters to corrupt: same job
        plan = FaultPlan(compute="corrupt_op", seed=seed)
    settings = {"arch": arch, "task": task, "dropout": dropout, "padding": padding,
                "attn_requested": attn, "optimizer": optimizer["name"] if kind == "train"
                else None, "kind": kind}
    # Generation draws from its own stream, so the other cases stay what they were.
    decode = random.Random(f"generate-{seed}")
    if task == "causal-lm" and decode.random() < 0.35:
        return _generate_case(seed, doc, settings, decode, config["vocab_size"])
    return HFCase(seed, doc, plan, settings)


def _generate_case(seed: int, doc: dict[str, Any], settings: dict[str, Any],
                   rng: random.Random, vocab: int) -> HFCase:
    """A generate job on the case's model and prompts, with random decoding settings, a
    generation fault (or a corrupted op, perhaps with a misbehaving answer) for the cheater,
    and a random batch size and cache for the honest provider."""
    generation: dict[str, Any] = {"max_new_tokens": rng.randint(2, 4)}
    if rng.random() < 0.6:
        generation.update(temperature=rng.choice([0.7, 1.0, 1.3]),
                          top_p=rng.choice([0.6, 0.9, 1.0]), top_k=rng.choice([0, 5]))
    if rng.random() < 0.4:
        generation["repetition_penalty"] = rng.choice([0.8, 1.3])
    if rng.random() < 0.5:
        generation["stop_tokens"] = sorted(rng.sample(range(1, vocab), 3))
    doc = {"program": "hf", "kind": "generate", "config": doc["config"],
           "dataset": doc["dataset"], "seed": doc["seed"], "generation": generation,
           "checkpoint_interval": rng.choice([1, 3])}
    fault = rng.choice([*GENERATE_FAULTS, "corrupt_op"])
    answer = rng.choice([None, None, *ANSWER_FAULTS]) if fault == "corrupt_op" else None
    settings = {**settings, "kind": "generate", "optimizer": None, "generation": generation,
                "generate_batch": rng.choice([1, 3, 8]), "kv_cache": rng.random() < 0.7}
    return HFCase(seed, doc, FaultPlan(fault, answer=answer, seed=seed), settings)


def _key(label: str) -> SigningKey:
    return SigningKey.from_seed(label.encode().ljust(32, b"\0")[:32])


def run_case(case: HFCase, *, honest_plan: FaultPlan | None = None) -> dict[str, Any]:
    """Run a case; returns its outcome. Raises ``AssertionError`` if the honest side loses.

    ``honest_plan`` makes the "honest" side cheat too (a check that a loss is detected).
    """
    from verde.protocol.jobs.spec import JobSpec

    spec = JobSpec.from_mapping(case.doc)
    decoding = {"generate_batch": case.settings.get("generate_batch", 8),
                "kv_cache": case.settings.get("kv_cache", True)}
    honest = (Provider(_key(f"hf-honest-{case.seed}"), "honest", **decoding)
              if honest_plan is None else
              CheatingProvider(_key(f"hf-honest-{case.seed}"), "honest", plan=honest_plan,
                               **decoding))
    cheater = CheatingProvider(_key(f"hf-cheater-{case.seed}"), "cheater", plan=case.plan)
    honest.submit(spec)
    cheater.submit(spec)
    honest_side = "a" if case.seed % 2 else "b"
    pair = (honest, cheater) if honest_side == "a" else (cheater, honest)
    peers = {"a": LocalPeer(pair[0]), "b": LocalPeer(pair[1])}
    outcome = {"seed": case.seed, **case.settings, "fault": case.plan.compute,
               "answer_fault": case.plan.answer}
    try:
        state = DisputeState(spec, peers["a"].result(spec.job_id), peers["b"].result(spec.job_id))
    except NoDisputeError:
        if cheater.result(spec.job_id).payload != honest.result(spec.job_id).payload:
            raise AssertionError(f"case {case.seed}: results differ but no dispute") from None
        return {**outcome, "disputed": False, "honest_won": True}
    stats = DisputeStats()
    verdict = run_dispute(state, peers, retransmit=True, stats=stats)
    won = verdict.winner == honest_side and honest_side not in verdict.losers
    if not won:
        raise AssertionError(f"case {case.seed}: the honest provider lost: "
                             f"{verdict.to_json()} ({case.settings}, {case.plan})")
    return {**outcome, "disputed": True, "honest_won": True, "reason": verdict.reason,
            "rounds": stats.rounds}
