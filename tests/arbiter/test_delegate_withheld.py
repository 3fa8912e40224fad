"""``delegate`` over gRPC goes on without a provider that takes the job but withholds its
result, and the honest result still wins its dispute (issue 15's cheat catalogue)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from arbiter.delegate import delegate
from arbiter.errors import ArbiterError
from tests.arbiter.conftest import SPEC
from tests.e2e.hostile import Withholder, serve_servicer
from verde.protocol.jobs.spec import JobSpec


@pytest.fixture(scope="module")
def withholder() -> Iterator[str]:
    server, address = serve_servicer(Withholder())
    try:
        yield address
    finally:
        server.stop(0)


def test_a_withheld_result_does_not_stop_the_honest_one(cluster, withholder: str) -> None:  # type: ignore[no-untyped-def]
    addrs = cluster["addrs"]
    res = delegate(JobSpec.from_mapping(SPEC), [withholder, addrs["cheat"], addrs["honest"]],
                   cluster["client"])
    assert res.honest == [addrs["honest"]] and res.cheaters == [addrs["cheat"]]
    assert res.withheld == [withholder]
    assert "withheld its result" in res.reasons[withholder]
    assert res.results[addrs["honest"]].payload == res.results[res.honest[0]].payload


def test_nobody_returning_a_result_is_one_clear_error(withholder: str) -> None:
    with pytest.raises(ArbiterError, match="no provider returned a result"):
        delegate(JobSpec.from_mapping(SPEC), [withholder], None)


def test_the_withholder_really_withholds(withholder: str) -> None:
    from arbiter.proto import verde_pb2 as pb
    from arbiter.proto import verde_pb2_grpc as rpc

    with grpc.insecure_channel(withholder) as ch, pytest.raises(grpc.RpcError) as info:
        rpc.ProviderStub(ch).GetResult(pb.JobRef(job_id="x"), timeout=10)
    assert info.value.code() is grpc.StatusCode.NOT_FOUND
