"""One worker process of a scaled-out provider, and the frames it speaks with its provider.

Why a plain subprocess on stdin/stdout rather than a torch.distributed group: the provider
process owns everything a dispute needs (commitments, checkpoints, signed answers) and may hold
several jobs at once, while torch.distributed has one default group per process. So the
provider stays the coordinator and each worker only computes the loss gradients of a
contiguous run of the job's partitions (``verde.protocol.graph.execution.run_partitions``);
the provider adds them in partition order and takes the optimizer step itself
(``run_step_from_partitions``). What crosses the pipe is a frame: a JSON header and the
tensors as safetensors bytes (raw little-endian data with dtype and shape, never pickle)::

    u64 header length | u64 payload length | header (UTF-8 JSON) | payload (safetensors)

A request's header is ``{"spec": <job spec>, "step": s, "first": a, "stop": b,
"program_module": <module defining the program>}`` (imported for programs that are not built
in, so a registered program must live in an importable module) and its
tensors the parameters of state ``s - 1`` (``param/<name>``); the answer's header is
``{"ok": true}`` (tensors ``<p>/<name>``, the gradient of partition ``p``) or
``{"error": "<message>"}``. The worker reads its batch itself (it is a function of the spec
and the step). Run as ``python -m verde.protocol.provider.partition_worker``; it stops when its
stdin closes.
"""

from __future__ import annotations

import importlib
import json
import os
import struct
import sys
from collections.abc import Mapping
from typing import IO, Any

import torch

_LENGTHS = struct.Struct("<QQ")
#: Frames above this are refused (a header is small; the payload is one state's parameters).
MAX_FRAME_BYTES = 1 << 34


class FrameError(Exception):
    """A frame is truncated, oversized or malformed (the peer died or is not a verde worker)."""


def encode_frame(header: Mapping[str, Any],
                 tensors: Mapping[str, torch.Tensor] | None = None) -> bytes:
    """One frame's bytes."""
    from safetensors.torch import save

    head = json.dumps(dict(header), separators=(",", ":")).encode()
    payload = save({k: v.detach().contiguous().clone() for k, v in tensors.items()}) \
        if tensors else b""
    return _LENGTHS.pack(len(head), len(payload)) + head + payload


def read_raw_frame(src: IO[bytes]) -> bytes | None:
    """One frame's bytes, unparsed; None at a clean end of stream (before a frame starts)."""
    lengths = src.read(_LENGTHS.size)
    if not lengths:
        return None
    if len(lengths) < _LENGTHS.size:
        rest = read_exactly(src, _LENGTHS.size - len(lengths))
        if rest is None:
            raise FrameError("truncated frame header")
        lengths += rest
    n_head, n_payload = _LENGTHS.unpack(lengths)
    if n_head + n_payload > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {n_head + n_payload} bytes is over the limit")
    body = read_exactly(src, n_head + n_payload)
    if body is None:
        raise FrameError("truncated frame")
    return lengths + body


def decode_frame(raw: bytes) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The header and tensors of a frame's bytes (:func:`read_raw_frame`)."""
    from safetensors.torch import load

    n_head, n_payload = _LENGTHS.unpack_from(raw)
    head = raw[_LENGTHS.size:_LENGTHS.size + n_head]
    payload = raw[_LENGTHS.size + n_head:]
    try:
        header = json.loads(head)
        tensors = load(payload) if n_payload else {}
    except (ValueError, RuntimeError) as exc:
        raise FrameError(f"malformed frame ({exc})") from exc
    if not isinstance(header, dict):
        raise FrameError("a frame header must be a JSON object")
    return header, dict(tensors)


def read_exactly(src: IO[bytes], size: int) -> bytes | None:
    """``size`` bytes, or None when the stream ends first (a socket returns short reads)."""
    chunks, left = [], size
    while left:
        chunk = src.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def write_frame(out: IO[bytes], header: Mapping[str, Any],
                tensors: Mapping[str, torch.Tensor] | None = None) -> None:
    """Write one frame and flush."""
    out.write(encode_frame(header, tensors))
    out.flush()


def read_frame(src: IO[bytes]) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
    """Read one frame; None at a clean end of stream (before a frame starts)."""
    raw = read_raw_frame(src)
    return None if raw is None else decode_frame(raw)


def answer(header: Mapping[str, Any], tensors: Mapping[str, torch.Tensor],
           ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The worker's answer to one request (its gradients, or an error message)."""
    from verde.errors import VerdeError
    from verde.protocol.graph.execution import run_partitions
    from verde.protocol.jobs.context import JobContext
    from verde.protocol.jobs.spec import JobSpec

    try:
        _import_program(header)
        ctx = JobContext.from_spec(JobSpec.from_mapping(header["spec"]))
        first, stop = int(header["first"]), int(header["stop"])
        parts = run_partitions(ctx, tensors, int(header["step"]), range(first, stop))
    except (VerdeError, ValueError, KeyError, TypeError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}, {}
    out = {f"{first + i}/{n}": g for i, part in enumerate(parts) for n, g in part.items()}
    return {"ok": True}, out


def _import_program(header: Mapping[str, Any]) -> None:
    """Import the module that registers the job's program, for programs that are not built in
    (``program_module``: the provider's own module name for it, never a client's)."""
    from verde.protocol.jobs.registry import program_names

    module = header.get("program_module")
    if module and header["spec"].get("program") not in program_names():
        if module == "__main__":
            raise ValueError(f"program {header['spec'].get('program')!r} is defined in the "
                             "provider's __main__ script, which worker processes cannot "
                             "import; define it in an importable module")
        importlib.import_module(module)


def main() -> None:
    """Serve requests from stdin until it closes. Stray output of libraries goes to stderr,
    so stdout carries frames only."""
    frames = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    requests = sys.stdin.buffer
    while (frame := read_frame(requests)) is not None:
        write_frame(frames, *answer(*frame))


if __name__ == "__main__":
    main()
    # Nothing is left to flush or release (every frame was flushed); skipping the interpreter's
    # teardown of torch and numba makes a pool of workers stop in milliseconds, not seconds.
    os._exit(0)
