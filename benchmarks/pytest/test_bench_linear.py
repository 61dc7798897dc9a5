"""Online logistic regression on the entity stream: ducklearn vs River and Vowpal Wabbit."""

from __future__ import annotations

import numpy as np
import pytest
import workloads as W
from ducklearn.evaluate import prequential

RIVER_N = 5_000  # River runs ~10^4 examples/s: a prefix keeps the check quick
DICT_N = 5_000


@pytest.mark.benchmark(group="prequential-logreg")
def test_ducklearn_prequential(benchmark, stream):
    result = benchmark(
        lambda: prequential(W.ducklearn_logreg(), stream.X, stream.y, metrics=("accuracy",))
    )
    benchmark.extra_info["examples"] = stream.n
    benchmark.extra_info["accuracy"] = result.metrics["accuracy"]
    assert 0.7 < result.metrics["accuracy"] < stream.bayes_accuracy


@pytest.mark.benchmark(group="prequential-logreg")
def test_ducklearn_core_loop(benchmark, stream):
    def run():
        model = W.build(W.ducklearn_logreg(), stream.X, stream.y)
        return W.core_prequential(model, stream.X, stream.y)

    preds = benchmark(run)
    assert preds.shape == (stream.n, 1)


@pytest.mark.benchmark(group="prequential-logreg-prefix")
def test_ducklearn_prequential_prefix(benchmark, stream):
    X, y = stream.X[:RIVER_N], stream.y[:RIVER_N]
    benchmark(lambda: prequential(W.ducklearn_logreg(), X, y, metrics=("accuracy",)))
    benchmark.extra_info["examples"] = RIVER_N


@pytest.mark.benchmark(group="prequential-logreg-prefix")
def test_river_prequential_prefix(benchmark):
    pytest.importorskip("river")
    records, labels = W.entity_records(RIVER_N)
    W.warm_up_river()
    p = benchmark.pedantic(
        lambda: W.river_prequential(W.river_logreg(), records, labels), rounds=1, iterations=1
    )
    benchmark.extra_info["examples"] = RIVER_N
    benchmark.extra_info["accuracy"] = W.prequential_accuracy(p, labels)
    assert 0.6 < W.prequential_accuracy(p, labels) < 1.0


@pytest.mark.benchmark(group="prequential-logreg")
def test_vw_file_driver(benchmark, stream, tmp_path):
    pytest.importorskip("vowpalwabbit")
    data = W.write_vw_file(stream, tmp_path / "entity.vw")
    preds = tmp_path / "preds.txt"
    benchmark.pedantic(lambda: W.vw_learn(data, preds), rounds=3, iterations=1)
    p = W.vw_predictions(preds)
    assert p.shape == (stream.n,)
    benchmark.extra_info["accuracy"] = W.prequential_accuracy(p, stream.y)


@pytest.fixture(scope="module")
def records():
    return W.entity_records(DICT_N)


def _learn_all(model, records, labels):
    for x, label in zip(records, labels, strict=True):
        model.learn_one(x, label)
    return model


@pytest.mark.benchmark(group="learn_one-dicts")
def test_ducklearn_learn_one(benchmark, records):
    recs, labels = records
    model = benchmark(lambda: _learn_all(W.ducklearn_logreg(), recs, labels.tolist()))
    assert model.predict_one(recs[0]) in (0, 1)


@pytest.mark.benchmark(group="learn_one-dicts")
def test_river_learn_one(benchmark, records):
    pytest.importorskip("river")
    recs, labels = records
    W.warm_up_river()
    benchmark.pedantic(
        lambda: _learn_all(W.river_logreg(), recs, (labels > 0).tolist()), rounds=3, iterations=1
    )


@pytest.mark.benchmark(group="predict_one-dicts")
def test_ducklearn_predict_one(benchmark, records):
    recs, labels = records
    model = _learn_all(W.ducklearn_logreg(), recs, labels.tolist())
    out = benchmark(lambda: [model.predict_one(x) for x in recs])
    assert set(out) <= {0, 1}


@pytest.mark.benchmark(group="predict_one-dicts")
def test_river_predict_one(benchmark, records):
    pytest.importorskip("river")
    recs, labels = records
    model = _learn_all(W.river_logreg(), recs, (labels > 0).tolist())
    out = benchmark.pedantic(lambda: [model.predict_one(x) for x in recs], rounds=3, iterations=1)
    assert set(out) <= {False, True}


def test_vw_file_round_trips_float32(tmp_path):
    # Not a timing: the VW input must carry exactly the numbers the other libraries see.
    s = W.entity_stream(50)
    path = W.write_vw_file(s, tmp_path / "e.vw")
    lines = path.read_text().splitlines()
    assert len(lines) == 50
    label, feats = lines[0].split(" |f ")
    assert label == ("1" if s.y[0] > 0.5 else "-1")
    values = dict(kv.rsplit(":", 1) for kv in feats.split())
    for j, name in enumerate(s.feature_names):
        expected = s.X[0, j]
        got = np.float32(values.get(name, "0"))
        assert got == expected
