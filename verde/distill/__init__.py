"""verde.distill: distilled verifier models for real-time checks of outsourced inference.

After Fides (Kumar et al., ASIA CCS 2024): distil a small verifier from the service model
(:func:`distill_verifier`), calibrate a divergence test between the service's and the
verifier's outputs to a chosen false-positive rate (:class:`DivergenceDetector`, optionally with
a GAN-trained learned statistic), flag suspicious answers per request and per batch, watch the
flag rate with a CUSUM monitor (:class:`CusumMonitor`), re-classify flagged answers, and escalate
them to a second provider and a dispute (:class:`VerifiedInference`, :class:`SecondOpinion`,
:class:`DisputeOpener`). :func:`prepare_digits` sets all of it up on scikit-learn's digits.
"""

from verde.distill.adversarial import LearnedDivergence, train_learned_detector
from verde.distill.attacks import (
    Attack,
    FractionalAttack,
    ModelAttack,
    OutputAttack,
    add_trigger,
    additive_noise,
    backdoored_copy,
    quantised_copy,
    random_label_switch,
    substitute_model,
    top2_average,
    top2_swap,
)
from verde.distill.combined import CombinedDivergence, fit_combined_divergence
from verde.distill.detector import BatchDecision, DivergenceDetector
from verde.distill.digits import DigitsSetup, digits_attacks, prepare_digits
from verde.distill.distillation import (
    DistillConfig,
    DistilledVerifier,
    StageReport,
    distill_verifier,
)
from verde.distill.divergence import cross_entropy, divergence, kl_divergence, top_k_rank
from verde.distill.ensemble import StudentEnsemble, distill_ensemble
from verde.distill.errors import (
    DistillArgumentError,
    DistillError,
    EscalationError,
    NoHonestAnswerError,
    NotTrainedError,
    ShapeMismatchError,
)
from verde.distill.escalation import (
    DisputeOpener,
    InferenceRequest,
    ReplayReferee,
    SecondOpinion,
    TrustedReplica,
    answers_from_logits,
)
from verde.distill.evaluation import AttackReport, evaluate_attack, stream_until_alarm
from verde.distill.flops import forward_flops, relative_cost
from verde.distill.guard import CheckedBatch, VerifiedInference
from verde.distill.monitor import CusumMonitor
from verde.distill.reclassify import (
    LearnedReclassifier,
    Reclassifier,
    VerifierReclassifier,
    choose_reclassifier,
)

__all__ = [
    "Attack",
    "AttackReport",
    "BatchDecision",
    "CheckedBatch",
    "CombinedDivergence",
    "CusumMonitor",
    "DigitsSetup",
    "DisputeOpener",
    "DistillArgumentError",
    "DistillConfig",
    "DistillError",
    "DistilledVerifier",
    "DivergenceDetector",
    "EscalationError",
    "FractionalAttack",
    "InferenceRequest",
    "LearnedDivergence",
    "LearnedReclassifier",
    "ModelAttack",
    "NoHonestAnswerError",
    "NotTrainedError",
    "OutputAttack",
    "Reclassifier",
    "ReplayReferee",
    "SecondOpinion",
    "ShapeMismatchError",
    "StageReport",
    "StudentEnsemble",
    "TrustedReplica",
    "VerifiedInference",
    "VerifierReclassifier",
    "add_trigger",
    "additive_noise",
    "answers_from_logits",
    "backdoored_copy",
    "choose_reclassifier",
    "cross_entropy",
    "digits_attacks",
    "distill_ensemble",
    "distill_verifier",
    "divergence",
    "evaluate_attack",
    "fit_combined_divergence",
    "forward_flops",
    "kl_divergence",
    "prepare_digits",
    "quantised_copy",
    "random_label_switch",
    "relative_cost",
    "stream_until_alarm",
    "substitute_model",
    "top2_average",
    "top2_swap",
    "top_k_rank",
    "train_learned_detector",
]
