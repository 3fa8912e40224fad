"""Errors about jobs: specs, programs and datasets (all under ``VerdeError``)."""

from __future__ import annotations

from verde.errors import VerdeError, VerdeInputError


class JobError(VerdeError):
    """Root of the errors raised by ``verde.protocol.jobs``."""


class JobSpecError(JobError, VerdeInputError):
    """A job spec is malformed or inconsistent; the message names the field and the problem."""


class UnknownProgramError(JobSpecError):
    """A job names a program that is not in the registry."""


class DatasetError(JobError, VerdeInputError):
    """A dataset cannot be loaded, is malformed, or does not match its committed root."""


class ProgramNotTraceableError(JobSpecError):
    """A program cannot be disputed: its control flow or shapes depend on tensor values.

    Refereed delegation needs the arbiter to derive the step graph on shape-only tensors
    (Verde, Arun et al. 2025), so such programs are rejected when the job is submitted.
    """
