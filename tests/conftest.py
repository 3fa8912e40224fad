"""Shared fixtures: a throwaway PostgreSQL server for the storage and end-to-end tests, and
the numba cache of the subprocesses that build repops' kernels for a generic CPU.

The Makefile installs PostgreSQL from Debian's packages when it is missing; this fixture
starts a private cluster (trust auth, loopback only, a free port, a temp data directory) for
the test session and stops it afterwards. Tests that need it skip with the reason only when no
server binary exists or it cannot start.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _pg_bin() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_db_user(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root: drop to the 'postgres' account Debian creates.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    pg_bin = _pg_bin()
    if pg_bin is None:
        pytest.skip("PostgreSQL server binaries not found (make test installs them on Debian)")
    data = Path(tempfile.mkdtemp(prefix="verde-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    port = _free_port()
    log = data / "server.log"
    try:
        subprocess.run(_as_db_user([str(pg_bin / "initdb"), "-D", str(data / "db"), "-A",
                                    "trust", "-U", "postgres"]),
                       check=True, capture_output=True, timeout=120)
        subprocess.run(_as_db_user([
            str(pg_bin / "pg_ctl"), "-D", str(data / "db"), "-l", str(log), "-w", "-t", "60",
            "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start"]), check=True, capture_output=True, timeout=120)
        subprocess.run(_as_db_user([str(pg_bin / "createdb"), "-h", "127.0.0.1", "-p",
                                    str(port), "-U", "postgres", "verde_test"]),
                       check=True, capture_output=True, timeout=60)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        shutil.rmtree(data, ignore_errors=True)
        pytest.skip(f"PostgreSQL could not start: {exc}: {detail.decode(errors='replace')[:300]}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/verde_test"
    finally:
        subprocess.run(_as_db_user([str(pg_bin / "pg_ctl"), "-D", str(data / "db"), "-m",
                                    "immediate", "stop"]),
                       check=False, capture_output=True, timeout=60)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def generic_numba_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``NUMBA_CACHE_DIR`` of every subprocess run with ``NUMBA_CPU_NAME=generic``.

    Empty at the start of a session, so the kernels are compiled for the generic CPU (no AVX,
    no FMA instruction) by the first test that runs them; later tests load those builds
    instead of compiling the same kernels again (about a minute per test on two cores). A
    host build can never be loaded in their place: numba keys a cached kernel by the target
    CPU name and features as well as by its code, and repops by the digest of its sources.
    """
    return tmp_path_factory.mktemp("numba-generic")
