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
.partition_range(r, W, P)``. A worker is a :class:`WorkerLink`: a local ``python -m
verde.protocol.provider.partition_worker`` subprocess over pipes (one numba and one torch
thread each, so W workers use W cores), or a worker on another machine (``verde provider
worker``) reached over an authenticated connection (``worker_channel``; the arbiter layer
opens it and hands it over as a :class:`ChannelLink`). Links are opened on first use and
closed by :meth:`PartitionWorkers.close` (local processes also end with the provider).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any, Protocol

import torch

from repops.collectives import partition_range
from verde.protocol.graph.execution import run_step_from_partitions
from verde.protocol.jobs.context import PARAM, JobContext
from verde.protocol.provider.errors import ProviderError
from verde.protocol.provider.partition_worker import FrameError, read_frame, write_frame
from verde.protocol.provider.worker_channel import WorkerChannel

Frame = tuple[dict[str, Any], dict[str, torch.Tensor]]

#: Most worker processes one provider runs (more than any one machine's useful core count).
MAX_WORKERS = 256


class WorkerError(ProviderError):
    """A worker process died, or answered with an error or a malformed frame."""


def check_worker_count(workers: object) -> int:
    """``workers`` as a count, or one clear ``ValueError``."""
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"workers must be an integer in [1, {MAX_WORKERS}], got {workers!r}")
    return workers


class WorkerLink(Protocol):
    """One partition worker as the provider sees it: frames out, frames back."""

    name: str

    def send(self, header: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> None: ...

    def receive(self) -> Frame | None: ...

    def close(self) -> None: ...


#: Opens a link to one remote worker (raises ``OSError`` or ``FrameError`` when it cannot).
LinkOpener = Callable[[], WorkerLink]


class ProcessLink:
    """A local worker process, spoken to over its stdin and stdout."""

    def __init__(self) -> None:
        env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1"}  # fmt: skip
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "verde.protocol.provider.partition_worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.name = f"worker process {self._proc.pid}"

    def send(self, header: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> None:
        try:
            write_frame(_pipe(self._proc.stdin), header, tensors)
        except OSError as exc:
            raise FrameError(f"{self.name} exited (code {self._proc.poll()}): {exc}") from exc

    def receive(self) -> Frame | None:
        frame = read_frame(_pipe(self._proc.stdout))
        if frame is None:
            raise FrameError(f"{self.name} exited (code {self._proc.poll()})")
        return frame

    def close(self) -> None:
        """Close its stdin (it exits), wait for it (kill after 10 s)."""
        if self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()


class ChannelLink:
    """A worker on another machine: an authenticated channel and how to close its
    connection."""

    def __init__(self, channel: WorkerChannel, name: str, close: Callable[[], None]) -> None:
        self._channel, self.name, self._close = channel, name, close

    def send(self, header: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> None:
        try:
            self._channel.send(header, tensors)
        except OSError as exc:
            raise FrameError(f"{self.name}: {exc}") from exc

    def receive(self) -> Frame | None:
        try:
            frame = self._channel.receive()
        except OSError as exc:
            raise FrameError(f"{self.name}: {exc}") from exc
        if frame is None:
            raise FrameError(f"{self.name} closed the connection")
        return frame

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._close()


def _pipe(pipe: IO[bytes] | None) -> IO[bytes]:
    if pipe is None:  # never: the workers are started with both pipes
        raise FrameError("a worker has no pipe")
    return pipe


class PartitionWorkers:
    """``local`` worker processes and the ``remote`` workers, computing partition gradients
    for :meth:`run_step`."""

    def __init__(self, local: int, remote: Sequence[LinkOpener] = ()) -> None:
        if isinstance(local, bool) or not isinstance(local, int) or local < 0:
            raise ValueError(f"local must be a count of worker processes, got {local!r}")
        self.local, self.remote = local, tuple(remote)
        self.count = check_worker_count(local + len(self.remote))
        self._links: list[WorkerLink] = []
        self._lock = threading.Lock()

    def __enter__(self) -> PartitionWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> list[WorkerLink]:
        if not self._links:
            try:
                for _ in range(self.local):
                    self._links.append(ProcessLink())
                for open_link in self.remote:
                    self._links.append(open_link())
            except (OSError, FrameError):
                self._stop()
                raise
        return self._links

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
            try:
                links = self._start()[:used]
                for link, part in zip(links, ranges, strict=True):
                    link.send({**head, "first": part.start, "stop": part.stop}, params)
                grads = [self._collect(link) for link in links]
            except (OSError, FrameError) as exc:
                self._stop()
                raise WorkerError(f"a worker of step {step} of job {ctx.spec.job_id[:16]} "
                                  f"failed: {exc}") from exc
        parts = [{n: grad[f"{p}/{n}"] for n in ctx.param_names}
                 for grad, part in zip(grads, ranges, strict=True) for p in part]
        return run_step_from_partitions(ctx, state, step, parts)

    @staticmethod
    def _collect(link: WorkerLink) -> dict[str, torch.Tensor]:
        frame = link.receive()
        if frame is None:
            raise FrameError(f"{link.name} sent nothing")
        header, tensors = frame
        if "error" in header:
            raise FrameError(f"{link.name}: {header['error']}")
        if header.get("ok") is not True:
            raise FrameError(f"{link.name} answered {header!r}")
        return tensors

    def close(self) -> None:
        """Close every link (local processes exit when their stdin closes)."""
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        for link in self._links:
            link.close()
        self._links = []
