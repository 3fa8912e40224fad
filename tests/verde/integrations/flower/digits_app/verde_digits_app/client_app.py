"""ClientApp: honest local training; the last ``byzantine`` partitions attack through the mod."""

from __future__ import annotations

import numpy as np
from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from verde.integrations.flower import attack_mod
from verde_digits_app.task import train


def _is_byzantine(context: Context) -> bool:
    partitions = int(context.node_config["num-partitions"])
    return int(context.node_config["partition-id"]) >= partitions - int(
        context.run_config["byzantine"])


app = ClientApp(mods=[attack_mod("ipm", eps=4.0, byzantine=_is_byzantine)])


@app.train()
def local_train(msg: Message, context: Context) -> Message:
    part = int(context.node_config["partition-id"])
    with np.load(str(context.run_config["data"])) as data:
        x, y = data[f"x{part}"], data[f"y{part}"]
    arrays = train(msg.content["arrays"], x, y)
    return Message(RecordDict({"arrays": arrays,
                               "metrics": MetricRecord({"num-examples": len(y)})}),
                   reply_to=msg)
