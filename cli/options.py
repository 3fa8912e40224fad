"""Options shared by several commands, and the value types they check."""

from __future__ import annotations

import functools
import math
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


def log_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--log-format`` and ``--log-level`` of every long-running command."""
    from arbiter.logs import LOG_FORMATS, LOG_LEVELS

    options = [
        click.option("--log-format", type=click.Choice(LOG_FORMATS), default="text",
                     show_default=True, help="text for people, json for one JSON object "
                                             "per line."),
        click.option("--log-level", type=click.Choice(LOG_LEVELS), default="info",
                     show_default=True, help="debug adds one line per committed answer."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def service_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Logging, metrics and shutdown options of ``verde ... serve``."""
    options = [
        click.option("--metrics", "metrics_address", type=Address(), default=None,
                     help="Serve Prometheus metrics on HOST:PORT/metrics "
                          "(needs verde[metrics])."),
        click.option("--drain-timeout", "drain_timeout_s", default=30.0, show_default=True,
                     type=click.FloatRange(min=0),
                     help="Seconds to finish in-flight work after SIGTERM before stopping."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return log_options(fn)


def programs_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--programs MODULE|PATH`` (repeatable), loaded with $VERDE_PROGRAMS and installed
    ``verde.programs`` entry points through the one loader every verde process uses, before
    the command runs (a job binds its program's code, so all parties must load the same)."""

    def load(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
        from verde.protocol.jobs.loading import ENV_VAR, load_configured_programs

        del ctx, param
        try:
            load_configured_programs(value)
        except ValueError as exc:
            raise click.BadParameter(f"{exc} (from --programs or ${ENV_VAR})",
                                     param_hint="--programs") from None
        return value

    option = click.option("--programs", "programs", multiple=True, callback=load,
                          expose_value=False, metavar="MODULE|PATH",
                          help="Load user programs from a module or a .py file (repeat); also "
                               "$VERDE_PROGRAMS and installed verde.programs entry points.")
    return option(fn)


class Quantity(click.IntRange):
    """A positive whole number, also written ``1e15`` (FLOPs and parameter counts are big)."""

    name = "count"

    def __init__(self) -> None:
        super().__init__(min=1)

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number: float | int = value
        else:
            try:
                number = float(str(value).replace("_", ""))
            except ValueError:
                self.fail(f"expected a positive whole number such as 1000000 or 1e15, "
                          f"got {value!r}", param, ctx)
        if not math.isfinite(number) or number < 1 or number != int(number):
            self.fail(f"expected a positive whole number, got {value!r}", param, ctx)
        return int(number)


def access_options(concurrent_flag: str, what: str, *, uploads: bool = False
                   ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Who may start work and what it may cost (``arbiter.access.AccessPolicy``), folded
    into one ``access`` argument. ``concurrent_flag`` is the per-client limit of ``what``
    (``--max-client-jobs``/jobs, ``--max-client-disputes``/disputes); ``uploads`` adds the
    upload stream limits."""
    from arbiter.request_signing import DEFAULT_WINDOW_S
    from arbiter.stream_guard import (
        DEFAULT_IDLE_S,
        DEFAULT_MAX_S,
        DEFAULT_MAX_STREAMS,
        DEFAULT_REPLY_MAX_S,
    )

    concurrent_name = concurrent_flag.lstrip("-").replace("-", "_")
    options = [
        click.option("--allow-clients", type=click.Path(dir_okay=False, path_type=Path),
                     default=None,
                     help="File of client public keys (hex, one per line, # comments) that "
                          f"may start {what}; without it anyone may (a warning is logged)."),
        click.option("--request-window", "request_window_s", default=DEFAULT_WINDOW_S,
                     show_default=True, type=click.FloatRange(min=1),
                     help="Seconds a signed request stays valid either side of this clock."),
        click.option("--max-steps", type=Quantity(), default=10**6, show_default=True,
                     help="Largest number of training steps in a job."),
        click.option("--max-params", type=Quantity(), default=10**9, show_default=True,
                     help="Largest number of model parameters in a job."),
        click.option("--max-state-mb", type=Quantity(), default=16 << 10, show_default=True,
                     help="Largest training state (parameters + optimizer state), MiB."),
        click.option("--max-step-mb", type=Quantity(), default=32 << 10, show_default=True,
                     help="Largest total size of the tensors one step produces, MiB."),
        click.option("--max-step-flops", type=Quantity(), default=10**15, show_default=True,
                     help="Largest estimated FLOPs of one training step."),
        click.option("--max-total-flops", type=Quantity(), default=10**18, show_default=True,
                     help="Largest estimated FLOPs of a whole job."),
        click.option(concurrent_flag, concurrent_name, type=click.IntRange(min=1), default=64,
                     show_default=True,
                     help=f"Active {what} one client may hold at once."),
        click.option("--max-client-flops", type=Quantity(), default=None,
                     help=f"Estimated FLOPs of all the {what} one client may start "
                          "(since the service started; default: no limit)."),
        click.option("--reply-max-seconds", "reply_max_s", default=DEFAULT_REPLY_MAX_S,
                     show_default=True, type=click.FloatRange(min=0, min_open=True),
                     help="A streamed reply (answers, downloads) still sending after this "
                          "is cancelled."),
    ]
    if uploads:
        options += [
            click.option("--upload-idle-seconds", "upload_idle_s", default=DEFAULT_IDLE_S,
                         show_default=True, type=click.FloatRange(min=0, min_open=True),
                         help="An upload waiting longer than this for its next chunk ends."),
            click.option("--upload-max-seconds", "upload_max_s", default=DEFAULT_MAX_S,
                         show_default=True, type=click.FloatRange(min=0, min_open=True),
                         help="An upload still running after this ends."),
            click.option("--max-uploads", default=DEFAULT_MAX_STREAMS, show_default=True,
                         type=click.IntRange(min=1), help="Uploads served at once."),
        ]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, allow_clients: Path | None, request_window_s: float,
                    max_steps: int, max_params: int, max_state_mb: int, max_step_mb: int,
                    max_step_flops: int, max_total_flops: int, max_client_flops: int | None,
                    **kwargs: Any) -> Any:
            from arbiter.access import AccessPolicy
            from arbiter.client_quotas import QuotaLimits
            from verde.protocol.graph.budget import Budget

            streams = {name: kwargs.pop(name) for name in
                       ("upload_idle_s", "upload_max_s", "max_uploads", "reply_max_s")
                       if name in kwargs}
            budget = Budget(steps=max_steps, parameters=max_params,
                            state_bytes=max_state_mb << 20, step_bytes=max_step_mb << 20,
                            step_flops=max_step_flops, total_flops=max_total_flops)
            access = AccessPolicy(
                allow_clients=allow_clients, request_window_s=request_window_s,
                budget=budget, quotas=QuotaLimits(kwargs.pop(concurrent_name),
                                                  max_client_flops), **streams)
            return fn(*args, access=access, **kwargs)

        for option in reversed(options):
            wrapper = option(wrapper)
        return wrapper

    return decorate


def client_key_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--key FILE``: the client's Ed25519 key, folded into ``client_key``; every request is
    signed with it (services started with --allow-clients need a key on their list).
    Without it a fresh key is made for this run (enough for open services)."""

    @click.option("--key", "client_key_path", default=None, envvar="VERDE_CLIENT_KEY",
                  show_envvar=True, type=click.Path(dir_okay=False, path_type=Path),
                  help="Client key file that signs the requests (default: a new key for "
                       "this run; `verde keys new` makes one to put on allow lists).")
    @functools.wraps(fn)
    def wrapper(*args: Any, client_key_path: Path | None, **kwargs: Any) -> Any:
        from proofs import SigningKey

        key = (SigningKey.load(client_key_path) if client_key_path is not None
               else SigningKey.generate())
        return fn(*args, client_key=key, **kwargs)

    return wrapper
