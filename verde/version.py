"""The versions a deployment must know in one place: the release and the protocol.

``PROTOCOL_VERSION`` names the wire protocol between clients, providers and arbiters (job
specs, signed results, dispute queries and answers, the graph every party commits to). Parties
that speak different protocol versions cannot settle a dispute with each other, so operators
upgrade a fleet by this number, not by the release. Its one home is the job spec's version
(``verde.protocol.jobs.spec.SPEC_VERSION``): bump that whenever a change makes an older party
compute a different job id, commitment or answer.
"""

from __future__ import annotations

from importlib import metadata

from verde.protocol.jobs.spec import SPEC_VERSION

#: The job spec's version is the protocol's: every spec names it, and a party refuses a spec
#: of another version, so job ids never mix across versions.
PROTOCOL_VERSION = SPEC_VERSION


def release() -> str:
    """The installed release of the ``verde`` distribution (``unknown`` from a bare checkout)."""
    try:
        return metadata.version("verde")
    except metadata.PackageNotFoundError:
        return "unknown"


def version_line() -> str:
    """What ``verde --version`` prints, e.g. ``verde 0.1.0 (protocol 2)``."""
    return f"verde {release()} (protocol {PROTOCOL_VERSION})"
