"""ducklearn.datasets.make_entity_stream: reproducibility, layout, and the statistics the
benchmarks and examples rely on (heavy tails, a learnable-but-noisy rule, an abrupt change)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from ducklearn.datasets import ENTITY_CATEGORIES, ENTITY_NUMERIC, EntityStream, make_entity_stream

N_BASE = len(ENTITY_NUMERIC) + sum(len(levels) for levels, _ in ENTITY_CATEGORIES.values())


@pytest.fixture(scope="module")
def stream() -> EntityStream:
    return make_entity_stream(40_000, seed=3)


def test_same_seed_same_stream():
    a = make_entity_stream(5_000, seed=7)
    b = make_entity_stream(5_000, seed=7)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.p_true, b.p_true)
    assert a.feature_names == b.feature_names


def test_different_seed_different_stream():
    a = make_entity_stream(5_000, seed=0)
    b = make_entity_stream(5_000, seed=1)
    assert not np.array_equal(a.X, b.X)
    assert not np.array_equal(a.y, b.y)


def test_first_rows_are_frozen():
    # The stream is a benchmark workload and append-only: the values a seed produces must not
    # change, or benchmark history stops being comparable. These were recorded when the
    # generator was written; the tolerance only absorbs last-bit differences in libm.
    s = make_entity_stream(3, seed=0)
    np.testing.assert_allclose(
        s.X[0, :8], [30.0, 3.0, 1.0, 3613.0, 4.0, 345.0, 17.0, 44.076260], rtol=1e-6
    )
    np.testing.assert_allclose(s.p_true, FROZEN_P_TRUE, rtol=1e-9)
    np.testing.assert_array_equal(s.y, FROZEN_Y)


# Recorded from make_entity_stream(3, seed=0); see test_first_rows_are_frozen.
FROZEN_P_TRUE = np.array([0.7150272586944662, 0.5018262851689211, 0.020489775468673276])
FROZEN_Y = np.array([0.0, 1.0, 0.0], dtype=np.float32)


def test_shapes_dtypes_and_names(stream):
    n, d = stream.X.shape
    assert (n, d) == (40_000, N_BASE) == (stream.n, stream.n_features)
    assert stream.X.dtype == np.float32 and stream.X.flags.c_contiguous
    assert stream.y.dtype == np.float32 and stream.y.shape == (n,)
    assert stream.p_true.shape == (n,)
    assert set(np.unique(stream.y)) == {0.0, 1.0}
    assert len(stream.feature_names) == d == len(set(stream.feature_names))
    assert stream.numeric_names == [name for name, _ in ENTITY_NUMERIC]
    assert set(stream.categorical) == set(ENTITY_CATEGORIES)
    assert np.isfinite(stream.X).all()
    with pytest.raises(dataclasses.FrozenInstanceError):
        stream.drift_index = 0  # type: ignore[misc]


def test_one_hot_columns_are_exclusive(stream):
    for name, cols in stream.categorical.items():
        idx = [stream.feature_names.index(c) for c in cols]
        block = stream.X[:, idx]
        assert set(np.unique(block)) == {0.0, 1.0}
        np.testing.assert_array_equal(block.sum(axis=1), 1.0)
        # Every level occurs, roughly at its sampling probability.
        np.testing.assert_allclose(block.mean(axis=0), ENTITY_CATEGORIES[name][1], atol=0.01)


def test_bounded_features_stay_in_range(stream):
    col = {name: stream.X[:, j] for j, name in enumerate(stream.feature_names)}
    assert col["test_coverage_pct"].min() >= 0 and col["test_coverage_pct"].max() <= 100
    for frac in ("duplication_ratio", "ci_flaky_rate"):
        assert col[frac].min() >= 0 and col[frac].max() <= 1
    assert set(np.unique(col["hour_of_day"])) <= set(range(24))
    for count in ("lines_added", "files_touched", "churn_90d", "n_reviewers", "n_comments"):
        assert (col[count] >= 0).all() and (col[count] == np.floor(col[count])).all()


def test_heavy_tails_present(stream):
    # Raw units, no normalisation: several features have a maximum far beyond their median
    # and a strongly positive skew, which is what makes online standardization matter.
    heavy = 0
    for j in range(len(stream.numeric_names)):
        x = stream.X[:, j].astype(np.float64)
        med = np.median(x)
        skew = np.mean((x - x.mean()) ** 3) / x.std() ** 3
        if med > 0 and x.max() / med > 50 and skew > 5:
            heavy += 1
    assert heavy >= 5
    # Magnitudes span many orders, from fractions to millions of bytes.
    assert stream.X[:, stream.feature_names.index("file_size_bytes")].max() > 1e6
    assert stream.X[:, stream.feature_names.index("ci_flaky_rate")].max() < 1


def test_shorter_stream_is_a_prefix():
    long = make_entity_stream(20_000, seed=6, drift_at=None, n_distractors=3)
    short = make_entity_stream(9_000, seed=6, drift_at=None, n_distractors=3)
    np.testing.assert_array_equal(long.X[:9_000], short.X)
    np.testing.assert_array_equal(long.y[:9_000], short.y)
    np.testing.assert_array_equal(long.p_true[:9_000], short.p_true)


def test_drift_index():
    assert make_entity_stream(1_000, drift_at=0.5).drift_index == 500
    assert make_entity_stream(1_000, drift_at=0.25).drift_index == 250
    assert make_entity_stream(1_000, drift_at=None).drift_index == 1_000
    assert make_entity_stream(1_000, drift_at=1.0).drift_index == 1_000
    assert make_entity_stream(1_000, drift_at=0.0).drift_index == 0


def test_drift_changes_the_rule_not_the_inputs():
    drifting = make_entity_stream(20_000, seed=5, drift_at=0.5)
    stable = make_entity_stream(20_000, seed=5, drift_at=None)
    k = drifting.drift_index
    np.testing.assert_array_equal(drifting.X, stable.X)
    np.testing.assert_array_equal(drifting.p_true[:k], stable.p_true[:k])
    # After the change the truth differs substantially: a model of the old rule is often wrong.
    old, new = stable.p_true[k:], drifting.p_true[k:]
    disagree = np.mean((old > 0.5) != (new > 0.5))
    assert disagree > 0.15


def test_bayes_accuracy_of_default_stream():
    s = make_entity_stream(100_000, seed=0)
    assert 0.85 <= s.bayes_accuracy <= 0.92
    p = s.p_true
    assert s.bayes_accuracy == pytest.approx(np.mean(np.maximum(p, 1 - p)))
    # Both halves are noisy but learnable on their own.
    for part in (slice(0, s.drift_index), slice(s.drift_index, None)):
        q = p[part]
        assert 0.85 <= np.mean(np.maximum(q, 1 - q)) <= 0.92
        assert 0.35 <= s.y[part].mean() <= 0.65


def test_p_true_is_a_probability(stream):
    assert np.isfinite(stream.p_true).all()
    assert (stream.p_true >= 0).all() and (stream.p_true <= 1).all()
    # label_noise bounds it away from 0 and 1.
    assert stream.p_true.min() >= 0.02 - 1e-12 and stream.p_true.max() <= 0.98 + 1e-12


def test_labels_are_drawn_from_p_true(stream):
    y, p = stream.y.astype(np.float64), stream.p_true
    n = len(y)
    # Overall rate within 5 standard errors of the expected one.
    se = np.sqrt(np.sum(p * (1 - p))) / n
    assert abs(y.mean() - p.mean()) < 5 * se
    # Calibration: in each decile of p_true the label rate matches the mean p_true.
    edges = np.quantile(p, np.linspace(0, 1, 11))
    bins = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, 9)
    for b in range(10):
        m = bins == b
        assert abs(y[m].mean() - p[m].mean()) < 0.03
    # The Bayes rule's hit rate matches its expected accuracy.
    hits = np.mean((p > 0.5) == (y > 0.5))
    assert hits == pytest.approx(stream.bayes_accuracy, abs=0.01)


def test_label_noise_lowers_bayes_accuracy():
    clean = make_entity_stream(20_000, seed=2, label_noise=0.0)
    noisy = make_entity_stream(20_000, seed=2, label_noise=0.2)
    np.testing.assert_array_equal(clean.X, noisy.X)
    assert noisy.bayes_accuracy < clean.bayes_accuracy - 0.1
    # Folding the flips into p_true: p = eta + (1 - 2 eta) p_clean.
    np.testing.assert_allclose(noisy.p_true, 0.2 + 0.6 * clean.p_true, rtol=1e-12)


def test_signal_sharpens_the_rule_without_touching_the_features():
    base = make_entity_stream(20_000, seed=8)
    sharp = make_entity_stream(20_000, seed=8, signal=2.0, label_noise=0.0)
    np.testing.assert_array_equal(sharp.X, base.X)
    assert sharp.bayes_accuracy > base.bayes_accuracy + 0.03
    # Same rule, scaled logit: the sign of (p - 1/2) never changes.
    np.testing.assert_array_equal(sharp.p_true > 0.5, base.p_true > 0.5)
    # signal=1.0 is the default stream.
    np.testing.assert_array_equal(make_entity_stream(20_000, seed=8, signal=1.0).y, base.y)


def test_distractors_leave_the_concept_unchanged():
    base = make_entity_stream(5_000, seed=4)
    wide = make_entity_stream(5_000, seed=4, n_distractors=30)
    assert wide.X.shape == (5_000, N_BASE + 30)
    assert wide.X.flags.c_contiguous
    np.testing.assert_array_equal(wide.X[:, :N_BASE], base.X)
    np.testing.assert_array_equal(wide.y, base.y)
    assert wide.feature_names[-1] == "noise_29"
    assert (wide.X[:, N_BASE:] > 0).all()


def test_records_match_rows(stream):
    recs = list(stream.records(10, 13))
    assert len(recs) == 3
    for i, rec in enumerate(recs, start=10):
        assert list(rec) == stream.feature_names
        assert all(type(v) is float for v in rec.values())
        np.testing.assert_array_equal(np.array(list(rec.values()), dtype=np.float32), stream.X[i])
    assert sum(1 for _ in make_entity_stream(50).records()) == 50


def test_repr_mentions_the_key_facts(stream):
    text = repr(stream)
    assert "n=40000" in text and "bayes_accuracy=" in text and "drift_index=20000" in text


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"n": 0}, "n must"),
        ({"n": 2.5}, "n must"),
        ({"seed": -1}, "seed must"),
        ({"drift_at": 1.5}, "drift_at"),
        ({"label_noise": 0.5}, "label_noise"),
        ({"label_noise": float("nan")}, "label_noise"),
        ({"n_distractors": -1}, "n_distractors"),
        ({"signal": 0.0}, "signal"),
        ({"signal": float("inf")}, "signal"),
    ],
)
def test_bad_arguments_raise(kwargs, word):
    args = {"n": 10, **kwargs}
    with pytest.raises(ValueError, match=word):
        make_entity_stream(**args)
