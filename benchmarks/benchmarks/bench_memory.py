"""Memory: the stream loop's peak must stay flat as the stream grows, and a model's resident
size must be its flat buffers plus a small fixed overhead (compare.py section e)."""

from __future__ import annotations

import workloads as W
from ducklearn.evaluate import prequential


class StreamLoopPeakMemory:
    """Peak RSS of a process that streams n examples through a model in 10⁴-row chunks.

    asv's ``peakmem_*`` is the whole process's peak, setup included, so the data held is one
    fixed 10⁴-row block (fed repeatedly) whatever n is: any growth with n comes from the model
    or the loop keeping per-example state.
    """

    params = ([10_000, 100_000, 1_000_000], ["logreg", "mlp"])
    param_names = ["n", "model"]
    timeout = 300

    def setup(self, n: int, model: str) -> None:
        self.block = W.entity_stream(W.CHUNK_ROWS)
        make = W.ducklearn_logreg if model == "logreg" else W.ducklearn_mlp
        self.model = W.build(make(), self.block.X, self.block.y)

    def peakmem_stream(self, n: int, model: str) -> None:
        X, y = self.block.X, self.block.y
        for start, stop in W.chunks(n):
            prequential(self.model, X[: stop - start], y[: stop - start], metrics=("accuracy",))


class StreamLoopWorkingMemory:
    """Bytes the C++ loop adds to the process's peak RSS during one call over n rows, beyond
    what allocating its n × 4-byte output alone costs: near 0 and flat when the loop
    allocates nothing per example."""

    params = [10_000, 100_000, 1_000_000]
    param_names = ["n"]
    timeout = 300

    def setup(self, n: int) -> None:
        W.fix_allocator_thresholds()
        if not W.reset_peak_rss():
            raise NotImplementedError("needs Linux's /proc/self/clear_refs to reset the peak")
        self.stream = W.entity_stream(n)
        s = self.stream
        self.model = W.build(W.ducklearn_logreg(), s.X, s.y)
        # Buffers sized on first use are a one-time cost, not per-example memory.
        W.core_prequential(self.model, s.X[:100], s.y[:100])

    def track_extra_peak_bytes(self, n: int) -> float:
        s = self.stream
        loop = W.peak_delta(lambda: W.core_prequential(self.model, s.X, s.y))
        return float(loop - W.output_calibration((n, 1)))

    track_extra_peak_bytes.unit = "bytes"


class ModelResidentSize:
    """Resident bytes per parameter of a built model (float32 raw = 4): RSS growth from
    building enough copies to span megabytes, divided by copies and parameters."""

    params = ["logreg-34", "mlp-64-128-128-1", "mlp-64-1024-1024-1"]
    param_names = ["model"]
    timeout = 120

    def setup(self, model: str) -> None:
        W.fix_allocator_thresholds()
        if model == "logreg-34":
            self.stream = W.entity_stream(64)
            self.make = W.ducklearn_logreg
        else:
            width = int(model.split("-")[2])
            self.stream = W.wide_entity_stream(64)
            self.make = lambda: W.ducklearn_mlp(hidden_layer_sizes=(width, width))

    def track_bytes_per_parameter(self, model: str) -> float:
        X, y = self.stream.X, self.stream.y
        first = W.build(self.make(), X, y)  # one-time costs (OpenBLAS buffers...) paid here
        n_params = first.params.size
        copies = int(min(500, max(1, (16 << 20) // (16 * n_params))))
        W.release_free_memory()
        before = W.rss_bytes()
        models = [W.build(self.make(), X, y) for _ in range(copies)]
        W.release_free_memory()
        grown = W.rss_bytes() - before
        del models
        return grown / copies / n_params

    track_bytes_per_parameter.unit = "bytes"
