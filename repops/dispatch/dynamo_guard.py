"""Keep torch.compile's frame evaluator (dynamo) out of the dispatch hook for one C call per op.

Why: torch wraps the ``__torch_dispatch__`` of every TorchDispatchMode subclass in
``torch._dynamo.disable``, so that a ``torch.compile``'d function called inside the mode does
not try to compile the hook's own frames (it fails on them). That wrapper runs on every op,
compile or not: two wrapper frames and three switches of the eval-frame callback, 1-2 us per op
on a 2-core Zen 3, a sixth of what the mode costs per op and a twentieth of a 128^3 product.

The hook needs that protection only while a callback is installed, i.e. while a compiled
function runs; one C call tells. So the mode opts out of torch's wrapper
(``_should_skip_dynamo``), its hook's own code is marked for dynamo to skip (that frame then
runs as plain Python even under compile; frames it calls are not covered), and the hook's first
statement sends the op through ``torch.compiler.disable``, which does cover them, whenever a
callback is set. Where this torch lacks any of the internals used here, :func:`available` is
False and the mode keeps torch's wrapper.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import torch

#: What this guard reads from ``torch._C._dynamo.eval_frame`` (torch 2.6 and later).
REQUIRED = ("get_eval_frame_callback", "set_code_exec_strategy", "_FrameExecStrategy",
            "_FrameAction")


def _eval_frame() -> Any:
    return getattr(getattr(torch._C, "_dynamo", None), "eval_frame", None)


def _mark_skipped(ev: Any, code: types.CodeType) -> None:
    """Tell dynamo (``ev`` is its ``eval_frame`` module) to run frames of ``code`` as plain
    Python, never compiling them; frames they call are not covered."""
    action = ev._FrameAction
    ev.set_code_exec_strategy(code, ev._FrameExecStrategy(action.SKIP, action.DEFAULT))


def _probe() -> None:
    """A function of no use but to be marked: :func:`available` tries the marking on it."""


def available(eval_frame: Any = None) -> bool:
    """Whether ``eval_frame`` (default: this torch's ``torch._C._dynamo.eval_frame``) has what
    the guard needs, and its calls work: a build whose functions exist but raise (or take
    other arguments) must leave the mode with torch's wrapper, since the mode's class decides
    once, when it is created."""
    ev = _eval_frame() if eval_frame is None else eval_frame
    if ev is None or not all(hasattr(ev, name) for name in REQUIRED):
        return False
    try:
        _mark_skipped(ev, _probe.__code__)
        ev.get_eval_frame_callback()
    except Exception:  # any failure means: keep torch's wrapper
        return False
    return True


def skip_frames_of(code: types.CodeType) -> None:
    """Mark ``code`` and :func:`outside_dynamo`'s so that dynamo runs their frames as plain
    Python, never compiling them (what ``torch._dynamo.eval_frame.skip_code`` does, without
    importing dynamo). Idempotent; called on every entry of the mode, so a
    ``torch._dynamo.reset()`` in between does not leave the hook exposed."""
    for c in (code, outside_dynamo.__code__):
        _mark_skipped(_eval_frame(), c)


_disabled: dict[Callable[..., Any], Callable[..., Any]] = {}


def outside_dynamo(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` wrapped in ``torch.compiler.disable`` (recursive: nothing it calls is compiled);
    built on first use, since that imports dynamo."""
    wrapped = _disabled.get(fn)
    if wrapped is None:
        wrapped = _disabled[fn] = torch.compiler.disable(fn, recursive=True)
    return wrapped


#: The C function that returns this thread's eval-frame callback: not None while a compiled
#: function runs (or dynamo is in its run-only state). A builtin, so calling it opens no frame
#: dynamo could intercept. None where the guard is not available.
eval_frame_callback: Callable[[], Any] | None = (
    _eval_frame().get_eval_frame_callback if available() else None)
