"""The program registry: what a job's ``program`` name means (see ``verde.protocol.jobs.programs``
for how to write one, ``verde.protocol.jobs.loading`` for loading user programs). The built-in
programs (``verde.protocol.jobs.builtin``, and ``hf`` from ``verde.protocol.jobs.hf``) and the
configured user programs (entry points, ``VERDE_PROGRAMS``) are registered on first use; the
table itself lives in ``verde.protocol.jobs.program_table``.
"""

from __future__ import annotations

from verde.protocol.jobs.errors import UnknownProgramError
from verde.protocol.jobs.loading import ensure_configured_programs
from verde.protocol.jobs.program_table import (
    ProgramConflict,
    register_program,
    table_lookup,
    table_programs,
)
from verde.protocol.jobs.programs import Program

__all__ = ["ProgramConflict", "get_program", "program_names", "register_program",
           "registered_programs"]


def get_program(name: str) -> Program:
    """The registered program called ``name``; ``UnknownProgramError`` if there is none."""
    ensure_configured_programs()
    program, known = table_lookup(name)
    if program is not None:
        return program
    raise UnknownProgramError(
        f"unknown program {name!r}; registered: {known} (load your own with --programs "
        "MODULE|PATH, the VERDE_PROGRAMS variable or a 'verde.programs' entry point)")


def program_names() -> list[str]:
    ensure_configured_programs()
    return sorted(p.name for p in table_programs())


def registered_programs() -> list[Program]:
    """Every registered program (built-ins, then the others in registration order)."""
    ensure_configured_programs()
    return table_programs()
