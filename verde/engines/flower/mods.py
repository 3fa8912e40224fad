"""verde's update attacks as Flower client mods: a Byzantine client of your own deployment.

The mod wraps the ClientApp: it lets the app train honestly, takes the update the client
would have sent (reply weights minus the weights it received) and replaces it by what the
attack makes of it, so the server receives ``received + attack(update)``. Optionally it also
claims another example count (inflating its weight under FedAvg).

What the attacker knows: its own data and update, not the other clients' (the "partial
knowledge" setting of Fang et al. 2020, "Local Model Poisoning Attacks to Byzantine-Robust
Federated Learning"). Attacks are therefore computed from the client's own update as the one
honest sample: sign flipping sends -u, IPM -eps*u (eps > 1 reverses the average under
FedAvg), Gaussian noise, inf/NaN; attacks built on the honest spread (ALIE, min-max,
min-sum, mimic) reduce to sending u itself with one sample and are refused here. Label
flipping is a data attack: flip the labels in the client's data loader
(``verde.robust.LabelFlipping.flip``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from verde.engines.flower.records import RecordLayoutError, flatten_arrays, unflatten_arrays

try:
    from flwr.app import Context, Message, MessageType
    from flwr.clientapp.typing import ClientAppCallable, Mod
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("verde.engines.flower needs Flower: pip install 'verde[flower]'"
                      ) from exc

#: Attacks that work from the client's own update alone.
MOD_ATTACKS = ("sign_flipping", "ipm", "gaussian", "inf", "nan")

Byzantine = bool | Callable[[Context], bool]


def attack_mod(attack: str, *, byzantine: Byzantine = True, claim_examples: int | None = None,
               count_key: str = "num-examples", **params: Any) -> Mod:
    """A client mod that turns this client's training replies into ``attack``'s output.

    ``attack``: one of :data:`MOD_ATTACKS` with its parameters (``eps`` for IPM, ``std`` for
    Gaussian...). ``byzantine``: whether this client attacks, or a function of the run's
    ``Context`` deciding it (e.g. by ``context.node_config["partition-id"]``).
    ``claim_examples``: the example count the client reports instead of its own (under
    ``count_key`` in its MetricRecord). Evaluation messages pass through untouched.
    """
    if attack not in MOD_ATTACKS:
        hint = (" (a data attack: flip labels in the client's data loader)"
                if attack == "label_flipping" else "")
        raise ValueError(f"attack_mod: {attack!r} cannot run as a client mod{hint}; choose "
                         f"one of {list(MOD_ATTACKS)}")
    if claim_examples is not None and (isinstance(claim_examples, bool)
                                       or not isinstance(claim_examples, int)
                                       or claim_examples < 0):
        raise ValueError(f"attack_mod: claim_examples must be a count >= 0, got "
                         f"{claim_examples!r}")
    attacker: list[Any] = []  # built on first use: honest clients never import the rules
    decide = byzantine if callable(byzantine) else (lambda _ctx: bool(byzantine))

    def verde_attack_mod(msg: Message, context: Context, call_next: ClientAppCallable
                         ) -> Message:
        if not msg.metadata.message_type.startswith(MessageType.TRAIN) or not decide(context):
            return call_next(msg, context)
        sent = list(msg.content.array_records.values())
        if len(sent) != 1:
            return call_next(msg, context)
        base, _, layout = flatten_arrays(sent[0])
        reply = call_next(msg, context)
        if reply.has_error():
            return reply
        key, record = next(iter(reply.content.array_records.items()))
        try:
            trained, others, _ = flatten_arrays(record, layout)
        except RecordLayoutError:
            return reply
        if not attacker:
            from verde.robust import make_attack

            attacker.append(make_attack(attack, **params))
        update = (trained - base)[None, :]
        with np.errstate(all="ignore"):
            malicious = np.asarray(attacker[0](update, 1)).reshape(-1).astype(base.dtype)
        reply.content.array_records[key] = unflatten_arrays(base + malicious, others, layout)
        if claim_examples is not None:
            for metrics in reply.content.metric_records.values():
                if count_key in metrics:
                    metrics[count_key] = claim_examples
        return reply

    return verde_attack_mod
