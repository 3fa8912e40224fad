"""The job spec: what to compute, content-addressed by the digest of its canonical form.

Why: in refereed delegation (Canetti, Riva, Rothblum 2011; Verde, Arun et al. 2025) every party
must agree on *what* was asked before they can argue about *how* it was computed. A job is
therefore a small, fully explicit document — program and its config, dataset, optimizer and
its settings, steps, batch size, seed, checkpoint interval — whose identity is the SHA-256 of
its canonical JSON (``proofs.canonical_json``). Defaults are filled in before hashing, so two
specs that mean the same job have the same id.

Specs are read from TOML (``tomllib``) or JSON. Example (TOML)::

    program = "mlp"
    kind = "train"
    steps = 100
    batch_size = 32
    seed = 7
    checkpoint_interval = 25
    [config]
    hidden = 64
    [dataset]
    name = "digits"
    [optimizer]
    name = "sgd"
    lr = 0.1

``backend`` says how operators execute: ``"repops"`` (default; ``repops.reproducible()``,
the same bits on any machine, which is what makes disputes between different machines fair)
or ``"torch"`` (torch's deterministic algorithms in one thread: reproducible on one machine
and software stack only; for programs using ops repops does not cover yet). A ``"torch"`` job
binds that platform (``platform``: torch version, CPU architecture, kernel ISA; see
:func:`torch_platform`), so a provider or arbiter elsewhere refuses it at submission.

A user file dataset is ``{name = "file", location = "data.npz", root = "<hex>"}``: ``root`` is
the Merkle root over the samples and is part of the job's identity, ``location`` is only where
this machine finds the file and is not. A spec meant for other machines (what ``verde
delegate`` sends, ``verde.protocol.jobs.portable``) leaves ``location`` out and describes the
dataset instead (``n_samples``, ``fields``: part of the identity); providers then read the
samples uploaded under ``root`` (``verde.protocol.jobs.uploaded_datasets``).

``init = {root = "<hex>"}`` starts the job from an explicit state 0 instead of the program's
seeded initialisation — fine-tuning from a checkpoint, or the parameters of step t of a larger
run. ``root`` is the ``proofs.state.StateCommitment`` root of that state and part of the job's
identity; the tensors are uploaded to the provider beforehand (``Provider.put_state``), and the
arbiter never needs them: it only ever compares claims about state 0 against this root.
``init = {root = "<hex>", params = "<hex>"}``: only the parameters were uploaded (``params`` is
the root of that upload, ``param/<name>`` entries); the provider builds state 0 from them with
zeroed optimizer slots and checks it against ``root`` (``verde.protocol.jobs.initial``).

``program_version`` binds the program's code (``verde.protocol.jobs.code``): the SHA-256 of
its sources or a version it declares. Left out, it is this process's; given, a process running
other code under that name refuses the job, naming both.

``kind = "gradient"`` is a one-step job whose result *is* a gradient: the mean loss of the
program over the listed dataset ``samples`` (in that order), differentiated at the parameters of
state 0. State 1 holds the unchanged parameters and ``grad/<name>`` for every parameter, so a
gradient can be committed to, fetched with a proof, and disputed like any other step. Gradient
coding (``verde.coding``) uses it for one partition of a training step: replicas that disagree
are settled by a dispute over exactly this job.

``partitions = P`` (training jobs; default 1) fixes how a step's gradient is computed: the batch
is cut into P equal slices in order, each slice's mean-loss gradient is computed on its own, and
the step gradient is ``(g_0 + g_1 + ... + g_{P-1}) / P`` (added in partition order, as coded
training defines it, ``verde.integration.coded_training``). The job fixes the partitions, not
the worker count, so a provider may compute them on any number of worker processes and still
commit to the same states (``verde provider serve --workers W``).

``kind = "generate"`` decodes every prompt of the dataset (token ids, right-padded, with an
``attention_mask``) with a causal LM: one step per (prompt, position), the decoding settings
in ``generation = {max_new_tokens, stop_tokens, pad_token, temperature, top_k, top_p,
repetition_penalty, prompt_lengths}`` (``verde.protocol.jobs.generation``). ``steps`` and
``batch_size = 1`` are filled in; ``prompt_lengths`` is counted from the dataset when this
machine has it (and checked against the spec's when both exist).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from proofs import canonical_json
from verde.protocol.jobs.code import check_code_version
from verde.protocol.jobs.errors import JobSpecError

JOB_KINDS = ("train", "infer", "gradient", "generate")
BACKENDS = ("repops", "torch")
#: The protocol version (``verde.version.PROTOCOL_VERSION``). 4: repops' expm1, tanh, sigmoid
#: and silu compute in binary32 (spec elementwise.md §1, §4) and pow has closed formulas for
#: the exponents 3, -1, -2, 0.5 (§8), so their bits, and every state computed through them,
#: differ from 3; 3: job ids bind the program's code
#: (``program_version``); 2: step-graph leaves are repops ``TraceNode`` records.
SPEC_VERSION = 4
_FIELDS = {
    "version", "program", "program_version", "kind", "config", "dataset", "optimizer", "steps",
    "batch_size", "seed", "checkpoint_interval", "backend", "init", "samples", "platform",
    "partitions", "generation",
}  # fmt: skip
_MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class JobSpec:
    """A validated job spec. Build it with ``JobSpec.from_mapping`` / ``load_job_spec``."""

    program: str
    kind: str
    config: dict[str, Any]
    dataset: dict[str, Any]
    optimizer: dict[str, Any]
    steps: int
    batch_size: int
    seed: int
    checkpoint_interval: int
    backend: str = "repops"
    init: dict[str, Any] = field(default_factory=dict)
    samples: tuple[int, ...] = ()
    program_version: str = ""
    platform: str = ""
    partitions: int = 1
    generation: dict[str, Any] = field(default_factory=dict)
    _id: str = field(default="", compare=False, repr=False)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> JobSpec:
        """Validate ``data`` (a parsed TOML/JSON document) and fill in defaults."""
        from verde.protocol.jobs.datasets import normalize_dataset_spec
        from verde.protocol.jobs.optimizers import normalize_optimizer
        from verde.protocol.jobs.registry import get_program

        if not isinstance(data, Mapping):
            raise JobSpecError(f"job spec must be a table/object, got {type(data).__name__}")
        unknown = sorted(set(data) - _FIELDS)
        if unknown:
            raise JobSpecError(f"job spec: unknown field(s) {unknown}; allowed: {sorted(_FIELDS)}")
        version = data.get("version", SPEC_VERSION)
        if version != SPEC_VERSION:
            raise JobSpecError(f"job spec: version must be {SPEC_VERSION} (this release's "
                               f"protocol), got {version!r}: a job of another protocol "
                               "version has other ids and commitments; re-create it with "
                               "parties of this release")
        if "version" in data and "program_version" not in data:
            # A canonical spec (what ``to_dict`` writes) always names its program's code: this
            # one was written before jobs bound it, and its id would silently change here.
            raise JobSpecError(
                "job spec: a canonical spec (with 'version') must name its program's code "
                "('program_version'); this one predates code-bound jobs: re-create the job "
                "from its spec file without 'version'")
        program_name = _require_str(data, "program")
        program = get_program(program_name)
        program_version = check_code_version(program, data.get("program_version"))
        kind = data.get("kind", "train")
        if kind not in JOB_KINDS:
            raise JobSpecError(f"job spec: kind must be one of {JOB_KINDS}, got {kind!r}")
        if kind not in program.kinds and not (kind == "gradient" and "train" in program.kinds):
            raise JobSpecError(
                f"job spec: program {program_name!r} supports kinds {program.kinds}, not {kind!r}"
            )
        config = data.get("config", {})
        if not isinstance(config, Mapping):
            raise JobSpecError("job spec: config must be a table/object")
        config = program.normalize_config(dict(config))
        dataset_raw = data.get("dataset")
        if not isinstance(dataset_raw, Mapping):
            raise JobSpecError("job spec: dataset is missing (a table with at least 'name')")
        dataset = normalize_dataset_spec(dict(dataset_raw))
        optimizer_raw = data.get("optimizer", None if kind == "train" else {})
        if kind == "train":
            if not isinstance(optimizer_raw, Mapping):
                raise JobSpecError("job spec: a training job needs an optimizer table")
            optimizer = normalize_optimizer(dict(optimizer_raw))
        else:
            if optimizer_raw:
                raise JobSpecError(f"job spec: a {kind} job takes no optimizer")
            optimizer = {}
        samples = _samples(data, kind)
        if kind == "gradient":
            data = {"steps": 1, "batch_size": len(samples), **data}
            if data["steps"] != 1:
                raise JobSpecError(f"job spec: a gradient job has exactly 1 step, got "
                                   f"{data['steps']!r}")
            if data["batch_size"] != len(samples):
                raise JobSpecError(f"job spec: batch_size {data['batch_size']!r} differs from "
                                   f"the {len(samples)} samples listed")
        generation: dict[str, Any] = {}
        if kind == "generate":
            generation = _generation(data.get("generation"), dataset, program)
            n_steps = len(generation["prompt_lengths"]) * generation["max_new_tokens"]
            data = {"steps": n_steps, "batch_size": 1, **data}
            if data["steps"] != n_steps:
                raise JobSpecError(f"job spec: a generate job has one step per prompt and "
                                   f"position ({n_steps}), got steps = {data['steps']!r}")
            if data["batch_size"] != 1:
                raise JobSpecError("job spec: a generate job's step is one (prompt, position): "
                                   "batch_size is 1 (how many prompts a provider decodes at "
                                   "once is its own choice, `verde provider serve "
                                   "--generate-batch`)")
        elif "generation" in data:
            raise JobSpecError(f"job spec: only generate jobs take a generation table, not "
                               f"{kind} jobs")
        steps = _positive_int(data, "steps", MAX_STEPS)
        batch_size = _positive_int(data, "batch_size", MAX_BATCH_SIZE)
        seed = data.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= _MAX_SEED:
            raise JobSpecError(f"job spec: seed must be an integer in [0, 2**63), got {seed!r}")
        interval = data.get("checkpoint_interval", max(1, min(steps, 50)))
        if not isinstance(interval, int) or isinstance(interval, bool) or interval <= 0:
            raise JobSpecError(
                f"job spec: checkpoint_interval must be a positive integer, got {interval!r}"
            )
        backend = data.get("backend", "repops")
        if backend not in BACKENDS:
            raise JobSpecError(f"job spec: backend must be one of {BACKENDS}, got {backend!r}")
        init = _init(data.get("init"))
        platform = _platform(backend, data.get("platform"))
        partitions = _partitions(data.get("partitions", 1), kind, batch_size)
        spec = cls(program_name, kind, config, dataset, optimizer, steps, batch_size, seed,
                   interval, backend, init, samples, program_version, platform,
                   partitions, generation)  # fmt: skip
        object.__setattr__(spec, "_id", hashlib.sha256(canonical_json(spec.identity())).hexdigest())
        return spec

    def identity(self) -> dict[str, Any]:
        """The canonical content the job id is the digest of: everything but where this
        machine finds files (the dataset's ``location``, a program's local paths)."""
        from verde.protocol.jobs.registry import get_program

        doc = self.to_dict()
        doc["dataset"] = {k: v for k, v in doc["dataset"].items() if k != "location"}
        doc["config"] = get_program(self.program).identity_config(doc["config"])
        return doc

    def to_dict(self) -> dict[str, Any]:
        """The full spec as a JSON-able dict (defaults filled in).

        ``init``, ``samples`` and ``partitions`` (when not 1) appear only when set, so the ids
        of jobs that do not use them are the same as before these fields existed.
        """
        doc: dict[str, Any] = {
            "version": SPEC_VERSION,
            "program": self.program,
            "program_version": self.program_version,
            "kind": self.kind,
            "config": dict(self.config),
            "dataset": dict(self.dataset),
            "optimizer": dict(self.optimizer),
            "steps": self.steps,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "checkpoint_interval": self.checkpoint_interval,
            "backend": self.backend,
        }
        if self.init:
            doc["init"] = dict(self.init)
        if self.samples:
            doc["samples"] = list(self.samples)
        if self.platform:
            doc["platform"] = self.platform
        if self.partitions != 1:
            doc["partitions"] = self.partitions
        if self.generation:
            doc["generation"] = dict(self.generation)
        return doc

    @property
    def init_root(self) -> bytes | None:
        """Root of the explicit state 0 (``init``), or None for the program's own init."""
        return bytes.fromhex(self.init["root"]) if self.init else None

    @property
    def job_id(self) -> str:
        """Hex SHA-256 of ``canonical_json(self.identity())``."""
        return self._id

    def with_changes(self, **changes: Any) -> JobSpec:
        """A new validated spec with some top-level fields replaced."""
        doc = self.to_dict()
        doc.update(changes)
        return JobSpec.from_mapping(doc)


def _require_str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise JobSpecError(f"job spec: {key!r} is missing or not a non-empty string")
    return value


#: Upper bounds that keep a spec runnable and its numbers inside every wire format (uint64).
MAX_STEPS = 10**7
MAX_BATCH_SIZE = 2**20


def _positive_int(data: Mapping[str, Any], key: str, maximum: int) -> int:
    if key not in data:
        raise JobSpecError(f"job spec: {key!r} is missing")
    value = data[key]
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= maximum:
        raise JobSpecError(
            f"job spec: {key!r} must be an integer in [1, {maximum}], got {value!r}")
    return value


def _samples(data: Mapping[str, Any], kind: str) -> tuple[int, ...]:
    raw = data.get("samples")
    if kind != "gradient":
        if raw is not None:
            raise JobSpecError(f"job spec: only gradient jobs list samples, not {kind} jobs")
        return ()
    if not isinstance(raw, list | tuple) or not raw:
        raise JobSpecError("job spec: a gradient job needs 'samples', a non-empty list of "
                           "dataset indices")
    if len(raw) > MAX_BATCH_SIZE:
        raise JobSpecError(f"job spec: at most {MAX_BATCH_SIZE} samples, got {len(raw)}")
    for i, index in enumerate(raw):
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 2**63:
            raise JobSpecError(f"job spec: samples[{i}] must be a dataset index >= 0, got "
                               f"{index!r}")
    return tuple(raw)


def _partitions(raw: Any, kind: str, batch_size: int) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or not 0 < raw <= batch_size:
        raise JobSpecError(f"job spec: partitions must be an integer in [1, batch_size = "
                           f"{batch_size}], got {raw!r}")
    if raw != 1 and kind != "train":
        raise JobSpecError(f"job spec: only training jobs take partitions, not {kind} jobs")
    if batch_size % raw:
        raise JobSpecError(f"job spec: partitions {raw} does not divide batch_size {batch_size} "
                           "(every partition is an equal slice of the batch)")
    return raw


def _generation(raw: Any, dataset: Mapping[str, Any], program: Any) -> dict[str, Any]:
    """The normalized ``generation`` table; prompt lengths counted from the dataset when this
    machine has its samples (and then checked against the spec's, if it lists them)."""
    from verde.protocol.jobs.datasets import load_dataset
    from verde.protocol.jobs.errors import DatasetError
    from verde.protocol.jobs.generation import normalize_generation, prompt_lengths

    lengths = None
    try:
        fields = load_dataset(dataset).fields
    except DatasetError:
        fields = None  # a remote dataset not uploaded here: the spec must list the lengths
    if fields is not None:
        lengths = prompt_lengths(fields, program.prompt_field)
    return normalize_generation(raw, lengths)


def _init(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or "root" not in raw or not set(raw) <= {"root", "params"}:
        raise JobSpecError("job spec: init must be a table with 'root' (the state 0 root) and "
                           "optionally 'params' (the root of its uploaded parameters)")
    out = {}
    for key in ("root", "params"):
        value = raw.get(key)
        if key not in raw:
            continue
        if (not isinstance(value, str) or len(value) != 64
                or any(c not in "0123456789abcdef" for c in value)):
            raise JobSpecError(f"job spec: init.{key} must be 64 lowercase hex digits, "
                               f"got {value!r}")
        out[key] = value
    return out


def torch_platform() -> str:
    """What vendor kernels' bits depend on (``backend = "torch"``): torch's version, the CPU
    architecture and the instruction set torch's CPU kernels were dispatched to. Two machines
    that differ in any of these may compute different bits, so such a job binds it."""
    import platform

    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    return f"torch {torch.__version__}; {platform.machine()}; cpu kernels {capability}"


def _platform(backend: str, claimed: Any) -> str:
    if backend != "torch":
        if claimed not in (None, ""):
            raise JobSpecError("job spec: platform binds backend 'torch' jobs only")
        return ""
    mine = torch_platform()
    if claimed is not None and claimed != mine:
        raise JobSpecError(
            f"job spec: this backend 'torch' job was made for platform {claimed!r}, this "
            f"process runs on {mine!r}; vendor kernels are reproducible on one platform only, "
            "so it cannot defend this job (use backend 'repops', the same bits everywhere)")
    return mine


def parse_job_spec(text: str, fmt: str) -> JobSpec:
    """Parse a spec from ``text`` in ``fmt`` ("toml" or "json")."""
    return JobSpec.from_mapping(parse_spec_document(text, fmt))


def parse_spec_document(text: str, fmt: str) -> dict[str, Any]:
    """The document ``text`` holds in ``fmt`` ("toml" or "json"), not yet validated (a spec
    file's local paths are resolved on it first: ``verde.protocol.jobs.spec_file``)."""
    if fmt == "toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise JobSpecError(f"job spec: invalid TOML ({exc})") from exc
    elif fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise JobSpecError(f"job spec: invalid JSON ({exc})") from exc
    else:
        raise ValueError(f"fmt must be 'toml' or 'json', got {fmt!r}")
    if not isinstance(data, dict):
        raise JobSpecError(f"job spec must be a table/object, got {type(data).__name__}")
    return data
