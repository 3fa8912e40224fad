"""Random ops inside the mode draw from repops.rng's Philox stream, recorded in the trace."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import repops
from repops.dispatch.mode import NonReproducibleWarning
from repops.dispatch.trace import default_digest
from repops.rng import PhiloxStream


def test_seeded_random_ops_repeat_and_depend_on_the_seed() -> None:
    x = torch.ones(64, 32)
    with repops.reproducible(seed=7):
        a = F.dropout(x, 0.5, training=True)
        r = torch.randn(5)
    with repops.reproducible(seed=7):
        b = F.dropout(x, 0.5, training=True)
        s = torch.randn(5)
    with repops.reproducible(seed=8):
        c = F.dropout(x, 0.5, training=True)
    assert torch.equal(a, b) and torch.equal(r, s)
    assert not torch.equal(a, c)
    assert set(a.unique().tolist()) <= {0.0, 2.0}


def test_values_come_from_the_philox_stream() -> None:
    from repops.rng import ops

    with repops.reproducible(seed=11):
        z = torch.randn(3, 4)
    assert torch.equal(z, ops.randn(PhiloxStream(11), (3, 4), torch.float32))


def test_a_stream_object_continues_across_blocks() -> None:
    stream = PhiloxStream(5)
    with repops.reproducible(seed=stream):
        first = torch.rand(10)
    offset = stream.offset
    assert offset > 0
    with repops.reproducible(seed=stream):
        second = torch.rand(10)
    assert not torch.equal(first, second)
    with repops.reproducible(seed=PhiloxStream(5, 0, offset)):
        again = torch.rand(10)
    assert torch.equal(second, again)


def test_random_nodes_record_the_stream_state_and_replay() -> None:
    tracer = repops.Tracer(keep_outputs=True)
    x = torch.randn(8, 8)
    tracer.register_leaves({"x": x})
    with repops.reproducible(seed=3, tracer=tracer):
        F.dropout(x, 0.25, training=True)
        torch.randn(4)
    random_nodes = [n for n in tracer.nodes if "rng" in n.args]
    assert [n.op for n in random_nodes] == ["aten.bernoulli_.float", "aten.randn.default"]
    assert random_nodes[0].args["rng"] == {"seed": 3, "stream": 0, "offset": 0}
    assert random_nodes[1].args["rng"]["offset"] > 0
    for node in tracer.nodes:
        inputs = {ref: tracer.values[ref] for ref in node.input_refs()}
        outs = repops.execute_node(node.op, node.args, inputs)
        assert tuple(default_digest(o) for o in outs) == node.output_digests, node.op
    wrong = dict(random_nodes[1].args, rng={"seed": 3, "stream": 0, "offset": 999})
    (out,) = repops.execute_node("aten.randn.default", wrong, {})
    assert default_digest(out) != random_nodes[1].output_digests[0]


def test_structure_only_trace_records_the_same_stream_states() -> None:
    def step(model: nn.Module, x: torch.Tensor) -> repops.Tracer:
        tracer = repops.Tracer()
        tracer.register_leaves({f"param:{n}": p for n, p in model.named_parameters()})
        tracer.register_leaves({"x": x})
        with repops.reproducible(seed=1, tracer=tracer):
            F.dropout(model(x), 0.1, training=True).sum().backward()
        return tracer

    torch.manual_seed(0)
    model = nn.Linear(6, 5)
    x = torch.randn(3, 6)
    real = step(model, x)
    meta = step(nn.Linear(6, 5, device="meta"), x.to("meta"))
    assert any("rng" in n.args for n in real.nodes)
    assert real.structure() == meta.structure()


def test_no_seed_strict_refuses_and_non_strict_flags() -> None:
    with pytest.raises(repops.UnsupportedOpError, match=r"aten\.rand\.default.*seed"), \
            repops.reproducible():
        torch.rand(3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with repops.reproducible(strict=False) as mode:
            torch.rand(3)
    assert not mode.reproducible and "aten.rand.default" in mode.nonreproducible_ops
    assert any(issubclass(w.category, NonReproducibleWarning) for w in caught)


def test_random_op_without_an_adapter_is_refused() -> None:
    x = torch.rand(4)
    with pytest.raises(repops.UnsupportedOpError, match=r"aten\.exponential_"), \
            repops.reproducible(seed=0):
        x.exponential_()


def test_bad_seed_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="seed"):
        repops.reproducible(seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed"):
        repops.reproducible(seed=2**64)
