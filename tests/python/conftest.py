"""Shared fixtures: a seeded random generator, a run-under-every-SIMD-target switch, and a
real PostgreSQL server (see _postgres.py)."""

from __future__ import annotations

import numpy as np
import pytest
from _postgres import postgres_db, postgres_url  # noqa: F401 - fixtures for store suites
from ducklearn import _core

SEED = 20240531


def _supported_simd_targets() -> list[str]:
    """The SIMD targets this CPU can run, probed once; the active target is left as found."""
    before = _core.backend_info()["simd_target"]
    found = [t for t in ("generic", "avx2", "avx512") if _core.set_simd_target(t)]
    _core.set_simd_target(before)
    return found


SIMD_TARGETS = _supported_simd_targets()


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh generator with a fixed seed per test, so every test is reproducible alone."""
    return np.random.default_rng(SEED)


@pytest.fixture(params=SIMD_TARGETS)
def simd_target(request: pytest.FixtureRequest):
    """Runs the test once per SIMD target the CPU supports, then restores the previous one."""
    before = _core.backend_info()["simd_target"]
    assert _core.set_simd_target(request.param)
    assert _core.backend_info()["simd_target"] == request.param
    yield request.param
    _core.set_simd_target(before)
