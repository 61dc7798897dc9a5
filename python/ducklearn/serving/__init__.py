"""Serving: the in-process prediction server (dynamic batching, deadlines, hot swap,
circuit breaker with fallback), its HTTP API and scale-out."""

from __future__ import annotations

from ducklearn.serving.server import (
    BadInput,
    CircuitBreaker,
    DeadlineExceeded,
    ModelNotFound,
    Overloaded,
    Prediction,
    PredictionServer,
    ServingError,
)

__all__ = [
    "BadInput", "CircuitBreaker", "DeadlineExceeded", "ModelNotFound", "Overloaded",
    "Prediction", "PredictionServer", "ServingError",
]
