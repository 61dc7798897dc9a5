"""Experiment tracking: runs with parameters, metrics over steps, tags, artifacts and the
model version each produced; search, comparison, and best-run selection that refuses to
pick a winner measured on too little data. SQLite or PostgreSQL, selected by URL, indexed
to stay fast at hundreds of thousands of runs. See :class:`Tracker`.
"""

from __future__ import annotations

from ducklearn.tracking.tracker import (
    BestRun,
    Comparison,
    InsufficientDataError,
    Run,
    RunInfo,
    Tracker,
)

__all__ = ["Tracker", "Run", "RunInfo", "BestRun", "Comparison", "InsufficientDataError"]
