"""The tracing hook: node records, tensor identity, exact encoding, re-execution."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import repops
from repops.dispatch.encoding import TraceEncodingError, decode_call, encode, ref_key
from repops.dispatch.trace import TraceNode, default_digest
from repops.optim import AdamW, clip_grad_norm_
from tests.repops.models import MLP


def _mlp_step(keep_outputs: bool = False) -> tuple[repops.Tracer, MLP]:
    torch.manual_seed(0)
    model = MLP(d_in=12, hidden=16, d_out=5)
    x, y = torch.randn(6, 12), torch.tensor([0, 1, 2, 3, 4, 0])
    opt = AdamW(model.parameters(), lr=1e-2)
    tracer = repops.Tracer(keep_outputs=keep_outputs)
    tracer.register_leaves({f"param:{n}": p for n, p in model.named_parameters()})
    tracer.register_leaves({"batch:x": x, "batch:y": y})
    with repops.reproducible(tracer=tracer):
        F.cross_entropy(model(x), y).backward()
        clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
    return tracer, model


def _through_detach(tracer: repops.Tracer, ref: tuple) -> tuple:
    """Follow autograd's detach() of saved tensors back to the producing node."""
    while ref[0] == "node" and tracer.nodes[ref[1]].op == "aten.detach.default":
        ref = tracer.nodes[ref[1]].input_refs()[0]
    return ref


def test_every_input_of_a_training_step_is_a_node_or_registered_leaf() -> None:
    tracer, _ = _mlp_step()
    assert tracer.nodes
    assert not [leaf.name for leaf in tracer.leaf_records() if leaf.name.startswith("anon:")]
    for node in tracer.nodes:
        for ref in node.input_refs():
            if ref[0] == "node":
                assert ref[1] < node.index  # only earlier nodes
            else:
                assert ref[1] in tracer.leaves


def test_backward_reads_forward_outputs_through_saved_tensors() -> None:
    tracer = repops.Tracer()
    x = torch.randn(4, 7, requires_grad=True)
    tracer.register_leaves({"x": x})
    with repops.reproducible(tracer=tracer):
        torch.softmax(x, dim=1).sum().backward()
    fwd = next(n for n in tracer.nodes if n.op == "aten._softmax.default")
    bwd = next(n for n in tracer.nodes if n.op == "aten._softmax_backward_data.default")
    origins = {_through_detach(tracer, r) for r in bwd.input_refs()}
    assert ("node", fwd.index, 0) in origins
    assert not any(r[0] == "leaf" and r[1].startswith("anon:") for r in bwd.input_refs())


def test_views_are_followed() -> None:
    tracer = repops.Tracer()
    x = torch.randn(3, 4)
    tracer.register_leaves({"x": x})
    with repops.reproducible(tracer=tracer):
        y = x.t()
        y.mul(2.0)
    t_node, mul_node = tracer.nodes
    assert t_node.input_refs() == [("leaf", "x")]
    assert mul_node.input_refs() == [("node", t_node.index, 0)]


def test_untracked_inputs_become_anon_leaves_with_their_digest() -> None:
    tracer = repops.Tracer()
    a = torch.randn(5)
    with repops.reproducible(tracer=tracer):
        a.mul(3.0)
    assert tracer.nodes[0].input_refs() == [("leaf", "anon:0")]
    assert tracer.leaves["anon:0"].digest == default_digest(a)


def test_a_base_changed_through_a_view_is_not_mistaken_for_its_old_value() -> None:
    tracer = repops.Tracer()
    x = torch.zeros(2, 3)
    tracer.register_leaves({"x": x})
    with repops.reproducible(tracer=tracer):
        x[0].add_(torch.ones(3))  # mutates x through a view
        x.mul(2.0)
    last = tracer.nodes[-1]
    (ref,) = last.input_refs()
    assert ref != ("leaf", "x")  # x changed: its registered value is stale
    assert tracer.leaves[ref[1]].digest == default_digest(x)


def test_node_json_round_trip() -> None:
    tracer = repops.Tracer()
    x = torch.randn(3)
    tracer.register_leaves({"x": x})
    with repops.reproducible(tracer=tracer):
        x.mul(0.1)
    node = tracer.nodes[0]
    assert node.args["args"][1] == {"float": (0.1).hex()}
    again = TraceNode.from_json(json.loads(json.dumps(node.to_json())))
    assert again == node
    assert node.to_json()["output_digests"] == [node.output_digests[0].hex()]
    assert "output_digests" not in node.structure()
    assert node.without_values().output_digests == (None,)


@pytest.mark.parametrize("record", [
    {"index": 0, "op": "aten.mul.Tensor"},
    {"index": -1, "op": "aten.mul.Tensor", "args": {}, "output_digests": [], "output_meta": []},
    {"index": 0, "op": "", "args": {}, "output_digests": [], "output_meta": []},
    {"index": 0, "op": "x", "args": [], "output_digests": [], "output_meta": []},
    {"index": 0, "op": "x", "args": {}, "output_digests": ["zz"], "output_meta": []},
    {"index": 0, "op": "x", "args": {}, "output_digests": [], "output_meta": [["f", [-1]]]},
    {"index": 0, "op": "x", "args": {}, "output_digests": [], "output_meta": [], "extra": 1},
    [1, 2],
])
def test_from_json_rejects_malformed_records(record: object) -> None:
    with pytest.raises(TraceEncodingError):
        TraceNode.from_json(record)


def test_encoding_is_exact_and_tagged() -> None:
    tree = encode(
        [1.5, 2, True, None, "tanh", torch.float16, torch.device("cpu"), torch.contiguous_format],
        lambda t: {"leaf": "t"},
    )
    assert tree == [
        {"float": (1.5).hex()}, 2, True, None, {"str": "tanh"}, {"dtype": "float16"},
        {"device": "cpu"}, {"memory_format": "contiguous_format"},
    ]
    args, _ = decode_call({"args": tree, "kwargs": {}}, {})
    assert args == (1.5, 2, True, None, "tanh", torch.float16, torch.device("cpu"),
                    torch.contiguous_format)


def test_unencodable_arguments_are_refused() -> None:
    with pytest.raises(TraceEncodingError, match="Generator"):
        encode(torch.Generator(), lambda t: {"leaf": "t"})
    with pytest.raises(TraceEncodingError, match="no tensor"):
        decode_call({"args": [{"leaf": "missing"}], "kwargs": {}}, {})
    with pytest.raises(TraceEncodingError, match="unknown tag"):
        decode_call({"args": [{"bogus": 1}], "kwargs": {}}, {})
    with pytest.raises(TraceEncodingError):
        ref_key({"neither": 1})


def test_custom_digest_function_is_used() -> None:
    tracer = repops.Tracer(digest_fn=lambda t: b"D" + bytes([t.numel()]))
    with repops.reproducible(tracer=tracer):
        torch.ones(4).mul(2.0)
    assert tracer.nodes[-1].output_digests == (b"D\x04",)
    with pytest.raises(ValueError, match="digest_fn"):
        repops.Tracer(digest_fn="sha256")  # type: ignore[arg-type]


def test_register_leaves_rejects_bad_input() -> None:
    tracer = repops.Tracer()
    tracer.register_leaves({"a": torch.ones(1)})
    with pytest.raises(ValueError, match="already registered"):
        tracer.register_leaves({"a": torch.ones(1)})
    with pytest.raises(ValueError, match="reserved"):
        tracer.register_leaves({"anon:1": torch.ones(1)})
    with pytest.raises(ValueError, match="must be a tensor"):
        tracer.register_leaves({"b": [1.0]})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="non-empty strings"):
        tracer.register_leaves({"": torch.ones(1)})


def test_uninitialised_factories_are_zero_filled_so_their_digest_is_defined() -> None:
    tracer = repops.Tracer()
    with repops.reproducible(tracer=tracer):
        e = torch.empty(1000)
    assert torch.equal(e, torch.zeros(1000))
    assert tracer.nodes[0].output_digests[0] == default_digest(torch.zeros(1000))


def test_reexecuting_every_node_of_a_step_reproduces_its_digest() -> None:
    tracer, _ = _mlp_step(keep_outputs=True)
    ops = set()
    for node in tracer.nodes:
        inputs = {ref: tracer.values[ref] for ref in node.input_refs()}
        outs = repops.execute_node(node.op, node.args, inputs)
        assert tuple(default_digest(o) for o in outs) == node.output_digests, node.op
        ops.add(node.op)
    assert {"aten.addmm.default", "aten.nll_loss_backward.default", "aten.sub.Tensor",
            "aten.copy_.default"} <= ops


def test_reexecution_with_a_wrong_input_gives_a_different_digest() -> None:
    tracer, _ = _mlp_step(keep_outputs=True)
    node = next(n for n in tracer.nodes if n.op == "aten.mm.default")
    inputs = {ref: tracer.values[ref] for ref in node.input_refs()}
    first = node.input_refs()[0]
    tampered = dict(inputs)
    tampered[first] = inputs[first].clone()
    tampered[first].view(-1)[0] += 1.0
    (out,) = repops.execute_node(node.op, node.args, tampered)
    assert default_digest(out) != node.output_digests[0]


def test_execute_node_refuses_unknown_and_unsupported_ops() -> None:
    with pytest.raises(ValueError, match="not a registered"):
        repops.execute_node("aten.no_such_op.default", {"args": [], "kwargs": {}}, {})
    x = torch.randn(5)
    with pytest.raises(repops.UnsupportedOpError, match=r"aten\.median\.default"):
        repops.execute_node("aten.median.default", {"args": [{"leaf": "x"}], "kwargs": {}},
                            {("leaf", "x"): x})


def test_execute_node_does_not_modify_the_given_inputs() -> None:
    a, b = torch.ones(3), torch.full((3,), 2.0)
    tree = {"args": [{"leaf": "a"}, {"leaf": "b"}], "kwargs": {}}
    (out,) = repops.execute_node("aten.add_.Tensor", tree, {("leaf", "a"): a, ("leaf", "b"): b})
    assert torch.equal(out, torch.full((3,), 3.0))
    assert torch.equal(a, torch.ones(3))


def test_reexecuting_every_node_of_a_gpt_step_reproduces_its_digest() -> None:
    from tests.repops.models import TinyGPT, gpt_loss

    torch.manual_seed(0)
    model = TinyGPT(vocab=16, width=16, heads=2, layers=1, seq=8)
    idx = torch.randint(0, 16, (2, 9), generator=torch.Generator().manual_seed(1))
    opt = AdamW(model.parameters(), lr=1e-2)
    tracer = repops.Tracer(keep_outputs=True)
    tracer.register_leaves({f"param:{n}": p for n, p in model.named_parameters()})
    tracer.register_leaves({"batch:idx": idx})
    with repops.reproducible(tracer=tracer, seed=5):
        gpt_loss(model, idx).backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    ops = set()
    for node in tracer.nodes:
        inputs = {ref: tracer.values[ref] for ref in node.input_refs()}
        outs = repops.execute_node(node.op, node.args, inputs)
        assert tuple(default_digest(o) for o in outs) == node.output_digests, node.op
        ops.add(node.op)
    assert {
        "aten._scaled_dot_product_flash_attention_for_cpu_backward.default",
        "aten.native_layer_norm_backward.default", "aten.embedding_dense_backward.default",
        "aten.gelu_backward.default",
    } <= ops


def test_default_digest_binds_dtype_shape_and_bits_and_canonicalises_nans() -> None:
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert default_digest(x) == default_digest(x.clone())
    assert default_digest(x) != default_digest(x.reshape(2, 2))
    assert default_digest(x) != default_digest(x.double())
    assert default_digest(x) != default_digest(torch.tensor([1.0, 2.0, 3.0, 4.000001]))
    assert default_digest(x.t()) == default_digest(x.t().contiguous())
    quiet = torch.tensor([float("nan")])
    payload = torch.tensor([0x7FC00001], dtype=torch.int32).view(torch.float32)
    assert torch.isnan(payload).all()
    assert default_digest(quiet) == default_digest(payload)
    assert default_digest(torch.tensor([0.0])) != default_digest(torch.tensor([-0.0]))


def test_refusing_unknown_tensors_names_the_problem() -> None:
    tracer = repops.Tracer(unknown_tensors="refuse")
    a = torch.ones(3)
    tracer.register_leaves({"a": a})
    with repops.reproducible(tracer=tracer):
        torch.add(a, 1.0)  # a registered leaf: fine
    assert [n.op for n in tracer.nodes] == ["aten.add.Tensor"]
    constant = torch.ones(3)
    with pytest.raises(repops.UntracedTensorError, match="captured"), \
            repops.reproducible(tracer=tracer):
        torch.add(a, constant)
    with pytest.raises(ValueError, match="unknown_tensors"):
        repops.Tracer(unknown_tensors="ignore")


def test_a_view_read_after_its_base_changed_in_place_is_refused() -> None:
    tracer = repops.Tracer(unknown_tensors="refuse")
    a = torch.ones(4)
    tracer.register_leaves({"a": a})
    with pytest.raises(repops.UntracedTensorError, match="in place"), \
            repops.reproducible(tracer=tracer):
        b = a * 1
        view = b[:2]
        b.add_(1)
        torch.neg(view)


def test_scalar_results_are_recorded_exactly_or_refused() -> None:
    tracer = repops.Tracer()
    x = torch.tensor([1.5, 2.0])
    tracer.register_leaves({"x": x})
    with repops.reproducible(tracer=tracer):
        value = x.sum().item()
    assert value == 3.5
    node = tracer.nodes[-1]
    assert node.op == "aten._local_scalar_dense.default"
    assert node.scalar == {"float": (3.5).hex()} and node.output_digests == ()
    assert TraceNode.from_json(node.to_json()) == node
    refusing = repops.Tracer(scalar_results="refuse")
    refusing.register_leaves({"x": x})
    with pytest.raises(repops.ScalarResultError, match="item"), \
            repops.reproducible(tracer=refusing):
        x.sum().item()


def test_kept_values_are_snapshotted_before_an_inplace_write() -> None:
    tracer = repops.Tracer(keep_outputs=True)
    x = torch.arange(4.0)
    tracer.register_leaves({"x": x})
    with repops.reproducible(tracer=tracer):
        y = x * 2.0          # node 0: [0, 2, 4, 6]
        y.add_(1.0)          # node 1 writes y's storage: node 0's value is snapshotted first
        z = y * 1.0          # node 2 reads the new value
    assert torch.equal(tracer.value(("node", 0, 0)), torch.tensor([0.0, 2.0, 4.0, 6.0]))
    assert torch.equal(tracer.value(("node", 1, 0)), torch.tensor([1.0, 3.0, 5.0, 7.0]))
    assert torch.equal(tracer.value(("node", 2, 0)), z)
    assert tracer.nodes[2].input_refs() == [("node", 1, 0)]
    # no copy of a value nobody overwrote: node 2's kept value is z's own storage
    assert tracer.value(("node", 2, 0)).untyped_storage().data_ptr() == \
        z.untyped_storage().data_ptr()


def test_only_the_chosen_values_are_kept() -> None:
    tracer = repops.Tracer(keep_outputs={("node", 1, 0), ("leaf", "x")})
    x = torch.arange(3.0)
    tracer.register_leaves({"x": x})
    with repops.reproducible(tracer=tracer):
        (x * 2.0).neg()
    assert set(tracer.values) == {("node", 1, 0), ("leaf", "x")}
    assert torch.equal(tracer.values[("node", 1, 0)], torch.tensor([-0.0, -2.0, -4.0]))
    with pytest.raises(KeyError):
        tracer.value(("node", 0, 0))
    with pytest.raises(ValueError, match="keep_outputs"):
        repops.Tracer(keep_outputs="all")  # type: ignore[arg-type]


def test_a_write_the_tracer_did_not_see_is_caught_when_the_value_is_read() -> None:
    tracer = repops.Tracer(keep_outputs=True)
    x = torch.arange(3.0)
    tracer.register_leaves({"x": x})
    with repops.reproducible(tracer=tracer):
        y = x * 2.0
    y.add_(1.0)  # outside the traced block
    with pytest.raises(repops.KeptValueChanged):
        tracer.value(("node", 0, 0))


def test_plain_torch_tracing_records_vendor_ops_and_replays_them() -> None:
    torch.manual_seed(0)
    model = MLP(d_in=6, hidden=8, d_out=3)
    x, y = torch.randn(4, 6), torch.tensor([0, 1, 2, 0])
    tracer = repops.Tracer(keep_outputs=True)
    tracer.register_leaves({f"param:{n}": p for n, p in model.named_parameters()})
    tracer.register_leaves({"batch:x": x, "batch:y": y})
    with repops.tracing(tracer, seed=3):
        out = F.dropout(model(x), p=0.5, training=True)
        F.cross_entropy(out, y).backward()
        torch.empty(5)
    ops = [n.op for n in tracer.nodes]
    assert "aten.bernoulli_.float" in ops  # dropout with autograd: empty_like, bernoulli_, div_
    dropout = next(n for n in tracer.nodes if n.op == "aten.bernoulli_.float")
    assert dropout.args["rng"] == {"seed": 3, "stream": 0, "offset": 0}
    assert tracer.nodes[-1].output_digests[0] == default_digest(torch.zeros(5))  # zero-filled
    for node in tracer.nodes:
        inputs = {ref: tracer.values[ref] for ref in node.input_refs()}
        outs = repops.execute_node(node.op, node.args, inputs, vendor=True)
        assert tuple(default_digest(o) for o in outs) == node.output_digests, node.op


def test_plain_torch_tracing_refuses_unseeded_random_ops() -> None:
    with pytest.raises(repops.UnsupportedOpError, match="seed"), repops.tracing():
        torch.rand(3)
    with pytest.raises(repops.NestedModeError), repops.reproducible(), repops.tracing():
        pass
