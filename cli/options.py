"""Options shared by several commands, and the value types they check."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

#: Environment variables for secrets, so they stay out of command lines and config files.
ENV_KEY = "VERDE_KEY"
ENV_DB_URL = "VERDE_DB_URL"
ENV_TLS_KEY = "VERDE_TLS_KEY"
ENV_BLS_KEY = "VERDE_BLS_KEY"


class Address(click.ParamType):
    """``HOST:PORT`` (port 0 lets the system choose)."""

    name = "host:port"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        text = str(value)
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            self.fail(f"expected HOST:PORT (e.g. 127.0.0.1:7000), got {text!r}", param, ctx)
        return text


class DatabaseUrl(click.ParamType):
    """A SQLAlchemy URL (checked for form only; connecting is the service's job)."""

    name = "url"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        from arbiter.errors import StorageError
        from arbiter.storage.db import check_url

        try:
            check_url(str(value))
        except StorageError as exc:
            self.fail(str(exc), param, ctx)
        return str(value)


def tls_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--tls-cert/--tls-key/--tls-root, folded into one ``tls`` argument (or None)."""

    @click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True, path_type=Path),
                  help="PEM certificate (servers) — enables TLS.")
    @click.option("--tls-key", type=click.Path(dir_okay=False, exists=True, path_type=Path),
                  envvar=ENV_TLS_KEY, show_envvar=True,
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


def tls_pair_problems(values: dict[str, Any]) -> list[str]:
    """A server's certificate and its private key go together."""
    if bool(values.get("tls_cert")) != bool(values.get("tls_key")):
        return ["tls-cert and tls-key go together: a server needs both to enable TLS"]
    return []


def key_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--key FILE`` (or $VERDE_KEY): the service's Ed25519 identity."""
    return click.option("--key", "key_path", required=True, envvar=ENV_KEY, show_envvar=True,
                        type=click.Path(dir_okay=False, path_type=Path),
                        help="Ed25519 key file.")(fn)


def service_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Logging, metrics and shutdown options of ``verde ... serve``."""
    from arbiter.logs import LOG_FORMATS, LOG_LEVELS

    options = [
        click.option("--log-format", type=click.Choice(LOG_FORMATS), default="text",
                     show_default=True, help="text for people, json for one JSON object "
                                             "per line."),
        click.option("--log-level", type=click.Choice(LOG_LEVELS), default="info",
                     show_default=True, help="debug adds one line per committed answer."),
        click.option("--metrics", "metrics_address", type=Address(), default=None,
                     help="Serve Prometheus metrics on HOST:PORT/metrics "
                          "(needs verde[metrics])."),
        click.option("--drain-timeout", "drain_timeout_s", default=30.0, show_default=True,
                     type=click.FloatRange(min=0),
                     help="Seconds to finish in-flight work after SIGTERM before stopping."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn
