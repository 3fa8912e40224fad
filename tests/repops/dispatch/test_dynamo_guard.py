"""The mode's own guard against torch.compile's frame evaluator (repops.dispatch.dynamo_guard)."""

from __future__ import annotations

import types
import warnings

import pytest
import torch
import torch.nn.functional as F

import repops
from repops.dispatch import dynamo_guard
from repops.dispatch.mode import ReproducibleMode
from repops.kernels import matmul

needs_guard = pytest.mark.skipif(
    not dynamo_guard.available(),
    reason=f"torch {torch.__version__} lacks torch._C._dynamo.eval_frame's "
    f"{', '.join(dynamo_guard.REQUIRED)}; the mode keeps torch's own wrapper there",
)


def _program(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (F.gelu(x @ w) + 1).softmax(-1) @ w


@needs_guard
def test_the_hook_is_not_wrapped_by_torch_where_the_guard_is_available() -> None:
    hook = ReproducibleMode.__dict__["__torch_dispatch__"]
    assert hook.__module__ == "repops.dispatch.mode" and not hasattr(hook, "__wrapped__")
    assert not ReproducibleMode._should_skip_dynamo()


@needs_guard
def test_a_compiled_function_under_the_mode_gives_the_eager_bits_and_no_dynamo_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # dynamo leaves a frame alone while a dispatch mode is on the stack, but the mode is off
    # the stack while its own hook runs: that is where dynamo would step in.
    from torch._dynamo.testing import CompileCounter

    monkeypatch.setattr(dynamo_guard, "_disabled", {})
    x, w = torch.randn(16, 32), torch.randn(32, 32)
    with repops.reproducible():
        eager = _program(x, w)
    counter = CompileCounter()
    compiled = torch.compile(_program, backend=counter)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # dynamo warns when it tries to trace the hook
        with repops.reproducible():
            got = compiled(x, w)
    assert torch.equal(got, eager)
    assert ReproducibleMode._hook in dynamo_guard._disabled  # the ops went round dynamo
    assert counter.frame_count == 0  # and dynamo compiled no frame of repops'


@needs_guard
def test_traced_ops_of_a_compiled_function_are_recorded_like_eager_ones() -> None:
    x, w = torch.randn(8, 16), torch.randn(16, 16)
    eager_tracer, compiled_tracer = repops.Tracer(), repops.Tracer()
    for tracer in (eager_tracer, compiled_tracer):
        tracer.register_leaves({"x": x, "w": w})
    with repops.reproducible(tracer=eager_tracer):
        eager = _program(x, w)
    with repops.reproducible(tracer=compiled_tracer):
        got = torch.compile(_program, backend="eager")(x, w)
    assert torch.equal(got, eager)
    assert compiled_tracer.structure() == eager_tracer.structure()
    assert len(eager_tracer.structure()) >= 5  # matmul, gelu, add, softmax, matmul


def test_without_working_internals_the_guard_is_unavailable() -> None:
    marked: list[object] = []

    def fake(**changes: object) -> types.SimpleNamespace:
        ev = types.SimpleNamespace(
            get_eval_frame_callback=lambda: None,
            set_code_exec_strategy=lambda code, strategy: marked.append(code),
            _FrameExecStrategy=lambda now, nested: (now, nested),
            _FrameAction=types.SimpleNamespace(SKIP=1, DEFAULT=0),
        )
        for name, value in changes.items():
            setattr(ev, name, value)
        return ev

    assert dynamo_guard.available(fake()) and marked  # tried on a probe, not on the hook
    assert not dynamo_guard.available(types.SimpleNamespace())
    assert not dynamo_guard.available(fake(_FrameAction=types.SimpleNamespace(DEFAULT=0)))

    def refuses(code: object, strategy: object) -> None:
        raise RuntimeError("this build's dynamo is a stub")

    assert not dynamo_guard.available(fake(set_code_exec_strategy=refuses))


def test_the_plain_shortcut_runs_only_without_a_tracer_and_gives_the_general_bits() -> None:
    a, b = torch.randn(40, 30), torch.randn(30, 20)
    with repops.reproducible() as mode:
        plain = torch.mm(a, b)
        assert mode._shortcuts.get(torch.ops.aten.mm.default) is matmul.plain_mm
    tracer = repops.Tracer()
    with repops.reproducible(tracer=tracer) as traced:
        recorded = torch.mm(a, b)
        assert not traced._shortcuts
    with repops.tracing(repops.Tracer(), seed=1) as vendor:
        assert not vendor._shortcuts
    assert torch.equal(plain, matmul.mm(a, b)) and torch.equal(recorded, plain)
