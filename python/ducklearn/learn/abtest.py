"""A/B tests between models or learners, with sticky assignment and a stated test.

Traffic is split by a sticky hash of the entity id (MurmurHash3 of salt + id, so an entity
always sees the same arm and arms stay balanced); outcomes are collected per arm; the
decision uses one of two tests, both at a fixed type-I error ``alpha``:

- ``"z"``: the two-proportion z-test (pooled standard error for the test, unpooled for the
  confidence interval of the difference), or Welch's z-approximation for continuous
  outcomes. Valid when analysed once, at a sample size fixed in advance.
- ``"msprt"``: the mixture sequential probability ratio test (Robbins 1970; Johari, Pekelis
  & Walsh 2017, "Always valid inference"), with a normal mixing distribution of variance
  ``tau**2`` on the effect. Its p-value stays valid however often it is looked at, so the
  test can be checked after every outcome and stopped as soon as it decides.

Both report the effect (difference of means, B - A), the relative lift and a confidence
interval at level 1 - alpha.

>>> ab = ABTest(["control", "treatment"], alpha=0.05)
>>> ab.assign("user-42") == ab.assign("user-42")
True
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from ducklearn import _core

__all__ = ["ABTest", "ABResult", "ArmStats"]

_N = NormalDist()


@dataclass(frozen=True)
class ArmStats:
    name: str
    n: int
    mean: float
    variance: float  # sample variance of the outcomes


@dataclass(frozen=True)
class ABResult:
    method: str
    alpha: float
    arms: tuple[ArmStats, ArmStats]
    effect: float            # mean(B) - mean(A)
    relative_lift: float     # effect / mean(A)
    ci_low: float
    ci_high: float
    statistic: float         # z, or the mSPRT likelihood ratio
    p_value: float           # always-valid for msprt
    decision: str            # name of the better arm, or "inconclusive"
    enough_data: bool        # min_samples reached in both arms


class _Welford:
    __slots__ = ("n", "mean", "m2")

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, x: float) -> None:
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self.m2 += d * (x - self.mean)

    @property
    def variance(self) -> float:
        return self.m2 / (self.n - 1) if self.n > 1 else 0.0


class ABTest:
    """Two arms, sticky hash-based assignment, per-arm outcome statistics and a test.

    Parameters
    ----------
    arms : sequence of 2 names, or mapping name -> model
        The models may be anything with ``predict(record)`` (an OnlineLearner) or
        ``predict_one(record)`` (an estimator); they are only used by :meth:`predict`.
    split : float
        Share of entities sent to the second arm, in (0, 1).
    salt : str
        Changes the assignment (use a new salt per experiment).
    outcome : {"binary", "continuous"}
    method : {"z", "msprt"}
    alpha : float
        Type-I error rate.
    min_samples : int
        No decision before both arms have this many outcomes.
    tau : float, optional
        mSPRT mixing standard deviation on the effect (default: 0.05 for binary outcomes,
        half the pooled standard deviation for continuous ones).
    """

    def __init__(self, arms: Sequence[str] | Mapping[str, Any], *, split: float = 0.5,
                 salt: str = "ducklearn-ab", outcome: str = "binary", method: str = "z",
                 alpha: float = 0.05, min_samples: int = 100, tau: float | None = None):
        names = list(arms.keys()) if isinstance(arms, Mapping) else list(arms)
        if len(names) != 2 or len(set(names)) != 2 or not all(isinstance(a, str) for a in names):
            raise ValueError(f"arms must be two distinct names, got {names!r}")
        if not (isinstance(split, (int, float)) and 0 < split < 1):
            raise ValueError(f"split must be in (0, 1), got {split!r}")
        if outcome not in ("binary", "continuous"):
            raise ValueError(f"outcome must be 'binary' or 'continuous', got {outcome!r}")
        if method not in ("z", "msprt"):
            raise ValueError(f"method must be 'z' or 'msprt', got {method!r}")
        if not (isinstance(alpha, float) and 0 < alpha < 0.5):
            raise ValueError(f"alpha must be a float in (0, 0.5), got {alpha!r}")
        if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 2:
            raise ValueError(f"min_samples must be an integer >= 2, got {min_samples!r}")
        if tau is not None and not (isinstance(tau, (int, float)) and tau > 0):
            raise ValueError(f"tau must be > 0, got {tau!r}")
        self.arms = tuple(names)
        self.models = dict(arms) if isinstance(arms, Mapping) else {}
        self.split = float(split)
        self.salt = salt
        self.outcome = outcome
        self.method = method
        self.alpha = alpha
        self.min_samples = min_samples
        self.tau = tau
        self._stats = {a: _Welford() for a in self.arms}
        self._max_lr = 0.0  # largest mSPRT likelihood ratio seen (its p-value is 1 / this)

    def assign(self, entity_id: Hashable) -> str:
        """The arm of an entity: always the same for the same id and salt."""
        h = _core.features.murmur3_32(f"{self.salt}\x00{entity_id}")
        u = h / 4294967296.0
        return self.arms[1] if u < self.split else self.arms[0]

    def predict(self, entity_id: Hashable, record: Any) -> tuple[str, Any]:
        """(arm, prediction of that arm's model for the record)."""
        arm = self.assign(entity_id)
        model = self.models.get(arm)
        if model is None:
            raise ValueError("this ABTest was built from arm names only; pass {name: model}")
        fn = getattr(model, "predict", None) if hasattr(model, "snapshot") else None
        fn = fn or model.predict_one
        return arm, fn(record)

    def record(self, entity_id: Hashable, outcome: Any, *, arm: str | None = None) -> str:
        """Record an outcome for the entity's arm (or the given arm); returns the arm."""
        if arm is None:
            arm = self.assign(entity_id)
        elif arm not in self._stats:
            raise ValueError(f"unknown arm {arm!r}; arms are {self.arms}")
        if isinstance(outcome, bool):
            value = float(outcome)
        elif isinstance(outcome, (int, float)):
            value = float(outcome)
        else:
            raise TypeError(f"outcome must be a number or a bool, got {type(outcome).__name__}")
        if not math.isfinite(value):
            raise ValueError(f"outcome must be finite, got {value}")
        if self.outcome == "binary" and value not in (0.0, 1.0):
            raise ValueError(f"binary outcomes must be 0/1 or False/True, got {outcome!r}")
        self._stats[arm].add(value)
        if self.method == "msprt":
            self._max_lr = max(self._max_lr, self._msprt_ratio()[0])
        return arm

    def _arm_stats(self) -> tuple[ArmStats, ArmStats]:
        return tuple(ArmStats(a, s.n, s.mean, s.variance)  # type: ignore[return-value]
                     for a, s in self._stats.items())

    def _msprt_ratio(self) -> tuple[float, float]:
        """(likelihood ratio, variance of the effect per effective pair)."""
        a, b = (self._stats[x] for x in self.arms)
        if a.n < 2 or b.n < 2:
            return 0.0, math.nan
        # Effective number of pairs for unequal arms: the harmonic combination.
        n = 1.0 / (1.0 / a.n + 1.0 / b.n) * 2.0
        if self.outcome == "binary":
            p = (a.mean * a.n + b.mean * b.n) / (a.n + b.n)
            v = 2.0 * p * (1.0 - p)
            tau = self.tau if self.tau is not None else 0.05
        else:
            v = a.variance + b.variance
            tau = self.tau if self.tau is not None else 0.5 * math.sqrt(max(v / 2.0, 1e-12))
        if v <= 0:
            return 0.0, v
        theta = b.mean - a.mean
        t2 = tau * tau
        log_lr = 0.5 * math.log(v / (v + n * t2)) + (n * n * t2 * theta * theta) / (
            2.0 * v * (v + n * t2))
        return math.exp(min(log_lr, 700.0)), v / n

    def result(self) -> ABResult:
        """The current estimate, confidence interval, test and decision."""
        sa, sb = self._arm_stats()
        effect = sb.mean - sa.mean
        lift = effect / sa.mean if sa.mean != 0 else math.nan
        enough = sa.n >= self.min_samples and sb.n >= self.min_samples
        if sa.n < 2 or sb.n < 2:
            return ABResult(self.method, self.alpha, (sa, sb), effect, lift, math.nan, math.nan,
                            math.nan, 1.0, "inconclusive", False)
        z_crit = _N.inv_cdf(1.0 - self.alpha / 2.0)
        if self.outcome == "binary":
            se_ci = math.sqrt(sa.mean * (1 - sa.mean) / sa.n + sb.mean * (1 - sb.mean) / sb.n)
            pooled = (sa.mean * sa.n + sb.mean * sb.n) / (sa.n + sb.n)
            se_test = math.sqrt(pooled * (1 - pooled) * (1 / sa.n + 1 / sb.n))
        else:
            se_ci = se_test = math.sqrt(sa.variance / sa.n + sb.variance / sb.n)
        ci = (effect - z_crit * se_ci, effect + z_crit * se_ci)
        if self.method == "z":
            stat = effect / se_test if se_test > 0 else (math.inf if effect else 0.0)
            p = 2.0 * (1.0 - _N.cdf(abs(stat))) if math.isfinite(stat) else 0.0
        else:
            lr, _ = self._msprt_ratio()
            self._max_lr = max(self._max_lr, lr)
            stat = lr
            p = min(1.0, 1.0 / self._max_lr) if self._max_lr > 0 else 1.0
        decision = "inconclusive"
        if enough and p < self.alpha and effect != 0:
            decision = sb.name if effect > 0 else sa.name
        return ABResult(self.method, self.alpha, (sa, sb), effect, lift, ci[0], ci[1], stat, p,
                        decision, enough)
