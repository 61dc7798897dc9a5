"""MLP 64-128-128-1: inference latency from Python (vs ONNX Runtime, 1 thread) and the
per-example update in the C++ stream loop (compare.py sections c and d)."""

from __future__ import annotations

import ducklearn.backend
import numpy as np
import workloads as W
from ducklearn.evaluate import prequential


class MLPInference:
    """``predict_proba`` of the trained inference MLP on 1 or 256 rows; ONNX Runtime runs the
    same weights for reference (skipped where onnxruntime is not installed)."""

    params = ([1, 256], ["ducklearn", "onnxruntime"])
    param_names = ["batch", "runtime"]
    timeout = 120

    def setup(self, batch: int, runtime: str) -> None:
        ducklearn.backend.set_blas_threads(1)  # like for like with a 1-thread ONNX Runtime
        self.model = W.trained_inference_mlp()
        s = W.wide_entity_stream(W.MLP_WARMUP_ROWS + batch)
        self.x = np.ascontiguousarray(s.X[-batch:])
        if runtime == "onnxruntime":
            try:
                sess = W.ort_session(W.onnx_mlp(self.model), threads=1)
            except ImportError as exc:
                raise NotImplementedError(f"onnxruntime is not installed: {exc}") from exc
            feed = {"x": self.x}
            self.call = lambda: sess.run(None, feed)
        else:
            self.call = lambda: self.model.predict_proba(self.x)

    def time_predict_proba(self, batch: int, runtime: str) -> None:
        self.call()


class MLPOnlineUpdate:
    """Prequential MLP over 20,000 rows of the 64-column stream: per row, forward, record the
    prediction, backward and one Adam step. Divide the time by 20,000 for µs per update."""

    n = 20_000
    timeout = 120

    def setup(self) -> None:
        self.stream = W.wide_entity_stream(self.n)

    def time_prequential_20k(self) -> None:
        prequential(W.ducklearn_mlp(), self.stream.X, self.stream.y, metrics=("accuracy",))

    def track_us_per_update(self) -> float:
        result = prequential(W.ducklearn_mlp(), self.stream.X, self.stream.y)
        return result.seconds / self.n * 1e6

    track_us_per_update.unit = "µs"


class MLPQuality:
    """Prequential accuracy of the default MLP on the 200,000-row entity stream."""

    timeout = 300

    def setup(self) -> None:
        self.stream = W.entity_stream()

    def track_prequential_accuracy(self) -> float:
        s = self.stream
        return prequential(W.ducklearn_mlp(), s.X, s.y).metrics["accuracy"]

    track_prequential_accuracy.unit = "accuracy"
