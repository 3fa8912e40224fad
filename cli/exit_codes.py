"""Exit codes of the ``verde`` command (documented in README.md and ``verde --help``).

0  success
1  the thing checked is false: a certificate or result failed verification, a dispute lost
2  usage error: unknown option, missing argument (click's own code)
3  bad input: unreadable or invalid file (job spec, key, certificate), bad value
4  unreachable: a provider or arbiter could not be contacted, or timed out
5  internal error: a bug; the message asks for a report
"""

from __future__ import annotations

OK = 0
FALSE = 1
USAGE = 2
BAD_INPUT = 3
UNREACHABLE = 4
INTERNAL = 5
