"""verde's rules as a DDP communication hook, and verde's attacks as a Byzantine worker's hook.

DDP sums the workers' gradients bucket by bucket with an all-reduce; one worker sending
garbage moves that sum arbitrarily. :func:`robust_comm_hook` instead all-gathers the workers'
gradients and applies a verde rule, on every rank, to the same gathered vectors, so every
honest rank steps with the same robust aggregate (DDP then copies it into ``param.grad``).

Per bucket or whole gradient:
- ``mode="bucket"`` runs the rule on each bucket as DDP hands it over (communication overlaps
  the rest of the backward pass). That is exact, i.e. the same as the rule on the whole
  gradient, only for *coordinate-wise* rules (``Aggregator.coordinatewise``: mean, median,
  trimmed mean, MeaMed), whose output coordinate j depends on coordinate j alone.
- ``mode="whole"`` waits for the last bucket, gathers the whole flattened gradient once and
  runs the rule on it: needed by every rule that looks at distances, norms or directions
  (Krum, Multi-Krum, geometric median, NNM, clipping, FLTrust...), which would otherwise judge
  each bucket's slice on its own (and could keep different workers for different layers).
- ``mode="auto"`` (default) picks "bucket" for coordinate-wise rules, "whole" for the others.

Each rank is one worker: a rule tolerating f Byzantine workers needs its own condition on the
world size (median: W > 2f). Rules that need a reference gradient (FLTrust) read it from
``state.reference``: a mapping parameter -> reference gradient that the training loop sets
every step (e.g. the gradient on a small trusted batch that every rank holds), so two ranks
can already tolerate one Byzantine worker. A rule works on the ranks' gradients exactly as
gathered; use ``deterministic=True`` rules where ranks run on different CPUs.

:func:`byzantine_comm_hook` makes a rank Byzantine for tests and measurements: it sends
``attack(own bucket gradient)`` (the partial-knowledge setting of ``attack_mod``) into the
same collective.
"""

# No ``from __future__ import annotations``: DDP compares the hooks' annotations with
# dist.GradBucket and Future[Tensor] as objects.
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from verde.robust import Aggregator, ApproximationWarning, make_aggregator, make_attack

MODES = ("auto", "bucket", "whole")
MOD_ATTACKS = ("sign_flipping", "ipm", "gaussian", "inf", "nan")


@dataclass
class RobustHookState:
    """The rule, the mode and the process group; ``reference`` for rules that need one."""

    rule: Aggregator
    mode: str = "auto"
    group: Any = None
    reference: Mapping[torch.Tensor, torch.Tensor] | None = None
    _pending: list[tuple[Any, torch.Tensor, Any]] = field(
        default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.rule, str):
            raise ValueError("RobustHookState: pass an aggregator object, e.g. "
                             "make_aggregator('median', f=1)")
        if not isinstance(self.rule, Aggregator):
            raise ValueError(f"RobustHookState: rule must be a verde aggregator, got "
                             f"{type(self.rule).__name__}")
        if self.mode not in MODES:
            raise ValueError(f"RobustHookState: mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "auto":
            self.mode = "bucket" if self.rule.coordinatewise else "whole"
        elif self.mode == "bucket" and not self.rule.coordinatewise:
            warnings.warn(f"{self.rule!r} is not coordinate-wise: per bucket it judges each "
                          "bucket's slice of the gradient on its own, not the whole gradient "
                          "(use mode='whole' for the rule as written)", ApproximationWarning,
                          stacklevel=2)


def robust_state(rule: str | Aggregator, f: int = 0, *, mode: str = "auto", group: Any = None,
                 **params: Any) -> RobustHookState:
    """``RobustHookState`` for a rule given by name (``robust_state("median", f=1)``)."""
    agg = make_aggregator(rule, f=f, **params) if isinstance(rule, str) else rule
    return RobustHookState(agg, mode=mode, group=group)


def _gather(vec: torch.Tensor, group: Any) -> torch.Tensor:
    world = dist.get_world_size(group)
    out = [torch.empty_like(vec) for _ in range(world)]
    dist.all_gather(out, vec.contiguous(), group=group)
    return torch.stack(out)


def _reference_of(state: RobustHookState, params: list[torch.Tensor]) -> torch.Tensor:
    if state.reference is None:
        raise ValueError(f"{state.rule!r} needs a reference gradient: set state.reference to a "
                         "mapping parameter -> reference gradient before backward()")
    try:
        return torch.cat([state.reference[p].reshape(-1) for p in params])
    except KeyError as exc:
        raise ValueError("state.reference has no gradient for one of the model's "
                         "parameters") from exc


def _aggregate(state: RobustHookState, gathered: torch.Tensor,
               params: list[torch.Tensor]) -> torch.Tensor:
    kwargs: dict[str, Any] = {}
    if state.rule.needs_reference:
        kwargs["reference"] = _reference_of(state, params).to(gathered.dtype)
    return state.rule(gathered, **kwargs)


def _submit(state: RobustHookState, bucket: dist.GradBucket, contribution: torch.Tensor
            ) -> torch.futures.Future[torch.Tensor]:
    fut: torch.futures.Future[torch.Tensor] = torch.futures.Future()
    buffer = bucket.buffer()
    if state.mode == "bucket":
        params = list(bucket.parameters()) if state.rule.needs_reference else []
        out = _aggregate(state, _gather(contribution, state.group), params)
        fut.set_result(out.to(buffer.dtype).reshape(buffer.shape))
        return fut
    # Whole gradient: DDP reads the buckets' results once backward is done (after the last
    # bucket), but (seen with torch 2.13) it does not use a result set on a future after its
    # hook returned. So every bucket gets an already completed future holding a tensor that
    # the last bucket's call fills in place before backward ends.
    result = torch.empty_like(buffer)
    fut.set_result(result)
    state._pending.append((bucket, contribution.clone(), result))
    if not bucket.is_last():
        return fut
    pending, state._pending = state._pending, []
    flat = torch.cat([c.reshape(-1) for _, c, _ in pending])
    params = [p for b, _, _ in pending for p in b.parameters()] \
        if state.rule.needs_reference else []
    out = _aggregate(state, _gather(flat, state.group), params)
    at = 0
    for _, c, res in pending:
        n = c.numel()
        res.copy_(out[at:at + n].reshape(res.shape))
        at += n
    return fut


def robust_comm_hook(state: RobustHookState, bucket: dist.GradBucket
                     ) -> torch.futures.Future[torch.Tensor]:
    """DDP communication hook: ``ddp.register_comm_hook(state, robust_comm_hook)``."""
    return _submit(state, bucket, bucket.buffer())


@dataclass
class ByzantineHookState:
    """A Byzantine rank: ``attack`` (with ``params``) applied to its own bucket gradients."""

    inner: RobustHookState
    attack: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.attack not in MOD_ATTACKS:
            raise ValueError(f"ByzantineHookState: {self.attack!r} cannot run from one "
                             f"worker's own gradient; choose one of {list(MOD_ATTACKS)}")
        self._attacker = make_attack(self.attack, **self.params)


def byzantine_comm_hook(state: "ByzantineHookState", bucket: dist.GradBucket
                        ) -> torch.futures.Future[torch.Tensor]:
    """Like :func:`robust_comm_hook`, but this rank contributes the attack of its gradient."""
    own = bucket.buffer()
    malicious = state._attacker(own.reshape(1, -1), 1).reshape(-1).to(own.dtype)
    return _submit(state.inner, bucket, malicious)
