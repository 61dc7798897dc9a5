"""Optimizers and learning-rate schedules.

Every optimizer is an element-wise C++ kernel over (params, grads, state). Use one with the
estimators (``LogisticRegression(optimizer=Adam(lr=0.01))``) or directly on any C-contiguous
float32 array, which it updates in place while keeping its state (moments, accumulators)
inside the optimizer object:

>>> import numpy as np
>>> from ducklearn.optim import Adam
>>> w = np.zeros(3, dtype=np.float32)
>>> opt = Adam(lr=0.1)
>>> lr_used = opt.step(w, np.array([1.0, -1.0, 0.0], dtype=np.float32))
>>> [round(float(v), 3) for v in w]
[-0.1, 0.1, 0.0]

``lr`` is a float or a :class:`Schedule`, e.g. ``Adam(lr=Cosine(0.01, t_max=10_000))``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from ducklearn import _core

__all__ = [
    "Schedule",
    "Constant",
    "StepDecay",
    "ExponentialDecay",
    "InverseScaling",
    "Cosine",
    "Optimizer",
    "SGD",
    "AdaGrad",
    "RMSProp",
    "Adam",
    "AdamW",
    "make_optimizer",
    "PlateauDetector",
]

PlateauDetector = _core.PlateauDetector


def _check_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _check_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    return int(value)


class _Params:
    """get_params / repr / equality from the constructor arguments (scikit-learn style)."""

    _param_names: ClassVar[tuple[str, ...]] = ()

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.get_params() == self.get_params()

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(self.get_params().items())))


# ---------------------------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------------------------


class Schedule(_Params):
    """A learning rate as a function of the step ``t = 0, 1, 2, ...``.

    Every schedule takes ``warmup_steps`` and ``warmup_start``: for ``t < warmup_steps`` the
    rate rises linearly from ``warmup_start * lr`` towards ``lr``; afterwards the schedule
    runs from its own step 0, so decay starts where warmup ends.
    """

    _kind: ClassVar[str] = "constant"

    def __init__(self, lr: float, *, warmup_steps: int = 0, warmup_start: float = 0.0):
        self.lr = lr
        self.warmup_steps = warmup_steps
        self.warmup_start = warmup_start
        self.to_config()  # validate now, not at the first step

    def _fill(self, cfg: _core.ScheduleConfig) -> None:
        """Subclasses set their own fields."""

    def to_config(self) -> _core.ScheduleConfig:
        cfg = _core.ScheduleConfig()
        cfg.kind = self._kind
        cfg.lr = _check_number("lr", self.lr)
        cfg.warmup_steps = _check_int("warmup_steps", self.warmup_steps)
        cfg.warmup_start = _check_number("warmup_start", self.warmup_start)
        self._fill(cfg)
        cfg.validate()
        return cfg

    def __call__(self, t: int) -> float:
        """Learning rate at step ``t``."""
        return float(self.to_config().at(_check_int("t", t)))


class Constant(Schedule):
    """``lr`` at every step."""

    _kind = "constant"
    _param_names = ("lr", "warmup_steps", "warmup_start")


class StepDecay(Schedule):
    """``lr * gamma ** (t // step_size)``."""

    _kind = "step"
    _param_names = ("lr", "step_size", "gamma", "warmup_steps", "warmup_start")

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1, **warmup: Any):
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(lr, **warmup)

    def _fill(self, cfg: _core.ScheduleConfig) -> None:
        cfg.step_size = _check_int("step_size", self.step_size)
        cfg.gamma = _check_number("gamma", self.gamma)


class ExponentialDecay(Schedule):
    """``lr * gamma ** t``."""

    _kind = "exponential"
    _param_names = ("lr", "gamma", "warmup_steps", "warmup_start")

    def __init__(self, lr: float, gamma: float, **warmup: Any):
        self.gamma = gamma
        super().__init__(lr, **warmup)

    def _fill(self, cfg: _core.ScheduleConfig) -> None:
        cfg.gamma = _check_number("gamma", self.gamma)


class InverseScaling(Schedule):
    """``lr / (1 + t) ** power`` (scikit-learn's ``invscaling``, River's ``InverseScaling``)."""

    _kind = "inverse_scaling"
    _param_names = ("lr", "power", "warmup_steps", "warmup_start")

    def __init__(self, lr: float, power: float = 0.5, **warmup: Any):
        self.power = power
        super().__init__(lr, **warmup)

    def _fill(self, cfg: _core.ScheduleConfig) -> None:
        cfg.power = _check_number("power", self.power)


class Cosine(Schedule):
    """``min_lr + (lr - min_lr) * (1 + cos(pi * min(t, t_max) / t_max)) / 2``."""

    _kind = "cosine"
    _param_names = ("lr", "t_max", "min_lr", "warmup_steps", "warmup_start")

    def __init__(self, lr: float, t_max: int, min_lr: float = 0.0, **warmup: Any):
        self.t_max = t_max
        self.min_lr = min_lr
        super().__init__(lr, **warmup)

    def _fill(self, cfg: _core.ScheduleConfig) -> None:
        cfg.t_max = _check_int("t_max", self.t_max)
        cfg.min_lr = _check_number("min_lr", self.min_lr)


# ---------------------------------------------------------------------------------------------
# Optimizers
# ---------------------------------------------------------------------------------------------


class Optimizer(_Params):
    """Base class: hyperparameters in Python, state and update kernels in C++.

    Parameters common to all optimizers
    -----------------------------------
    lr : float or Schedule
        Learning rate, or a schedule giving it per step.
    l2 : float
        Coupled L2 penalty (adds ``l2 * p`` to the gradient).
    weight_decay : float
        Decoupled weight decay (``p -= lr * weight_decay * p``, Loshchilov & Hutter 2019).
    clip_norm : float
        If > 0, gradients are scaled so that their global L2 norm is at most ``clip_norm``.
    hypergradient : float
        If > 0, the learning rate adapts itself by hypergradient descent (Baydin et al.
        2018): before each step ``lr += hypergradient * dot(g_t, u_{t-1})`` where ``u`` is the
        previous step's direction, so the rate grows while successive steps agree and shrinks
        when they oscillate. ``lr`` (or the schedule's first value) is the starting rate.
    """

    _kind: ClassVar[str] = ""
    _common = ("lr", "l2", "weight_decay", "clip_norm", "hypergradient")

    def __init__(self, lr: float | Schedule, *, l2: float = 0.0, weight_decay: float = 0.0,
                 clip_norm: float = 0.0, hypergradient: float = 0.0):
        self.lr = lr
        self.l2 = l2
        self.weight_decay = weight_decay
        self.clip_norm = clip_norm
        self.hypergradient = hypergradient
        self._impl: _core.Optimizer | None = None
        self.to_config()  # validate now: a bad hyperparameter fails at construction

    def _fill(self, cfg: _core.OptimizerConfig) -> None:
        """Subclasses set their own fields."""

    def to_config(self) -> _core.OptimizerConfig:
        """The C++ configuration these hyperparameters describe."""
        cfg = _core.OptimizerConfig()
        cfg.kind = self._kind
        lr = self.lr
        if isinstance(lr, Schedule):
            cfg.schedule = lr.to_config()
        else:
            sched = _core.ScheduleConfig()
            sched.lr = _check_number("lr", lr)
            cfg.schedule = sched
        cfg.l2 = _check_number("l2", self.l2)
        cfg.weight_decay = _check_number("weight_decay", self.weight_decay)
        cfg.clip_norm = _check_number("clip_norm", self.clip_norm)
        cfg.hypergradient = _check_number("hypergradient", self.hypergradient)
        self._fill(cfg)
        cfg.validate()
        return cfg

    # -- direct use ---------------------------------------------------------------------------

    def step(self, params: np.ndarray, grads: np.ndarray) -> float:
        """Update ``params`` in place from ``grads``; return the learning rate used.

        ``params`` must be a C-contiguous, writeable float32 array (it is never copied);
        ``grads`` any array of the same size. The first call sizes the optimizer's state;
        later calls must pass arrays of that size. NaN or infinite gradients raise
        ``ValueError`` and leave ``params`` and the state unchanged.
        """
        g = np.asarray(grads)
        if g.dtype.kind not in "fiu":
            raise TypeError(f"grads must be numeric, got dtype {g.dtype}")
        if not np.isfinite(g).all():
            raise ValueError("grads contains NaN or infinity; nothing was updated")
        if self._impl is None:
            self._impl = _core.Optimizer(self.to_config())
        return float(self._impl.step(params, g))

    @property
    def steps(self) -> int:
        """Number of steps taken."""
        return 0 if self._impl is None else int(self._impl.steps)

    @property
    def current_lr(self) -> float:
        """Learning rate the next step will use."""
        if self._impl is None:
            return float(self.to_config().schedule.at(0))
        return float(self._impl.current_lr)

    @property
    def state(self) -> dict[str, np.ndarray]:
        """Copies of the state slots by name (e.g. ``{"m": ..., "v": ...}`` for Adam)."""
        if self._impl is None:
            return {}
        arr = np.array(self._impl.state, copy=True)
        return {name: arr[i] for i, name in enumerate(self._impl.slot_names)}

    def reset(self) -> None:
        """Forget the state and step count."""
        self._impl = None

    def clone(self) -> Optimizer:
        """A fresh optimizer with the same hyperparameters and no state."""
        return type(self)(**self.get_params())

    def __deepcopy__(self, memo: dict) -> Optimizer:
        new = self.clone()
        if self._impl is not None:
            new._impl = self._impl.__deepcopy__({})
        return new

    # A shallow copy sharing the native state would let two "copies" step the same moments.
    __copy__ = lambda self: self.__deepcopy__({})  # noqa: E731


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    ``v = momentum * v + g``; ``p -= lr * v`` (or ``lr * (g + momentum * v)`` with
    ``nesterov=True``), the convention of PyTorch without dampening.
    """

    _kind = "sgd"
    _param_names = (*Optimizer._common, "momentum", "nesterov")

    def __init__(self, lr: float | Schedule = 0.01, *, momentum: float = 0.0,
                 nesterov: bool = False, **common: Any):
        self.momentum = momentum
        self.nesterov = nesterov
        super().__init__(lr, **common)

    def _fill(self, cfg: _core.OptimizerConfig) -> None:
        cfg.momentum = _check_number("momentum", self.momentum)
        if not isinstance(self.nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be a bool, got {type(self.nesterov).__name__}")
        cfg.nesterov = bool(self.nesterov)


class AdaGrad(Optimizer):
    """AdaGrad (Duchi, Hazan & Singer 2011): ``G += g**2``; ``p -= lr * g / (sqrt(G) + eps)``."""

    _kind = "adagrad"
    _param_names = (*Optimizer._common, "eps", "initial_accumulator")

    def __init__(self, lr: float | Schedule = 0.01, *, eps: float = 1e-10,
                 initial_accumulator: float = 0.0, **common: Any):
        self.eps = eps
        self.initial_accumulator = initial_accumulator
        super().__init__(lr, **common)

    def _fill(self, cfg: _core.OptimizerConfig) -> None:
        cfg.eps = _check_number("eps", self.eps)
        cfg.initial_accumulator = _check_number("initial_accumulator", self.initial_accumulator)


class RMSProp(Optimizer):
    """RMSProp (Tieleman & Hinton 2012): ``s = rho * s + (1 - rho) * g**2``;
    ``p -= lr * g / (sqrt(s) + eps)``."""

    _kind = "rmsprop"
    _param_names = (*Optimizer._common, "rho", "eps")

    def __init__(self, lr: float | Schedule = 0.01, *, rho: float = 0.99, eps: float = 1e-8,
                 **common: Any):
        self.rho = rho
        self.eps = eps
        super().__init__(lr, **common)

    def _fill(self, cfg: _core.OptimizerConfig) -> None:
        cfg.rho = _check_number("rho", self.rho)
        cfg.eps = _check_number("eps", self.eps)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, Algorithm 1) with bias-corrected moments."""

    _kind = "adam"
    _param_names = (*Optimizer._common, "beta1", "beta2", "eps")

    def __init__(self, lr: float | Schedule = 0.001, *, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8, **common: Any):
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        super().__init__(lr, **common)

    def _fill(self, cfg: _core.OptimizerConfig) -> None:
        cfg.beta1 = _check_number("beta1", self.beta1)
        cfg.beta2 = _check_number("beta2", self.beta2)
        cfg.eps = _check_number("eps", self.eps)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019); ``weight_decay=0.01``."""

    _kind = "adamw"

    def __init__(self, lr: float | Schedule = 0.001, *, weight_decay: float = 0.01,
                 **kwargs: Any):
        super().__init__(lr, weight_decay=weight_decay, **kwargs)


_BY_NAME: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "adagrad": AdaGrad,
    "rmsprop": RMSProp,
    "adam": Adam,
    "adamw": AdamW,
}


def make_optimizer(spec: str | Optimizer, lr: float | Schedule | None = None) -> Optimizer:
    """A fresh optimizer from a name (``"sgd"``, ``"adagrad"``, ``"rmsprop"``, ``"adam"``,
    ``"adamw"``) or a template instance (its hyperparameters, none of its state).

    ``lr``, when given, overrides the learning rate.
    """
    if isinstance(spec, Optimizer):
        params = spec.get_params()
        if lr is not None:
            params["lr"] = lr
        return type(spec)(**params)
    if isinstance(spec, str):
        cls = _BY_NAME.get(spec.lower())
        if cls is None:
            raise ValueError(
                f"unknown optimizer {spec!r}; use one of {', '.join(sorted(_BY_NAME))} "
                "or an instance of ducklearn.optim.Optimizer"
            )
        return cls() if lr is None else cls(lr)
    raise TypeError(
        f"optimizer must be a name or a ducklearn.optim.Optimizer, got {type(spec).__name__}"
    )
