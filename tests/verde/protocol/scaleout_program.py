"""A user program in an importable module: a worker process learns it by importing this module
(``partition_worker`` gets the module name from its provider)."""

from __future__ import annotations

from typing import Any, ClassVar

from verde.protocol.jobs.builtin import MLP
from verde.protocol.jobs.registry import program_names, register_program


class WideMLP(MLP):
    """The built-in MLP under another name (what matters is that workers do not know it)."""

    name = "scaleout-wide-mlp"
    defaults: ClassVar[dict[str, Any]] = {"hidden": 24, "layers": 1, "classes": 10}


if WideMLP.name not in program_names():
    register_program(WideMLP())
