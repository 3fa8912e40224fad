"""``verde coded-matmul`` and ``verde coded-infer``: coded computation over providers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.options import client_key_option, programs_option, tls_options
from cli.output import emit
from cli.progress import progress_view

if TYPE_CHECKING:
    from proofs import SigningKey
    from verde.integration.coded_compute import ProviderCodedRun

_FILE = click.Path(dir_okay=False, path_type=Path)


def _shared(fn: Any) -> Any:
    """Options both commands take: providers, arbiter, disputes, output, keys."""
    for option in reversed([
        click.option("--provider", "providers", multiple=True, required=True,
                     help="Provider address host:port (repeat; share i goes to provider "
                          "i mod P, so give as many providers as shares to keep a cheater "
                          "to one share)."),
        click.option("--arbiter", "arbiter_addr", default=None,
                     help="Arbiter address host:port (referees disputes over located shares; "
                          "without it this process referees)."),
        click.option("--no-dispute", is_flag=True,
                     help="Only let the code locate wrong shares; do not dispute them."),
        click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True),
                     default=None, help="Seconds to wait for answers; the rest straggle."),
        click.option("--out", "out", type=_FILE, default=None,
                     help="Write the result here (.npy) and the report beside it (.json)."),
        click.option("--json", "as_json", is_flag=True, help="Machine-readable output."),
    ]):
        fn = option(fn)
    return client_key_option(tls_options(fn))


@click.command("coded-matmul")
@click.argument("a_path", metavar="A", type=_FILE)
@click.argument("b_path", metavar="B", type=_FILE)
@click.option("--scheme", type=click.Choice(["ft-strassen", "replicated"]),
              default="ft-strassen", show_default=True,
              help="ft-strassen: two Strassen-like algorithms and two parity products "
                   "(16 nodes); replicated: three Strassen copies (21 nodes).")
@_shared
def coded_matmul(*, a_path: Path, b_path: Path, scheme: str, providers: tuple[str, ...],
                 arbiter_addr: str | None, no_dispute: bool, timeout_s: float | None,
                 out: Path | None, as_json: bool, tls: object,
                 client_key: SigningKey) -> None:
    """A @ B (float32 .npy matrices) by a fault-tolerant Strassen-like scheme over --provider.

    Each node's block product is a verde job; the check relations locate a wrong node, a
    second provider recomputes it and a verde dispute names who was wrong.
    """
    from arbiter.coded_compute import build_scheme
    from arbiter.coded_compute import coded_matmul as run_matmul
    from verde.integration.coded_compute.files import CodedInputError, load_array

    a = load_array(a_path, "matrix A", ndim=2)
    b = load_array(b_path, "matrix B", ndim=2)
    if a.shape[1] != b.shape[0]:
        raise CodedInputError(f"matrix B {b_path}: A is {tuple(a.shape)} and B "
                              f"{tuple(b.shape)}: they do not multiply")
    plan = build_scheme(scheme)

    def go(view: Any, arbiter: Any, peer_factory: Any) -> ProviderCodedRun:
        return run_matmul(a, b, plan, list(providers), arbiter, peer_factory=peer_factory,
                          dispute=not no_dispute, timeout_s=timeout_s, report=view.note,
                          rounds=view.rounds, verdicts=view.finished)

    run = _run(go, arbiter_addr, tls, client_key, as_json)
    _finish(run, f"{scheme} product {tuple(a.shape)} @ {tuple(b.shape)}", out, as_json)


@click.command("coded-infer")
@click.argument("inputs", type=_FILE)
@click.option("--program", required=True, help="The model's verde program (mlp, cnn, ...).")
@click.option("--config", "config_json", default="{}", show_default=True,
              help="The program's config as JSON (e.g. '{\"hidden\": 64}').")
@click.option("--params", "params_path", type=_FILE, required=True,
              help="The model's parameters (.safetensors, e.g. from train-coded --out).")
@click.option("--code", type=click.Choice(["bacc", "sbacc"]), default="bacc",
              show_default=True, help="bacc: tolerate stragglers; sbacc: also locate workers "
                                      "that answer wrongly (DCT code).")
@click.option("--groups", type=click.IntRange(min=1), required=True,
              help="K: the batch is cut into K equal groups (the code's inputs).")
@click.option("--redundancy", type=click.IntRange(min=0), default=0, show_default=True,
              help="SBACC: DCT redundancy r (locates up to (r - stragglers) / 2 workers).")
@click.option("--tolerance", type=click.FloatRange(min=0, min_open=True), default=None,
              help="SBACC: the largest misfit honest answers have (calibrate on a trusted "
                   "run: verde.coding.SBACC.honest_misfit).")
@click.option("--wait-for", type=click.IntRange(min=1), default=None,
              help="Decode once this many shares answered (default: all).")
@click.option("--sample-shape", default=None,
              help="Reshape each input row to this shape, e.g. 1,8,8 for the cnn program.")
@_shared
@programs_option
def coded_infer(*, inputs: Path, program: str, config_json: str, params_path: Path, code: str,
                groups: int, redundancy: int, tolerance: float | None, wait_for: int | None,
                sample_shape: str | None, providers: tuple[str, ...],
                arbiter_addr: str | None, no_dispute: bool, timeout_s: float | None,
                out: Path | None, as_json: bool, tls: object,
                client_key: SigningKey) -> None:
    """A model on the batch INPUTS (.npy, one row per sample) by BACC/SBACC over --provider.

    Each share is the model's inference job on one encoded group; the decoded outputs are an
    approximation (Berrut interpolation). SBACC locates wrong workers; a second provider
    recomputes the share and a verde dispute names who was wrong.
    """
    from arbiter.coded_compute import build_code
    from arbiter.coded_compute import coded_inference as run_inference
    from verde.integration.coded_compute.files import (
        CodedInputError,
        load_array,
        load_parameters,
    )
    from verde.integration.refereed_inference import ServiceModel

    try:
        config = json.loads(config_json)
    except json.JSONDecodeError as exc:
        raise CodedInputError(f"--config: not JSON: {exc}") from None
    if not isinstance(config, dict):
        raise CodedInputError("--config: must be a JSON object")
    shape = None
    if sample_shape:
        try:
            shape = tuple(int(d) for d in sample_shape.split(","))
        except ValueError:
            raise CodedInputError(f"--sample-shape: expected comma-separated ints, got "
                                  f"{sample_shape!r}") from None
    batch = load_array(inputs, "inputs")
    model = ServiceModel(program, load_parameters(params_path), config=config,
                         sample_shape=shape)
    plan = build_code(code, len(providers), groups, redundancy=redundancy,
                      tolerance=tolerance)

    def go(view: Any, arbiter: Any, peer_factory: Any) -> ProviderCodedRun:
        return run_inference(model, batch, plan, list(providers), arbiter,
                             peer_factory=peer_factory, dispute=not no_dispute,
                             timeout_s=timeout_s, wait_for=wait_for, report=view.note,
                             rounds=view.rounds, verdicts=view.finished)

    run = _run(go, arbiter_addr, tls, client_key, as_json)
    _finish(run, f"{code} inference of {program} on {tuple(batch.shape)}", out, as_json)


def _run(go: Any, arbiter_addr: str | None, tls: object, client_key: SigningKey,
         as_json: bool) -> ProviderCodedRun:
    from arbiter.arbiter_client import ArbiterClient
    from arbiter.provider_client import GrpcProviderPeer

    arbiter = (ArbiterClient(arbiter_addr, tls=tls, client_key=client_key)  # type: ignore[arg-type]
               if arbiter_addr else None)
    try:
        with progress_view(as_json) as view:
            result: ProviderCodedRun = go(view, arbiter, lambda a: GrpcProviderPeer(
                a, tls=tls, client_key=client_key))  # type: ignore[arg-type]
            return result
    finally:
        if arbiter is not None:
            arbiter.close()


def _finish(run: ProviderCodedRun, what: str, out: Path | None, as_json: bool) -> None:
    doc = run.report()
    if out is not None:
        from verde.integration.coded_compute.files import save_array

        save_array(out, run.result)
        out.with_suffix(".json").write_text(json.dumps(doc, indent=2, sort_keys=True))
        doc["written"] = [str(out), str(out.with_suffix(".json"))]
    flagged = [s["share"] for s in doc["shares"] if s.get("flagged")]
    late = [s["share"] for s in doc["shares"] if s["state"] != "answered"]
    human = (f"{what}: {len(doc['shares'])} shares, {len(late)} straggled or failed\n"
             f"flagged by the code: {flagged or 'none'}; disputes: {len(doc['disputes'])}; "
             f"faulty providers: {', '.join(doc['named_faulty']) or 'none'}"
             + (f"\nwritten: {', '.join(doc['written'])}" if out is not None else ""))
    emit(doc, as_json=as_json, human=human)
