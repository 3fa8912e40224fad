"""verde.coding: gradient coding — training that keeps going when workers straggle or lie.

Codes (Tandon et al., ICML 2017): :class:`FractionalRepetitionCode` (bit-exact decoding),
:class:`CyclicRepetitionCode` (any n-s of n, conditioned real decoding),
:class:`IgnoreStragglers` (approximate baseline); sequential gradient coding with a delay
budget (Krishnan, Ebrahimi, Khisti, ICLR 2023): :class:`MultiplexedSGC` (M-SGC),
:class:`SelectiveRepeatSGC`, :class:`PerRoundGC`, with the (B, W, lambda) bursty model;
Byzantine replicated groups with bit-exact majority (after DRACO); a :class:`Coordinator`
that runs coded steps over workers (in process: :class:`InProcessWorker`); delay models and a
simulator to compare schemes. Running the workers on verde providers, with disputes for split
replica groups, is ``verde.integration.coded_training`` (this toolkit never imports the
protocol).
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
from verde.coding.delays import Bursty, ConformingBursty, HeavyTailed, ShiftedExponential
from verde.coding.errors import CodingError, NumericallyUnsafe, ReplicaMismatch, TooManyStragglers
from verde.coding.fractional import FractionalRepetitionCode
from verde.coding.sequential import Multiplexed, SelectiveRepetition
from verde.coding.sequential_base import DeadlineMissed, Task
from verde.coding.sequential_model import BurstyStragglerModel
from verde.coding.sequential_multiplexed import MultiplexedSGC
from verde.coding.sequential_selective import PerRoundGC, SelectiveRepeatSGC
from verde.coding.sequential_timing import time_schedule
from verde.coding.sequential_verify import check_every_admitted_pattern, decode_stream

__all__ = [
    "Bursty",
    "BurstyStragglerModel",
    "CodingError",
    "ConformingBursty",
    "Coordinator",
    "CyclicRepetitionCode",
    "DeadlineMissed",
    "DecodeReport",
    "FractionalRepetitionCode",
    "GradientCode",
    "GroupDecision",
    "HeavyTailed",
    "IgnoreStragglers",
    "InProcessWorker",
    "Multiplexed",
    "MultiplexedSGC",
    "NumericallyUnsafe",
    "PerRoundGC",
    "RecomputingReferee",
    "ReplicaMismatch",
    "ReplicatedGroups",
    "SelectiveRepeatSGC",
    "SelectiveRepetition",
    "ShiftedExponential",
    "StepOutcome",
    "StragglerHistory",
    "Task",
    "TooManyStragglers",
    "WorkerTask",
    "check_every_admitted_pattern",
    "decode_stream",
    "ordered_sum",
    "time_schedule",
    "worker_load",
]
