"""The program registry: what a job's ``program`` name means (see ``verde.protocol.jobs.programs``
for how to write one). The built-in programs (``verde.protocol.jobs.builtin``) are registered on
first use."""

from __future__ import annotations

from verde.protocol.jobs.builtin import BUILTIN_PROGRAMS
from verde.protocol.jobs.errors import UnknownProgramError
from verde.protocol.jobs.programs import Program

_REGISTRY: dict[str, Program] = {}


def register_program(program: Program, *, replace: bool = False) -> Program:
    """Add ``program`` to the registry under ``program.name``; returns it."""
    if not isinstance(program, Program):
        raise TypeError(f"expected a Program instance, got {type(program).__name__}")
    if not program.name:
        raise ValueError("a program needs a non-empty name")
    _ensure_builtins()
    if program.name in _REGISTRY and not replace:
        raise ValueError(f"a program named {program.name!r} is already registered")
    _REGISTRY[program.name] = program
    return program


def get_program(name: str) -> Program:
    """The registered program called ``name``; ``UnknownProgramError`` if there is none."""
    _ensure_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownProgramError(
            f"unknown program {name!r}; registered: {sorted(_REGISTRY)}"
        ) from None


def program_names() -> list[str]:
    _ensure_builtins()
    return sorted(_REGISTRY)


def _ensure_builtins() -> None:
    if "mlp" not in _REGISTRY:
        for program in BUILTIN_PROGRAMS:
            _REGISTRY.setdefault(program.name, program)
