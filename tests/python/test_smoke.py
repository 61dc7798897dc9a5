"""Wheel smoke test: import, backend info, one prediction."""

import ducklearn
import ducklearn.backend
import numpy as np
from ducklearn import _core


def test_version_matches_core():
    assert ducklearn.__version__ == _core.__version__
    assert ducklearn.__version__.count(".") == 2


def test_backend_info_keys():
    info = ducklearn.backend.info()
    for key in ("version", "simd_target", "blas", "blas_threads", "threads", "cuda_compiled",
                "cuda_device"):
        assert key in info
    assert info["simd_target"] in ("generic", "avx2", "avx512")


def test_one_prediction():
    cfg = _core.OptimizerConfig()
    learner = _core.Learner(3, [1], ["identity"], "logistic", cfg)
    p = learner.predict(np.zeros((1, 3), dtype=np.float32))
    assert p.shape == (1, 1)
    assert abs(float(p[0, 0]) - 0.5) < 1e-6
