"""The synthetic entity stream itself: generation cost and the statistics benchmarks rely on."""

from __future__ import annotations

from ducklearn.datasets import make_entity_stream


class EntityStream:
    params = [10_000, 200_000]
    param_names = ["n"]

    def time_make_entity_stream(self, n: int) -> None:
        make_entity_stream(n)

    def peakmem_make_entity_stream(self, n: int) -> None:
        make_entity_stream(n)

    def track_bayes_accuracy(self, n: int) -> float:
        return make_entity_stream(n).bayes_accuracy

    track_bayes_accuracy.unit = "accuracy"
