"""Validation: every bad-input class, unknown-field policies, strict mode, dead-letter
completeness (a hypothesis property), and that one bad record never loses the batch."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ducklearn.features import (
    Boolean,
    Categorical,
    CodeFile,
    DeadLetter,
    FeatureSchema,
    Numeric,
    RecordValidationError,
    Timestamp,
    Tokens,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SCHEMA = FeatureSchema("t", [
    Numeric("n", valid_range=(0, 100), required=True),
    Numeric("opt", impute=0.0),
    Boolean("b"),
    Categorical("c", vocabulary=["x", "y"], other_bucket=False),
    Tokens("k", hash_bits=4),
    Timestamp("ts", valid_range=(0, 2e9)),
])
GOOD = {"n": 5.0, "opt": 1.0, "b": True, "c": "x", "k": ["a"], "ts": 1e9}


def one(record, **options) -> DeadLetter:
    X, rejected = SCHEMA.compile(**options).transform([GOOD, record, GOOD])
    assert X.shape[0] == 2, "the good records around a bad one must survive"
    assert len(rejected) == 1 and rejected[0].index == 1
    return rejected[0]


@pytest.mark.parametrize("record,field,reason", [
    ({**GOOD, "n": None}, "n", "missing_required"),
    ({k: v for k, v in GOOD.items() if k != "n"}, "n", "missing_required"),
    ({**GOOD, "n": "5"}, "n", "wrong_type"),
    ({**GOOD, "n": True}, "n", "wrong_type"),
    ({**GOOD, "n": [5]}, "n", "wrong_type"),
    ({**GOOD, "n": np.datetime64("2020-01-01")}, "n", "wrong_type"),
    ({**GOOD, "b": 1}, "b", "wrong_type"),
    ({**GOOD, "c": 3}, "c", "wrong_type"),
    ({**GOOD, "k": "a b"}, "k", "wrong_type"),
    ({**GOOD, "k": ["a", 2]}, "k", "wrong_type"),
    ({**GOOD, "ts": "yesterday"}, "ts", "wrong_type"),
    ({**GOOD, "ts": object()}, "ts", "wrong_type"),
    ({**GOOD, "n": float("nan")}, "n", "not_finite"),
    ({**GOOD, "n": float("inf")}, "n", "not_finite"),
    ({**GOOD, "opt": -math.inf}, "opt", "not_finite"),
    ({**GOOD, "n": 10 ** 400}, "n", "not_finite"),
    ({**GOOD, "ts": float("nan")}, "ts", "not_finite"),
    ({**GOOD, "n": 100.5}, "n", "out_of_range"),
    ({**GOOD, "n": -1}, "n", "out_of_range"),
    ({**GOOD, "ts": 3e9}, "ts", "out_of_range"),
    ({**GOOD, "c": "z"}, "c", "unknown_category"),
    ({**GOOD, "surprise": 1}, None, "unknown_field"),
    (["not", "a", "dict"], None, "not_a_mapping"),
    (None, None, "not_a_mapping"),
])
def test_each_bad_input_class(record, field, reason):
    dl = one(record)
    assert (dl.field, dl.reason) == (field, reason)
    assert dl.record is record
    assert reason in dl.message and dl.message.startswith("record 1: ")
    if field is not None:
        assert repr(field) in dl.message


def test_numpy_scalars_are_numbers():
    X, rej = SCHEMA.compile().transform([{**GOOD, "n": np.int64(7), "opt": np.float32(2.5)}])
    assert rej == [] and X.shape[0] == 1


def test_all_errors_of_a_record_are_listed_in_schema_order():
    dl = one({"n": "bad", "opt": math.nan, "c": "nope", "extra": 1})
    assert [(e.field, e.code) for e in dl.errors] == [
        (None, "unknown_field"), ("n", "wrong_type"), ("opt", "not_finite"),
        ("c", "unknown_category")]


def test_unknown_field_policies():
    rec = {**GOOD, "extra": 1, "more": "x"}
    assert one(rec, unknown_fields="error").reason == "unknown_field"
    for policy in ("ignore", "record"):
        ex = SCHEMA.compile(unknown_fields=policy)
        X, rej = ex.transform([rec, rec])
        assert rej == [] and X.shape[0] == 2
        expected = {"extra": 2, "more": 2} if policy == "record" else {}
        assert dict(ex.unknown_fields) == expected
    with pytest.raises(ValueError, match="unknown_fields must be one of"):
        SCHEMA.compile(unknown_fields="drop")


def test_unknown_columns_in_columnar_input():
    cols = {k: [v, v] for k, v in GOOD.items()}
    cols["extra"] = [1, 2]
    X, rej = SCHEMA.compile().transform(cols)
    assert X.shape[0] == 0 and [d.reason for d in rej] == ["unknown_field"] * 2
    ex = SCHEMA.compile(unknown_fields="record")
    X, rej = ex.transform(cols)
    assert X.shape[0] == 2 and ex.unknown_fields["extra"] == 2


def test_strict_mode_raises_the_dead_letter_message():
    bad = {**GOOD, "n": 1000.0}
    dl = one(bad)
    with pytest.raises(RecordValidationError) as info:
        SCHEMA.compile(strict=True).transform([GOOD, bad, {**GOOD, "n": "x"}])
    assert str(info.value) == dl.message
    assert info.value.dead_letter.index == 1


def test_strict_learn_changes_nothing():
    ex = SCHEMA.compile(strict=True)
    with pytest.raises(RecordValidationError):
        ex.learn_transform([GOOD, {**GOOD, "n": -5}])
    assert all(n.count.sum() == 0 for _, n in ex.normalizers.values())


def test_dead_letter_to_dict_is_json():
    import json

    dl = one({**GOOD, "n": 101})
    d = json.loads(json.dumps(dl.to_dict()))
    assert d["index"] == 1 and d["reason"] == "out_of_range" and d["errors"][0]["field"] == "n"


def test_bad_arguments_name_the_fix():
    ex = SCHEMA.compile()
    with pytest.raises(TypeError, match="list of dicts"):
        ex.transform(42)
    with pytest.raises(TypeError, match="single record goes in a list"):
        ex.transform(GOOD)
    with pytest.raises(TypeError, match="sparse"):
        ex.transform([GOOD], sparse="yes")
    with pytest.raises(ValueError, match="different lengths"):
        ex.transform({"n": [1, 2], "opt": [1]})


def test_schema_declaration_errors():
    with pytest.raises(ValueError, match="unique"):
        FeatureSchema("t", [Numeric("a"), Numeric("a")])
    with pytest.raises(ValueError, match="must not contain"):
        Numeric("a=b")
    with pytest.raises(ValueError, match="exactly one of"):
        Categorical("c")
    with pytest.raises(ValueError, match="low <= high"):
        Numeric("a", valid_range=(2, 1))
    with pytest.raises(ValueError, match="unknown field"):
        FeatureSchema("t", [Numeric("a")], crosses=[("a", "zz")])
    with pytest.raises(ValueError, match="cannot be crossed"):
        FeatureSchema("t", [Numeric("a"), Tokens("k")], crosses=[("a", "k")])
    with pytest.raises(ValueError, match="hash_bits"):
        Tokens("k", hash_bits=40)
    with pytest.raises(ValueError, match="normalize"):
        Numeric("a", normalize="zscore")


# ---------------------------------------------------------------------------------------------
# Dead-letter completeness: accepted + rejected == submitted, whatever the records are
# ---------------------------------------------------------------------------------------------

_values = st.one_of(
    st.none(), st.booleans(), st.integers(-10 ** 20, 10 ** 20),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5),
    st.lists(st.text(max_size=3), max_size=3), st.lists(st.integers(), max_size=2),
)
_record = st.one_of(
    st.dictionaries(st.sampled_from(["n", "opt", "b", "c", "k", "ts", "zz"]), _values,
                    max_size=7),
    st.integers(), st.none(), st.text(max_size=3),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_record, max_size=25), st.sampled_from(["error", "ignore", "record"]))
def test_dead_letter_completeness(records, policy):
    ex = SCHEMA.compile(unknown_fields=policy)
    X, rejected = ex.transform(records)
    assert X.shape[0] + len(rejected) == len(records)
    idx = [d.index for d in rejected]
    assert idx == sorted(set(idx))
    assert all(0 <= i < len(records) and d.record is records[i] for d, i in zip(rejected, idx,
                                                                             strict=True))
    assert np.isfinite(X).all()
    # Accepted rows are exactly the same rows a one-by-one extraction accepts.
    ok = [i for i in range(len(records)) if i not in set(idx)]
    for i in ok[:5]:
        np.testing.assert_array_equal(ex.transform([records[i]])[0][0],
                                      X[ok.index(i)])


def test_large_mixed_batch_keeps_every_good_record():
    rng = np.random.default_rng(0)
    recs = []
    for i in range(5000):
        r = {"size_bytes": float(rng.integers(1, 1000)), "lines": 10.0, "language": "python"}
        if i % 7 == 0:
            r["size_bytes"] = "oops"
        recs.append(r)
    X, rej = CodeFile.compile().transform(recs)
    assert len(rej) == len(range(0, 5000, 7)) and X.shape[0] == 5000 - len(rej)
