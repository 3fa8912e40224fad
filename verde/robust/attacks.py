"""Byzantine attacks: given the honest vectors of a round, produce the f faulty ones.

Every attack is ``attack(honest, f, **params) -> stack of f vectors`` of the honest vectors'
type, dtype and device; the honest inputs are never modified. Attacks that adapt to the defence
(line-searched ALIE/IPM, in ``attacks_optimal.py``) also take ``aggregator=``.

- Sign flipping: -mean (Allen-Zhu et al. 2021 use it as the basic omniscient baseline).
- Label flipping: a *data* attack (Byzantine workers train on y -> C-1-y); the harness applies it.
- ALIE, "a little is enough": Baruch, Baruch & Goldberg 2019. mu + z sigma per coordinate with
  z = Phi^{-1}((n - s)/n), s = floor(n/2 + 1) - f (the paper's default z_max).
- IPM, inner-product manipulation: Xie, Koyejo & Gupta 2019 ("Fall of Empires"). -eps mu.
- Gaussian: i.i.d. N(mean, std^2) vectors.
- Mimic: Karimireddy, He & Jaggi 2022 (bucketing paper): copy one honest worker; the heuristic
  version copies the worker sticking out most along the top principal direction.
- Inf / NaN: vectors of +inf or NaN.
- Min-max / min-sum: Shejwalkar & Houmansadr 2021. mu + gamma p with the largest gamma whose
  max (resp. summed squared) distance to the honest vectors stays within the honest spread;
  solved in closed form (the conditions are quadratic in gamma) instead of by bisection.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any, ClassVar

import numpy as np
import torch

from verde.robust._core import Array, Stack, as_stack, check_f, to_numpy

ATTACKS: dict[str, type[Attack]] = {}


def _stats(stack: Stack) -> tuple[Array, Array]:
    """(mean, std) per coordinate in the work dtype; std with ddof=1 (0 for one worker)."""
    x = stack.work()
    mu = x.mean(axis=0)
    if stack.n < 2:
        return mu, mu * 0
    if stack.is_torch:
        return mu, x.std(dim=0, correction=1)
    return mu, x.std(axis=0, ddof=1)


def _repeat(stack: Stack, vec: Array, f: int) -> Array:
    """f copies of one vector, returned in the caller's type (a fresh array)."""
    if stack.is_torch:
        mat = vec[None, :].expand(f, -1)
    else:
        mat = np.broadcast_to(vec[None, :], (f, vec.shape[0]))
    return stack.restore_stack(mat)


def _empty(stack: Stack) -> Array:
    return stack.restore_stack(stack.data[:0])


def sign_flipping(honest: Any, f: int) -> Array:
    """f copies of -mean(honest)."""
    f = check_f(f)
    s = as_stack(honest, "honest")
    return _repeat(s, -_stats(s)[0], f) if f else _empty(s)


def ipm(honest: Any, f: int, *, eps: float = 0.1) -> Array:
    """Inner-product manipulation (Xie et al. 2019): f copies of -eps * mean(honest)."""
    f = check_f(f)
    s = as_stack(honest, "honest")
    return _repeat(s, -eps * _stats(s)[0], f) if f else _empty(s)


def alie_z(n: int, f: int) -> float:
    """Baruch et al.'s z_max for n workers of which f are faulty."""
    s = math.floor(n / 2 + 1) - f
    p = (n - s) / n
    p = min(max(p, 1e-6), 1 - 1e-6)
    return NormalDist().inv_cdf(p)


def alie(honest: Any, f: int, *, z: float | None = None) -> Array:
    """A little is enough (Baruch et al. 2019): f copies of mean + z * std (z default z_max)."""
    f = check_f(f)
    s = as_stack(honest, "honest")
    if not f:
        return _empty(s)
    zz = alie_z(s.n + f, f) if z is None else z
    mu, sd = _stats(s)
    return _repeat(s, mu + zz * sd, f)


def gaussian(honest: Any, f: int, *, mean: float = 0.0, std: float = 1.0, seed: int = 0) -> Array:
    """f independent N(mean, std^2) vectors (seeded)."""
    f = check_f(f)
    s = as_stack(honest, "honest")
    rng = np.random.default_rng(seed)
    return s.restore_stack(rng.normal(mean, std, size=(f, s.d)))


def inf_attack(honest: Any, f: int) -> Array:
    """f vectors of +inf."""
    f = check_f(f)
    s = as_stack(honest, "honest")
    return s.restore_stack(np.full((f, s.d), np.inf))


def nan_attack(honest: Any, f: int) -> Array:
    """f vectors of NaN."""
    f = check_f(f)
    s = as_stack(honest, "honest")
    return s.restore_stack(np.full((f, s.d), np.nan))


def mimic(honest: Any, f: int, *, target: int = 0) -> Array:
    """Static mimic (Karimireddy et al. 2022): f copies of honest worker ``target``."""
    f = check_f(f)
    s = as_stack(honest, "honest")
    if not 0 <= target < s.n:
        raise ValueError(f"mimic: target must index an honest worker in [0, {s.n}), got {target}")
    return _repeat(s, s.work()[target], f) if f else _empty(s)


def mimic_heuristic_target(stack: Stack, direction: np.ndarray | None = None) -> int:
    """The honest worker with the largest |<x_i - mean, z>| for the top principal direction z
    (of this round's honest vectors when ``direction`` is None)."""
    g = stack.gram()
    r = g.mean(axis=1)
    k = g - r[:, None] - r[None, :] + r.mean()  # centred Gram
    if direction is None:
        vals, vecs = np.linalg.eigh(k)
        proj = vals[-1] * vecs[:, -1]
    else:
        x = stack.work()
        mu = x.mean(axis=0)
        proj = to_numpy((x - mu[None, :]) @ stack.from_numpy(direction)).astype(np.float64)
    return int(np.argmax(np.abs(proj)))


def mimic_heuristic(honest: Any, f: int) -> Array:
    """Heuristic mimic (Karimireddy et al. 2022) on one round: copy the most outlying worker
    along the top principal direction of the honest vectors."""
    f = check_f(f)
    s = as_stack(honest, "honest")
    if not f:
        return _empty(s)
    return _repeat(s, s.work()[mimic_heuristic_target(s)], f)


def _direction(mu: Array, sd: Array, kind: str) -> Array:
    if kind == "std":
        return -sd
    if kind == "sign":
        return -(torch.sign(mu) if isinstance(mu, torch.Tensor) else np.sign(mu))
    if kind == "unit":
        nrm = float(to_numpy((mu * mu).sum())) ** 0.5
        return -mu / max(nrm, 1e-300)
    raise ValueError(f"direction must be 'std', 'sign' or 'unit', got {kind!r}")


def _min_max_gamma(stack: Stack, p: Array, kind: str) -> float:
    """Largest gamma >= 0 with the min-max (or min-sum) condition of Shejwalkar & Houmansadr."""
    x = stack.work()
    mu = x.mean(axis=0)
    diff = mu[None, :] - x  # (h, d)
    a = to_numpy((diff * diff).sum(axis=1)).astype(np.float64)  # ||mu - x_i||^2
    b = to_numpy(diff @ p).astype(np.float64)  # <mu - x_i, p>
    c = float(to_numpy((p * p).sum()))
    g = stack.gram()
    sq = np.diag(g)
    pd = np.maximum(sq[:, None] + sq[None, :] - 2 * g, 0.0)
    if c <= 0:
        return 0.0
    if kind == "min_max":
        bound = float(pd.max())
        # a_i + 2 gamma b_i + gamma^2 c <= bound for every i: gamma <= positive root of each
        disc = np.maximum(b * b - c * (a - bound), 0.0)
        roots = (-b + np.sqrt(disc)) / c
        return float(max(roots.min(), 0.0))
    bound = float(pd.sum(axis=1).max())
    h = a.size
    disc = max(b.sum() ** 2 - h * c * (a.sum() - bound), 0.0)
    return float(max((-b.sum() + math.sqrt(disc)) / (h * c), 0.0))


def min_max(honest: Any, f: int, *, direction: str = "std") -> Array:
    """Min-max (Shejwalkar & Houmansadr 2021): the malicious vector's largest distance to an
    honest vector stays within the largest honest pairwise distance."""
    f = check_f(f)
    s = as_stack(honest, "honest")
    if not f:
        return _empty(s)
    mu, sd = _stats(s)
    p = _direction(mu, sd, direction)
    return _repeat(s, mu + _min_max_gamma(s, p, "min_max") * p, f)


def min_sum(honest: Any, f: int, *, direction: str = "std") -> Array:
    """Min-sum (Shejwalkar & Houmansadr 2021): the malicious vector's summed squared distance to
    the honest vectors stays within the largest such sum of an honest vector."""
    f = check_f(f)
    s = as_stack(honest, "honest")
    if not f:
        return _empty(s)
    mu, sd = _stats(s)
    p = _direction(mu, sd, direction)
    return _repeat(s, mu + _min_max_gamma(s, p, "min_sum") * p, f)


class Attack:
    """An attack object: ``attack(honest, f, aggregator=...) -> f vectors``.

    ``kind`` is "gradient" for attacks on the sent vectors, "data" for attacks the Byzantine
    workers apply to their training data (the harness handles those).
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "gradient"

    def __init__(self, **params: Any) -> None:
        self.params = params

    def __call__(self, honest: Any, f: int, *, aggregator: Any | None = None) -> Array:
        return self.fn()(honest, f, **self.params)

    def fn(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def reset(self) -> None:
        """Forget state kept between rounds (stateful attacks override)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params})"


def register_attack(cls: type[Attack]) -> type[Attack]:
    ATTACKS[cls.name] = cls
    return cls


def _simple(name: str, func: Any, doc: str) -> type[Attack]:
    cls = type(name.title().replace("_", ""), (Attack,), {
        "name": name, "fn": lambda self: func, "__doc__": doc,
    })
    return register_attack(cls)


SignFlipping = _simple("sign_flipping", sign_flipping, "Sign flipping; see sign_flipping().")
IPM = _simple("ipm", ipm, "Inner-product manipulation; see ipm().")
ALIE = _simple("alie", alie, "A little is enough; see alie().")
Gaussian = _simple("gaussian", gaussian, "Gaussian vectors; see gaussian().")
Inf = _simple("inf", inf_attack, "+inf vectors; see inf_attack().")
NaN = _simple("nan", nan_attack, "NaN vectors; see nan_attack().")
Mimic = _simple("mimic", mimic, "Static mimic; see mimic().")
MinMax = _simple("min_max", min_max, "Min-max; see min_max().")
MinSum = _simple("min_sum", min_sum, "Min-sum; see min_sum().")


@register_attack
class MimicHeuristic(Attack):
    """Heuristic mimic across rounds (Karimireddy et al. 2022): the top principal direction is
    tracked over rounds by one power-iteration step per round (so it settles on the direction
    of persistent heterogeneity), and the worker most outlying along it is copied."""

    name = "mimic_heuristic"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._z: np.ndarray | None = None

    def __call__(self, honest: Any, f: int, *, aggregator: Any | None = None) -> Array:
        f = check_f(f)
        s = as_stack(honest, "honest")
        if not f:
            return _empty(s)
        x = s.work()
        centred = to_numpy(x - x.mean(axis=0)[None, :]).astype(np.float64)
        if self._z is None or self._z.shape[0] != s.d:
            z = centred[int(np.argmax((centred * centred).sum(axis=1)))].copy()
        else:
            z = centred.T @ (centred @ self._z) + self._z
        nrm = float(np.linalg.norm(z))
        self._z = z / nrm if nrm > 0 else z
        return _repeat(s, x[mimic_heuristic_target(s, self._z)], f)

    def reset(self) -> None:
        self._z = None


@register_attack
class LabelFlipping(Attack):
    """Label flipping: Byzantine workers compute honest gradients on labels y -> C-1-y."""

    name = "label_flipping"
    kind = "data"

    @staticmethod
    def flip(labels: Any, num_classes: int) -> Any:
        """The flipped labels (a new array/tensor)."""
        return (num_classes - 1) - labels

    def __call__(self, honest: Any, f: int, *, aggregator: Any | None = None) -> Array:
        raise ValueError("label_flipping is a data attack: the Byzantine workers train on "
                         "flipped labels (LabelFlipping.flip); the harness applies it")

