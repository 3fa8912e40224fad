"""A program's code identity: the digest of its source files, or a version checked against it.

Why: a job names its program, and every party runs the program *it* has under that name. If
the client, a provider and the arbiter run different code under one name, an honest provider
computes something the arbiter's replay does not expect and can lose a dispute it should win
(Verde, Arun et al. 2025, presumes one agreed program). So the job binds the code: its
``program_version`` is ``"sha256:<hex>"``, the SHA-256 over the program's source files (names
relative to their package root and their bytes, line endings normalised to ``\\n``), or an
explicit version string the program declares together with the source digest that version
names -- checked when the program registers, so a version can never silently cover other
code. A party whose program has another identity refuses the job at submission and says both.

Which files: by default the module defining the program's class and the modules of its base
classes up to :class:`~verde.protocol.jobs.programs.Program` (a built-in program's file and
the shared base with its initialisation rules); a program lists more with ``source_modules``
(modules whose code its computation depends on, e.g. helper modules of a package).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from verde.protocol.jobs.errors import JobSpecError

if TYPE_CHECKING:
    from verde.protocol.jobs.programs import Program

DIGEST_PREFIX = "sha256:"
_CODE_DOMAIN = b"verde/program-code/v1\x00"


class ProgramCodeError(JobSpecError):
    """A program's source cannot be read, or its declared version names other sources."""


class ProgramVersionMismatch(JobSpecError):
    """A job was made for other code than the program this process runs under that name."""


def _module_file(module_name: str, program: str) -> Path:
    module = sys.modules.get(module_name)
    if module is None:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ProgramCodeError(f"program {program}: cannot import its source module "
                                   f"{module_name} ({exc})") from exc
    file = getattr(module, "__file__", None)
    if not file or not file.endswith(".py"):
        raise ProgramCodeError(f"program {program}: module {module_name} has no Python source "
                               f"file to digest (got {file!r})")
    return Path(file)


def source_modules(program: Program) -> list[str]:
    """The modules whose source makes up ``program``'s code identity (sorted, distinct)."""
    from verde.protocol.jobs.programs import Program

    names = {
        cls.__module__
        for cls in type(program).__mro__
        if isinstance(cls, type) and issubclass(cls, Program)
    }
    names.update(getattr(program, "source_modules", ()))
    return sorted(names)


def _display_name(module_name: str, file: Path) -> str:
    """A machine-independent name for a source file: the module's dotted name (a file loaded
    by path is named by its file name only)."""
    if module_name.startswith("verde_programs_file_"):
        return file.name
    return module_name


def source_digest(program: Program) -> str:
    """``"sha256:<hex>"`` over ``program``'s source modules (see the module docstring)."""
    h = hashlib.sha256(_CODE_DOMAIN)
    for module_name in source_modules(program):
        file = _module_file(module_name, program.name)
        try:
            text = file.read_bytes()
        except OSError as exc:
            raise ProgramCodeError(f"program {program.name}: cannot read its source {file} "
                                   f"({exc.strerror})") from exc
        text = text.replace(b"\r\n", b"\n")
        name = _display_name(module_name, file).encode()
        h.update(len(name).to_bytes(4, "little") + name)
        h.update(len(text).to_bytes(8, "little") + text)
    return DIGEST_PREFIX + h.hexdigest()


def code_version(program: Program) -> str:
    """The program's identity in a job: its declared ``version`` (after checking its
    ``source_digest``) or its source digest. Cached on the program object."""
    cached = program.__dict__.get("_code_version")
    if isinstance(cached, str):
        return cached
    digest = source_digest(program)
    declared = getattr(program, "version", None)
    if declared is None:
        version = digest
    else:
        if not isinstance(declared, str) or not declared or declared.startswith(DIGEST_PREFIX):
            raise ProgramCodeError(f"program {program.name}: version must be a non-empty string "
                                   f"not starting with {DIGEST_PREFIX!r}, got {declared!r}")
        pinned = getattr(program, "source_digest", None)
        if pinned != digest:
            raise ProgramCodeError(
                f"program {program.name}: version {declared!r} is declared for sources "
                f"{pinned}, but its sources are {digest}; set source_digest to the new digest "
                "and a new version when the code changes")
        version = declared
    program.__dict__["_code_version"] = version
    return version


def check_code_version(program: Program, claimed: object) -> str:
    """The program's code version; ``ProgramVersionMismatch`` naming both when a job claims
    another (``claimed`` None: the job is new and takes this process's code)."""
    mine = code_version(program)
    if claimed is None:
        return mine
    if not isinstance(claimed, str) or not claimed:
        raise JobSpecError(f"job spec: program_version must be a non-empty string, got "
                           f"{claimed!r}")
    if claimed != mine:
        raise ProgramVersionMismatch(
            f"job spec: program {program.name!r} is {claimed} in this job, but this process "
            f"runs {mine} (different code under one name); run the job's code or re-create "
            "the job with this code")
    return mine


def defining_file(program: Program) -> str:
    """Where the program's class is defined (for error messages)."""
    try:
        return inspect.getsourcefile(type(program)) or type(program).__module__
    except TypeError:
        return type(program).__module__
