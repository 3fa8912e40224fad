"""verde.coding: gradient coding — training that keeps going when workers straggle or lie.

Codes (Tandon et al., ICML 2017): :class:`FractionalRepetitionCode` (bit-exact decoding),
:class:`CyclicRepetitionCode` (any n-s of n, conditioned real decoding),
:class:`IgnoreStragglers` (approximate baseline); sequential schemes with a delay budget
(after Krishnan, Ebrahimi, Khisti, ICLR 2023); Byzantine replicated groups with bit-exact
majority (after DRACO); a :class:`Coordinator` that runs coded steps over workers — in process
(:class:`InProcessWorker`) or verde providers (:class:`ProviderWorker`, each partition a one-step
gradient job, split replica groups settled by verde disputes: :func:`train_on_providers`); delay
models and a simulator to compare schemes.
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
from verde.coding.jobs import CodedJob, GradientRound
from verde.coding.providers import (
    DisputingReferee,
    PartitionDispute,
    ProviderTraining,
    ProviderWorker,
    WorkerAnswerInvalid,
    provider_workers,
    train_on_providers,
    train_reference,
)
from verde.coding.sequential import Multiplexed, SelectiveRepetition

__all__ = [
    "Bursty",
    "CodedJob",
    "CodingError",
    "Coordinator",
    "CyclicRepetitionCode",
    "DecodeReport",
    "DisputingReferee",
    "FractionalRepetitionCode",
    "GradientCode",
    "GradientRound",
    "GroupDecision",
    "HeavyTailed",
    "IgnoreStragglers",
    "InProcessWorker",
    "Multiplexed",
    "NumericallyUnsafe",
    "PartitionDispute",
    "ProviderTraining",
    "ProviderWorker",
    "RecomputingReferee",
    "ReplicaMismatch",
    "ReplicatedGroups",
    "SelectiveRepetition",
    "ShiftedExponential",
    "StepOutcome",
    "StragglerHistory",
    "TooManyStragglers",
    "WorkerAnswerInvalid",
    "WorkerTask",
    "ordered_sum",
    "provider_workers",
    "train_on_providers",
    "train_reference",
    "worker_load",
]
