"""Serving: the in-process prediction server (dynamic batching, deadlines, hot swap,
circuit breaker with fallback), its HTTP API (:mod:`ducklearn.serving.http`, needs
``ducklearn[serve]``) and scale-out on Ray Serve (:mod:`ducklearn.serving.ray`, needs
``ducklearn[ray]``). Only the in-process server is imported here, so the core package never
needs the optional extras."""

from __future__ import annotations

from ducklearn.serving.server import (
    BadInput,
    CircuitBreaker,
    DeadlineExceeded,
    ModelNotFound,
    ModelUnavailable,
    Overloaded,
    Prediction,
    PredictionServer,
    ServingError,
    ShuttingDown,
    labels_for,
)

__all__ = [
    "BadInput", "CircuitBreaker", "DeadlineExceeded", "ModelNotFound", "ModelUnavailable",
    "Overloaded", "Prediction", "PredictionServer", "ServingError", "ShuttingDown", "labels_for",
]
