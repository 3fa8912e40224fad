"""Where the arbiter reaches a party: only at an address the party itself vouched for.

Why (issue 15, "framing" and "front-running"): the addresses in an ``OpenDispute`` request are
the opener's word, and the opener may be the other party. So the arbiter uses them only as
*hints*: places to fetch the party's signed endpoint record (``Provider.Endpoint``), which it
then checks against the key that signed the party's result. It queries a party only at the
address of its newest valid record, and only after the party answering there proved, by
signing a fresh challenge for that address, that it holds the key. A party that, once proved
there, misses a deadline -- still proving its key, or no longer answering at all -- was
silent at its own address: that counts against it (the timeout event carries its record).
Anything else -- no valid record, nothing listening before the party ever proved itself, a
challenge answered by another key, replayed or for another address -- is "could not reach",
:class:`Unreachable`, and never a loss.

What a dispute stores beside its two signed results is therefore only what the parties signed
(records) plus hints that are worth nothing until a party's record vouches for them, and every
later opener's records and hints are merged in (newest valid record per party). Who opened the
dispute first, and what addresses they named, cannot change its outcome.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from arbiter.errors import ArbiterError
from proofs import SignedMessage
from verde.protocol.peers.endpoints import (
    EndpointRecord,
    InvalidEndpoint,
    check_address,
    check_challenge,
    new_challenge,
    newest_valid,
)
from verde.protocol.peers.errors import PeerError
from verde.protocol.peers.protocol import ProviderPeer

#: Hints kept per party (newest first): enough for a few openers, bounded against spam.
MAX_HINTS = 4
#: Longest a single endpoint or challenge call may take.
CALL_TIMEOUT_S = 5.0


class Unreachable(ArbiterError):
    """A party could not be reached at an address it vouched for: no verdict against it."""


class VouchingPeer(ProviderPeer, Protocol):
    """A provider peer that also serves its endpoint record and answers challenges."""

    def endpoint(self, timeout_s: float | None = None) -> EndpointRecord: ...

    def challenge(self, nonce: str, address: str, timeout_s: float | None = None
                  ) -> SignedMessage: ...


def read_record(data: Any) -> EndpointRecord | None:
    """A stored record, or None when absent or unreadable (never trusted unchecked)."""
    if data is None:
        return None
    try:
        return EndpointRecord.from_json(data)
    except InvalidEndpoint:
        return None


def hints_of(opening: Mapping[str, Any], party: str) -> list[str]:
    """The hinted addresses of ``party``, newest first (old openings: the one address)."""
    hints = opening.get("hints", {}).get(party)
    if isinstance(hints, list):
        return [h for h in hints if isinstance(h, str)]
    legacy = opening.get("addresses", {}).get(party)
    return [legacy] if isinstance(legacy, str) and legacy else []


def merge_opening(opening: Mapping[str, Any], keys: Mapping[str, str],
                  records: Mapping[str, EndpointRecord | None],
                  hints: Mapping[str, str]) -> dict[str, Any]:
    """``opening`` with new ``records`` (kept only if newest valid for the party's key) and
    new ``hints`` (newest first, at most :data:`MAX_HINTS`) merged in."""
    merged = dict(opening)
    endpoints = dict(opening.get("endpoints", {}))
    all_hints = {p: hints_of(opening, p) for p in keys}
    for party, key in keys.items():
        candidates = [r for r in (read_record(endpoints.get(party)), records.get(party))
                      if r is not None]
        best = newest_valid(candidates, key)
        if best is not None:
            endpoints[party] = best.to_json()
        hint = hints.get(party)
        if hint:
            rest = [h for h in all_hints[party] if h != hint]
            all_hints[party] = [hint, *rest][:MAX_HINTS]
    merged["endpoints"] = endpoints
    merged["hints"] = all_hints
    return merged


def check_hint(address: str, what: str) -> str:
    """An opener's hint: empty (none) or host:port."""
    if address:
        try:
            check_address(address)
        except InvalidEndpoint as exc:
            raise InvalidEndpoint(f"{what}: {exc}") from None
    return address


class PartyReach:
    """Resolves and proves each party's vouched address for one drive of one dispute.

    ``load_opening`` reads the dispute's current opening (other openers may have added records
    meanwhile); ``save_records`` stores records fetched from hints. A party's contact is proved
    once per drive (connection time) and again whenever it is silent.
    """

    def __init__(self, keys: Mapping[str, str], peer: Callable[[str], VouchingPeer],
                 load_opening: Callable[[], Mapping[str, Any]],
                 save_records: Callable[[Mapping[str, EndpointRecord]], None], *,
                 patience_s: float, sleep: Callable[[float], None] = time.sleep) -> None:
        self.keys = dict(keys)
        self.peer = peer
        self.load_opening = load_opening
        self.save_records = save_records
        self.patience_s = patience_s
        self.sleep = sleep
        self._proved: dict[str, EndpointRecord] = {}

    def contact(self, party: str) -> tuple[VouchingPeer, EndpointRecord]:
        """The party's peer at its proved address; :class:`Unreachable` after ``patience_s``."""
        record = self._proved.get(party)
        if record is not None:
            return self.peer(record.address), record
        end = time.monotonic() + self.patience_s
        delay = 0.2
        while True:
            problems: list[str] = []
            record = self._resolve(party, problems)
            if record is not None:
                try:
                    self._challenge(party, record)
                except PeerError as exc:
                    problems.append(str(exc))
                else:
                    self._proved[party] = record
                    return self.peer(record.address), record
            if time.monotonic() + delay > end:
                raise Unreachable(f"party {party} ({self.keys[party][:16]}) could not be "
                                  f"reached at an address it vouched for: "
                                  f"{'; '.join(problems)[:1500]}")
            self.sleep(delay)
            delay = min(delay * 2, 2.0)

    def confirm_silence(self, party: str) -> EndpointRecord:
        """After a missed deadline: the record the silence counts at.

        The party proved its key at this address earlier in this drive; the address is
        challenged again. If someone else answers there now (another key, a replayed or
        refused challenge), the silence is not the party's: :class:`Unreachable`. If the
        party proves its key again, or nobody answers at all (it went silent, or down, after
        proving itself), the silence counts.
        """
        record = self._proved.get(party)
        if record is None:
            raise Unreachable(f"party {party} was never reached")
        try:
            self._challenge(party, record)
        except InvalidEndpoint as exc:
            self._proved.pop(party, None)
            raise Unreachable(f"party {party} ({self.keys[party][:16]}) did not answer, and "
                              f"at {record.address} someone else does now: {exc}") from None
        except PeerError:
            pass  # nobody answers at its own proved address: silence
        return record

    def _resolve(self, party: str, problems: list[str]) -> EndpointRecord | None:
        key = self.keys[party]
        opening = self.load_opening()
        candidates = [r for r in [read_record(opening.get("endpoints", {}).get(party))]
                      if r is not None]
        fetched = []
        # The stored record's own address too: the party may have renewed its record there.
        places = dict.fromkeys([*hints_of(opening, party), *(r.address for r in candidates)])
        for hint in places:
            try:
                record = self.peer(hint).endpoint(CALL_TIMEOUT_S)
                record.check(key)
            except PeerError as exc:  # InvalidEndpoint included
                problems.append(f"hint {hint}: {exc}")
                continue
            fetched.append(record)
        best = newest_valid(candidates + fetched, key)
        if best is None:
            problems.append(f"no valid endpoint record signed by {key[:16]}")
            return None
        if best in fetched:
            self.save_records({party: best})
        return best

    def _challenge(self, party: str, record: EndpointRecord) -> None:
        nonce = new_challenge()
        answer = self.peer(record.address).challenge(nonce, record.address, CALL_TIMEOUT_S)
        check_challenge(answer, nonce, record.address, self.keys[party])


def opening_json(text: str) -> dict[str, Any]:
    doc = json.loads(text)
    if not isinstance(doc, dict):
        raise ArbiterError("a stored dispute opening is not a JSON object")
    return doc
