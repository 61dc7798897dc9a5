"""MLP 64-128-128-1: inference from Python vs ONNX Runtime (1 thread), and the per-example
online update in the C++ stream loop."""

from __future__ import annotations

import numpy as np
import pytest
import workloads as W
from ducklearn.evaluate import prequential


@pytest.fixture(scope="module")
def mlp(one_thread_blas):
    return W.trained_inference_mlp()


@pytest.fixture(scope="module")
def session(mlp):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    return W.ort_session(W.onnx_mlp(mlp), threads=1)


def _rows(batch: int) -> np.ndarray:
    s = W.wide_entity_stream(W.MLP_WARMUP_ROWS + batch)
    return np.ascontiguousarray(s.X[-batch:])


@pytest.mark.parametrize("batch", [1, 256])
def test_ducklearn_predict_proba(benchmark, mlp, batch):
    benchmark.group = f"mlp-inference-batch-{batch}"
    x = _rows(batch)
    out = benchmark(mlp.predict_proba, x)
    assert out.shape == (batch, 2)


@pytest.mark.parametrize("batch", [1, 256])
def test_onnxruntime_run(benchmark, session, batch):
    benchmark.group = f"mlp-inference-batch-{batch}"
    x = _rows(batch)
    out = benchmark(session.run, None, {"x": x})
    assert out[0].shape == (batch, 1)


def test_onnx_graph_matches_ducklearn(mlp, session):
    # Not a timing: the exported graph must compute the same function, or the latency
    # comparison would be between different models.
    x = _rows(256)
    np.testing.assert_allclose(
        session.run(None, {"x": x})[0][:, 0], mlp.predict_proba(x)[:, 1], atol=1e-5
    )


@pytest.mark.benchmark(group="mlp-online-update")
def test_mlp_prequential_20k(benchmark):
    s = W.wide_entity_stream(20_000)
    result = benchmark.pedantic(
        lambda: prequential(W.ducklearn_mlp(), s.X, s.y, metrics=("accuracy",)),
        rounds=3,
        iterations=1,
    )
    benchmark.extra_info["us_per_update"] = result.seconds / s.n * 1e6  # last round
    assert result.metrics["accuracy"] > 0.6
