"""Per-client quotas: how much of a service one client may hold at once, and in total.

Why: an allow list says who may ask; it does not stop one allowed (or, on an open service,
one anonymous) client from filling a provider's queue or an arbiter's workers. A service keeps
one :class:`ClientQuotas` per kind of work (jobs on a provider, disputes on an arbiter) and
checks, atomically, both limits before it accepts an item:

- ``concurrent``: items the client holds that are still active (a job queued or running, a
  dispute not yet decided). Whether an item is still active is asked of the service
  (``is_active``), so a job that finished or a dispute another arbiter decided frees its slot
  without any bookkeeping here;
- ``flops``: the FLOPs estimate (``verde.protocol.graph.budget``) of everything the client
  was granted since the service started; refunded only when the item was refused afterwards.

Clients are named by their verified key, or ``anonymous@HOST`` on an open service
(:class:`arbiter.request_signing.Caller`). A reservation is *pending* from :meth:`reserve` to
:meth:`confirm`: it counts, and is never pruned, while the service admits the item, so twenty
concurrent calls cannot all pass the check before any of them is recorded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from arbiter.errors import ArbiterInputError, QuotaExceeded


@dataclass(frozen=True)
class QuotaLimits:
    """Per-client limits (``None``: no limit)."""

    concurrent: int | None = None
    flops: int | None = None

    def __post_init__(self) -> None:
        for name in ("concurrent", "flops"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ArbiterInputError(f"quota {name} must be a positive integer or unset, "
                                        f"got {value!r}")


class ClientQuotas:
    """Concurrent items and total FLOPs per client for one kind of work (see the module doc).

    ``what`` names the items in messages (``jobs``, ``disputes``); ``flag`` the option that
    sets the limit, so a refused client knows what to ask the operator for.
    """

    def __init__(self, limits: QuotaLimits, is_active: Callable[[str], bool], *,
                 what: str, flags: tuple[str, str]) -> None:
        self.limits = limits
        self.is_active = is_active
        self.what = what
        self.flags = flags
        self._lock = threading.Lock()
        self._held: dict[str, dict[str, bool]] = {}  # client -> item -> confirmed
        self._flops: dict[str, int] = {}

    def held(self, client: str) -> int:
        """Items ``client`` holds now (pending or still active)."""
        with self._lock:
            return self._prune(client)

    def flops_granted(self, client: str) -> int:
        with self._lock:
            return self._flops.get(client, 0)

    def _prune(self, client: str) -> int:
        items = self._held.get(client, {})
        for item in [i for i, confirmed in items.items()
                     if confirmed and not self.is_active(i)]:
            del items[item]
        if not items:
            self._held.pop(client, None)
        return len(items)

    def _check_concurrent(self, client: str, item: str | None) -> None:
        limit = self.limits.concurrent
        if limit is None:
            return
        held = self._prune(client)
        if item is not None and item in self._held.get(client, {}):
            return  # the same item again (a resubmission) takes no second slot
        if held >= limit:
            raise QuotaExceeded(f"client {client[:24]} already holds {held} active "
                                f"{self.what}, its quota of concurrent {self.what} is {limit} "
                                f"({self.flags[0]})")

    def check_room(self, client: str) -> None:
        """Refuse a client already at its concurrency quota (before estimating any cost)."""
        with self._lock:
            self._check_concurrent(client, None)

    def reserve(self, client: str, item: str, flops: int) -> None:
        """Hold a slot and ``flops`` for ``item``, or ``QuotaExceeded`` naming the quota."""
        with self._lock:
            self._check_concurrent(client, item)
            if item in self._held.get(client, {}):
                return
            granted = self._flops.get(client, 0)
            limit = self.limits.flops
            if limit is not None and granted + flops > limit:
                raise QuotaExceeded(f"client {client[:24]} was granted {granted:,} FLOPs, "
                                    f"this one needs {flops:,}: over its quota of total FLOPs "
                                    f"{limit:,} ({self.flags[1]})")
            self._held.setdefault(client, {})[item] = False
            self._flops[client] = granted + flops

    def confirm(self, client: str, item: str, final: str | None = None) -> None:
        """The service admitted ``item`` (under the id ``final``, if it only has one now)."""
        with self._lock:
            items = self._held.setdefault(client, {})
            items.pop(item, None)
            items[final or item] = True

    def cancel(self, client: str, item: str, flops: int) -> None:
        """The service refused ``item`` after all: free its slot and refund its FLOPs."""
        with self._lock:
            items = self._held.get(client, {})
            if items.pop(item, None) is not None:
                self._flops[client] = max(0, self._flops.get(client, 0) - flops)
            if not items:
                self._held.pop(client, None)
