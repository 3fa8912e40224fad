"""attack_mod inside a real ClientApp: what a Byzantine client of a deployment sends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from flwr.app import (
    Array,
    ArrayRecord,
    Context,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp

from verde.engines.flower import attack_mod

STEP = np.array([0.5, -1.0, 2.0, 0.25], dtype=np.float32)
ROOT = Path(__file__).resolve().parents[4]


def _app(*mods) -> ClientApp:
    app = ClientApp(mods=list(mods))

    @app.train()
    def train(msg: Message, context: Context) -> Message:  # one honest step of +STEP
        w = msg.content["arrays"]["w"].numpy()
        return Message(RecordDict({"arrays": ArrayRecord({"w": Array(w + STEP)}),
                                   "metrics": MetricRecord({"num-examples": 32})}),
                       reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        return Message(RecordDict({"metrics": MetricRecord({"acc": 0.5})}), reply_to=msg)

    return app


def _ask(app: ClientApp, kind: str = MessageType.TRAIN, partition: int = 0) -> Message:
    w0 = np.array([1.0, 1.0, 1.0, 1.0], dtype=np.float32)
    msg = Message(RecordDict({"arrays": ArrayRecord({"w": Array(w0)})}), dst_node_id=7,
                  message_type=kind)
    ctx = Context(run_id=1, node_id=7, node_config={"partition-id": partition},
                  state=RecordDict(), run_config={})
    return app(msg, ctx)


def test_honest_client_sends_its_update():
    out = _ask(_app())
    np.testing.assert_array_equal(out.content["arrays"]["w"].numpy(), 1.0 + STEP)


@pytest.mark.parametrize("attack,params,expect", [
    ("sign_flipping", {}, 1.0 - STEP),
    ("ipm", {"eps": 4.0}, 1.0 - 4.0 * STEP),
])
def test_byzantine_client_sends_the_attack_of_its_update(attack, params, expect):
    out = _ask(_app(attack_mod(attack, **params)))
    np.testing.assert_allclose(out.content["arrays"]["w"].numpy(), expect, rtol=1e-6)
    assert out.content["metrics"]["num-examples"] == 32


def test_nan_attack_and_claimed_counts():
    out = _ask(_app(attack_mod("nan", claim_examples=10_000)))
    assert np.isnan(out.content["arrays"]["w"].numpy()).all()
    assert out.content["metrics"]["num-examples"] == 10_000


def test_byzantine_decided_by_context_and_evaluation_untouched():
    mod = attack_mod("sign_flipping", byzantine=lambda ctx: ctx.node_config["partition-id"] >= 7)
    app = _app(mod)
    np.testing.assert_array_equal(_ask(app, partition=3).content["arrays"]["w"].numpy(),
                                  1.0 + STEP)
    np.testing.assert_array_equal(_ask(app, partition=8).content["arrays"]["w"].numpy(),
                                  1.0 - STEP)
    assert _ask(app, MessageType.EVALUATE, partition=8).content["metrics"]["acc"] == 0.5


@pytest.mark.parametrize("attack,match", [("label_flipping", "data attack"),
                                          ("alie", "cannot run as a client mod"),
                                          ("optimal_ipm", "cannot run as a client mod")])
def test_attacks_that_cannot_be_mods_are_refused(attack, match):
    with pytest.raises(ValueError, match=match):
        attack_mod(attack)


def test_bad_claimed_count_is_refused():
    with pytest.raises(ValueError, match="claim_examples"):
        attack_mod("ipm", claim_examples=-1)


def test_verde_imports_without_flower():
    code = ("import sys; sys.modules['flwr'] = None\n"
            "import verde, verde.robust, verde.engines, verde.engines.flower as F\n"
            "try:\n    F.RobustStrategy\nexcept ImportError as e:\n    print('refused:', e)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=120, check=True)
    assert "refused: verde.engines.flower needs Flower" in out.stdout
