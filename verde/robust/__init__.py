"""verde.robust: Byzantine-robust aggregation, pre-aggregation, attacks and a simulation harness.

Pure functions take a list of worker vectors (numpy arrays or torch tensors, any float dtype,
any device) or one stacked ``(n, ...)`` array and return the aggregate in the same type, dtype,
device and per-worker shape; inputs are never modified. Classes hold parameters and state,
and the registries (``AGGREGATORS``, ``PRE_AGGREGATORS``, ``ATTACKS``) name them all::

    from verde.robust import krum, compose, NNM, MultiKrum, make_aggregator
    g = krum(grads, f=4)
    rule = compose(NNM(f=4), MultiKrum(f=4))
    g = rule(grads)
"""

from verde.robust.attacks import (
    ATTACKS,
    Attack,
    LabelFlipping,
    MimicHeuristic,
    alie,
    gaussian,
    inf_attack,
    ipm,
    mimic,
    min_max,
    min_sum,
    nan_attack,
    sign_flipping,
)
from verde.robust.attacks_optimal import OptimalALIE, OptimalIPM
from verde.robust.base import (
    AGGREGATORS,
    PRE_AGGREGATORS,
    Aggregator,
    Composed,
    PreAggregator,
    compose,
)
from verde.robust.bucketing import Bucketing, bucketing
from verde.robust.clipping import (
    ARC,
    CenteredClipping,
    StaticClipping,
    arc,
    centered_clipping,
    static_clip,
)
from verde.robust.coordinate import (
    MeaMed,
    Mean,
    Median,
    TrimmedMean,
    meamed,
    mean,
    median,
    trimmed_mean,
)
from verde.robust.errors import (
    ApproximationWarning,
    BreakdownConditionError,
    DeterministicModeUnavailableError,
    RobustError,
    RobustInputError,
    UnknownNameError,
)
from verde.robust.flag import FlagAggregator, flag_aggregator
from verde.robust.fltrust import FLTrust, fltrust
from verde.robust.geometric import GeometricMedian, geometric_median
from verde.robust.krum import Bulyan, Krum, MultiKrum, bulyan, krum, multi_krum
from verde.robust.neighbours import NNM, MoNNA, monna, nnm
from verde.robust.registry import make_aggregator, make_attack, make_pre_aggregator
from verde.robust.signguard import SignGuard, signguard
from verde.robust.spectral import CAF, DnC, caf, dnc
from verde.robust.subsets import MDA, SMEA, mda, smea

__all__ = [
    "AGGREGATORS", "ARC", "ATTACKS", "CAF", "MDA", "NNM", "PRE_AGGREGATORS", "SMEA",
    "Aggregator", "ApproximationWarning", "Attack", "BreakdownConditionError", "Bucketing",
    "Bulyan", "CenteredClipping", "Composed", "DeterministicModeUnavailableError", "DnC",
    "FLTrust", "FlagAggregator", "GeometricMedian", "Krum", "LabelFlipping", "MeaMed", "Mean",
    "Median", "MimicHeuristic", "MoNNA", "MultiKrum", "OptimalALIE", "OptimalIPM",
    "PreAggregator", "RobustError", "RobustInputError", "SignGuard", "StaticClipping",
    "TrimmedMean", "UnknownNameError", "alie", "arc", "bucketing", "bulyan", "caf",
    "centered_clipping", "compose", "dnc", "flag_aggregator", "fltrust", "gaussian",
    "geometric_median", "inf_attack", "ipm", "krum", "make_aggregator", "make_attack",
    "make_pre_aggregator", "mda", "meamed", "mean", "median", "mimic", "min_max", "min_sum",
    "monna", "multi_krum", "nan_attack", "nnm", "sign_flipping", "signguard", "smea",
    "static_clip", "trimmed_mean",
]
