"""Model files: bit-exact round trips for every estimator, a self-describing safetensors
layout, and clear refusals of corrupt, truncated, foreign or future files."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest
from ducklearn.linear import LinearRegression, LogisticRegression, SoftmaxRegression
from ducklearn.modelfile import (
    FORMAT_VERSION,
    ModelFileError,
    from_bytes,
    load_model,
    pack,
    read_manifest,
    read_model_file,
    register_model_type,
    save_model,
    to_bytes,
)
from ducklearn.nn import MLPClassifier, MLPRegressor
from safetensors.numpy import load_file, save

ESTIMATORS = {
    "logistic": lambda: LogisticRegression(max_epochs=3),
    "logistic_scaled": lambda: LogisticRegression(scale=True, max_epochs=3),
    "softmax": lambda: SoftmaxRegression(scale=True, max_epochs=3),
    "linear_huber": lambda: LinearRegression(loss="huber", scale=True, max_epochs=3),
    "mlp_clf": lambda: MLPClassifier(hidden_layer_sizes=(7, 5), scale=True, max_epochs=3),
    "mlp_reg": lambda: MLPRegressor(hidden_layer_sizes=(6,), optimizer="rmsprop", lr=0.001,
                                    max_epochs=3),
}


def _fit(kind: str, rng: np.random.Generator):
    X = (rng.normal(size=(240, 5)) * [1, 10, 0.1, 2, 50]).astype(np.float32)
    model = ESTIMATORS[kind]()
    if kind in ("linear_huber", "mlp_reg"):
        y = X[:, 0] + 0.01 * X[:, 1]
    elif kind == "softmax":
        y = np.digitize(X[:, 0], [-0.5, 0.5])
    else:
        y = (X[:, 0] > 0).astype(int)
    return model.fit(X, y), X, y


@pytest.mark.parametrize("kind", sorted(ESTIMATORS))
def test_round_trip_is_bit_exact_and_keeps_learning_identically(kind, rng, tmp_path):
    model, X, y = _fit(kind, rng)
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    loaded = load_model(path)
    assert type(loaded) is type(model)
    before, after = model.state()[0], loaded.state()[0]
    assert before.keys() == after.keys()
    for name in before:
        assert before[name].dtype == after[name].dtype
        assert before[name].tobytes() == after[name].tobytes(), name
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    # Optimizer moments, step counts and scaler statistics came along: the next updates match.
    model.partial_fit(X[:40], y[:40])
    loaded.partial_fit(X[:40], y[:40])
    assert model.params.tobytes() == loaded.params.tobytes()


@pytest.mark.parametrize("kind", sorted(ESTIMATORS))
def test_weight_averaging_round_trips_for_every_estimator(kind, rng, tmp_path):
    model, X, y = _fit(kind, rng)
    model._learner.set_averaging(0.9)
    model.partial_fit(X[:80], y[:80])
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    assert "average.params" in load_file(str(path))
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    for m in (model, loaded):  # training and averaging continue identically
        m.partial_fit(X[80:160], y[80:160])
    a, b = model._learner.average_state(), loaded._learner.average_state()
    assert a[:2] == b[:2]
    assert a[2].tobytes() == b[2].tobytes()
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_state_adapted_online_is_kept(rng, tmp_path):
    model, X, y = _fit("mlp_clf", rng)
    model._learner.consolidate(X[:100], y[:100].astype(np.float32), 0.7, 0.0)
    model._learner.lr_scale = 0.25
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    core = read_manifest(path)["core"]
    assert core["ewc_lambda"] == pytest.approx(0.7) and core["optimizer"]["lr_scale"] == 0.25
    assert {"ewc.anchor", "ewc.fisher"} <= set(load_file(str(path)))
    loaded = load_model(path)
    assert loaded._learner.lr_scale == 0.25
    for m in (model, loaded):
        m.partial_fit(X[:64], y[:64])
    assert model.params.tobytes() == loaded.params.tobytes()


def test_file_is_plain_safetensors_with_per_layer_tensors(rng, tmp_path):
    model, X, _ = _fit("mlp_clf", rng)
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    tensors = load_file(str(path))
    assert "params" not in tensors
    assert tensors["layers.0.weight"].shape == (7, 5)
    assert tensors["layers.1.weight"].shape == (5, 7)
    assert tensors["layers.2.weight"].shape == (1, 5)
    assert tensors["layers.2.bias"].shape == (1,)
    assert tensors["scaler.mean"].dtype == np.float64
    # The per-layer tensors are the flat buffer, cut at the offsets the model reports.
    for i, layer in enumerate(model.layers):
        w = model.params[layer["w_offset"]:layer["b_offset"]].reshape(layer["out"], layer["in"])
        np.testing.assert_array_equal(tensors[f"layers.{i}.weight"], w)


def test_manifest_describes_the_model(rng, tmp_path):
    model, _, _ = _fit("logistic_scaled", rng)
    path = tmp_path / "m.safetensors"
    schema = {"columns": ["a", "b", "c", "d", "e"], "version": 3}
    save_model(model, path, metrics={"auc": 0.93}, tags={"team": "ranking"},
               description="churn v1", feature_schema=schema,
               lineage={"parent": "churn@1.0.0", "data_fingerprint": "sha256:abc"})
    m = read_manifest(path)
    assert m["format"] == "ducklearn.model" and m["format_version"] == FORMAT_VERSION
    assert m["model_type"] == "ducklearn.linear.LogisticRegression"
    assert m["state"]["hyperparameters"]["scale"] is True
    assert m["state"]["contract"]["n_inputs"] == 5
    assert m["metrics"] == {"auc": 0.93}
    assert m["feature_schema"] == schema and m["schema_hash"].startswith("sha256:")
    assert m["lineage"]["parent"] == "churn@1.0.0"
    assert m["core"]["loss"]["kind"] == "logistic" and m["core"]["standardize"] is True
    assert set(m["tensors"]) == set(load_file(str(path)))

    class Schema:  # the feature pipeline's objects: to_dict() and their own hash
        schema_hash = "fs:42"

        def to_dict(self):
            return {"columns": ["x"]}

    assert pack(model, feature_schema=Schema()).schema_hash == "fs:42"


def _pipeline(rng: np.random.Generator):
    from ducklearn.features import Categorical, FeatureSchema, Numeric

    schema = FeatureSchema("churn", [Numeric("age"), Numeric("spend", log1p=True,
                                                             normalize="robust"),
                                     Categorical("plan", vocabulary=["free", "pro"])])
    records = [{"age": float(a), "spend": float(s), "plan": str(p)} for a, s, p in zip(
        rng.normal(40, 10, 400), rng.exponential(100, 400), rng.choice(["free", "pro"], 400),
        strict=True)]
    extractor = schema.compile()
    X, dead = extractor.learn_transform(records)
    assert not dead
    return schema, extractor, records, X


def test_feature_pipeline_travels_with_the_model(rng, tmp_path):
    schema, extractor, records, X = _pipeline(rng)
    model = LogisticRegression(scale=True, max_epochs=3).fit(X, (X[:, 0] > 0).astype(int))
    path = tmp_path / "pipeline.safetensors"
    save_model(model, path, feature_schema=extractor)
    mf = read_model_file(path)
    assert mf.schema_hash == extractor.schema_hash == schema.hash
    assert mf.manifest["feature_schema"]["name"] == "churn"
    rebuilt = mf.features()
    assert type(rebuilt) is type(extractor)
    X2, _ = rebuilt.transform(records)   # the normalizer statistics came along
    np.testing.assert_array_equal(X2, extractor.transform(records)[0])
    np.testing.assert_array_equal(mf.model().predict_proba(X2), model.predict_proba(X))
    assert any(k.startswith("features.") for k in load_file(str(path)))
    # A schema alone is described and hashed, with no pipeline state to rebuild.
    save_model(model, path, feature_schema=schema)
    assert read_model_file(path).schema_hash == schema.hash
    assert read_model_file(path).features() is None


def test_bytes_are_deterministic_for_a_manifest(rng, tmp_path):
    model, _, _ = _fit("mlp_reg", rng)
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    data = path.read_bytes()
    assert to_bytes(read_model_file(path)) == data
    assert to_bytes(from_bytes(data)) == data


def _rewrite_manifest(data: bytes, edit) -> bytes:
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    manifest = json.loads(header["__metadata__"]["ducklearn"])
    edit(manifest)
    header["__metadata__"]["ducklearn"] = json.dumps(manifest)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data[8 + n:]


def test_corrupt_and_foreign_files_are_refused_clearly(rng, tmp_path):
    model, _, _ = _fit("mlp_clf", rng)
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    data = path.read_bytes()

    flipped = bytearray(data)
    flipped[-5] ^= 0x10
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        from_bytes(bytes(flipped))
    assert from_bytes(bytes(flipped), verify=False).manifest  # structure is still fine

    for cut in (0, 5, 8, 200, len(data) - 1):
        with pytest.raises(ModelFileError):
            from_bytes(data[:cut])
    with pytest.raises(ModelFileError, match="not plausible"):
        from_bytes(b"\xff" * 64)
    plain = save({"x": np.zeros(3, np.float32)})
    with pytest.raises(ModelFileError, match="not a ducklearn model file"):
        from_bytes(plain)

    future = _rewrite_manifest(data, lambda m: m.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(ModelFileError, match=r"format version 2.*Upgrade ducklearn"):
        from_bytes(future)
    with pytest.raises(ModelFileError, match="format_version"):
        from_bytes(_rewrite_manifest(data, lambda m: m.update(format_version="1")))

    def wrong_shape(m):
        m["tensors"]["layers.0.bias"]["shape"] = [99]

    with pytest.raises(ModelFileError, match="layers.0.bias"):
        from_bytes(_rewrite_manifest(data, wrong_shape))
    with pytest.raises(ModelFileError, match="not match the manifest"):
        from_bytes(_rewrite_manifest(data, lambda m: m["tensors"].pop("layers.0.bias")))
    hostile = from_bytes(_rewrite_manifest(data, lambda m: m.update(model_type="os.system")))
    with pytest.raises(ModelFileError, match="not a ducklearn model"):
        hostile.model()

    (n,) = struct.unpack("<Q", data[:8])
    dup = data[:8] + data[8:8 + n].replace(b'{"__metadata__"', b'{"__metadata__":{},'
                                           b'"__metadata__"', 1)
    dup = struct.pack("<Q", len(dup) - 8) + dup[8:] + data[8 + n:]
    with pytest.raises(ModelFileError):
        from_bytes(dup)


def test_read_manifest_needs_only_the_header(rng, tmp_path):
    model, _, _ = _fit("logistic", rng)
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    (n,) = struct.unpack("<Q", path.read_bytes()[:8])
    head_only = tmp_path / "head.safetensors"
    head_only.write_bytes(path.read_bytes()[:8 + n])
    assert read_manifest(head_only)["model_type"].endswith("LogisticRegression")
    with pytest.raises(ModelFileError, match="truncated"):
        read_model_file(head_only)


def test_save_is_atomic(rng, tmp_path, monkeypatch):
    model, X, _ = _fit("logistic", rng)
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    original = path.read_bytes()
    other, _, _ = _fit("mlp_clf", rng)

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        save_model(other, path)
    monkeypatch.undo()
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_bad_arguments_name_the_fix(rng, tmp_path):
    model, _, _ = _fit("logistic", rng)
    with pytest.raises(TypeError, match="fitted ducklearn estimator"):
        pack(object())
    with pytest.raises(ValueError, match="metric 'auc' must be finite"):
        pack(model, metrics={"auc": float("nan")})
    with pytest.raises(TypeError, match="tags must be a dict of str -> str"):
        pack(model, tags={"a": 1})
    with pytest.raises(ValueError, match="lineage must be JSON-serializable"):
        pack(model, lineage={"x": object()})
    with pytest.raises(TypeError, match="feature_schema"):
        pack(model, feature_schema=42)


class ThirdPartyModel(LogisticRegression):
    """A model class outside the ducklearn package."""


def test_registered_model_types_load_and_others_are_refused(rng):
    model, X, _ = _fit("logistic", rng)
    state_tensors, state = model.state()
    state["estimator"] = f"{ThirdPartyModel.__module__}.ThirdPartyModel"
    third = ThirdPartyModel.from_state(state_tensors, state)
    mf = pack(third)
    assert mf.model_type == state["estimator"]
    with pytest.raises(ModelFileError, match="register its class"):
        mf.model()  # a file must never make the loader import an arbitrary module
    register_model_type(mf.model_type, ThirdPartyModel)
    loaded = from_bytes(to_bytes(mf)).model()
    assert type(loaded) is ThirdPartyModel
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    with pytest.raises(TypeError, match="from_state"):
        register_model_type("x.Y", int)
    with pytest.raises(ValueError, match="module.Class"):
        register_model_type("nodot", ThirdPartyModel)


@pytest.mark.parametrize("module", ["ducklearn.modelfile"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
