"""Online learning: the learner service, adaptation policies, checkpoints, bootstrap,
evaluation and A/B tests."""

from __future__ import annotations

from ducklearn.learn.abtest import ABResult, ABTest
from ducklearn.learn.adaptation import Adaptation
from ducklearn.learn.bootstrap import BootstrapResult, Curriculum, bootstrap
from ducklearn.learn.checkpoint import CheckpointError
from ducklearn.learn.online import OnlineLearner, QueueFullError, Snapshot

__all__ = [
    "ABResult", "ABTest", "Adaptation", "BootstrapResult", "CheckpointError", "Curriculum",
    "OnlineLearner", "QueueFullError", "Snapshot", "bootstrap",
]
