"""A provider's worker processes: one training step's partitions computed on W processes.

Why this gives the single-process bits: a job with ``partitions = P`` defines its step gradient
as ``(g_0 + ... + g_{P-1}) / P`` over fixed, equal slices of the batch
(``verde.protocol.jobs.spec``), every g_p is computed with repops (the same bits in any process
and at any batch position), each worker's random ops start where its first partition starts
drawing in the sequential step (``execution.partition_stream``), and the provider adds the
gradients in partition order and takes the optimizer step once
(``execution.run_step_from_partitions``). The worker count is the provider's business, not the
job's: commitments, replays and dispute answers (which retrace the step in one process) are the
same as a one-process provider's.

Worker ``r`` of ``min(W, P)`` gets the contiguous partitions ``repops.collectives
.partition_range(r, W, P)``. Workers are ``python -m verde.protocol.provider.partition_worker``
subprocesses (one numba and one torch thread each, so W workers use W cores), started on
first use and stopped by :meth:`PartitionWorkers.close` or when the provider process exits.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from typing import IO

import torch

from repops.collectives import partition_range
from verde.protocol.graph.execution import run_step_from_partitions
from verde.protocol.jobs.context import PARAM, JobContext
from verde.protocol.provider.errors import ProviderError
from verde.protocol.provider.partition_worker import FrameError, read_frame, write_frame

#: Most worker processes one provider runs (more than any one machine's useful core count).
MAX_WORKERS = 256


class WorkerError(ProviderError):
    """A worker process died, or answered with an error or a malformed frame."""


def check_worker_count(workers: object) -> int:
    """``workers`` as a count, or one clear ``ValueError``."""
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"workers must be an integer in [1, {MAX_WORKERS}], got {workers!r}")
    return workers


def _pipe(pipe: IO[bytes] | None) -> IO[bytes]:
    if pipe is None:  # never: the workers are started with both pipes
        raise FrameError("a worker has no pipe")
    return pipe


class PartitionWorkers:
    """``count`` worker processes computing partition gradients for :meth:`run_step`."""

    def __init__(self, count: int) -> None:
        self.count = check_worker_count(count)
        self._procs: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()

    def __enter__(self) -> PartitionWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> list[subprocess.Popen[bytes]]:
        if not self._procs:
            env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                   "MKL_NUM_THREADS": "1"}  # fmt: skip
            self._procs = [
                subprocess.Popen([sys.executable, "-m", "verde.protocol.provider.partition_worker"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
                for _ in range(self.count)
            ]
        return self._procs

    def run_step(self, ctx: JobContext, state: Mapping[str, torch.Tensor], step: int,
                 ) -> dict[str, torch.Tensor]:
        """State ``step`` from state ``step - 1``, bit for bit ``execution.run_step``."""
        total = ctx.spec.partitions
        used = min(self.count, total)
        ranges = [partition_range(r, used, total) for r in range(used)]
        params = {k: v for k, v in state.items() if k.startswith(PARAM)}
        head = {"spec": ctx.spec.to_dict(), "step": step,
                "program_module": type(ctx.program).__module__}
        with self._lock:
            procs = self._start()[:used]
            try:
                for proc, part in zip(procs, ranges, strict=True):
                    write_frame(_pipe(proc.stdin),
                                {**head, "first": part.start, "stop": part.stop}, params)
                grads = [self._collect(proc, part) for proc, part in zip(procs, ranges,
                                                                          strict=True)]
            except (OSError, FrameError) as exc:
                self._stop()
                raise WorkerError(f"a worker process of step {step} of job "
                                  f"{ctx.spec.job_id[:16]} failed: {exc}") from exc
        parts = [{n: grad[f"{p}/{n}"] for n in ctx.param_names}
                 for grad, part in zip(grads, ranges, strict=True) for p in part]
        return run_step_from_partitions(ctx, state, step, parts)

    def _collect(self, proc: subprocess.Popen[bytes], part: range) -> dict[str, torch.Tensor]:
        frame = read_frame(_pipe(proc.stdout))
        if frame is None:
            raise FrameError(f"worker {proc.pid} exited (code {proc.poll()})")
        header, tensors = frame
        if "error" in header:
            raise FrameError(f"worker {proc.pid}: {header['error']}")
        if header.get("ok") is not True:
            raise FrameError(f"worker {proc.pid} answered {header!r}")
        return tensors

    def close(self) -> None:
        """Stop the worker processes (they exit when their stdin closes)."""
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        for proc in self._procs:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
        for proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        self._procs = []
