"""Where verde's toolkits meet the protocol: each module runs a toolkit over verde providers.

``coded_training``: gradient coding (``verde.coding``) whose partition gradients are verde
jobs, fetched with proofs and settled by disputes.

``refereed_inference``: the model of an inference service checked by ``verde.distill`` as a
verde program, so a flagged answer is re-run as an ``infer`` job and refereed by a dispute
(the network side: ``arbiter.refereed_escalation``).
"""
