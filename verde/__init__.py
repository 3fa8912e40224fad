"""verde: refereed delegation of ML work, plus the distributed-training toolkit around it.

``verde.protocol`` is refereed delegation (after Verde, Arun et al. 2025); ``verde.robust``,
``verde.coding`` and ``verde.distill`` are toolkits that never import it; ``verde.integration``
runs the toolkits over verde providers.
"""

from verde.errors import VerdeError, VerdeInputError

__all__ = ["VerdeError", "VerdeInputError"]
