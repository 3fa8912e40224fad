"""Assembling a provider process: key, domain provider (honest or following a fault plan),
job host, gRPC server. The CLI's ``verde provider serve`` calls :func:`start_provider`."""

from __future__ import annotations

from pathlib import Path

import grpc

from arbiter.channels import DEFAULT_MAX_MESSAGE, TlsFiles, build_server
from arbiter.errors import ArbiterInputError
from arbiter.proto import verde_pb2_grpc as rpc
from arbiter.provider_host import ProviderHost
from arbiter.provider_service import DEFAULT_MAX_STATE_BYTES, ProviderServicer
from proofs import SigningKey
from verde.protocol.faults import ANSWER_FAULTS, COMPUTE_FAULTS, CheatingProvider, FaultPlan
from verde.protocol.provider.provider import Provider


def fault_names() -> list[str]:
    return [*COMPUTE_FAULTS, *ANSWER_FAULTS]


def parse_fault_plan(text: str) -> FaultPlan:
    """``corrupt_op`` or ``compute=corrupt_op,answer=refuse,step=3,node=5,seed=1,query=...``
    (``op=aten.bernoulli_.float`` picks the op ``corrupt_op`` hits by name)."""
    if "=" not in text:
        return FaultPlan(compute=text)
    fields: dict[str, object] = {"compute": None}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in ("compute", "answer", "step", "node", "seed", "query", "op"):
            raise ArbiterInputError(f"fault plan {text!r}: expected key=value pairs with keys "
                                    "compute, answer, step, node, seed, query, op")
        if name in ("step", "node", "seed"):
            try:
                fields[name] = int(value)
            except ValueError:
                raise ArbiterInputError(f"fault plan {text!r}: {name} must be an integer, "
                                        f"got {value!r}") from None
        else:
            fields[name] = value.strip()
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
        raise ArbiterInputError(f"the upload limit must be positive, got {max_state_bytes} bytes")
    key = SigningKey.load(key_path)
    host = ProviderHost(build_provider(key, checkpoint_dir=checkpoint_dir, fault=fault))
    server, port = build_server(
        listen, lambda s: rpc.add_ProviderServicer_to_server(
            ProviderServicer(host, max_state_bytes=max_state_bytes), s),
        tls=tls, max_message=max_message)
    return server, port, host
