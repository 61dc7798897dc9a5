"""Prequential (test-then-train) evaluation on the C++ stream loop.

Each example is first predicted by the model as it stands, then learned from: the standard
way to evaluate an online learner (Dawid 1984; Gama et al. 2013), with no held-out set.

>>> import numpy as np
>>> from ducklearn.linear import LogisticRegression
>>> from ducklearn.evaluate import prequential
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(5000, 4)).astype(np.float32)
>>> y = (X @ np.array([1.0, -2.0, 0.5, 0.0]) > 0).astype(int)
>>> result = prequential(LogisticRegression(), X, y)
>>> result.metrics["accuracy"] > 0.95
True
>>> result.predictions.shape
(5000,)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["PrequentialResult", "prequential", "METRICS"]

_EPS = 1e-15


def _accuracy(pred: np.ndarray, t: np.ndarray) -> np.ndarray:
    labels = (pred > 0.5).astype(np.int64) if pred.ndim == 1 else np.argmax(pred, axis=1)
    return (labels == t.astype(np.int64)).astype(np.float64)


def _log_loss(pred: np.ndarray, t: np.ndarray) -> np.ndarray:
    if pred.ndim == 1:
        p = np.clip(pred.astype(np.float64), _EPS, 1 - _EPS)
        return -(t * np.log(p) + (1 - t) * np.log1p(-p))
    p = np.clip(pred[np.arange(len(t)), t.astype(np.int64)].astype(np.float64), _EPS, 1.0)
    return -np.log(p)


def _abs_error(pred: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.abs(pred.astype(np.float64) - t)


def _sq_error(pred: np.ndarray, t: np.ndarray) -> np.ndarray:
    return (pred.astype(np.float64) - t) ** 2


# name -> (per-example values, how they aggregate)
METRICS: dict[str, tuple[Any, str]] = {
    "accuracy": (_accuracy, "mean"),
    "log_loss": (_log_loss, "mean"),
    "mae": (_abs_error, "mean"),
    "mse": (_sq_error, "mean"),
    "rmse": (_sq_error, "sqrt_mean"),
}
_CLASSIFICATION = {"accuracy", "log_loss"}


def _aggregate(values: np.ndarray, how: str) -> float:
    m = float(np.mean(values))
    return float(np.sqrt(m)) if how == "sqrt_mean" else m


@dataclass(frozen=True)
class PrequentialResult:
    """Outcome of :func:`prequential`.

    Attributes
    ----------
    metrics : dict
        Each requested metric over the whole stream.
    predictions : ndarray
        What the model predicted for each example before learning it: P(y = classes_[1])
        for binary classifiers (n,), class probabilities (n, k) for multi-class, values (n,)
        for regressors.
    seconds : float
        Wall time of the stream loop (validation included).
    """

    metrics: dict[str, float]
    predictions: np.ndarray
    seconds: float
    _targets: np.ndarray = field(repr=False)
    _metric_names: tuple[str, ...] = field(repr=False)

    @property
    def n(self) -> int:
        return int(self._targets.shape[0])

    @property
    def examples_per_second(self) -> float:
        return self.n / self.seconds if self.seconds > 0 else float("inf")

    def rolling(self, metric: str, window: int) -> np.ndarray:
        """The metric over consecutive non-overlapping windows of ``window`` examples."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; use one of {sorted(METRICS)}")
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be an integer >= 1, got {window!r}")
        fn, how = METRICS[metric]
        values = fn(self.predictions, self._targets)
        k = len(values) // window
        if k == 0:
            return np.empty(0)
        means = values[: k * window].reshape(k, window).mean(axis=1)
        return np.sqrt(means) if how == "sqrt_mean" else means


def prequential(model: Any, X: Any, y: Any,
                metrics: Sequence[str] | None = None) -> PrequentialResult:
    """Run test-then-train over ``(X, y)`` in order, entirely in the C++ stream loop.

    Parameters
    ----------
    model : ducklearn estimator
        Fitted or not; it keeps learning (it is updated in place by every example).
    X : array-like of shape (n, d)
    y : array-like of shape (n,)
    metrics : sequence of str, optional
        From ``"accuracy"``, ``"log_loss"`` (classifiers) and ``"mae"``, ``"mse"``,
        ``"rmse"`` (regressors). Defaults to accuracy + log-loss or MAE + RMSE.

    Returns
    -------
    PrequentialResult
    """
    if not hasattr(model, "_prequential"):
        raise TypeError(
            f"model must be a ducklearn estimator, got {type(model).__name__}; "
            "wrap other libraries' models yourself"
        )
    is_clf = getattr(model, "_estimator_type", "") == "classifier"
    if metrics is None:
        metrics = ("accuracy", "log_loss") if is_clf else ("mae", "rmse")
    if isinstance(metrics, str):
        metrics = (metrics,)
    names = tuple(metrics)
    for name in names:
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r}; use one of {sorted(METRICS)}")
        if (name in _CLASSIFICATION) != is_clf:
            kind = "classifiers" if name in _CLASSIFICATION else "regressors"
            raise ValueError(f"metric {name!r} applies to {kind} only")
    start = time.perf_counter()
    outputs, targets = model._prequential(X, y)
    seconds = time.perf_counter() - start
    preds = outputs[:, 0] if outputs.shape[1] == 1 else outputs
    t = targets.astype(np.float64)
    values = {name: _aggregate(METRICS[name][0](preds, t), METRICS[name][1]) for name in names}
    return PrequentialResult(values, preds, seconds, t, names)
