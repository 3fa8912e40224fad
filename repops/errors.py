"""Errors raised by repops. ``RepopsError`` is the root; callers catch that."""

from __future__ import annotations


class RepopsError(Exception):
    """Root of every error repops raises on purpose."""


class RepopsInputError(RepopsError, ValueError):
    """An op was called with arguments that do not fit each other (shapes, ranks): the
    caller's mistake, named in the message."""


class InPlaceCastError(RepopsInputError, RuntimeError):
    """An in-place op's result dtype cannot be cast into its ``self`` (a floating result into
    an integer tensor): torch raises a RuntimeError there, and so does the mode, before
    ``self`` is written."""


class OperandDtypeError(RepopsInputError, RuntimeError):
    """An op that takes its operands in one dtype got several (``lerp``'s ``end`` of another
    dtype than ``self``): torch raises a RuntimeError there instead of promoting, and so does
    the mode, rather than compute in a dtype torch would not have."""


class UnsupportedOpError(RepopsError):
    """An aten op reached strict mode with no reproducible kernel and no place on the exact list.

    The message names the op (e.g. ``aten.median.dim``) so the user knows what to avoid or
    what kernel to add.
    """

    def __init__(self, op: str, reason: str = "") -> None:
        self.op = op
        detail = f": {reason}" if reason else ""
        super().__init__(
            f"repops has no reproducible kernel for {op}{detail} "
            "(strict mode refuses to run the vendor kernel; see repops/SPEC.md for the covered ops)"
        )


class UnsupportedInputError(RepopsError):
    """A covered op was called with inputs its kernel does not handle (dtype, device, layout)."""
