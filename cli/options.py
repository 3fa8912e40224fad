"""Options shared by several commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def tls_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--tls-cert/--tls-key/--tls-root, folded into one ``tls`` argument (or None)."""

    @click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True, path_type=Path),
                  help="PEM certificate (servers) — enables TLS.")
    @click.option("--tls-key", type=click.Path(dir_okay=False, exists=True, path_type=Path),
                  help="PEM private key for --tls-cert.")
    @click.option("--tls-root", type=click.Path(dir_okay=False, exists=True, path_type=Path),
                  help="PEM root certificate to trust (clients).")
    @functools.wraps(fn)
    def wrapper(*args: Any, tls_cert: Path | None, tls_key: Path | None,
                tls_root: Path | None, **kwargs: Any) -> Any:
        from arbiter.channels import TlsFiles

        tls = (TlsFiles(tls_cert, tls_key, tls_root)
               if (tls_cert or tls_key or tls_root) else None)
        return fn(*args, tls=tls, **kwargs)

    return wrapper
