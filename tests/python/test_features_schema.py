"""Schemas: JSON round trip of every field type, a stable content hash, versions, deriving."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from ducklearn.features import (
    Boolean,
    Categorical,
    CodeFile,
    Cross,
    FeatureSchema,
    Numeric,
    Project,
    Text,
    Timestamp,
    Tokens,
    User,
)

EVERY_TYPE = FeatureSchema("all", [
    Numeric("n", impute="median", log1p=True, clip=(0, 10), valid_range=(0, 1e6),
            normalize="robust", required=True, missing_indicator=True, description="doc"),
    Boolean("b", impute=1.0),
    Categorical("c", vocabulary=["x", "y"], other_bucket=False),
    Categorical("h", hash_bits=5),
    Tokens("k", hash_bits=7, ngrams=2, weighting="log", l2_normalize=True, signed=False),
    Text("t", hash_bits=9),
    Timestamp("ts", hour_of_day=False, age_unit="hours", reference=1.5e9,
              valid_range=(0, 2e9), impute=3.0, normalize="clipped"),
    Numeric("nb", log1p=True, clip=(0, 5), bins=(0.0, 0.5, 2.0, 5.0), impute=1.0,
            missing_indicator=True),
], crosses=[Cross("c", "h", 3), ("n", "b")], version=4, description="every field type")


@pytest.mark.parametrize("schema", [EVERY_TYPE, User, Project, CodeFile])
def test_json_round_trip(schema):
    text = schema.to_json()
    again = FeatureSchema.from_json(text)
    assert again == schema and again.hash == schema.hash and again.version == schema.version
    assert again.fields == schema.fields and again.crosses == schema.crosses
    assert json.loads(again.to_json()) == json.loads(text)
    assert again.compile().column_names == schema.compile().column_names


def test_hash_is_stable_across_processes():
    code = ("from ducklearn.features import CodeFile, User, Project; "
            "print(CodeFile.hash, User.hash, Project.hash)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout.split()
    assert out == [CodeFile.hash, User.hash, Project.hash]


def test_hash_tracks_content_not_descriptions():
    base = FeatureSchema("s", [Numeric("a")])
    assert FeatureSchema("s", [Numeric("a", description="x")]).hash == base.hash
    assert FeatureSchema("s", [Numeric("a")], version=2).hash == base.hash
    assert FeatureSchema("s", [Numeric("a", log1p=True)]).hash != base.hash
    assert FeatureSchema("s2", [Numeric("a")]).hash != base.hash
    assert FeatureSchema("s", [Numeric("a")], version=2) != base  # version is part of equality


def test_tampered_json_is_refused():
    d = json.loads(CodeFile.to_json())
    d["fields"][0]["log1p"] = False
    with pytest.raises(ValueError, match="does not match"):
        FeatureSchema.from_dict(d)
    d = json.loads(CodeFile.to_json())
    d["fields"][0]["bogus"] = 1
    with pytest.raises(ValueError, match="unknown option"):
        FeatureSchema.from_dict(d)
    d = json.loads(CodeFile.to_json())
    d["format_version"] = 99
    with pytest.raises(ValueError, match="format_version"):
        FeatureSchema.from_dict(d)


def test_extend_without_and_options():
    mine = CodeFile.extend(Numeric("bus_factor", valid_range=(0, 100)), name="my_file",
                           version=2)
    assert mine.field_names[-1] == "bus_factor" and mine.version == 2
    assert mine.hash != CodeFile.hash and CodeFile.field_names[-1] != "bus_factor"
    with pytest.raises(ValueError, match="exists"):
        CodeFile.extend(Numeric("lines"))
    replaced = CodeFile.extend(Numeric("lines", log1p=False), replace_fields=True)
    assert replaced["lines"].log1p is False and replaced.field_names == CodeFile.field_names
    smaller = CodeFile.without("language")
    assert "language" not in smaller and smaller.crosses == ()
    assert CodeFile.with_options("owners", hash_bits=8)["owners"].hash_bits == 8
    with pytest.raises(KeyError):
        CodeFile["nope"]


def test_column_names_documented_scheme():
    names = EVERY_TYPE.compile().column_names
    assert names[:2] == ["n", "n:missing"]
    assert "c=x" in names and "c=__other__" not in names  # other_bucket=False
    assert "h#31" in names and "k#127" in names and "t#511" in names
    assert [n for n in names if n.startswith("ts:")] == ["ts:dow_sin", "ts:dow_cos", "ts:age"]
    assert "c*h#7" in names and "n*b" in names
    assert [n for n in names if n.startswith("nb")] == ["nb:bin0", "nb:bin1", "nb:bin2",
                                                         "nb:missing"]


@pytest.mark.parametrize("module", ["schema", "extract", "normalize", "store", "quality",
                                    "validation", "__init__"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    name = "ducklearn.features" + ("" if module == "__init__" else f".{module}")
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
