"""QualityMonitor: counts, missing rates, running statistics against numpy, PSI behaviour,
and the metrics samples (with prometheus_client when it is installed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ducklearn.features import (
    Categorical,
    FeatureSchema,
    Numeric,
    QualityMonitor,
    Timestamp,
    Tokens,
)
from ducklearn.features.quality import psi

SCHEMA = FeatureSchema("q", [
    Numeric("x", valid_range=(-100, 100)),
    Numeric("y", impute=0.0, log1p=True),
    Categorical("c", vocabulary=["a", "b", "c"]),
    Tokens("k", hash_bits=4),
])


def records(rng, n, shift=0.0, p_missing=0.2, levels=(0.6, 0.3, 0.1)):
    out = []
    for _ in range(n):
        r = {"x": float(rng.normal(shift, 1.0)), "y": float(rng.exponential(3.0)),
             "c": str(rng.choice(["a", "b", "c"], p=levels)), "k": ["t"] * int(rng.integers(0, 4))}
        if rng.random() < p_missing:
            del r["y"]
        out.append(r)
    return out


def test_counts_rates_and_stats(rng):
    ex = SCHEMA.compile()
    mon = QualityMonitor(ex, reference_size=500, window_size=500)
    recs = records(rng, 2000)
    recs[3]["x"] = 1e6            # out of range -> rejected
    recs[4]["x"] = "bad"          # wrong type -> rejected
    recs[5] = "not a record"      # not a mapping -> rejected
    recs[6]["c"] = "zzz"          # other level, accepted
    X, rejected = ex.transform(recs, monitor=mon)
    rep = json.loads(json.dumps(mon.report()))  # JSON-able
    assert rep["records"] == {"submitted": 2000, "accepted": 1997, "rejected": 3,
                              "rejection_rate": 3 / 2000, "with_unknown_fields": 0}
    assert rep["reasons"] == {"not_a_mapping": 1, "out_of_range": 1, "wrong_type": 1}
    fx, fy, fc = rep["fields"]["x"], rep["fields"]["y"], rep["fields"]["c"]
    assert fx["out_of_range"] == 1 and fx["wrong_type"] == 1 and fx["rejected"] == 2
    assert fc["other_level"] == 1
    n_missing = sum(1 for r in recs if isinstance(r, dict) and "y" not in r)
    assert fy["missing"] == n_missing
    assert fy["missing_rate"] == pytest.approx(n_missing / 1999)
    ok = [r for i, r in enumerate(recs) if i not in (3, 4, 5)]
    xs = np.array([r["x"] for r in ok])
    assert fx["mean"] == pytest.approx(xs.mean(), rel=1e-5)
    assert fx["std"] == pytest.approx(xs.std(), rel=1e-4)
    assert fx["min"] == pytest.approx(xs.min()) and fx["max"] == pytest.approx(xs.max())
    ys = np.log1p([r["y"] for r in ok if "y" in r])  # statistics are of the transformed value
    assert fy["mean"] == pytest.approx(ys.mean(), rel=1e-5)
    assert rep["fields"]["k"]["mean"] == pytest.approx(np.mean([len(r["k"]) for r in ok]),
                                                       rel=1e-5)


def test_psi_stable_vs_shifted(rng):
    ex = SCHEMA.compile()
    mon = QualityMonitor(ex, reference_size=3000, window_size=3000)
    mon.observe_records(records(rng, 3000))
    mon.observe_records(records(rng, 3000))
    stable = mon.report()["fields"]
    assert stable["x"]["psi"] < 0.05 and stable["x"]["psi_status"] == "stable"
    assert stable["c"]["psi"] < 0.05
    mon.reset_window()
    mon.observe_records(records(rng, 3000, shift=1.0, levels=(0.1, 0.3, 0.6)))
    shifted = mon.report()["fields"]
    assert shifted["x"]["psi"] > 0.25 and shifted["x"]["psi_status"] == "significant"
    assert shifted["c"]["psi"] > 0.25
    assert shifted["y"]["psi"] < 0.1  # unchanged field stays stable


def test_set_reference(rng):
    ex = SCHEMA.compile()
    mon = QualityMonitor(ex, reference_size=1000, window_size=1000)
    mon.set_reference(records(rng, 1000, shift=5.0))
    mon.observe_records(records(rng, 1000))
    assert mon.report()["fields"]["x"]["psi"] > 1.0
    assert mon.report()["reference"] == {"size": 1000, "fixed": True}


def test_set_reference_sees_fixed_reference_ages_as_live_batches_do(rng):
    # A timestamp aged from a fixed reference: the reference batch and a later live batch of
    # the same records must agree, whatever the `now` of each call.
    ref_time = 1.7e9
    ex = FeatureSchema("t", [Timestamp("at", reference=ref_time, hour_of_day=False,
                                       day_of_week=False)]).compile()
    recs = [{"at": ref_time - float(d) * 86400} for d in rng.uniform(0, 30, 1000)]
    mon = QualityMonitor(ex, reference_size=1000, window_size=1000)
    mon.set_reference(recs, now=ref_time + 5 * 86400)
    mon.observe_records(recs, now=ref_time + 50 * 86400)
    assert mon.report()["fields"]["at"]["psi"] < 0.01


def test_psi_function():
    assert psi([10, 10, 10], [10, 10, 10]) == 0.0
    assert psi([100, 0], [0, 100]) > 5
    assert np.isnan(psi([0, 0], [1, 1]))


def test_metrics_samples(rng):
    ex = SCHEMA.compile()
    mon = QualityMonitor(ex, reference_size=100, window_size=100)
    mon.observe_records(records(rng, 300) + [{"x": 1e9}])
    samples = mon.metrics()
    names = {n for n, _, _ in samples}
    assert {"ducklearn_feature_records_total", "ducklearn_feature_missing_rate",
            "ducklearn_feature_psi", "ducklearn_feature_mean",
            "ducklearn_feature_out_of_range_total"} <= names
    by = {(n, tuple(sorted(lab.items()))): v for n, lab, v in samples}
    key = ("ducklearn_feature_records_total", (("outcome", "rejected"), ("schema", "q")))
    assert by[key] == 1.0
    assert all(isinstance(v, float) and np.isfinite(v) for _, _, v in samples)


def test_prometheus_collector_when_installed(rng):
    mon = QualityMonitor(SCHEMA.compile(), reference_size=100, window_size=100)
    mon.observe_records(records(rng, 200))
    try:
        import prometheus_client
    except ImportError:
        with pytest.raises(ImportError, match="pip install prometheus-client"):
            mon.prometheus_collector()
        return
    registry = prometheus_client.CollectorRegistry()
    registry.register(mon.prometheus_collector())
    text = prometheus_client.generate_latest(registry).decode()
    assert 'ducklearn_feature_records_total{outcome="accepted",schema="q"} 200.0' in text
    assert "ducklearn_feature_psi{" in text


def test_monitor_argument_checks():
    with pytest.raises(TypeError, match="Extractor"):
        QualityMonitor(SCHEMA)
    with pytest.raises(ValueError, match="window_size"):
        QualityMonitor(SCHEMA.compile(), window_size=1)
