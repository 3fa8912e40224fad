"""verde.coding: gradient coding — training that keeps going when workers straggle or lie.

Codes (Tandon et al., ICML 2017): :class:`FractionalRepetitionCode` (bit-exact decoding),
:class:`CyclicRepetitionCode` (any n-s of n, conditioned real decoding),
:class:`IgnoreStragglers` (approximate baseline); sequential schemes with a delay budget
(after Krishnan, Ebrahimi, Khisti, ICLR 2023); Byzantine replicated groups with bit-exact
majority (after DRACO); a :class:`Coordinator` that runs coded steps over workers; delay models
and a simulator to compare schemes.
"""

from verde.coding.approximate import IgnoreStragglers
from verde.coding.base import GradientCode, ordered_sum, worker_load
from verde.coding.byzantine import GroupDecision, RecomputingReferee, ReplicatedGroups
from verde.coding.coordinator import (
    Coordinator,
    InProcessWorker,
    StepOutcome,
    StragglerHistory,
    WorkerTask,
)
from verde.coding.cyclic import CyclicRepetitionCode, DecodeReport
from verde.coding.delays import Bursty, HeavyTailed, ShiftedExponential
from verde.coding.errors import CodingError, NumericallyUnsafe, ReplicaMismatch, TooManyStragglers
from verde.coding.fractional import FractionalRepetitionCode
from verde.coding.sequential import Multiplexed, SelectiveRepetition

__all__ = [
    "Bursty",
    "CodingError",
    "Coordinator",
    "CyclicRepetitionCode",
    "DecodeReport",
    "FractionalRepetitionCode",
    "GradientCode",
    "GroupDecision",
    "HeavyTailed",
    "IgnoreStragglers",
    "InProcessWorker",
    "Multiplexed",
    "NumericallyUnsafe",
    "RecomputingReferee",
    "ReplicaMismatch",
    "ReplicatedGroups",
    "SelectiveRepetition",
    "ShiftedExponential",
    "StepOutcome",
    "StragglerHistory",
    "TooManyStragglers",
    "WorkerTask",
    "ordered_sum",
    "worker_load",
]
