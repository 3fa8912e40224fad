"""Where verde's toolkits meet the protocol: each module runs a toolkit over verde providers.

``coded_training``: gradient coding (``verde.coding``) whose partition gradients are verde
jobs, fetched with proofs and settled by disputes.
"""
