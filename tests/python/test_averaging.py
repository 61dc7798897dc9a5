"""Weight averaging (``Adaptation(average_decay=...)``, ``Learner.set_averaging``): predictions,
snapshots and exported models come from the averaged weights while training moves the raw
ones, and every place a model is saved (checkpoints, estimator state, model files) carries the
average so that a restored model predicts and keeps averaging exactly as before."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ducklearn import _core
from ducklearn.learn import Adaptation, OnlineLearner
from ducklearn.modelfile import load_model, read_manifest, save_model
from ducklearn.nn import MLPClassifier
from hypothesis import given, settings
from hypothesis import strategies as st
from test_adaptive_core import _continue_identically, _flip_stream, _learner

NAMES = ["a", "b", "c"]


def _raw_predictions(learner: _core.Learner, X: np.ndarray) -> np.ndarray:
    """What the learner would predict from its raw (trained) weights."""
    plain = learner.copy()
    plain.set_averaging(0.0)
    return plain.predict(X)


@pytest.mark.parametrize("update_batch", [1, 8])
def test_checkpoint_mid_race_with_averaging_continues_identically(update_batch) -> None:
    adaptation = Adaptation(replay_capacity=64, replay_batch=4, drift_lr_boost=2.0,
                            update_batch=update_batch, average_decay=0.99)
    X, y = _flip_stream(11, 1500, 1500, noise=0.05)
    learner = _core.AdaptiveLearner(
        _learner(hidden=8, kind="adam", lr=0.02, seed=3, standardize=True),
        adaptation.to_config(), 7)
    i = 0
    while not learner.has_background:
        learner.learn(X[i:i + 13], y[i:i + 13])
        i += 13
    tensors, meta = learner.state_dict()
    assert meta["adaptive.config.average_decay"] == pytest.approx(0.99)
    assert "active.average.params" in tensors and "background.average.params" in tensors
    _continue_identically(learner, X, y, i, 61)


def test_predictions_come_from_the_average_and_training_is_unchanged() -> None:
    X, y = _flip_stream(3, 3000, 0, noise=0.2)
    plain = _core.AdaptiveLearner(_learner(kind="sgd", lr=0.5), Adaptation.none().to_config(), 0)
    averaged = _core.AdaptiveLearner(_learner(kind="sgd", lr=0.5),
                                     Adaptation.none().replace(average_decay=0.995).to_config(), 0)
    p_plain, _ = plain.learn(X, y)
    p_avg, losses = averaged.learn(X, y)
    # The raw weights took exactly the same steps; only what was predicted differs.
    np.testing.assert_array_equal(plain.active_state_dict()[0]["params"],
                                  averaged.active_state_dict()[0]["params"])
    assert not np.array_equal(p_plain, p_avg)
    # The losses the detector saw are those of the averaged predictions.
    p = np.clip(p_avg[:, 0].astype(np.float64), 1e-7, 1 - 1e-7)
    np.testing.assert_allclose(losses, -(y * np.log(p) + (1 - y) * np.log(1 - p)), rtol=1e-3,
                               atol=1e-5)
    # The snapshot serves the average, not the last iterate.
    Xt, _ = _flip_stream(4, 500, 0)
    tensors, meta = averaged.active_state_dict()
    active = _core.Learner.from_state_dict(tensors, meta)
    np.testing.assert_array_equal(averaged.snapshot().predict(Xt), active.predict(Xt))
    assert not np.array_equal(active.predict(Xt), _raw_predictions(active, Xt))


@pytest.mark.parametrize("value, error", [
    (1.0, ValueError), (-0.1, ValueError), (math.nan, ValueError), (1.5, ValueError),
    (True, TypeError), ("0.99", TypeError),
])
def test_bad_average_decay_is_refused_naming_it(value, error) -> None:
    with pytest.raises(error, match="average_decay"):
        Adaptation(average_decay=value)


def test_learner_refuses_a_bad_decay_and_a_mismatched_average() -> None:
    learner = _learner(hidden=4, seed=1)
    for bad in (1.0, -0.5, math.nan):
        with pytest.raises(ValueError, match="averaging decay"):
            learner.set_averaging(bad)
    with pytest.raises(ValueError, match="parameters"):
        learner.load_average(0.9, 3, np.zeros(learner.n_params + 1, dtype=np.float32))
    assert learner.average_state() is None


def _averaged_mlp(rng) -> tuple[MLPClassifier, np.ndarray, np.ndarray]:
    X = rng.normal(size=(400, 3)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    model = MLPClassifier(hidden_layer_sizes=(6,), scale=True, lr=0.05).fit(X[:100], y[:100])
    model._learner.set_averaging(0.95)
    model.partial_fit(X[100:300], y[100:300])
    return model, X, y


def test_model_file_and_estimator_state_carry_the_average(rng, tmp_path) -> None:
    model, X, y = _averaged_mlp(rng)
    assert not np.array_equal(model.predict_proba(X), _raw_predictions(model._learner, X))
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    core = read_manifest(path)["core"]
    assert core["average"]["decay"] == pytest.approx(0.95)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded._learner.average_state()[1] == model._learner.average_state()[1]
    for m in (model, loaded):  # the average keeps moving identically
        m.partial_fit(X[300:], y[300:])
    np.testing.assert_array_equal(loaded._learner.average_state()[2],
                                  model._learner.average_state()[2])
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))

    # A state with averaged weights but no manifest entry (or the reverse) is refused.
    tensors, manifest = model.state()
    with pytest.raises(ValueError, match="average"):
        MLPClassifier.from_state(tensors, {**manifest, "average": None})


def test_online_learner_publishes_exports_and_restores_the_average(tmp_path) -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(4000, 3)).astype(np.float32)
    y = ((X[:, 0] - X[:, 2] > 0) ^ (rng.random(4000) < 0.15)).astype(int)
    adaptation = Adaptation(average_decay=0.99)

    def make():
        return OnlineLearner(MLPClassifier(hidden_layer_sizes=(8,), scale=True, lr=0.02),
                             feature_names=NAMES, classes=[0, 1], adaptation=adaptation,
                             checkpoint_dir=str(tmp_path / "ckpt"))

    a = make()
    a.ingest_many(X[:2000], y[:2000])
    a.flush()
    a.checkpoint()
    exported = a.export_model()
    served = a.snapshot.predictor.predict(X)
    np.testing.assert_array_equal(served[:, 0], exported.predict_proba(X)[:, 1])
    assert not np.array_equal(served, _raw_predictions(exported._learner, X))
    a.ingest_many(X[2000:], y[2000:])
    a.close()

    b = make()  # resumes from the checkpoint
    assert b.stats()["learned"] == 2000
    b.ingest_many(X[2000:], y[2000:])
    b.close()
    np.testing.assert_array_equal(b.snapshot.predictor.predict(X), a.snapshot.predictor.predict(X))


@settings(max_examples=40, deadline=None)
@given(decay=st.floats(0.5, 0.999), block=st.integers(1, 9), n=st.integers(1, 120),
       seed=st.integers(0, 2**16))
def test_averaging_follows_the_reference_and_never_changes_training(decay, block, n, seed):
    """For any decay, block size and stream length: the raw weights take exactly the steps
    they take without averaging, and the average is the warmed-up moving average of them
    (one factor per example), starting from the weights the learner was given."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    y = (X[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(np.float32)
    plain = _learner(hidden=4, kind="sgd", lr=0.1, seed=seed % 7)
    averaged = plain.copy()
    averaged.set_averaging(decay)
    ref = np.array(plain.params, dtype=np.float64)
    t = 0
    for start in range(0, n, block):
        xb, yb = X[start:start + block], y[start:start + block]
        plain.learn_batch(xb, yb)
        averaged.learn_batch(xb, yb)
        keep = 1.0
        for _ in range(len(yb)):
            keep *= min(decay, (1 + t) / (10 + t))
            t += 1
        ref += (1 - keep) * (np.asarray(plain.params, dtype=np.float64) - ref)
    np.testing.assert_array_equal(averaged.params, plain.params)
    got_decay, steps, avg = averaged.average_state()
    assert steps == n and got_decay == pytest.approx(decay)
    np.testing.assert_allclose(avg, ref, rtol=1e-4, atol=1e-5)
