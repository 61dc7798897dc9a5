"""Batch bootstrap: train on historical data before going online.

:func:`bootstrap` fits an estimator with shuffled mini-batch epochs (the C++ epoch loop),
watches the loss on a held-out validation split, stops when it plateaus and restores the
best epoch's weights. The returned estimator is fitted, so an
:class:`~ducklearn.learn.OnlineLearner` built on it continues from that state.

A :class:`Curriculum` orders the training data from easy to hard (Bengio et al. 2009):
difficulty is each example's loss under a quickly fitted reference model, and a pacing
function widens the allowed share of the data from ``start`` to all of it over
``ramp_epochs`` epochs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ducklearn import _core
from ducklearn._base import OnlineEstimator
from ducklearn._validation import check_X, check_y, feature_names_of

__all__ = ["Curriculum", "BootstrapResult", "bootstrap", "difficulty_scores"]

_EPS = 1e-12


@dataclass(frozen=True)
class Curriculum:
    """Easy-to-hard ordering with linear pacing.

    Parameters
    ----------
    start : float
        Share of the data (the easiest) used in the first epoch, in (0, 1].
    ramp_epochs : int
        Epochs over which the share grows linearly to 1.
    difficulty : array-like, optional
        Per-example difficulty scores (higher = harder). Default: each example's loss under
        a logistic/linear reference model fitted on the training split.
    """

    start: float = 0.3
    ramp_epochs: int = 5
    difficulty: Any = None

    def __post_init__(self) -> None:
        if not (isinstance(self.start, (int, float)) and 0 < self.start <= 1):
            raise ValueError(f"start must be in (0, 1], got {self.start!r}")
        if isinstance(self.ramp_epochs, bool) or not isinstance(self.ramp_epochs, int) or (
            self.ramp_epochs < 1
        ):
            raise ValueError(f"ramp_epochs must be an integer >= 1, got {self.ramp_epochs!r}")

    def share(self, epoch: int) -> float:
        """Share of the (sorted) data allowed in 0-based ``epoch``."""
        return min(1.0, self.start + (1.0 - self.start) * epoch / self.ramp_epochs)


@dataclass
class BootstrapResult:
    model: OnlineEstimator
    epochs: int
    best_epoch: int
    stopped_early: bool
    train_loss: list[float] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)
    validation_score: float = math.nan  # accuracy or R² of the restored model


def _per_example_loss(task: str, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    if task == "binary":
        p = np.clip(outputs[:, 0].astype(np.float64), _EPS, 1 - _EPS)
        return -(targets * np.log(p) + (1 - targets) * np.log1p(-p))
    if task == "multiclass":
        p = outputs[np.arange(len(targets)), targets.astype(np.int64)].astype(np.float64)
        return -np.log(np.clip(p, _EPS, 1.0))
    return 0.5 * (outputs[:, 0].astype(np.float64) - targets) ** 2


def _score(task: str, outputs: np.ndarray, targets: np.ndarray) -> float:
    if task == "binary":
        return float(np.mean((outputs[:, 0] > 0.5) == (targets > 0.5)))
    if task == "multiclass":
        return float(np.mean(np.argmax(outputs, axis=1) == targets))
    resid = np.sum((outputs[:, 0] - targets) ** 2)
    total = np.sum((targets - targets.mean()) ** 2)
    return float(1.0 - resid / total) if total > 0 else math.nan


def difficulty_scores(model: OnlineEstimator, X: np.ndarray, targets: np.ndarray,
                      seed: int = 0) -> np.ndarray:
    """Per-example loss under a reference linear model of the same task (fitted here)."""
    from ducklearn.linear import LinearRegression, LogisticRegression

    if model._estimator_type == "classifier":
        ref = LogisticRegression(scale=True, max_epochs=5, seed=seed)
        ref._set_classes(np.arange(len(model.classes_)))
    else:
        ref = LinearRegression(scale=True, max_epochs=5, seed=seed)
    ref.fit(X, targets.astype(np.int64) if model._estimator_type == "classifier" else targets)
    outputs = ref._learner.predict(X)
    return _per_example_loss(ref._learner.task, outputs, targets)


def bootstrap(model: OnlineEstimator, X: Any, y: Any, *, validation: float = 0.1,
              max_epochs: int = 50, patience: int = 5, min_delta: float = 1e-4,
              curriculum: Curriculum | None = None, seed: int = 0) -> BootstrapResult:
    """Fit ``model`` (a fresh copy of it) on historical data with early stopping.

    Parameters
    ----------
    model : ducklearn estimator
        Its hyperparameters (architecture, optimizer, batch_size, scale) are used; the
        estimator passed in is not modified.
    X, y : array-like
        Historical examples (shuffled into train and validation with ``seed``).
    validation : float
        Share held out for early stopping, in (0, 0.5].
    max_epochs, patience, min_delta
        Stop after ``patience`` epochs without a relative validation-loss improvement of
        ``min_delta``, or after ``max_epochs``; the best epoch's weights are restored.
    curriculum : Curriculum, optional
        Easy-to-hard ordering of the training split.
    """
    if not isinstance(model, OnlineEstimator):
        raise TypeError(f"model must be a ducklearn estimator, got {type(model).__name__}")
    if not (isinstance(validation, (int, float)) and 0 < validation <= 0.5):
        raise ValueError(f"validation must be in (0, 0.5], got {validation!r}")
    for name, value in (("max_epochs", max_epochs), ("patience", patience)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if curriculum is not None and not isinstance(curriculum, Curriculum):
        raise TypeError("curriculum must be a ducklearn.learn.Curriculum")

    est = model.clone()
    est._check_params()
    names = feature_names_of(X)
    Xa = check_X(X, estimator=type(est).__name__)
    ya = check_y(y, Xa.shape[0])
    targets = est._targets_for_fit(ya)
    n = len(targets)
    n_val = max(1, int(round(validation * n)))
    if n - n_val < 1:
        raise ValueError(f"{n} examples are too few to hold out {validation:.0%} for validation")
    order = np.random.default_rng(seed).permutation(n)
    val_idx, train_idx = order[:n_val], order[n_val:]
    X_tr, t_tr = Xa[train_idx], targets[train_idx]
    X_val, t_val = Xa[val_idx], targets[val_idx]

    est._build(Xa.shape[1], names)
    learner = est._learner
    last = learner.layers[-1]
    learner.params[last["b_offset"]:last["b_offset"] + last["out"]] = \
        est._initial_output_bias(t_tr, last["out"])
    if est.scale:
        learner.update_scaler(X_tr)

    if curriculum is not None:
        diff = (np.asarray(curriculum.difficulty, dtype=np.float64)[train_idx]
                if curriculum.difficulty is not None
                else difficulty_scores(est, X_tr, t_tr, seed))
        if diff.shape != (len(t_tr),):
            raise ValueError("curriculum.difficulty must have one score per example")
        easy_first = np.argsort(diff, kind="stable")
        X_tr, t_tr = X_tr[easy_first], t_tr[easy_first]

    detector = _core.PlateauDetector(1.0, patience, float(min_delta))
    best = (math.inf, None, -1)  # (validation loss, state, epoch)
    result = BootstrapResult(model=est, epochs=0, best_epoch=-1, stopped_early=False)
    for epoch in range(max_epochs):
        m = len(t_tr) if curriculum is None else max(1, int(curriculum.share(epoch) * len(t_tr)))
        loss = learner.fit_epoch(X_tr[:m], t_tr[:m], int(est.batch_size), seed + epoch)
        outputs = learner.predict(X_val)
        val_loss = float(np.mean(_per_example_loss(learner.task, outputs, t_val)))
        result.train_loss.append(float(loss))
        result.validation_loss.append(val_loss)
        result.epochs = epoch + 1
        if not math.isfinite(val_loss):
            break
        if val_loss < best[0]:
            best = (val_loss, learner.state_dict(), epoch)
        # Early stopping waits until a curriculum lets in all the data.
        if detector.update(val_loss) and (curriculum is None or curriculum.share(epoch) >= 1.0):
            result.stopped_early = epoch + 1 < max_epochs
            break
    if best[1] is not None:
        est._learner = _core.Learner.from_state_dict(*best[1])
        result.best_epoch = best[2]
    est.n_iter_ = result.epochs
    est.loss_curve_ = list(result.train_loss)
    est.converged_ = result.stopped_early
    result.validation_score = _score(est._learner.task, est._learner.predict(X_val), t_val)
    return result
