"""Assembling a provider process: key, domain provider (honest or following a fault plan),
job host, gRPC server. The CLI's ``verde provider serve`` calls :func:`start_provider`."""

from __future__ import annotations

from pathlib import Path

import grpc

from arbiter.channels import DEFAULT_MAX_MESSAGE, TlsFiles, build_server
from arbiter.proto import verde_pb2_grpc as rpc
from arbiter.provider_host import ProviderHost
from arbiter.provider_service import DEFAULT_MAX_STATE_BYTES, ProviderServicer
from proofs import SigningKey
from verde.protocol.faults import ANSWER_FAULTS, COMPUTE_FAULTS, CheatingProvider, FaultPlan
from verde.protocol.provider.provider import Provider


def fault_names() -> list[str]:
    return [*COMPUTE_FAULTS, *ANSWER_FAULTS]


def parse_fault_plan(text: str) -> FaultPlan:
    """``corrupt_op`` or ``compute=corrupt_op,answer=refuse,step=3,node=5,seed=1,query=...``."""
    if "=" not in text:
        return FaultPlan(compute=text)
    fields: dict[str, object] = {"compute": None}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in ("compute", "answer", "step", "node", "seed", "query"):
            raise ValueError(f"fault plan {text!r}: expected key=value pairs with keys compute, "
                             "answer, step, node, seed, query")
        fields[name] = int(value) if name in ("step", "node", "seed") else value.strip()
    return FaultPlan(**fields)  # type: ignore[arg-type]


def build_provider(key: SigningKey, *, name: str = "", checkpoint_dir: Path | None = None,
                   fault: str | None = None) -> Provider:
    if fault:
        return CheatingProvider(key, name=name, checkpoint_dir=checkpoint_dir,
                                plan=parse_fault_plan(fault))
    return Provider(key, name=name, checkpoint_dir=checkpoint_dir)


def start_provider(key_path: Path, listen: str, *, checkpoint_dir: Path | None = None,
                   fault: str | None = None, tls: TlsFiles | None = None,
                   max_message: int = DEFAULT_MAX_MESSAGE,
                   max_state_bytes: int = DEFAULT_MAX_STATE_BYTES,
                   ) -> tuple[grpc.Server, int, ProviderHost]:
    """Start a provider's gRPC service; ``max_state_bytes`` bounds one uploaded state."""
    if max_state_bytes <= 0:
        raise ValueError(f"the upload limit must be positive, got {max_state_bytes} bytes")
    key = SigningKey.load(key_path)
    host = ProviderHost(build_provider(key, checkpoint_dir=checkpoint_dir, fault=fault))
    server, port = build_server(
        listen, lambda s: rpc.add_ProviderServicer_to_server(
            ProviderServicer(host, max_state_bytes=max_state_bytes), s),
        tls=tls, max_message=max_message)
    return server, port, host
