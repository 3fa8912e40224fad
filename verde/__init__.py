"""verde: refereed delegation of ML work, plus the distributed-training toolkit around it."""

from verde.errors import VerdeError

__all__ = ["VerdeError"]
