"""TLS when certificates are given: a client that trusts the root connects, others cannot."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from arbiter.channels import TlsFiles
from arbiter.provider_app import start_provider
from arbiter.provider_client import GrpcProviderPeer
from arbiter.status import RemoteError
from proofs import SigningKey


def _self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_provider_accepts_trusting_clients_only(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path, "server")
    other_cert, _ = _self_signed(tmp_path, "other")
    ident = tmp_path / "p.pem"
    SigningKey.generate().save(ident)
    running = start_provider(ident, "127.0.0.1:0", tls=TlsFiles(cert=cert, key=key))
    port, host = running.port, running.host
    try:
        good = GrpcProviderPeer(f"localhost:{port}", tls=TlsFiles(root=cert), call_timeout_s=5)
        assert good.identity == host.identity
        good.close()
        plain = GrpcProviderPeer(f"127.0.0.1:{port}", call_timeout_s=2)
        with pytest.raises(RemoteError) as info:
            _ = plain.identity
        assert info.value.unreachable
        plain.close()
        wrong_root = GrpcProviderPeer(f"localhost:{port}", tls=TlsFiles(root=other_cert),
                                      call_timeout_s=2)
        with pytest.raises(RemoteError):
            _ = wrong_root.identity
        wrong_root.close()
    finally:
        running.close(0)


def test_server_tls_needs_both_files(tmp_path: Path) -> None:
    cert, _ = _self_signed(tmp_path, "server")
    with pytest.raises(ValueError, match="both --tls-cert and --tls-key"):
        TlsFiles(cert=cert).server_credentials()
