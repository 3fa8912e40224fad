"""``arbiter.coded``: the code named on the command line, and coded training over gRPC."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from arbiter.channels import build_server
from arbiter.coded import build_code, train_coded
from arbiter.proto import verde_pb2_grpc as rpc
from arbiter.provider_host import ProviderHost
from arbiter.provider_service import ProviderServicer
from proofs import SigningKey
from verde.coding import FractionalRepetitionCode, ReplicatedGroups
from verde.integration.coded_training import CodedJob, train_reference
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.provider.provider import Provider

SPEC = JobSpec.from_mapping({"program": "mlp", "config": {"hidden": 16},
                             "dataset": {"name": "digits"}, "steps": 3, "batch_size": 8,
                             "optimizer": {"name": "adam", "lr": 0.01}, "seed": 4})


@pytest.fixture(scope="module")
def addresses() -> Iterator[list[str]]:
    hosts, servers, out = [], [], []
    for i in range(4):
        host = ProviderHost(Provider(SigningKey.from_seed(bytes([40 + i]) * 32), f"g{i}"))
        server, port = build_server(
            "127.0.0.1:0",
            lambda s, h=host: rpc.add_ProviderServicer_to_server(ProviderServicer(h), s))
        hosts.append(host)
        servers.append(server)
        out.append(f"127.0.0.1:{port}")
    yield out
    for server in servers:
        server.stop(0)
    for host in hosts:
        host.close()


def test_codes_by_name() -> None:
    assert isinstance(build_code("fractional", 4, stragglers=1), FractionalRepetitionCode)
    code = build_code("replicated", 6, replication=3, byzantine=1)
    assert isinstance(code, ReplicatedGroups) and code.mode == "correct"
    assert build_code("replicated", 4, replication=2, byzantine=1, detect_only=True).mode == \
        "detect"


@pytest.mark.parametrize(("args", "message"), [
    (("cyclic", 4), "must be one of"),
    (("fractional", 4), "divide"),
    (("replicated", 4), "2f\\+s\\+1"),
])
def test_bad_codes_are_refused(args: tuple[str, int], message: str) -> None:
    kwargs = {"stragglers": 2} if args[0] == "fractional" else {"replication": 2, "byzantine": 1}
    with pytest.raises(ValueError, match=message):
        build_code(*args, **kwargs)  # type: ignore[arg-type]


def test_fractional_over_grpc_matches_the_reference(addresses: list[str]) -> None:
    lines: list[str] = []
    job, run = train_coded(SPEC, FractionalRepetitionCode(4, 1), addresses, None, 2,
                           report=lines.append)
    assert job.n_partitions == 2
    assert run.digest == train_reference(CodedJob(SPEC, 2), 2).digest
    assert len(lines) == 2 and lines[0].startswith("step 1: ")


def test_provider_count_must_match_the_code(addresses: list[str]) -> None:
    with pytest.raises(ValueError, match="needs 4 providers"):
        train_coded(SPEC, FractionalRepetitionCode(4, 1), addresses[:3], None, 1)
    with pytest.raises(ValueError, match="distinct"):
        train_coded(SPEC, FractionalRepetitionCode(4, 1), addresses[:3] + addresses[:1], None, 1)
