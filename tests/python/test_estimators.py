"""Contract tests generated for every estimator, plus scikit-learn's own checks, River
equivalence, convergence on real data shipped with scikit-learn, and bad-input behaviour."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from ducklearn.evaluate import prequential
from ducklearn.linear import LinearRegression, LogisticRegression, SoftmaxRegression
from ducklearn.nn import MLPClassifier, MLPRegressor
from ducklearn.optim import SGD, Adam, Cosine
from sklearn.base import clone as sk_clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.model_selection import train_test_split
from sklearn.utils.estimator_checks import parametrize_with_checks

# Factories, not instances: every test gets a fresh estimator.
CLASSIFIERS = {
    "logistic": lambda: LogisticRegression(seed=1),
    "logistic_scaled_adam": lambda: LogisticRegression(optimizer=Adam(0.05), scale=True, seed=1),
    "softmax": lambda: SoftmaxRegression(seed=1),
    "mlp_classifier": lambda: MLPClassifier(hidden_layer_sizes=(8, 6), lr=0.01, seed=1),
}
REGRESSORS = {
    "linear_squared": lambda: LinearRegression(seed=1),
    "linear_huber": lambda: LinearRegression(loss="huber", delta=0.5, seed=1),
    "linear_pinball": lambda: LinearRegression(loss="pinball", quantile=0.8, seed=1),
    "mlp_regressor": lambda: MLPRegressor(hidden_layer_sizes=(8,), activation="tanh", seed=1),
}
ALL = {**CLASSIFIERS, **REGRESSORS}

# scikit-learn warns that we do not inherit its BaseEstimator: deliberate (no hard dependency).
pytestmark = pytest.mark.filterwarnings("ignore:Estimator .* does not inherit:UserWarning")


def _data(name: str, n: int = 120, d: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    if name in CLASSIFIERS:
        y = np.where(X[:, 0] + 0.5 * X[:, 1] > 0, "yes", "no")
    else:
        y = (X @ np.arange(1, d + 1) + 0.1 * rng.normal(size=n)).astype(np.float64)
    return X, y


def _snapshot(model) -> tuple[bytes, dict]:
    tensors, manifest = model.state()
    return b"".join(t.tobytes() for t in tensors.values()), manifest


# -- scikit-learn's own estimator checks -------------------------------------------------------


@parametrize_with_checks(
    [LogisticRegression(), SoftmaxRegression(), LinearRegression(), MLPClassifier(),
     MLPRegressor(), LinearRegression(loss="huber")]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# -- generated contract tests ------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_clone_is_unfitted_with_same_params(name):
    model = ALL[name]()
    X, y = _data(name)
    model.fit(X, y)
    twin = model.clone()
    assert twin.get_params() == model.get_params()
    assert not twin.__sklearn_is_fitted__()
    assert sk_clone(model).get_params() == model.get_params()


@pytest.mark.parametrize("name", ALL)
def test_params_round_trip(name):
    model = ALL[name]()
    params = model.get_params()
    model.set_params(**params)
    assert model.get_params() == params
    with pytest.raises(ValueError, match="Invalid parameter 'no_such'"):
        model.set_params(no_such=1)


@pytest.mark.parametrize("name", ALL)
def test_state_round_trip_is_exact_and_keeps_learning_identically(name):
    model = ALL[name]()
    X, y = _data(name)
    model.fit(X[:80], y[:80])
    tensors, manifest = model.state()
    restored = type(model).from_state(tensors, manifest)
    assert np.array_equal(restored.params, model.params)
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))
    # Optimizer state and counters came back too: the same further updates give the same
    # parameters, bit for bit.
    model.partial_fit(X[80:], y[80:])
    restored.partial_fit(X[80:], y[80:])
    assert np.array_equal(restored.params, model.params)


@pytest.mark.parametrize("name", ALL)
def test_pickle_and_deepcopy_go_through_state(name):
    model = ALL[name]()
    X, y = _data(name)
    model.fit(X, y)
    for twin in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        np.testing.assert_array_equal(twin.predict(X), model.predict(X))
        assert twin.params is not model.params
    twin.partial_fit(X, y)
    assert not np.array_equal(twin.params, model.params)  # independent copies


@pytest.mark.parametrize("name", ALL)
def test_seed_determinism(name):
    X, y = _data(name)
    a = ALL[name]().fit(X, y)
    b = ALL[name]().fit(X, y)
    assert np.array_equal(a.params, b.params)
    if "mlp" in name:
        c = ALL[name]().set_params(seed=2).fit(X, y)
        assert not np.array_equal(a.params, c.params)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize(
    "bad_X, error",
    [
        (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 5, np.nan, X), ValueError),
        (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 7, np.inf, X), ValueError),
        (lambda X: X[:, :-1], ValueError),
        (lambda X: X.astype(str), TypeError),
        (lambda X: X[:, 0], ValueError),
    ],
    ids=["nan", "inf", "wrong_width", "strings", "1d"],
)
def test_bad_input_raises_and_changes_nothing(name, bad_X, error):
    model = ALL[name]()
    X, y = _data(name)
    model.fit(X, y)
    before = _snapshot(model)
    for call in (
        lambda: model.partial_fit(bad_X(X), y),
        lambda: model.learn_many(bad_X(X), y),
        lambda: prequential(model, bad_X(X), y),
    ):
        with pytest.raises(error):
            call()
        assert _snapshot(model) == before
    with pytest.raises(error):
        model.predict(bad_X(X))
    # Still usable afterwards.
    model.partial_fit(X, y)


@pytest.mark.parametrize("name", ALL)
def test_bad_records_raise_and_change_nothing(name):
    model = ALL[name]()
    X, y = _data(name)
    model.fit(X, y)
    before = _snapshot(model)
    good = {str(i): float(v) for i, v in enumerate(X[0])}
    label = y[0]
    cases = [
        ({**good, "surprise": 1.0}, ValueError, "unknown feature 'surprise'"),
        ({**good, "1": float("nan")}, ValueError, "NaN"),
        ({**good, "1": "high"}, TypeError, "must be a number"),
        ([1.0, 2.0], TypeError, "dict"),
    ]
    for record, error, match in cases:
        with pytest.raises(error, match=match):
            model.learn_one(record, label)
        with pytest.raises(error, match=match):
            model.predict_one(record)
    assert _snapshot(model) == before
    model.learn_one(good, label)
    assert _snapshot(model) != before


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_labels_outside_classes_rejected(name):
    model = ALL[name]()
    X, y = _data(name)
    model.fit(X, y)
    before = _snapshot(model)
    bad_y = y.copy().astype(object)
    bad_y[3] = "maybe"
    with pytest.raises(ValueError, match="maybe"):
        model.partial_fit(X, bad_y)
    with pytest.raises(ValueError, match="not one of classes_"):
        model.learn_one({"0": 1.0}, "maybe")
    assert _snapshot(model) == before


@pytest.mark.parametrize("name", ALL)
def test_unfitted_model_raises_not_fitted(name):
    from ducklearn._validation import NotFittedError

    model = ALL[name]()
    X, _ = _data(name)
    with pytest.raises(NotFittedError, match="not fitted"):
        model.predict(X)
    with pytest.raises(NotFittedError):
        model.predict_one({"0": 1.0})
    with pytest.raises(NotFittedError):
        model.state()


@pytest.mark.parametrize("name", ALL)
def test_prequential_matches_predict_then_learn_one(name):
    X, y = _data(name, n=60)
    streamed = ALL[name]()
    result = prequential(streamed, X, y)
    assert result.predictions.shape[0] == len(y)

    by_hand = ALL[name]()
    if name in CLASSIFIERS:
        by_hand.set_params(classes=np.unique(y))
    preds = []
    for row, label in zip(X, y, strict=True):
        record = {str(i): float(v) for i, v in enumerate(row)}
        if by_hand.__sklearn_is_fitted__():
            out = by_hand._record_outputs(record)
            preds.append(out[0] if out.shape[0] == 1 else out)
        else:
            preds.append(None)
        by_hand.learn_one(record, label)
    np.testing.assert_allclose(by_hand.params, streamed.params, rtol=1e-5, atol=1e-6)
    if by_hand.scale:
        return  # the scaler sees x before the prediction: see the test below
    # The first prediction comes from the freshly initialised model.
    np.testing.assert_allclose(np.array(preds[1:], dtype=np.float64),
                               np.asarray(result.predictions[1:], dtype=np.float64),
                               rtol=1e-5, atol=1e-6)


def test_prequential_scaler_sees_x_before_the_model_sees_its_label():
    X, y = _data("logistic", n=50)
    result = prequential(LogisticRegression(scale=True, seed=1), X, y)
    replay = LogisticRegression(scale=True, seed=1, classes=np.unique(y))
    for i, (row, label) in enumerate(zip(X, y, strict=True)):
        if i >= 1:
            probe = copy.deepcopy(replay)
            probe._learner.update_scaler(row[None, :])  # unsupervised part only
            expected = probe.predict_proba(row[None, :])[0, 1]
            assert abs(expected - result.predictions[i]) < 1e-6
        replay.learn_one({str(j): float(v) for j, v in enumerate(row)}, label)


# -- equivalence with River, convergence on real data -------------------------------------------


def test_logistic_regression_matches_river_sgd_exactly():
    pytest.importorskip("river")
    from river import linear_model, optim

    rng = np.random.default_rng(0)
    X = rng.normal(size=(1500, 5))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0, 1.0]) + 0.3 * rng.normal(size=1500) > 0
    theirs = linear_model.LogisticRegression(optimizer=optim.SGD(0.05), intercept_lr=0.05)
    ours = LogisticRegression(optimizer=SGD(0.05))
    for row, label in zip(X, y, strict=True):
        x = {f"f{j}": float(v) for j, v in enumerate(row)}
        if ours.__sklearn_is_fitted__():
            assert abs(ours.predict_proba_one(x)[True] - theirs.predict_proba_one(x)[True]) < 1e-5
        theirs.learn_one(x, bool(label))
        ours.learn_one(x, bool(label))
    expected = [theirs.weights[f"f{j}"] for j in range(5)] + [theirs.intercept]
    np.testing.assert_allclose(ours.params, expected, rtol=1e-5, atol=1e-5)


def _split(X, y, seed=0):
    return train_test_split(X.astype(np.float32), y, test_size=0.3, random_state=seed,
                            stratify=y if y.dtype.kind in "iub" else None)


@pytest.mark.parametrize(
    "factory, threshold",
    [
        (lambda: LogisticRegression(scale=True), 0.95),
        (lambda: MLPClassifier(hidden_layer_sizes=(32,), scale=True, lr=0.005), 0.95),
    ],
    ids=["logistic", "mlp"],
)
def test_breast_cancer_held_out_accuracy(factory, threshold):
    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = _split(X, y)
    model = factory().fit(Xtr, ytr)
    assert model.score(Xte, yte) >= threshold


@pytest.mark.parametrize(
    "factory, threshold",
    [
        (lambda: SoftmaxRegression(scale=True), 0.93),
        (lambda: MLPClassifier(hidden_layer_sizes=(64,), scale=True, lr=0.003), 0.95),
    ],
    ids=["softmax", "mlp"],
)
def test_digits_held_out_accuracy(factory, threshold):
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = _split(X, y)
    model = factory().fit(Xtr, ytr)
    assert model.score(Xte, yte) >= threshold


def test_breast_cancer_online_stream_accuracy():
    X, y = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    result = prequential(LogisticRegression(scale=True), X[order], y[order])
    assert result.metrics["accuracy"] >= 0.93
    assert result.metrics["log_loss"] < 0.25


def test_diabetes_regression_close_to_least_squares():
    from sklearn.linear_model import LinearRegression as OLS

    X, y = load_diabetes(return_X_y=True)
    Xtr, Xte, ytr, yte = _split(X, y)
    ols = OLS().fit(Xtr, ytr).score(Xte, yte)
    ours = LinearRegression(scale=True, max_epochs=300).fit(Xtr, ytr).score(Xte, yte)
    assert ours >= ols - 0.03


def test_pinball_loss_learns_the_requested_quantile():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, size=(20000, 1)).astype(np.float32)
    y = 2.0 * X[:, 0] + rng.exponential(1.0, size=len(X))
    model = LinearRegression(loss="pinball", quantile=0.9, optimizer=Adam(0.02), max_epochs=40)
    model.fit(X, y)
    coverage = np.mean(y <= model.predict(X))
    assert abs(coverage - 0.9) < 0.02


def test_river_dialect_on_a_binary_stream():
    model = LogisticRegression(scale=True)
    rng = np.random.default_rng(1)
    correct = 0
    for i in range(3000):
        x = {"a": float(rng.normal()), "b": float(rng.normal() * 1000.0), "c": 1.0}
        label = x["a"] + x["b"] / 1000.0 > 0
        if i > 0:
            correct += model.predict_one(x) == label
            proba = model.predict_proba_one(x)
            assert set(proba) == {False, True}
            assert abs(sum(proba.values()) - 1.0) < 1e-6
        model.learn_one(x, label)
    assert correct / 2999 > 0.93
    assert list(model.feature_names_in_) == ["a", "b", "c"]


def test_multiclass_learn_one_needs_declared_classes():
    model = SoftmaxRegression()
    with pytest.raises(ValueError, match="classes"):
        model.learn_one({"a": 1.0}, "red")
    assert not model.__sklearn_is_fitted__()
    model = SoftmaxRegression(classes=["red", "green", "blue"])
    model.learn_one({"a": 1.0}, "red")
    assert model.predict_one({"a": 1.0}) in {"red", "green", "blue"}


def test_learn_many_is_one_mean_gradient_step():
    X, y = _data("linear_squared", n=16)
    batch = LinearRegression(optimizer=SGD(0.1))
    batch.learn_many(X, y)
    # One SGD step on the mean squared-error gradient from zero weights.
    grad_w = -(X.T @ y) / len(y)
    grad_b = -np.mean(y)
    np.testing.assert_allclose(batch.params, -0.1 * np.append(grad_w, grad_b), rtol=1e-5)


def test_optimizer_template_is_never_mutated():
    template = Adam(lr=Cosine(0.01, t_max=100))
    model = MLPClassifier(hidden_layer_sizes=(4,), optimizer=template, max_epochs=3)
    X, y = _data("mlp_classifier")
    model.fit(X, y)
    assert template.steps == 0
    assert model.get_params()["optimizer"] is template


def test_fit_stops_on_plateau():
    X, _ = _data("logistic", n=400)
    # Noisy labels: the loss has a floor, so it must plateau (separable data would not).
    y = np.random.default_rng(3).random(400) < 1 / (1 + np.exp(-X[:, 0]))
    model = LogisticRegression(max_epochs=500, patience=3, tol=1e-3).fit(X, y)
    assert model.n_iter_ < 500
    assert model.converged_
    assert len(model.loss_curve_) == model.n_iter_


def test_contract_describes_inputs_and_outputs():
    X, y = _data("softmax")
    model = SoftmaxRegression().fit(X, y)
    contract = model.contract
    assert contract == {
        "n_inputs": 4,
        "output": "multiclass",
        "n_outputs": 2,
        "feature_names": ["0", "1", "2", "3"],
        "classes": ["no", "yes"],
    }
    assert model.params.dtype == np.float32 and model.params.shape == (10,)
    assert [layer["out"] for layer in model.layers] == [2]


def test_state_rejects_wrong_format_and_shapes():
    X, y = _data("logistic")
    model = LogisticRegression().fit(X, y)
    tensors, manifest = model.state()
    with pytest.raises(ValueError, match="format_version"):
        LogisticRegression.from_state(tensors, {**manifest, "format_version": 99})
    with pytest.raises(ValueError, match="LogisticRegression"):
        LinearRegression.from_state(tensors, manifest)
    with pytest.raises(ValueError, match="shape"):
        LogisticRegression.from_state({**tensors, "params": tensors["params"][:-1]}, manifest)


def test_state_round_trip_keeps_rate_adaptation_and_ewc():
    X, y = _data("logistic", n=300)
    model = LogisticRegression(optimizer=SGD(0.01, hypergradient=1e-3)).fit(X, y)
    codes = model._encode(y)
    model._learner.consolidate(X[:50], codes[:50], 2.0, 0.0)
    model._learner.lr_scale = 0.5
    restored = LogisticRegression.from_state(*model.state())
    assert restored._learner.hypergradient_lr == model._learner.hypergradient_lr
    assert restored._learner.lr_scale == 0.5
    assert restored._learner.ewc_state()[0] == 2.0
    model.partial_fit(X, y)
    restored.partial_fit(X, y)
    assert np.array_equal(restored.params, model.params)
