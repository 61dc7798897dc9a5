"""Multi-layer perceptrons over one flat parameter buffer, trained in C++.

>>> import numpy as np
>>> from ducklearn.nn import MLPClassifier
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(1000, 2)).astype(np.float32)
>>> y = (X[:, 0] * X[:, 1] > 0).astype(int)          # XOR: not linearly separable
>>> model = MLPClassifier(hidden_layer_sizes=(32, 32), lr=0.01, seed=0).fit(X, y)
>>> model.score(X, y) > 0.9
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ducklearn._base import ClassifierBase, RegressorBase
from ducklearn.optim import Optimizer, Schedule

__all__ = ["MLPClassifier", "MLPRegressor"]

_ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "gelu", "identity")


class _MLPMixin:
    _default_optimizer = "adam"

    def _hidden_sizes(self) -> Any:
        """``hidden_layer_sizes`` as a sequence (a bare integer means one hidden layer)."""
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, (int, np.integer)) and not isinstance(sizes, bool):
            return (sizes,)
        return sizes

    def _architecture(self) -> tuple[list[int], list[str]]:
        sizes = self._hidden_sizes()
        return [int(s) for s in sizes], [self.activation] * len(sizes)

    def _check_params(self) -> None:
        sizes = self._hidden_sizes()
        try:
            ok = len(sizes) >= 1 and all(
                isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1
                for s in sizes
            )
        except TypeError:
            ok = False
        if not ok:
            raise ValueError(
                "hidden_layer_sizes must be a non-empty tuple of positive integers, "
                f"got {self.hidden_layer_sizes!r}"
            )
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {self.activation!r}")
        super()._check_params()  # the estimator base's checks (and the regression loss)


class MLPClassifier(_MLPMixin, ClassifierBase):
    """Multi-layer perceptron classifier (sigmoid output for two classes, softmax for more).

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (100,)
        Width of each hidden layer.
    activation : {"relu", "leaky_relu", "tanh", "sigmoid", "gelu", "identity"}, default "relu"
    optimizer : str or ducklearn.optim.Optimizer, default "adam"
    lr : float or ducklearn.optim.Schedule, optional
        Learning rate; overrides the optimizer's own (Adam: 0.001).
    l2, scale, batch_size, max_epochs, tol, patience, seed, classes
        As for :class:`ducklearn.linear.LogisticRegression`.
    """

    def __init__(self, hidden_layer_sizes: tuple[int, ...] = (100,), activation: str = "relu",
                 optimizer: str | Optimizer = "adam", lr: float | Schedule | None = None,
                 l2: float = 0.0, scale: bool = False, batch_size: int = 32,
                 max_epochs: int = 200, tol: float = 1e-4, patience: int = 10, seed: int = 0,
                 classes: Any = None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
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


class MLPRegressor(_MLPMixin, RegressorBase):
    """Multi-layer perceptron regressor with a squared, Huber or pinball loss.

    Parameters
    ----------
    hidden_layer_sizes, activation, optimizer, lr, l2, scale, batch_size, max_epochs, tol,
    patience, seed
        As for :class:`MLPClassifier`.
    loss : {"squared", "huber", "pinball"}, default "squared"
    delta : float, default 1.0
        Huber threshold.
    quantile : float, default 0.5
        Pinball loss quantile in (0, 1).
    """

    def __init__(self, hidden_layer_sizes: tuple[int, ...] = (100,), activation: str = "relu",
                 loss: str = "squared", delta: float = 1.0, quantile: float = 0.5,
                 optimizer: str | Optimizer = "adam", lr: float | Schedule | None = None,
                 l2: float = 0.0, scale: bool = False, batch_size: int = 32,
                 max_epochs: int = 200, tol: float = 1e-4, patience: int = 10, seed: int = 0):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
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

