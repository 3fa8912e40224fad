"""Text files to an ``hf`` job's dataset with a model directory's own tokenizer.

Why here: the fields the ``hf`` program reads (``input_ids``, ``attention_mask``, ``labels``;
see :mod:`verde.protocol.jobs.hf.program`) must be fixed-length int64 arrays, which is what a
user's sentences are not. The tokenizer is read from the local directory only
(``local_files_only``): nothing is downloaded.

A line is one sample; with ``labelled=True`` it is ``<integer label><TAB><text>``. Sequences
are padded (``attention_mask`` 0) or truncated to ``seq_len`` tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from verde.protocol.jobs.errors import DatasetError
from verde.protocol.jobs.hf.source import transformers_version


def read_lines(path: str | Path, *, labelled: bool) -> tuple[list[str], list[int] | None]:
    """The non-empty lines of a text file (and their labels when ``labelled``)."""
    try:
        lines = [ln.rstrip("\r\n") for ln in Path(path).read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"text file {path}: cannot read ({exc})") from exc
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        raise DatasetError(f"text file {path}: no non-empty lines")
    if not labelled:
        return lines, None
    texts, labels = [], []
    for number, line in enumerate(lines, 1):
        label, sep, text = line.partition("\t")
        if not sep or not label.strip().lstrip("-").isdigit() or not text.strip():
            raise DatasetError(f"text file {path}: line {number} must be <integer label><TAB>"
                               f"<text>, got {line[:60]!r}")
        labels.append(int(label))
        texts.append(text)
    return texts, labels


def tokenize_texts(model_dir: str | Path, texts: list[str], seq_len: int,
                   labels: list[int] | None = None) -> dict[str, np.ndarray]:
    """``input_ids`` and ``attention_mask`` (int64 [N, seq_len]) and ``labels`` (int64 [N])."""
    if not isinstance(seq_len, int) or seq_len < 1:
        raise ValueError(f"seq_len must be a positive int, got {seq_len!r}")
    tokenizer = load_tokenizer(model_dir)
    if tokenizer.pad_token is None:  # GPT-2 style tokenizers have none: pad with EOS, masked
        tokenizer.pad_token = tokenizer.eos_token
    enc = tokenizer(texts, padding="max_length", truncation=True, max_length=seq_len,
                    return_tensors="np")
    out = {"input_ids": np.asarray(enc["input_ids"], dtype=np.int64),
           "attention_mask": np.asarray(enc["attention_mask"], dtype=np.int64)}
    if labels is not None:
        out["labels"] = np.asarray(labels, dtype=np.int64)
    return out


def load_tokenizer(model_dir: str | Path) -> Any:
    """The tokenizer a local model directory holds (never downloaded)."""
    transformers_version()  # a clear error without the extra
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    except (OSError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:300]  # transformers' message spans lines
        raise DatasetError(f"model directory {model_dir}: no tokenizer there ({reason})") from exc


def token_decoder(model_dir: str | Path) -> Callable[[list[int]], str]:
    """Token ids -> text with the directory's tokenizer (special tokens kept)."""
    tokenizer = load_tokenizer(model_dir)

    def decode(ids: list[int]) -> str:
        text: str = tokenizer.decode(ids)
        return text

    return decode
