"""How an online learner adapts: change detection, challengers, rates, replay, EWC.

:class:`Adaptation` is the Python face of the C++ ``AdaptationConfig`` (see
``cpp/include/ducklearn/stream/adaptive.hpp`` for the policies themselves).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ducklearn import _core

__all__ = ["Adaptation"]

_DETECTORS = ("adwin", "page_hinkley", "none")


@dataclass(frozen=True)
class Adaptation:
    """Adaptation policy of an :class:`~ducklearn.learn.OnlineLearner`.

    Parameters
    ----------
    detector : {"adwin", "page_hinkley", "none"}
        Change detector on the per-example loss. ADWIN (Bifet & Gavaldà 2007) adapts its
        window and suits noisy streams; Page-Hinkley reacts within a few examples to a jump.
    adwin_delta, adwin_clock, ph_threshold, ph_min_instances, ph_delta
        Detector settings (confidence / check period; alarm threshold / warm-up / tolerance).
    drift_lr_boost, boost_decay
        Multiply the learning rate by ``drift_lr_boost`` right after a change, fading back
        to 1 over ``boost_decay`` examples.
    background, background_grace, background_patience, background_lr_scale,
    background_epochs, recent_window, swap_margin, swap_z, loss_smoothing
        After a change, race a fresh model (warm-started on the examples after the estimated
        change point when there are at least 16) against the active one on every new
        example; it takes over once, after ``background_grace`` examples, its smoothed loss
        is lower and a paired test on the per-example loss differences says so with
        ``mean / standard error >= swap_z``. It is dropped after ``background_patience``
        examples without winning.
    plateau_factor, plateau_every, plateau_patience, plateau_min_delta, min_lr_scale
        Reduce-on-plateau: cut the rate by ``plateau_factor`` (< 1 enables it) when the mean
        loss over ``plateau_every`` examples has not improved for ``plateau_patience`` checks.
    replay_capacity, replay_every, replay_batch, replay_prioritized, replay_alpha,
    replay_recent, flush_replay_on_swap
        Experience replay from a reservoir of ``replay_capacity`` examples (0 disables):
        every ``replay_every`` examples one extra step on ``replay_batch`` of them. The
        reservoir is a uniform sample of the whole stream (against forgetting); with
        ``replay_recent`` it holds the most recent examples instead (extra passes over the
        current concept).
    ewc_lambda, ewc_decay, consolidate_every, consolidate_samples
        Elastic weight consolidation (needs replay): anchor the weights every
        ``consolidate_every`` examples (or on ``OnlineLearner.consolidate()``).
    update_batch : int
        Examples per optimizer step (default 1: predict, then learn, one example at a time).
        With ``k > 1`` each batch given to the learner is taken in blocks of ``k`` (the last
        block of a batch may be shorter): the whole block is predicted by the current model,
        then one step is taken on its mean gradient. That is several times the throughput
        of per-example steps on a network, at a price: a prediction may come from a model
        that has not yet learned the previous up to ``k - 1`` examples of its block, and a
        stream gets ``k`` times fewer (less noisy) steps, so a rate tuned for ``k = 1`` may
        want raising. Predictions are still made before their own label is learned, and the
        detector, replay (``replay_every`` counts examples), EWC, plateau and boost
        schedules still run per example on the pre-update losses. Small ``k`` (8-16) keeps
        accuracy close to per-example learning.
    average_decay : float
        Weight averaging (0 = off, e.g. 0.9995): the active model (and any challenger)
        predicts with an exponential moving average of its weights, which covers about the
        last ``1 / (1 - average_decay)`` examples once warmed up (Polyak & Juditsky 1992).
        On a noisy stream this removes much of the step-to-step noise of online SGD from the
        predictions, while the raw weights keep learning at the full rate. Predictions,
        the losses the detector watches, and published snapshots all come from the average;
        a detected change restarts it from the current weights so that it does not hold the
        old concept. The cost is one more forward pass per step (about 40 % more time per
        example on an MLP; with ``update_batch`` it is shared by the block).
    """

    detector: str = "adwin"
    adwin_delta: float = 0.002
    adwin_clock: int = 8
    ph_threshold: float = 50.0
    ph_min_instances: int = 30
    ph_delta: float = 0.005
    drift_lr_boost: float = 1.0
    boost_decay: int = 500
    background: bool = True
    background_grace: int = 50
    background_patience: int = 5000
    background_lr_scale: float = 1.0
    background_epochs: int = 1
    recent_window: int = 256
    swap_margin: float = 0.0
    swap_z: float = 3.0
    loss_smoothing: float = 0.02
    plateau_factor: float = 1.0
    plateau_every: int = 1000
    plateau_patience: int = 5
    plateau_min_delta: float = 1e-3
    min_lr_scale: float = 1e-3
    replay_capacity: int = 0
    replay_every: int = 1
    replay_batch: int = 8
    replay_prioritized: bool = False
    replay_recent: bool = False
    replay_alpha: float = 0.6
    flush_replay_on_swap: bool = True
    ewc_lambda: float = 0.0
    ewc_decay: float = 0.9
    consolidate_every: int = 0
    consolidate_samples: int = 256
    update_batch: int = 1
    average_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.detector not in _DETECTORS:
            raise ValueError(f"detector must be one of {_DETECTORS}, got {self.detector!r}")
        self.to_config()  # every other field is validated by the core

    @classmethod
    def fast(cls, **overrides: Any) -> Adaptation:
        """React within a handful of examples to an abrupt change of a clean rule."""
        base = dict(detector="page_hinkley", ph_threshold=5.0, ph_min_instances=10,
                    background_grace=3, swap_z=2.0)
        base.update(overrides)
        return cls(**base)

    @classmethod
    def none(cls) -> Adaptation:
        """Plain online learning: no detector, no challengers, no replay."""
        return cls(detector="none", background=False)

    def replace(self, **changes: Any) -> Adaptation:
        return dataclasses.replace(self, **changes)

    def to_config(self) -> _core.AdaptationConfig:
        cfg = _core.AdaptationConfig()
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(f.default, bool) or f.name == "detector":
                if f.name != "detector" and not isinstance(value, bool):
                    raise TypeError(f"{f.name} must be True or False, got {value!r}")
                setattr(cfg, f.name, value)
            elif isinstance(f.default, int):
                # bool is an int subclass; True as a count is almost surely a mistake.
                if isinstance(value, bool) or not isinstance(value, int):
                    raise TypeError(f"{f.name} must be an integer, got {value!r}")
                setattr(cfg, f.name, value)
            else:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise TypeError(f"{f.name} must be a number, got {value!r}")
                setattr(cfg, f.name, float(value))
        cfg.validate()
        return cfg
