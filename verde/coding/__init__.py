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

Coded computation beyond gradients: :class:`BACC` (Berrut approximated coded computing: any
function, any number of stragglers, approximately) and :class:`SBACC` (BACC whose DCT code
locates and drops wrong workers); the fault-tolerant Strassen-like matmul
(:class:`FaultTolerantStrassen`, 16 nodes, against :class:`ReplicatedStrassen`, 21); and
:mod:`verde.coding.coded_compute` to run either over a pool of workers.
"""

from verde.coding.approximate import IgnoreStragglers
from verde.coding.bacc import BACC, composed_derivative_bounds
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
from verde.coding.dct_code import DCTCode, dct_tail_bound
from verde.coding.delays import Bursty, ConformingBursty, HeavyTailed, ShiftedExponential
from verde.coding.errors import (
    CodingError,
    NumericallyUnsafe,
    ReplicaMismatch,
    TooManyFaults,
    TooManyStragglers,
)
from verde.coding.fractional import FractionalRepetitionCode
from verde.coding.sbacc import SBACC, SBACCReport, sbacc_tradeoff
from verde.coding.sequential import Multiplexed, SelectiveRepetition
from verde.coding.sequential_base import DeadlineMissed, Task
from verde.coding.sequential_model import BurstyStragglerModel
from verde.coding.sequential_multiplexed import MultiplexedSGC
from verde.coding.sequential_selective import PerRoundGC, SelectiveRepeatSGC
from verde.coding.sequential_timing import time_schedule
from verde.coding.sequential_verify import check_every_admitted_pattern, decode_stream
from verde.coding.strassen_ft import FaultTolerantStrassen, MatmulDecoding, ReplicatedStrassen

__all__ = [
    "BACC",
    "SBACC",
    "Bursty",
    "BurstyStragglerModel",
    "CodingError",
    "ConformingBursty",
    "Coordinator",
    "CyclicRepetitionCode",
    "DCTCode",
    "DeadlineMissed",
    "DecodeReport",
    "FaultTolerantStrassen",
    "FractionalRepetitionCode",
    "GradientCode",
    "GroupDecision",
    "HeavyTailed",
    "IgnoreStragglers",
    "InProcessWorker",
    "MatmulDecoding",
    "Multiplexed",
    "MultiplexedSGC",
    "NumericallyUnsafe",
    "PerRoundGC",
    "RecomputingReferee",
    "ReplicaMismatch",
    "ReplicatedGroups",
    "ReplicatedStrassen",
    "SBACCReport",
    "SelectiveRepeatSGC",
    "SelectiveRepetition",
    "ShiftedExponential",
    "StepOutcome",
    "StragglerHistory",
    "Task",
    "TooManyFaults",
    "TooManyStragglers",
    "WorkerTask",
    "check_every_admitted_pattern",
    "composed_derivative_bounds",
    "dct_tail_bound",
    "decode_stream",
    "ordered_sum",
    "sbacc_tradeoff",
    "time_schedule",
    "worker_load",
]
