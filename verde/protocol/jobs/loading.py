"""Loading user programs the same way in every process: a module, a file, an environment
variable, or an installed package's entry point.

Why one loader: a provider, the arbiter, the client and an offline verifier must all know a
job's program, and a job binds its code (``verde.protocol.jobs.code``), so every process has to
find the same code by the same rules. Three sources, all going through :func:`load_programs`:

* ``load_programs("my_pkg.programs")`` or ``load_programs("path/to/programs.py")`` (the CLI's
  ``--programs MODULE|PATH``);
* ``VERDE_PROGRAMS`` -- ``os.pathsep``-separated modules or files, read on first use of the
  registry (:func:`load_configured_programs`);
* the ``verde.programs`` entry-point group of installed distributions (``importlib.metadata``),
  each naming a module, a ``Program`` instance or subclass, or a callable returning programs.

A module contributes the programs it registers while it is imported (``register_program``) and
those in a module-level ``PROGRAMS`` sequence. Loading the same source twice is a no-op.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import threading
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from verde.protocol.jobs import program_table
from verde.protocol.jobs.errors import JobSpecError
from verde.protocol.jobs.programs import Program

ENV_VAR = "VERDE_PROGRAMS"
ENTRY_POINT_GROUP = "verde.programs"
#: Prefix of the module names given to programs loaded from a file path.
FILE_MODULE_PREFIX = "verde_programs_file_"

_LOADED: dict[str, list[Program]] = {}
_LOCK = threading.RLock()
_CONFIGURED = {"done": False}


class ProgramLoadError(JobSpecError):
    """A program source cannot be imported or defines no programs (the message names it)."""


def load_programs(spec: str) -> list[Program]:
    """Import the programs of ``spec`` (a module name or a ``.py`` path) and register them."""
    if not isinstance(spec, str) or not spec.strip():
        raise ProgramLoadError(f"programs: expected a module name or a .py path, got {spec!r}")
    spec = spec.strip()
    with _LOCK:
        key = _source_key(spec)
        if key in _LOADED:
            return list(_LOADED[key])
        before = set(program_table.table_programs())
        module = _import(spec)
        programs = [p for p in program_table.table_programs() if p not in before]
        listed = getattr(module, "PROGRAMS", ())
        for program in _as_programs(listed, f"{spec}: PROGRAMS"):
            if program not in programs:
                programs.append(program_table.register_program(program, replace_same_code=True))
        if not programs:
            raise ProgramLoadError(
                f"programs {spec}: defines no programs (call register_program(...) in it or "
                "list them in a module-level PROGRAMS)")
        _LOADED[key] = programs
        return list(programs)


def _source_key(spec: str) -> str:
    if spec.endswith(".py") or os.sep in spec or (os.altsep and os.altsep in spec):
        return "file:" + str(Path(spec).resolve())
    return "module:" + spec


def _import(spec: str) -> ModuleType:
    if _source_key(spec).startswith("file:"):
        path = Path(spec).resolve()
        if not path.is_file():
            raise ProgramLoadError(f"programs {spec}: no such file")
        name = FILE_MODULE_PREFIX + hashlib.sha256(str(path).encode()).hexdigest()[:16]
        if name in sys.modules:
            return sys.modules[name]
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise ProgramLoadError(f"programs {spec}: cannot be loaded as a Python module")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise ProgramLoadError(f"programs {spec}: importing it failed "
                                   f"({type(exc).__name__}: {exc})") from exc
        return module
    try:
        return importlib.import_module(spec)
    except Exception as exc:
        raise ProgramLoadError(f"programs {spec}: importing it failed "
                               f"({type(exc).__name__}: {exc})") from exc


def _as_programs(value: Any, where: str) -> list[Program]:
    if isinstance(value, Program):
        return [value]
    if isinstance(value, type) and issubclass(value, Program):
        return [value()]
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ProgramLoadError(f"{where}: expected Program instances, got {type(value).__name__}")
    out = []
    for item in value:
        if isinstance(item, type) and issubclass(item, Program):
            item = item()
        if not isinstance(item, Program):
            raise ProgramLoadError(f"{where}: expected Program instances, got "
                                   f"{type(item).__name__}")
        out.append(item)
    return out


def load_entry_point_programs() -> list[Program]:
    """Register the programs of every installed ``verde.programs`` entry point."""
    loaded: list[Program] = []
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        where = f"entry point {ep.name} = {ep.value}"
        with _LOCK:
            key = "entry:" + ep.value
            if key in _LOADED:
                loaded += _LOADED[key]
                continue
            if ":" not in ep.value:
                programs = load_programs(ep.value)
            else:
                try:
                    target = ep.load()
                except Exception as exc:
                    raise ProgramLoadError(f"{where}: loading it failed "
                                           f"({type(exc).__name__}: {exc})") from exc
                if callable(target) and not isinstance(target, type) and not isinstance(
                        target, Program):
                    target = target()
                programs = [program_table.register_program(p, replace_same_code=True)
                            for p in _as_programs(target, where)]
            _LOADED[key] = programs
            loaded += programs
    return loaded


def load_configured_programs(extra: Iterable[str] = ()) -> list[Program]:
    """Load every configured source: entry points, ``VERDE_PROGRAMS``, then ``extra`` (the
    CLI's ``--programs``). Each source is loaded once per process."""
    with _LOCK:
        _CONFIGURED["done"] = True
        programs = load_entry_point_programs()
        env = os.environ.get(ENV_VAR, "")
        for spec in [s for s in env.split(os.pathsep) if s.strip()]:
            programs += load_programs(spec)
    for spec in extra:
        programs += load_programs(spec)
    return programs


def ensure_configured_programs() -> None:
    """Load the configured sources once (called by the registry on first use)."""
    if not _CONFIGURED["done"]:
        load_configured_programs()
