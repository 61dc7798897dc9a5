"""Extraction: every field type against a Python reference, determinism, input formats,
dense/CSR agreement, crosses, hashing collisions, state round trip, learn/freeze/merge."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from ducklearn import _core
from ducklearn.features import (
    Boolean,
    Categorical,
    CodeFile,
    Cross,
    Extractor,
    FeatureSchema,
    Numeric,
    Project,
    Text,
    Timestamp,
    Tokens,
    User,
    expected_collision_rate,
)

F = _core.features
NOW = 1_800_000_000.0


def col(ex: Extractor, name: str) -> int:
    return ex.column_names.index(name)


def bucket(field: str, token: str, bits: int, seed: int = 0) -> tuple[int, float]:
    idx, sign = F.hash_tokens(field, [token], bits, seed)
    return int(idx[0]), float(sign[0])


# ---------------------------------------------------------------------------------------------
# Field types against references
# ---------------------------------------------------------------------------------------------


def test_numeric_log1p_clip_impute_indicator():
    s = FeatureSchema("t", [
        Numeric("a", log1p=True, clip=(0.0, 3.0), normalize=None, impute=7.0,
                missing_indicator=True),
        Numeric("b", normalize=None),
    ])
    ex = s.compile()
    assert ex.column_names == ["a", "a:missing", "b"]
    X, rej = ex.transform([{"a": 1.5, "b": -2}, {"a": 1e6, "b": 0}, {"b": 1}, {"a": -3.0, "b": 4}])
    assert rej == []
    np.testing.assert_allclose(X[:, 0], [math.log1p(1.5), 3.0, math.log1p(7.0), 0.0], rtol=1e-6)
    # a missing value is imputed with the constant, transformed like a value (log1p(7))
    np.testing.assert_array_equal(X[:, 1], [0, 0, 1, 0])
    np.testing.assert_array_equal(X[:, 2], [-2, 0, 1, 4])
    assert X.dtype == np.float32 and X.flags.c_contiguous


def test_impute_mean_uses_learned_mean():
    ex = FeatureSchema("t", [Numeric("a", normalize=None, impute="mean")]).compile()
    ex.learn([{"a": 2.0}, {"a": 4.0}, {"a": None}])
    X, _ = ex.transform([{"a": None}, {}])
    np.testing.assert_allclose(X[:, 0], [3.0, 3.0])


def test_impute_median():
    ex = FeatureSchema("t", [Numeric("a", normalize=None, impute="median")]).compile()
    ex.learn([{"a": float(v)} for v in [1, 2, 3, 100, 1000]])
    X, _ = ex.transform([{}])
    assert X[0, 0] == pytest.approx(3.0)


def test_boolean():
    ex = FeatureSchema("t", [Boolean("b", impute=0.5)]).compile()
    X, rej = ex.transform([{"b": True}, {"b": False}, {"b": np.bool_(True)}, {}])
    assert rej == []
    np.testing.assert_array_equal(X[:, 0], [1, 0, 1, 0.5])


def test_categorical_vocabulary_and_other():
    ex = FeatureSchema("t", [Categorical("c", vocabulary=["x", "y"])]).compile()
    assert ex.column_names == ["c=x", "c=y", "c=__other__"]
    X, rej = ex.transform([{"c": "y"}, {"c": "zzz"}, {}, {"c": ""}])
    assert rej == []
    np.testing.assert_array_equal(X, [[0, 1, 0], [0, 0, 1], [0, 0, 0], [0, 0, 1]])


def test_categorical_hashed_matches_murmur():
    ex = FeatureSchema("t", [Categorical("team", hash_bits=5)]).compile(seed=3)
    X, _ = ex.transform([{"team": "infra"}, {"team": "ünïcode"}])
    for row, value in zip(X, ["infra", "ünïcode"], strict=True):
        idx, _ = bucket("team", value, 5, seed=3)
        expect = np.zeros(32, dtype=np.float32)
        expect[idx] = 1.0  # categorical buckets are unsigned: a level is present or not
        np.testing.assert_array_equal(row, expect)


@pytest.mark.parametrize("weighting", ["count", "binary", "log"])
@pytest.mark.parametrize("ngrams", [1, 2])
def test_tokens_against_reference(weighting, ngrams):
    bits = 6
    ex = FeatureSchema("t", [Tokens("tok", hash_bits=bits, ngrams=ngrams,
                                    weighting=weighting)]).compile()
    toks = ["a", "b", "a", "c", "a", "b"]
    X, _ = ex.transform([{"tok": toks}])
    grams: dict[str, int] = {}
    for n in range(1, ngrams + 1):
        for i in range(len(toks) - n + 1):
            g = " ".join(toks[i:i + n])
            grams[g] = grams.get(g, 0) + 1
    expect = np.zeros(2 ** bits)
    for g, tf in grams.items():
        w = {"count": tf, "binary": 1.0, "log": math.log1p(tf)}[weighting]
        idx, sign = bucket("tok", g, bits)
        expect[idx] += sign * w
    np.testing.assert_allclose(X[0], expect, rtol=1e-6)


def test_tokens_l2_and_unsigned():
    ex = FeatureSchema("t", [Tokens("tok", hash_bits=8, l2_normalize=True, signed=False)]).compile()
    X, _ = ex.transform([{"tok": ["x", "y", "y"]}, {"tok": []}])
    assert np.linalg.norm(X[0]) == pytest.approx(1.0, rel=1e-6)
    assert (X[0] >= 0).all()
    assert not X[1].any()  # an empty list is present but contributes nothing


def test_text_tokenizes_like_core():
    ex = FeatureSchema("t", [Text("msg", hash_bits=10)]).compile()
    text = "Fix NULL deref in parse_header() — naïve check"
    assert F.tokenize_text(text) == ["fix", "null", "deref", "in", "parse", "header", "naïve",
                                     "check"]
    X, _ = ex.transform([{"msg": text}])
    Y, _ = FeatureSchema("t", [Tokens("msg", hash_bits=10)]).compile().transform(
        [{"msg": F.tokenize_text(text)}])
    np.testing.assert_array_equal(X, Y)


def test_timestamp_cyclical_and_age():
    ts = Timestamp("t", normalize=None)
    ex = FeatureSchema("x", [ts]).compile()
    when = dt.datetime(2024, 3, 6, 18, 30, tzinfo=dt.timezone.utc)  # a Wednesday
    X, rej = ex.transform([{"t": when}, {"t": when.timestamp()}, {"t": "2024-03-06T18:30:00Z"},
                           {"t": np.datetime64("2024-03-06T18:30:00")},
                           {"t": when.replace(tzinfo=None)}], now=NOW)
    assert rej == []
    hour = 18.5 / 24
    dow = (2 + 18.5 / 24) / 7  # Monday = 0
    expect = [math.sin(2 * math.pi * hour), math.cos(2 * math.pi * hour),
              math.sin(2 * math.pi * dow), math.cos(2 * math.pi * dow),
              (NOW - when.timestamp()) / 86400]
    for row in X:
        np.testing.assert_allclose(row, expect, rtol=1e-5, atol=1e-6)


def test_timestamp_fixed_reference_and_units():
    ex = FeatureSchema("x", [Timestamp("t", reference=1000.0, age_unit="hours",
                                       hour_of_day=False, day_of_week=False,
                                       normalize=None)]).compile()
    X, _ = ex.transform([{"t": 1000.0 - 7200}], now=NOW)
    assert X[0, 0] == pytest.approx(2.0)


def test_missing_categorical_and_tokens_indicators():
    s = FeatureSchema("t", [Categorical("c", vocabulary=["x"], missing_indicator=True),
                            Tokens("k", hash_bits=2, missing_indicator=True),
                            Timestamp("ts", missing_indicator=True, normalize=None)])
    ex = s.compile()
    X, _ = ex.transform([{}, {"c": None, "k": None, "ts": None}], now=NOW)
    for row in X:
        assert row[col(ex, "c:missing")] == 1 and row[col(ex, "k:missing")] == 1
        assert row[col(ex, "ts:missing")] == 1
        assert row[col(ex, "ts:hour_sin")] == 0 and row[col(ex, "ts:hour_cos")] == 0


def test_crosses():
    s = FeatureSchema("t", [Categorical("a", vocabulary=["x", "y"]),
                            Categorical("b", hash_bits=3),
                            Numeric("n", normalize=None), Numeric("m", normalize=None)],
                      crosses=[Cross("a", "b", 4), Cross("n", "a", 4), ("n", "m")])
    ex = s.compile()
    X, _ = ex.transform([{"a": "x", "b": "q", "n": 2.0, "m": 3.0}, {"a": "y", "n": 1.0, "m": 0.0}])
    ab = [col(ex, f"a*b#{k}") for k in range(16)]
    na = [col(ex, f"n*a#{k}") for k in range(16)]
    assert X[0, ab].sum() == 1.0 and X[1, ab].sum() == 0.0  # b missing: no pair
    assert sorted(X[0, na][X[0, na] != 0]) == [2.0]  # the level's bucket carries n
    assert X[0, col(ex, "n*m")] == 6.0 and X[1, col(ex, "n*m")] == 0.0


# ---------------------------------------------------------------------------------------------
# Ready-made schemas, determinism, formats
# ---------------------------------------------------------------------------------------------


def code_records(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    langs = ["python", "go", "rust", "cobol"]
    out = []
    for i in range(n):
        r = {f.name: float(rng.integers(0, 50)) for f in CodeFile.fields
             if isinstance(f, Numeric)}
        r["test_coverage_pct"] = float(rng.uniform(0, 100))
        for name in ("comment_ratio", "duplication_ratio", "ci_flaky_rate"):
            r[name] = float(rng.uniform(0, 1))
        r.update(language=langs[i % 4], file_kind="source", repo_tier="standard",
                 owners=[f"team{i % 3}", "alice"], last_modified=NOW - 86400.0 * (i % 30))
        if i % 5 == 0:
            del r["test_coverage_pct"]
        out.append(r)
    return out


@pytest.mark.parametrize("schema", [User, Project, CodeFile])
def test_ready_made_schemas_compile(schema):
    ex = schema.compile()
    assert ex.n_features == len(ex.column_names) == len(set(ex.column_names))
    assert len(schema.hash) == 16


def test_codefile_shape_as_documented():
    kinds = [f.kind for f in CodeFile.fields]
    assert kinds.count("numeric") == 20 and kinds.count("categorical") == 3
    assert kinds.count("tokens") == 1


def test_deterministic_across_extractors_and_calls():
    recs = code_records(300)
    a, b = CodeFile.compile(), CodeFile.compile()
    Xa, _ = a.learn_transform(recs, now=NOW)
    Xb, _ = b.learn_transform(recs, now=NOW)
    np.testing.assert_array_equal(Xa, Xb)
    Xc, _ = a.transform(recs, now=NOW)
    np.testing.assert_array_equal(a.transform(recs, now=NOW)[0], Xc)


def test_seed_changes_hashed_columns_only():
    recs = code_records(50)
    X0, _ = CodeFile.compile(seed=0).transform(recs, now=NOW)
    X1, _ = CodeFile.compile(seed=1).transform(recs, now=NOW)
    ex = CodeFile.compile()
    hashed = [i for i, c in enumerate(ex.column_names) if "#" in c]
    plain = [i for i, c in enumerate(ex.column_names) if "#" not in c]
    np.testing.assert_array_equal(X0[:, plain], X1[:, plain])
    assert not np.array_equal(X0[:, hashed], X1[:, hashed])


def test_dense_equals_sparse():
    pytest.importorskip("scipy")
    recs = code_records(200)
    ex = CodeFile.compile()
    ex.learn(recs, now=NOW)
    X, _ = ex.transform(recs, now=NOW)
    S, _ = ex.transform(recs, now=NOW, sparse=True)
    assert S.shape == X.shape and S.has_canonical_format
    np.testing.assert_array_equal(S.toarray(), X)


def test_input_formats_agree():
    pd = pytest.importorskip("pandas")
    pa = pytest.importorskip("pyarrow")
    s = FeatureSchema("t", [Numeric("n", normalize=None), Boolean("b"),
                            Categorical("c", vocabulary=["x", "y"]), Tokens("k", hash_bits=4),
                            Timestamp("ts", normalize=None)])
    recs = [{"n": 1.5, "b": True, "c": "x", "k": ["p", "q"], "ts": 1_700_000_000},
            {"n": None, "b": False, "c": None, "k": [], "ts": None},
            {"n": -2.0, "b": None, "c": "zz", "k": ["q"], "ts": 1_700_003_600}]
    ex = s.compile()
    ref, rej = ex.transform(recs, now=NOW)
    assert rej == []
    cols = {k: [r[k] for r in recs] for k in recs[0]}
    df = pd.DataFrame(cols)
    df["ts"] = pd.to_datetime(df["ts"], unit="s")
    numpy_cols = {"n": np.array([1.5, 0.0, -2.0]), "b": np.array([True, False, True]),
                  "c": np.array(["x", "", "zz"], dtype=object), "k": cols["k"],
                  "ts": np.array([1_700_000_000, 0, 1_700_003_600], dtype="datetime64[s]")}
    for data in (df, pa.table(cols), cols):
        X, rej = ex.transform(data, now=NOW)
        assert rej == []
        np.testing.assert_allclose(X, ref, rtol=1e-6)
    X, rej = ex.transform(numpy_cols, now=NOW)
    assert rej == [] and X.shape == ref.shape
    np.testing.assert_allclose(X[0], ref[0], rtol=1e-6)


def test_dataframe_nan_is_missing_but_dict_nan_is_rejected():
    pd = pytest.importorskip("pandas")
    ex = FeatureSchema("t", [Numeric("n", normalize=None, impute=0.0)]).compile()
    X, rej = ex.transform(pd.DataFrame({"n": [1.0, np.nan]}))
    assert rej == [] and X[:, 0].tolist() == [1.0, 0.0]
    X, rej = ex.transform({"n": np.array([1.0, np.nan])})
    assert X.shape[0] == 1 and rej[0].reason == "not_finite"


# ---------------------------------------------------------------------------------------------
# Hashing collisions
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_values,bits", [(200, 10), (1000, 14), (3000, 12)])
def test_collision_rate_bounded_as_documented(n_values, bits):
    ex = FeatureSchema("t", [Tokens("tok", hash_bits=bits)]).compile()
    tokens = [f"token-{i}" for i in range(n_values)]
    idx, _ = F.hash_tokens("tok", tokens, bits, 0)
    _, counts = np.unique(idx, return_counts=True)
    shared = counts[counts > 1].sum() / n_values
    expect = expected_collision_rate(n_values, bits)
    # Binomial fluctuation around the expectation: 4 standard deviations plus slack.
    sd = math.sqrt(expect * (1 - expect) / n_values)
    assert shared <= expect + 4 * sd + 0.01, (shared, expect)
    assert shared >= expect - 4 * sd - 0.01, (shared, expect)
    # And the extractor puts those tokens exactly where hash_tokens says.
    X, _ = ex.transform([{"tok": tokens}])
    ref = np.zeros(2 ** bits)
    np.add.at(ref, idx.astype(np.int64), F.hash_tokens("tok", tokens, bits, 0)[1])
    np.testing.assert_allclose(X[0], ref)


def test_fields_hash_apart():
    # The same value in two fields does not share a bucket by construction of the seeds.
    a = [bucket("owners", f"u{i}", 16)[0] for i in range(200)]
    b = [bucket("reviewers", f"u{i}", 16)[0] for i in range(200)]
    assert sum(x == y for x, y in zip(a, b, strict=True)) <= 3


# ---------------------------------------------------------------------------------------------
# Normalization through the extractor, state, merge, freeze
# ---------------------------------------------------------------------------------------------


def test_standard_normalization_matches_numpy():
    rng = np.random.default_rng(1)
    v = rng.lognormal(3, 1, 500)
    ex = FeatureSchema("t", [Numeric("a", log1p=True)]).compile()
    X, _ = ex.learn_transform([{"a": float(x)} for x in v])
    t = np.log1p(v)
    np.testing.assert_allclose(X[:, 0], (t - t.mean()) / t.std(), rtol=1e-4, atol=1e-5)


def test_all_normalizer_kinds_through_extractor():
    rng = np.random.default_rng(2)
    v = rng.normal(10, 3, 2000)
    v[:5] = 1000.0  # outliers
    recs = [{"a": float(x), "b": float(x), "c": float(x), "d": float(x)} for x in v]
    s = FeatureSchema("t", [Numeric("a", normalize="standard"), Numeric("b", normalize="minmax"),
                            Numeric("c", normalize="robust"), Numeric("d", normalize="clipped")])
    ex = s.compile(clip_z=2.5)
    X, _ = ex.learn_transform(recs)
    np.testing.assert_allclose(X[:, 0], (v - v.mean()) / v.std(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(X[:, 1], (v - v.min()) / (v.max() - v.min()), rtol=1e-4,
                               atol=1e-5)
    q1, med, q3 = np.quantile(v, [0.25, 0.5, 0.75])
    # The sketch's rank error (about 1%) moves the median by a fraction of the IQR.
    assert np.median(X[:, 2]) == pytest.approx(0.0, abs=0.05)
    assert X[:, 2].max() == pytest.approx((1000 - med) / (q3 - q1), rel=0.05)
    assert X[:, 3].max() == pytest.approx(2.5) and X[:, 3].min() >= -2.5


def test_state_round_trip_and_save(tmp_path):
    recs = code_records(400)
    ex = CodeFile.compile()
    ex.learn(recs, now=NOW)
    arrays, manifest = ex.state()
    import json

    manifest = json.loads(json.dumps(manifest))  # must be JSON-able
    assert all(isinstance(a, np.ndarray) for a in arrays.values())
    again = Extractor.from_state(arrays, manifest)
    np.testing.assert_array_equal(again.transform(recs, now=NOW)[0],
                                  ex.transform(recs, now=NOW)[0])
    path = str(tmp_path / "ex.npz")
    ex.save(path)
    loaded = Extractor.load(path)
    np.testing.assert_array_equal(loaded.transform(recs, now=NOW)[0],
                                  ex.transform(recs, now=NOW)[0])
    manifest["schema_hash"] = "0" * 16
    with pytest.raises(ValueError, match="hash"):
        Extractor.from_state(arrays, manifest)


def test_merge_equals_learning_everything():
    recs = code_records(600)
    whole = CodeFile.compile()
    whole.learn(recs, now=NOW)
    a, b = CodeFile.compile(), CodeFile.compile()
    a.learn(recs[:250], now=NOW)
    b.learn(recs[250:], now=NOW)
    a.merge(b)
    Xa, _ = a.transform(recs, now=NOW)
    Xw, _ = whole.transform(recs, now=NOW)
    robust = [col(whole, n) for n in ("n_dependents",)]
    exact = [i for i in range(whole.n_features) if i not in robust]
    np.testing.assert_allclose(Xa[:, exact], Xw[:, exact], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(Xa[:, robust], Xw[:, robust], rtol=0.1, atol=0.1)
    with pytest.raises(ValueError, match="same schema"):
        a.merge(User.compile())


def test_freeze_stops_learning():
    ex = FeatureSchema("t", [Numeric("a")]).compile()
    ex.learn([{"a": 1.0}, {"a": 3.0}])
    ex.freeze()
    with pytest.raises(RuntimeError, match="frozen"):
        ex.learn([{"a": 100.0}])
    X, _ = ex.transform([{"a": 3.0}])
    assert X[0, 0] == pytest.approx(1.0)
    ex.unfreeze().learn([{"a": 100.0}])


def test_transform_one():
    ex = CodeFile.compile()
    x = ex.transform_one(code_records(1)[0], now=NOW)
    assert x.shape == (ex.n_features,)


def test_learn_transform_equals_learn_then_transform():
    s = CodeFile.extend(Timestamp("released", reference=1.7e9, age_unit="weeks"))
    recs = code_records(300)
    for i, r in enumerate(recs):
        r["released"] = 1.6e9 + 1e5 * i
    a, b = s.compile(), s.compile()
    Xa, _ = a.learn_transform(recs, now=NOW)
    b.learn(recs, now=NOW)
    Xb, _ = b.transform(recs, now=NOW)
    np.testing.assert_allclose(Xa, Xb, rtol=1e-6, atol=1e-6)
    Sa, _ = s.compile().learn_transform(recs, now=NOW, sparse=True)
    np.testing.assert_allclose(Sa.toarray(), Xb, rtol=1e-6, atol=1e-6)
    age = Xb[:, col(b, "released:age")]
    raw_age = (1.7e9 - np.array([r["released"] for r in recs])) / (7 * 86400)
    np.testing.assert_allclose(age, (raw_age - raw_age.mean()) / raw_age.std(), rtol=1e-4,
                               atol=1e-4)


def test_learning_while_other_threads_extract():
    import threading

    recs = code_records(400)
    ex = CodeFile.compile()
    ex.learn(recs, now=NOW)
    errors: list[BaseException] = []
    stop = threading.Event()

    def extract():
        try:
            while not stop.is_set():
                X, rej = ex.transform(recs, now=NOW)
                assert X.shape == (400, ex.n_features) and not rej and np.isfinite(X).all()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=extract) for _ in range(3)]
    for t in threads:
        t.start()
    for _ in range(30):  # publishes new statistics while the fills run without the GIL
        ex.learn(recs, now=NOW)
    stop.set()
    for t in threads:
        t.join(30)
    assert errors == []
    final, _ = ex.transform(recs, now=NOW)
    again = CodeFile.compile()
    for _ in range(31):
        again.learn(recs, now=NOW)
    np.testing.assert_allclose(final, again.transform(recs, now=NOW)[0], rtol=1e-5, atol=1e-5)


def test_normalize_override_and_accepted_index():
    s = FeatureSchema("t", [Numeric("a"), Numeric("b", normalize="minmax"), Boolean("c")])
    recs = [{"a": float(v), "b": float(v), "c": True} for v in range(10)]
    ex = s.compile(normalize={"a": None})
    X, _ = ex.learn_transform(recs)
    np.testing.assert_array_equal(X[:, 0], np.arange(10))  # not normalized
    assert X[:, 1].min() == 0.0 and X[:, 1].max() == 1.0
    X, _ = s.compile(normalize="clipped", clip_z=1.0).learn_transform(recs)
    assert X[:, 0].max() == 1.0 and X[:, 1].max() == 1.0
    with pytest.raises(ValueError, match="cannot be normalized"):
        s.compile(normalize={"c": "standard"})
    with pytest.raises(ValueError, match="unknown field"):
        s.compile(normalize={"zz": "standard"})
    idx = ex.accepted_index([recs[0], {"a": "x"}, recs[1], 3])
    assert idx.tolist() == [0, 2]
