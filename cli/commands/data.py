"""``verde data``: a dataset file's sample root, and text files tokenised for ``hf`` jobs."""

from __future__ import annotations

from pathlib import Path

import click

from cli.output import emit


@click.group()
def data() -> None:
    """Prepare dataset files for jobs."""


@data.command("root")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def root(file: Path, as_json: bool) -> None:
    """Print the sample Merkle root of FILE (.npz or .safetensors), the dataset's `root`."""
    from verde.protocol.jobs.datasets import describe_dataset, read_dataset_file

    if not file.is_file():
        raise click.BadParameter(f"{file} does not exist or is not a file", param_hint="FILE")
    dataset = read_dataset_file(file)
    doc = {"file": str(file), "root": dataset.root.hex(), **describe_dataset(dataset)}
    emit(doc, as_json=as_json, human=doc["root"])


@data.command("tokenize")
@click.argument("text", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", "model_dir", required=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Local model directory holding the tokenizer (nothing is downloaded).")
@click.option("--seq-len", type=click.IntRange(min=1), required=True,
              help="Tokens per sample (padded or truncated).")
@click.option("--labels", "labelled", is_flag=True,
              help="Each line is <integer label><TAB><text>.")
@click.option("--out", "out_file", required=True,
              type=click.Path(dir_okay=False, path_type=Path), help="The .npz to write.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def tokenize(*, text: Path, model_dir: Path, seq_len: int, labelled: bool, out_file: Path,
             as_json: bool) -> None:
    """Tokenise TEXT (one sample a line) with the tokenizer of --model into an .npz dataset
    (input_ids, attention_mask, labels with --labels) and print its root."""
    import numpy as np

    from verde.protocol.jobs.datasets import file_dataset_root
    from verde.protocol.jobs.hf.tokenize import read_lines, tokenize_texts

    if out_file.suffix != ".npz":
        raise click.BadParameter(f"{out_file} must end in .npz", param_hint="--out")
    texts, labels = read_lines(text, labelled=labelled)
    arrays = tokenize_texts(model_dir, texts, seq_len, labels)
    np.savez(out_file, **arrays)  # type: ignore[arg-type]
    doc = {"file": str(out_file), "root": file_dataset_root(out_file), "n_samples": len(texts),
           "fields": sorted(arrays)}
    emit(doc, as_json=as_json, human=f"{out_file}: {len(texts)} samples\nroot {doc['root']}")
