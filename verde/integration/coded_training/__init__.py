"""Coded training over verde providers: partition-gradient jobs and provider-backed workers."""

from verde.integration.coded_training.jobs import CodedJob, GradientRound
from verde.integration.coded_training.providers import (
    DisputingReferee,
    PartitionDispute,
    ProviderTraining,
    ProviderWorker,
    WorkerAnswerInvalid,
    provider_workers,
    train_on_providers,
    train_reference,
)

__all__ = [
    "CodedJob",
    "DisputingReferee",
    "GradientRound",
    "PartitionDispute",
    "ProviderTraining",
    "ProviderWorker",
    "WorkerAnswerInvalid",
    "provider_workers",
    "train_on_providers",
    "train_reference",
]
