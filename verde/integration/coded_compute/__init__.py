"""Coded computation over verde providers: BACC/SBACC inference and the fault-tolerant
Strassen-like matmul, every share a verde job, located shares settled by disputes."""

from verde.integration.coded_compute.providers import (
    DisputingShareReferee,
    ProviderShareWorker,
    ShareAnswer,
    ShareDispute,
)
from verde.integration.coded_compute.runs import (
    ProviderCodedRun,
    inference_on_providers,
    inference_workers,
    matmul_on_providers,
    matmul_workers,
    share_workers,
)
from verde.integration.coded_compute.share_jobs import InferenceShares, MatmulShares, ShareJobs

__all__ = [
    "DisputingShareReferee",
    "InferenceShares",
    "MatmulShares",
    "ProviderCodedRun",
    "ProviderShareWorker",
    "ShareAnswer",
    "ShareDispute",
    "ShareJobs",
    "inference_on_providers",
    "inference_workers",
    "matmul_on_providers",
    "matmul_workers",
    "share_workers",
]
