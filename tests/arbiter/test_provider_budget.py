"""A provider's budget over gRPC on 127.0.0.1: refused at submit with RESOURCE_EXHAUSTED naming
the limit, before the job is queued; a job inside the limits is accepted."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from arbiter.access import AccessPolicy
from arbiter.provider_app import start_provider
from arbiter.provider_client import GrpcProviderPeer
from arbiter.status import RemoteError
from tests.arbiter.conftest import SPEC, key_file
from verde.protocol.graph.budget import Budget, estimate_cost
from verde.protocol.jobs.spec import JobSpec


def test_checkpoints_and_step_flops_are_bounded_at_submit(tmp_path: Path) -> None:
    cost = estimate_cost(JobSpec.from_mapping(SPEC))
    # SPEC keeps 6 // 2 + 2 = 5 checkpoints; allow room for 3 only.
    running = start_provider(key_file(tmp_path, "b"), "127.0.0.1:0",
                             max_checkpoint_bytes=3 * cost.state_bytes,
                             access=AccessPolicy(budget=Budget(step_flops=cost.step_flops)))
    try:
        with GrpcProviderPeer(f"127.0.0.1:{running.port}") as peer:
            with pytest.raises(RemoteError, match="needs checkpoint_bytes") as info:
                peer.submit(SPEC)
            assert info.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
            wider = {**SPEC, "config": {"hidden": 128}, "checkpoint_interval": 6}
            with pytest.raises(RemoteError, match="needs step_flops") as info:
                peer.submit(wider)
            assert info.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert running.host._progress == {}  # nothing was queued
            job = peer.submit({**SPEC, "checkpoint_interval": 6})  # 3 checkpoints: fits
            assert running.host.status(job).state in ("queued", "running", "done")
    finally:
        running.close(0)
