"""Linear models: the one-layer case of the flat-buffer model, trained in C++.

>>> import numpy as np
>>> from ducklearn.linear import LogisticRegression
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(500, 3)).astype(np.float32)
>>> y = (X[:, 0] - X[:, 1] > 0).astype(int)
>>> model = LogisticRegression(seed=0).fit(X, y)
>>> model.score(X, y) > 0.95
True
>>> model.learn_one({"0": 1.0, "1": -1.0, "2": 0.0}, 1)   # River dialect, same model
>>> model.predict_one({"0": 2.0, "1": -2.0, "2": 0.0})
1
"""

from __future__ import annotations

from typing import Any

from ducklearn._base import ClassifierBase, RegressorBase
from ducklearn.optim import Optimizer, Schedule

__all__ = ["LogisticRegression", "SoftmaxRegression", "LinearRegression"]


class _LinearDefaults:
    # AdaGrad's per-coordinate steps suit sparse, differently scaled linear features; 0.1 is
    # its usual rate for linear models (Vowpal Wabbit's adaptive updates start near it too).
    _default_optimizer = "adagrad"
    _default_lrs = {"adagrad": 0.1}


class LogisticRegression(_LinearDefaults, ClassifierBase):
    """Logistic regression: a sigmoid output for two classes, softmax for more.

    Parameters
    ----------
    optimizer : str or ducklearn.optim.Optimizer, default "adagrad"
        ``"sgd"``, ``"adagrad"``, ``"rmsprop"``, ``"adam"``, ``"adamw"`` or an optimizer
        instance used as a template (its hyperparameters, never its state).
    lr : float or ducklearn.optim.Schedule, optional
        Learning rate; overrides the optimizer's own (AdaGrad's default here is 0.1).
    l2 : float, default 0.0
        L2 penalty added to the gradient.
    scale : bool, default False
        Standardize inputs online (running mean/variance per column, learned from every
        training row) before the model sees them. Recommended for features in raw units.
    batch_size : int, default 32
        Mini-batch size of ``fit`` and ``partial_fit``.
    max_epochs : int, default 100
        Upper bound on ``fit`` epochs.
    tol : float, default 1e-4
        Relative improvement of the epoch loss that resets the patience counter.
    patience : int, default 5
        ``fit`` stops after this many epochs without improvement.
    seed : int, default 0
        Seeds initialization and shuffling; equal seeds give identical models.
    classes : sequence, optional
        All labels, known in advance: lets ``learn_one`` start a multi-class stream.
    """

    def __init__(self, optimizer: str | Optimizer = "adagrad",
                 lr: float | Schedule | None = None, l2: float = 0.0, scale: bool = False,
                 batch_size: int = 32, max_epochs: int = 100, tol: float = 1e-4,
                 patience: int = 5, seed: int = 0, classes: Any = None):
        self.optimizer = optimizer
        self.lr = lr
        self.l2 = l2
        self.scale = scale
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.tol = tol
        self.patience = patience
        self.seed = seed
        self.classes = classes


class SoftmaxRegression(LogisticRegression):
    """Multinomial logistic regression: one output per class and a softmax, even for two
    classes (parameters as :class:`LogisticRegression`)."""

    def _loss(self, n_classes: int) -> tuple[str, float, float]:
        return "softmax", 1.0, 0.5


class LinearRegression(_LinearDefaults, RegressorBase):
    """Linear regression with a squared, Huber or pinball (quantile) loss.

    Parameters
    ----------
    loss : {"squared", "huber", "pinball"}, default "squared"
    delta : float, default 1.0
        Huber threshold.
    quantile : float, default 0.5
        Pinball loss quantile in (0, 1): 0.9 predicts the 90th percentile.
    optimizer : str or ducklearn.optim.Optimizer, default "adam"
        Adam at lr 0.05 by default: its steps are normalized per coordinate, so features and
        targets in raw units neither blow it up (as they do plain SGD) nor stall it (as
        AdaGrad's shrinking steps do on a large intercept).
    lr, l2, scale, batch_size, max_epochs, tol, patience, seed
        As for :class:`LogisticRegression`; use ``scale=True`` for features in raw units.
    """

    _default_optimizer = "adam"
    _default_lrs = {"adagrad": 0.1, "sgd": 0.01, "adam": 0.05}

    def __init__(self, loss: str = "squared", delta: float = 1.0, quantile: float = 0.5,
                 optimizer: str | Optimizer = "adam", lr: float | Schedule | None = None,
                 l2: float = 0.0, scale: bool = False, batch_size: int = 32,
                 max_epochs: int = 100, tol: float = 1e-4, patience: int = 5, seed: int = 0):
        self.loss = loss
        self.delta = delta
        self.quantile = quantile
        self.optimizer = optimizer
        self.lr = lr
        self.l2 = l2
        self.scale = scale
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.tol = tol
        self.patience = patience
        self.seed = seed
