"""pytest-benchmark checks over the shared workloads (``benchmarks/workloads.py``).

Run with ``pytest benchmarks/pytest`` (not part of the test suite's command). They time only;
the few assertions check that each workload computed something sensible, never a speed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import workloads as W  # noqa: E402  (needs the path above)


@pytest.fixture(scope="session")
def stream():
    """The headline 200,000-example entity stream."""
    return W.entity_stream()


@pytest.fixture(scope="session")
def one_thread_blas():
    """One BLAS thread, as the 1-thread ONNX Runtime it is compared with."""
    import ducklearn.backend

    before = ducklearn.backend.info()["blas_threads"]
    ducklearn.backend.set_blas_threads(1)
    yield
    ducklearn.backend.set_blas_threads(max(1, int(before)))
