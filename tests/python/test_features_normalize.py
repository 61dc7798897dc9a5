"""Online normalizers against numpy, merging across workers, persistence, and the KLL
quantile sketch's rank-error bound."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ducklearn.features import (
    ClippedNormalizer,
    KLLSketch,
    MinMaxNormalizer,
    RobustNormalizer,
    StandardNormalizer,
    make_normalizer,
    normalizer_from_state,
)


@pytest.fixture
def data(rng):
    X = np.column_stack([rng.normal(5, 2, 3000), rng.lognormal(0, 1, 3000),
                         rng.uniform(-1, 1, 3000), np.full(3000, 7.0)])
    X[rng.random(3000) < 0.1, 1] = np.nan  # missing values are skipped
    return X


def nan_standard(X):
    return (X - np.nanmean(X, 0)) / np.where(np.nanstd(X, 0) > 0, np.nanstd(X, 0), 1.0)


def test_standard_matches_numpy(data):
    n = StandardNormalizer(4)
    for chunk in np.array_split(data, 7):
        n.learn(chunk)
    np.testing.assert_allclose(n.mean, np.nanmean(data, 0), rtol=1e-6)
    np.testing.assert_allclose(n.std, np.nanstd(data, 0), rtol=1e-5, atol=1e-7)
    out = n.transform(data)
    np.testing.assert_allclose(out, nan_standard(data), rtol=1e-4, atol=1e-5)
    assert np.isnan(out[np.isnan(data)]).all()
    assert np.all(out[:, 3] == 0.0)  # constant column: scale 1, never a division by 0


def test_minmax_matches_numpy(data):
    n = MinMaxNormalizer(4).learn(data)
    lo, hi = np.nanmin(data, 0), np.nanmax(data, 0)
    span = np.where(hi > lo, hi - lo, 1.0)
    np.testing.assert_allclose(n.transform(data), (data - lo) / span, rtol=1e-5, atol=1e-6)


def test_clipped_bounds(data):
    n = ClippedNormalizer(4, z=1.5).learn(data)
    out = n.transform(data)
    assert np.nanmax(out) == 1.5 and np.nanmin(out) == -1.5
    inner = np.abs(nan_standard(data)) < 1.4
    np.testing.assert_allclose(out[inner], nan_standard(data)[inner], rtol=1e-4, atol=1e-5)


def test_robust_matches_numpy_within_sketch_error(data):
    n = RobustNormalizer(4).learn(data)
    med = np.nanmedian(data, 0)
    q1, q3 = np.nanquantile(data, [0.25, 0.75], axis=0)
    iqr = q3 - q1
    for j in range(3):
        # 1% rank error around the median of these laws moves it by well under 5% of the IQR
        assert abs(n.median[j] - med[j]) < 0.05 * iqr[j]
        assert n.iqr()[j] == pytest.approx(iqr[j], rel=0.05)
    shift, scale, _, _ = n.params()
    assert scale[3] == 1.0  # constant column: IQR = std = 0 -> scale 1


def test_unlearned_is_identity():
    for kind in ("standard", "minmax", "robust", "clipped"):
        n = make_normalizer(kind, 2)
        np.testing.assert_array_equal(n.transform([[1.0, -2.0]]),
                                      [[1.0, -2.0]] if kind != "clipped" else [[1.0, -2.0]])


@pytest.mark.parametrize("kind", ["standard", "minmax", "robust", "clipped"])
def test_merge_equals_single_pass(kind, data):
    whole = make_normalizer(kind, 4).learn(data)
    parts = [make_normalizer(kind, 4).learn(c) for c in np.array_split(data, 3)]
    merged = parts[0].merge(parts[1]).merge(parts[2])
    a, b = merged.params(), whole.params()
    tol = 0.03 if kind == "robust" else 1e-6
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol)
    with pytest.raises(ValueError, match="merge"):
        merged.merge(make_normalizer(kind, 3))


@pytest.mark.parametrize("kind", ["standard", "minmax", "robust", "clipped"])
def test_state_round_trip(kind, data):
    n = make_normalizer(kind, 4).learn(data).freeze()
    arrays, manifest = n.state()
    manifest = json.loads(json.dumps(manifest))
    again = normalizer_from_state({k: v.copy() for k, v in arrays.items()}, manifest)
    assert again.frozen and type(again) is type(n)
    np.testing.assert_array_equal(again.transform(data), n.transform(data))
    with pytest.raises(RuntimeError, match="frozen"):
        again.learn(data)
    bad = dict(manifest, format_version=99)
    with pytest.raises(ValueError, match="format_version"):
        normalizer_from_state(arrays, bad)


def test_learn_rejects_bad_input():
    n = StandardNormalizer(2)
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        n.learn(np.ones((3, 3)))
    with pytest.raises(ValueError, match="infinity"):
        n.learn([[1.0, np.inf]])
    with pytest.raises(ValueError, match="positive number of columns"):
        StandardNormalizer(0)


# ---------------------------------------------------------------------------------------------
# KLL sketch
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("law", ["uniform", "lognormal", "sorted", "reversed"])
def test_kll_rank_error_bound(law, rng):
    n = 200_000
    v = {"uniform": rng.uniform(0, 1, n), "lognormal": rng.lognormal(0, 2, n),
         "sorted": np.arange(n, dtype=float), "reversed": np.arange(n, 0, -1, dtype=float)}[law]
    s = KLLSketch(k=256)
    for chunk in np.array_split(v, 37):  # streaming in uneven batches
        s.update(chunk)
    assert s.n == n and s.size < 3 * 256 * 2  # memory O(k), not O(n)
    srt = np.sort(v)
    for q in (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99):
        est = s.quantile(q)
        rank = np.searchsorted(srt, est, side="right") / n
        assert abs(rank - q) < 0.01, (q, rank)
    assert s.quantile(0.0) == srt[0] and s.quantile(1.0) == srt[-1]


def test_kll_merge_and_determinism(rng):
    v = rng.normal(size=50_000)
    a, b = KLLSketch(seed=1), KLLSketch(seed=1)
    a.update(v)
    b.update(v)
    np.testing.assert_array_equal(a.quantiles([0.1, 0.5, 0.9]), b.quantiles([0.1, 0.5, 0.9]))
    parts = [KLLSketch(seed=i) for i in range(4)]
    for p, c in zip(parts, np.array_split(v, 4), strict=True):
        p.update(c)
    m = parts[0].merge(parts[1]).merge(parts[2]).merge(parts[3])
    assert m.n == v.size
    srt = np.sort(v)
    for q in (0.05, 0.5, 0.95):
        rank = np.searchsorted(srt, m.quantile(q)) / v.size
        assert abs(rank - q) < 0.015
    arrays, manifest = m.state()
    again = KLLSketch.from_state(arrays, json.loads(json.dumps(manifest)))
    assert again.quantile(0.5) == m.quantile(0.5)
    arrays["level0"] = arrays["level0"][:-1] if arrays["level0"].size else np.ones(1)
    with pytest.raises(ValueError, match="inconsistent"):
        KLLSketch.from_state(arrays, manifest)


def test_kll_ignores_nan_and_validates():
    s = KLLSketch()
    s.update([np.nan, 1.0, np.nan])
    assert s.n == 1 and s.quantile(0.5) == 1.0
    assert np.isnan(KLLSketch().quantile(0.5))
    with pytest.raises(ValueError):
        s.quantiles([1.5])
    with pytest.raises(ValueError):
        KLLSketch(k=2)
