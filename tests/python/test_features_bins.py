"""Piecewise-linear encoding of numeric fields (``Numeric(bins=...)``): validation, the
encoding against a numpy reference, dense/CSR agreement, serialization, quantile fitting,
and what it buys a linear model."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from ducklearn.features import (
    Categorical,
    Cross,
    Extractor,
    FeatureSchema,
    Numeric,
    QualityMonitor,
)

NOW = 1_800_000_000.0


def ple_reference(x: np.ndarray, edges) -> np.ndarray:
    """Column t = clip((x - e_t) / (e_{t+1} - e_t), 0, 1) (Gorishniy et al. 2022)."""
    e = np.asarray(edges, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)[:, None]
    return np.clip((x - e[:-1]) / (e[1:] - e[:-1]), 0.0, 1.0).astype(np.float32)


def transformed(x, log1p=False, clip=None):
    x = np.asarray(x, dtype=np.float64)
    if log1p:
        x = np.sign(x) * np.log1p(np.abs(x))
    if clip is not None:
        x = np.clip(x, *clip)
    return x


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bins, err, match", [
    ((1.0,), ValueError, "at least 2 edges"),
    ((), ValueError, "at least 2 edges"),
    ((0.0, 1.0, 1.0), ValueError, "strictly increasing"),
    ((2.0, 1.0), ValueError, "strictly increasing"),
    ((0.0, math.inf), ValueError, "finite"),
    ((math.nan, 1.0), ValueError, "finite"),
    ("0,1", TypeError, "sequence of bin edges"),
    (3.0, TypeError, "sequence of bin edges"),
    ((0.0, "1"), TypeError, "only numbers"),
    ((0.0, True), TypeError, "only numbers"),
])
def test_bins_are_validated_with_the_field_named(bins, err, match):
    with pytest.raises(err, match=match) as info:
        Numeric("size", bins=bins)
    assert "size.bins" in str(info.value)


def test_bins_accept_numpy_and_normalize_must_be_none():
    f = Numeric("x", bins=np.array([0, 1, 2.5]))
    assert f.bins == (0.0, 1.0, 2.5) and all(type(e) is float for e in f.bins)
    assert f.normalize is None  # the default 'standard' does not apply to bins
    assert Numeric("x", bins=[0, 1], normalize=None).normalize is None
    with pytest.raises(ValueError, match=r"x\.normalize='minmax'.*normalize=None"):
        Numeric("x", bins=[0, 1], normalize="minmax")
    assert Numeric("x").bins is None and Numeric("x").normalize == "standard"


def test_binned_fields_cannot_be_crossed_or_normalized_by_the_extractor():
    fields = [Numeric("a", bins=(0, 1)), Numeric("b"), Categorical("c", vocabulary=["u"])]
    with pytest.raises(ValueError, match="has bins"):
        FeatureSchema("s", fields, crosses=[Cross("a", "b")])
    with pytest.raises(ValueError, match="has bins"):
        FeatureSchema("s", fields, crosses=[("c", "a")])
    s = FeatureSchema("s", fields)
    with pytest.raises(ValueError, match="'a' has bins and cannot be normalized"):
        s.compile(normalize={"a": "minmax"})
    # One kind for every field skips the binned one; its columns stay the plain encoding.
    ex = s.compile(normalize="minmax")
    assert ex.normalizers["minmax"][0] == ["b"]
    X, _ = ex.learn_transform({"a": [0.25, 2.0], "b": [1.0, 3.0], "c": ["u", "u"]})
    np.testing.assert_array_equal(X[:, 0], [0.25, 1.0])


# ---------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------


def test_encoding_matches_numpy_reference_dense_and_sparse(rng):
    edges = (-1.0, 0.0, 0.5, 2.0, 3.5)
    s = FeatureSchema("s", [
        Numeric("a", log1p=True, clip=(-2.0, 4.0), bins=edges, impute=4.0,
                missing_indicator=True),
        Numeric("b", normalize=None),
    ])
    ex = s.compile()
    assert ex.column_names == ["a:bin0", "a:bin1", "a:bin2", "a:bin3", "a:missing", "b"]
    assert ex.n_features == 6
    raw = rng.standard_normal(500) * 20
    raw[:5] = [-1e9, np.expm1(0.5), np.expm1(2.0), 0.0, 1e9]  # clipped, exact edges
    a = raw.astype(object)
    missing = rng.random(500) < 0.1
    missing[:5] = False
    a[missing] = None
    b = rng.standard_normal(500)
    X, rejected = ex.transform({"a": a, "b": b}, now=NOW)
    assert rejected == []
    x = np.where(missing, transformed(4.0, log1p=True),
                 transformed(np.where(missing, 0.0, raw), log1p=True, clip=(-2.0, 4.0)))
    np.testing.assert_allclose(X[:, :4], ple_reference(x, edges), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(X[:, 4], missing.astype(np.float32))
    np.testing.assert_array_equal(X[:, 5], b.astype(np.float32))
    # Below e_0 (clipped to -2): all zeros; above e_T (clipped to 4): all ones; at an edge
    # the bins below are full and the next one empty.
    np.testing.assert_array_equal(X[0, :4], [0, 0, 0, 0])
    np.testing.assert_array_equal(X[1, :4], [1, 1, 0, 0])
    np.testing.assert_array_equal(X[2, :4], [1, 1, 1, 0])
    np.testing.assert_array_equal(X[4, :4], [1, 1, 1, 1])
    pytest.importorskip("scipy")
    S, _ = ex.transform({"a": a, "b": b}, now=NOW, sparse=True)
    assert S.has_canonical_format and not np.any(S.data == 0)
    np.testing.assert_array_equal(S.toarray(), X)
    # Records and one-record calls agree with columns.
    recs = [{"a": None if m else float(v), "b": float(w)} for m, v, w in zip(missing, raw, b,
                                                                            strict=True)]
    np.testing.assert_array_equal(ex.transform(recs, now=NOW)[0], X)
    np.testing.assert_array_equal(ex.transform_one(recs[7], now=NOW), X[7])


def test_missing_value_gets_the_learned_mean_encoded():
    s = FeatureSchema("s", [Numeric("a", bins=(0.0, 2.0, 4.0))])  # impute='mean'
    ex = s.compile()
    X, _ = ex.learn_transform({"a": np.array([1.0, 2.0, 6.0, None], dtype=object)})
    np.testing.assert_allclose(X[3], ple_reference(np.array([3.0]), (0.0, 2.0, 4.0))[0])


def test_raw_values_feed_monitoring_and_state_round_trip(tmp_path, rng):
    s = FeatureSchema("s", [Numeric("a", log1p=True, bins=(0.0, 1.0, 3.0)),
                            Numeric("b", impute="median")])
    ex = s.compile()
    recs = {"a": rng.exponential(5.0, 300), "b": rng.standard_normal(300)}
    mon = QualityMonitor(ex)
    X, _ = ex.learn_transform(recs, now=NOW, monitor=mon)
    raw, keep = ex._raw(recs, now=NOW)
    assert raw.shape == (300, 2) and keep.all()
    np.testing.assert_allclose(raw[:, 0], np.log1p(recs["a"]))  # the scalar stays
    ex.save(str(tmp_path / "ex.npz"))
    again = Extractor.load(str(tmp_path / "ex.npz"))
    assert again.schema["a"].bins == (0.0, 1.0, 3.0)
    np.testing.assert_array_equal(again.transform(recs, now=NOW)[0], X)


# ---------------------------------------------------------------------------------------------
# Serialization
# ---------------------------------------------------------------------------------------------


def test_json_round_trip_keeps_bins_and_hash_tracks_them():
    s = FeatureSchema("s", [Numeric("a", log1p=True, bins=(0.0, 0.5, 2.0)), Numeric("b")])
    d = json.loads(s.to_json())
    assert d["fields"][0]["bins"] == [0.0, 0.5, 2.0]
    assert "bins" not in d["fields"][1]  # unbinned fields keep their old description and hash
    again = FeatureSchema.from_json(s.to_json())
    assert again == s and again["a"].bins == (0.0, 0.5, 2.0) and again.hash == s.hash
    assert again.compile().column_names == s.compile().column_names
    other = FeatureSchema("s", [Numeric("a", log1p=True, bins=(0.0, 0.5, 2.5)), Numeric("b")])
    assert other.hash != s.hash
    assert FeatureSchema("s", [Numeric("a", log1p=True), Numeric("b")]).hash != s.hash
    d["fields"][0]["bins"] = [0.0, 0.6, 2.0]  # altered edges are caught by the stored hash
    with pytest.raises(ValueError, match="does not match"):
        FeatureSchema.from_dict(d)


def test_registry_and_serving_rebuild_the_binned_extractor(tmp_path, rng):
    from ducklearn.linear import LogisticRegression
    from ducklearn.registry import Registry
    from ducklearn.serving.server import _extractor_from_manifest

    s = FeatureSchema("s", [Numeric("a", bins=(-1.0, 0.0, 1.0)), Numeric("b", normalize=None)])
    ex = s.compile()
    recs = {"a": rng.standard_normal(200), "b": rng.standard_normal(200)}
    X, _ = ex.learn_transform(recs, now=NOW)
    model = LogisticRegression(max_epochs=2).fit(X, (recs["a"] > 0).astype(int))
    reg = Registry(str(tmp_path / "reg"))
    try:
        reg.register("m", model, feature_schema=ex)
        mf = reg.load_file("m")
        np.testing.assert_array_equal(mf.features().transform(recs, now=NOW)[0], X)
        served = _extractor_from_manifest({"feature_schema": s.to_dict()})
        assert served is not None and served.schema["a"].bins == (-1.0, 0.0, 1.0)
        np.testing.assert_array_equal(served.transform(recs, now=NOW)[0], X)
    finally:
        reg.close()


# ---------------------------------------------------------------------------------------------
# Fitting edges
# ---------------------------------------------------------------------------------------------


def test_with_quantile_bins_matches_numpy_quantiles(rng):
    s = FeatureSchema("s", [
        Numeric("a", log1p=True, clip=(0.0, 6.0), valid_range=(0, 1e9)),
        Numeric("b", normalize="minmax"),
        Numeric("c", bins=(0.0, 1.0)),          # declared: kept as is by default
        Numeric("d"),                           # crossed: left alone by default
        Categorical("k", vocabulary=["u", "v"]),
    ], crosses=[("k", "d")], version=3)
    n = 2000
    a = rng.lognormal(2.0, 2.0, n).astype(object)
    a[:50] = None           # missing: left out of the quantiles
    a[50] = -5.0            # out of the valid range: the record is rejected
    cols = {"a": a, "b": rng.standard_normal(n), "c": rng.random(n), "d": rng.random(n),
            "k": np.where(rng.random(n) < 0.5, "u", "v"), "extra": np.zeros(n)}
    b = s.with_quantile_bins(cols, n_bins=8)
    assert b is not s and b.version == 3 and b.crosses == s.crosses
    kept = np.ones(n, dtype=bool)
    kept[50] = False
    a_vals = np.array([v for i, v in enumerate(a) if v is not None and kept[i]], dtype=float)
    want_a = np.unique(np.quantile(transformed(a_vals, log1p=True, clip=(0.0, 6.0)),
                                   np.linspace(0, 1, 9)))
    np.testing.assert_allclose(b["a"].bins, want_a, rtol=1e-12)
    want_b = np.quantile(cols["b"][kept], np.linspace(0, 1, 9))
    np.testing.assert_allclose(b["b"].bins, want_b, rtol=1e-12)
    assert len(b["b"].bins) == 9 and b["b"].normalize is None
    assert b["c"].bins == (0.0, 1.0) and b["d"].bins is None
    names = b.compile().column_names
    ta = len(want_a) - 1
    assert names[:ta + 8] == [f"a:bin{t}" for t in range(ta)] + [f"b:bin{t}" for t in range(8)]
    # Chosen fields only, and an existing field's edges are refitted.
    only = s.with_quantile_bins(cols, n_bins=4, fields=["c"])
    assert only["a"].bins is None and len(only["c"].bins) == 5


def test_with_quantile_bins_discrete_and_constant_fields():
    s = FeatureSchema("s", [Numeric("few"), Numeric("const"), Numeric("ok")])
    cols = {"few": [0.0] * 90 + [1.0] * 10, "const": [2.0] * 100, "ok": list(range(100))}
    with pytest.warns(UserWarning, match=r"\['const'\].*keep no bins"):
        b = s.with_quantile_bins(cols, n_bins=16)
    assert b["few"].bins == (0.0, 1.0)  # duplicated quantiles collapse to distinct edges
    assert b["const"].bins is None and b["const"].normalize == "standard"
    assert len(b["ok"].bins) == 17
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s.with_quantile_bins(cols, fields=["ok"])


@pytest.mark.parametrize("kwargs, err, match", [
    ({"n_bins": 0}, ValueError, "n_bins"),
    ({"n_bins": 2.5}, ValueError, "n_bins"),
    ({"n_bins": True}, ValueError, "n_bins"),
    ({"fields": "a"}, TypeError, "list of field names"),
    ({"fields": ["k"]}, ValueError, "only numeric fields"),
    ({"fields": ["d"]}, ValueError, "used by a cross"),
    ({"fields": ["nope"]}, KeyError, "no field"),
])
def test_with_quantile_bins_arguments(kwargs, err, match):
    s = FeatureSchema("s", [Numeric("a"), Numeric("d"), Categorical("k", vocabulary=["u"])],
                      crosses=[("k", "d")])
    with pytest.raises(err, match=match):
        s.with_quantile_bins({"a": [1.0, 2.0], "d": [0.0, 1.0], "k": ["u", "u"]}, **kwargs)


# ---------------------------------------------------------------------------------------------
# What it is for
# ---------------------------------------------------------------------------------------------


def test_linear_model_learns_a_threshold_rule_only_with_bins(rng):
    """y = 1 inside a band of x: not linearly separable on x, but a sum of two PLE columns."""
    from ducklearn.linear import LogisticRegression

    n = 6000
    x = rng.uniform(0.0, 10.0, n)
    y = ((x > 3.0) & (x < 6.0)).astype(int)
    plain = FeatureSchema("s", [Numeric("x")])
    binned = plain.with_quantile_bins({"x": x[:2000]}, n_bins=16)
    scores = []
    for schema in (plain, binned):
        ex = schema.compile()
        X, _ = ex.learn_transform({"x": x}, now=NOW)
        model = LogisticRegression(scale=True, max_epochs=20, seed=0).fit(X[:4000], y[:4000])
        scores.append(float(np.mean(model.predict(X[4000:]) == y[4000:])))
    assert scores[0] < 0.75  # the majority class is 0.7
    assert scores[1] > 0.93, scores
