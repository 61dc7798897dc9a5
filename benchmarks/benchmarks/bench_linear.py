"""Online logistic regression: the prequential stream loop and the River-style dict API."""

from __future__ import annotations

import workloads as W
from ducklearn.evaluate import prequential


class PrequentialLogisticRegression:
    """Test-then-train over the entity stream, standardizing online (compare.py section a)."""

    params = [10_000, W.ENTITY_N]
    param_names = ["n"]
    timeout = 120

    def setup(self, n: int) -> None:
        self.stream = W.entity_stream(n)

    def time_prequential(self, n: int) -> None:
        prequential(W.ducklearn_logreg(), self.stream.X, self.stream.y, metrics=("accuracy",))

    def time_core_loop(self, n: int) -> None:
        # The C++ loop without the public API's input checks, on a freshly built model.
        s = self.stream
        W.core_prequential(W.build(W.ducklearn_logreg(), s.X, s.y), s.X, s.y)

    def track_prequential_accuracy(self, n: int) -> float:
        s = self.stream
        return prequential(W.ducklearn_logreg(), s.X, s.y).metrics["accuracy"]

    track_prequential_accuracy.unit = "accuracy"


class DictAPI:
    """``learn_one`` / ``predict_one`` / ``predict_proba_one`` over 10,000 dict records
    (compare.py section b). Each timing covers the whole loop of 10,000 calls."""

    n_records = 10_000
    timeout = 120

    def setup(self) -> None:
        self.records, labels = W.entity_records(self.n_records)
        self.labels = labels.tolist()
        self.fitted = W.ducklearn_logreg()
        for x, label in zip(self.records, self.labels, strict=True):
            self.fitted.learn_one(x, label)

    def time_learn_one(self) -> None:
        model = W.ducklearn_logreg()
        learn_one = model.learn_one
        for x, label in zip(self.records, self.labels, strict=True):
            learn_one(x, label)

    def time_predict_one(self) -> None:
        predict_one = self.fitted.predict_one
        for x in self.records:
            predict_one(x)

    def time_predict_proba_one(self) -> None:
        predict_proba_one = self.fitted.predict_proba_one
        for x in self.records:
            predict_proba_one(x)
