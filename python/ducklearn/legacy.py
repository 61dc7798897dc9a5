"""The naive learner this library replaces: per-key running averages and success counts.

Systems that start without machine learning usually predict an outcome from how often it
happened before for "the same kind" of entity: the acceptance rate of suggestions per
(language, change type), the mean impact per project. :class:`NaiveLearner` is exactly
that, done carefully (additive smoothing towards the global rate, so rare keys do not swing
between 0 and 1), with the River interface of the estimators. It is the baseline every
benchmark compares against and the fallback predictor the serving layer uses when a model
misbehaves.

>>> from ducklearn.legacy import NaiveLearner
>>> naive = NaiveLearner(key=("language",))
>>> for lang, ok in [("go", 1), ("go", 1), ("go", 0), ("rust", 1)]:
...     naive.learn_one({"language": lang}, ok)
>>> round(naive.predict_proba_one({"language": "go"})[1], 3)   # (2 + 2 * 0.75) / (3 + 2)
0.7
>>> naive.predict_one({"language": "cobol"})     # unseen key: the global rate decides
1
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["NaiveLearner"]


class NaiveLearner:
    """Per-key success counts (classification) or running means (regression).

    Parameters
    ----------
    key : sequence of str or callable, default ()
        The fields whose values form an entity's key, or a function ``record -> hashable``.
        The empty key learns one global average.
    task : {"binary", "regression"}, default "binary"
    smoothing : float, default 2.0
        Pseudo-count pulling each key's estimate towards the global one:
        ``(sum + smoothing * global_mean) / (count + smoothing)``.
    max_keys : int, default 1_000_000
        Memory bound: once reached, new keys are not tracked (they use the global mean).
    """

    def __init__(self, key: Sequence[str] | Callable[[Mapping], Hashable] = (),
                 task: str = "binary", smoothing: float = 2.0, max_keys: int = 1_000_000):
        if task not in ("binary", "regression"):
            raise ValueError(f"task must be 'binary' or 'regression', got {task!r}")
        if not (isinstance(smoothing, (int, float)) and np.isfinite(smoothing) and smoothing >= 0):
            raise ValueError(f"smoothing must be a finite number >= 0, got {smoothing!r}")
        if not isinstance(max_keys, int) or max_keys < 1:
            raise ValueError(f"max_keys must be an integer >= 1, got {max_keys!r}")
        if not callable(key):
            if isinstance(key, str):
                key = (key,)
            key = tuple(key)
            if not all(isinstance(k, str) for k in key):
                raise TypeError("key must be a sequence of field names or a callable")
        self.key = key
        self.task = task
        self.smoothing = float(smoothing)
        self.max_keys = max_keys
        self._sums: dict[Hashable, list[float]] = {}  # key -> [sum, count]
        self._total = 0.0
        self._count = 0

    def _key_of(self, x: Mapping) -> Hashable:
        if not isinstance(x, Mapping):
            raise TypeError(f"x must be a dict of fields, got {type(x).__name__}")
        if callable(self.key):
            return self.key(x)
        return tuple(x.get(field) for field in self.key)

    @staticmethod
    def _value(y: Any, task: str) -> float:
        if isinstance(y, (bool, np.bool_)):
            return float(y)
        if not isinstance(y, (int, float, np.integer, np.floating)):
            raise TypeError(f"outcome must be a number or a bool, got {type(y).__name__}")
        v = float(y)
        if not np.isfinite(v):
            raise ValueError(f"outcome must be finite, got {v}")
        if task == "binary" and v not in (0.0, 1.0):
            raise ValueError(f"binary outcomes must be 0/1 or False/True, got {y!r}")
        return v

    @property
    def global_mean(self) -> float:
        return self._total / self._count if self._count else 0.5 * (self.task == "binary")

    @property
    def n_keys(self) -> int:
        return len(self._sums)

    def learn_one(self, x: Mapping, y: Any) -> None:
        """Count one outcome for the record's key."""
        v = self._value(y, self.task)
        k = self._key_of(x)
        entry = self._sums.get(k)
        if entry is None:
            if len(self._sums) < self.max_keys:
                self._sums[k] = [v, 1.0]
        else:
            entry[0] += v
            entry[1] += 1.0
        self._total += v
        self._count += 1

    def _estimate(self, x: Mapping) -> float:
        g = self.global_mean
        entry = self._sums.get(self._key_of(x))
        if entry is None:
            return g
        s, c = entry
        return (s + self.smoothing * g) / (c + self.smoothing)

    def predict_proba_one(self, x: Mapping) -> dict[int, float]:
        """``{0: 1 - p, 1: p}`` with p the key's smoothed success rate."""
        if self.task != "binary":
            raise TypeError("predict_proba_one needs task='binary'")
        p = self._estimate(x)
        return {0: 1.0 - p, 1: p}

    def predict_one(self, x: Mapping) -> float | int:
        """The more likely outcome (binary) or the key's smoothed mean (regression)."""
        p = self._estimate(x)
        if self.task == "binary":
            return int(p > 0.5)
        return p

    def learn_many(self, records: Sequence[Mapping], ys: Sequence[Any]) -> None:
        if len(records) != len(ys):
            raise ValueError(f"{len(records)} records but {len(ys)} outcomes")
        for x, y in zip(records, ys, strict=True):
            self.learn_one(x, y)

    def predict_proba_many(self, records: Sequence[Mapping]) -> np.ndarray:
        """P(y = 1) for each record, shape (n,)."""
        return np.array([self._estimate(x) for x in records], dtype=np.float64)

    def predict_many(self, records: Sequence[Mapping]) -> np.ndarray:
        p = self.predict_proba_many(records)
        return (p > 0.5).astype(np.int64) if self.task == "binary" else p

    def state(self) -> dict[str, Any]:
        """JSON-able state (keys must be JSON-able tuples of field values)."""
        return {
            "key": list(self.key) if not callable(self.key) else None,
            "task": self.task,
            "smoothing": self.smoothing,
            "max_keys": self.max_keys,
            "total": self._total,
            "count": self._count,
            "entries": [[list(k) if isinstance(k, tuple) else k, s, c]
                        for k, (s, c) in self._sums.items()],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> NaiveLearner:
        if state.get("key") is None:
            raise ValueError("a NaiveLearner with a callable key cannot be restored from JSON")
        out = cls(key=state["key"], task=state["task"], smoothing=state["smoothing"],
                  max_keys=state["max_keys"])
        out._total = float(state["total"])
        out._count = int(state["count"])
        for k, s, c in state["entries"]:
            out._sums[tuple(k) if isinstance(k, list) else k] = [float(s), float(c)]
        return out

    def __repr__(self) -> str:
        return (f"NaiveLearner(key={self.key!r}, task={self.task!r}, "
                f"smoothing={self.smoothing}, n_keys={self.n_keys})")
