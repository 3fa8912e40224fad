"""The table of registered programs, and the built-in ones (registered on first use).

The storage half of ``verde.protocol.jobs.registry``: the loader of user programs
(``verde.protocol.jobs.loading``) registers into this table, and the registry looks programs
up after the loader has registered the configured ones, so neither imports the other in a
circle. Every program is registered with its code version (``verde.protocol.jobs.code``), so a
second program under a taken name is refused with both code versions named, unless it is the
same code.
"""

from __future__ import annotations

import threading

from verde.protocol.jobs.code import code_version
from verde.protocol.jobs.errors import JobSpecError
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
    ensure_builtins()
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


def table_programs() -> list[Program]:
    """The programs in the table now (built-ins first), without loading configured ones."""
    ensure_builtins()
    with _LOCK:
        return list(_REGISTRY.values())


def table_lookup(name: str) -> tuple[Program | None, list[str]]:
    """The program called ``name`` (or None) and every registered name."""
    ensure_builtins()
    with _LOCK:
        return _REGISTRY.get(name), sorted(_REGISTRY)


def ensure_builtins() -> None:
    with _LOCK:
        if _STATE["builtins"]:
            return
        _STATE["builtins"] = True
        from verde.protocol.jobs.builtin import BUILTIN_PROGRAMS
        from verde.protocol.jobs.hf.program import HFProgram
        from verde.protocol.jobs.linear_map import Matmul

        for program in (*BUILTIN_PROGRAMS, Matmul(), HFProgram()):
            _REGISTRY.setdefault(program.name, program)
