"""The program registry: what a job's ``program`` name means (see ``verde.protocol.jobs.programs``
for how to write one, ``verde.protocol.jobs.loading`` for loading user programs). The built-in
programs (``verde.protocol.jobs.builtin``, and ``hf`` from ``verde.protocol.jobs.hf``) and the
configured user programs (entry points, ``VERDE_PROGRAMS``) are registered on first use.

Every program is registered with its code version (``verde.protocol.jobs.code``), so a second
program under a taken name is refused with both code versions named, unless it is the same code.
"""

from __future__ import annotations

import threading

from verde.protocol.jobs.code import code_version
from verde.protocol.jobs.errors import JobSpecError, UnknownProgramError
from verde.protocol.jobs.programs import Program

_REGISTRY: dict[str, Program] = {}
_LOCK = threading.RLock()
_STATE = {"builtins": False}


class ProgramConflict(JobSpecError):
    """Two different programs (by code) were registered under one name."""


def register_program(program: Program, *, replace: bool = False,
                     replace_same_code: bool = False) -> Program:
    """Add ``program`` to the registry under ``program.name``; returns the registered program.

    Its code version is computed (and a declared ``version`` checked against its sources) now.
    ``replace`` swaps out any program of that name; ``replace_same_code`` returns the one
    already registered when its code version is the same (loading one source twice).
    """
    if not isinstance(program, Program):
        raise TypeError(f"expected a Program instance, got {type(program).__name__}")
    if not program.name:
        raise ValueError("a program needs a non-empty name")
    version = code_version(program)
    _ensure_builtins()
    with _LOCK:
        existing = _REGISTRY.get(program.name)
        if existing is not None and not replace:
            theirs = code_version(existing)
            if replace_same_code and theirs == version:
                return existing
            raise ProgramConflict(
                f"a program named {program.name!r} is already registered ({theirs}); this one "
                f"is {version}")
        _REGISTRY[program.name] = program
    return program


def get_program(name: str) -> Program:
    """The registered program called ``name``; ``UnknownProgramError`` if there is none."""
    _ensure_builtins()
    with _LOCK:
        program = _REGISTRY.get(name)
        if program is not None:
            return program
        known = sorted(_REGISTRY)
    raise UnknownProgramError(
        f"unknown program {name!r}; registered: {known} (load your own with --programs "
        "MODULE|PATH, the VERDE_PROGRAMS variable or a 'verde.programs' entry point)")


def program_names() -> list[str]:
    _ensure_builtins()
    with _LOCK:
        return sorted(_REGISTRY)


def registered_programs() -> list[Program]:
    """Every registered program (built-ins, then the others in registration order)."""
    _ensure_builtins()
    with _LOCK:
        return list(_REGISTRY.values())


def _ensure_builtins() -> None:
    with _LOCK:
        if _STATE["builtins"]:
            return
        _STATE["builtins"] = True
        from verde.protocol.jobs.builtin import BUILTIN_PROGRAMS
        from verde.protocol.jobs.hf.program import HFProgram

        for program in (*BUILTIN_PROGRAMS, HFProgram()):
            _REGISTRY.setdefault(program.name, program)
    from verde.protocol.jobs.loading import ensure_configured_programs

    ensure_configured_programs()
