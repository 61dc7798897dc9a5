"""Bootstrap, curriculum, A/B tests, the naive baseline, and adaptive learning rates."""

from __future__ import annotations

import numpy as np
import pytest
from ducklearn import _core
from ducklearn.evaluate import prequential
from ducklearn.learn import ABTest, Curriculum, bootstrap
from ducklearn.learn.bootstrap import difficulty_scores
from ducklearn.legacy import NaiveLearner
from ducklearn.linear import LogisticRegression
from ducklearn.nn import MLPClassifier
from ducklearn.optim import SGD, Adam
from sklearn.datasets import load_breast_cancer


def test_bootstrap_stops_early_and_restores_the_best_epoch():
    X, y = load_breast_cancer(return_X_y=True)
    res = bootstrap(MLPClassifier(hidden_layer_sizes=(32,), scale=True, lr=0.01), X, y,
                    validation=0.25, max_epochs=200, patience=4, seed=3)
    assert res.stopped_early and res.epochs < 200
    assert res.best_epoch == int(np.argmin(res.validation_loss))
    assert res.validation_score >= 0.95
    # The restored model is the best epoch's, not the last one's.
    order = np.random.default_rng(3).permutation(len(y))
    val = order[: int(round(0.25 * len(y)))]
    p = res.model.predict_proba(X[val].astype(np.float32))[:, 1]
    loss = -np.mean(y[val] * np.log(p + 1e-12) + (1 - y[val]) * np.log(1 - p + 1e-12))
    assert loss == pytest.approx(min(res.validation_loss), rel=1e-4)
    # And it keeps learning online from there.
    res.model.learn_one({str(i): float(v) for i, v in enumerate(X[0])}, int(y[0]))


def test_curriculum_trains_easy_examples_first():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    flip = rng.random(2000) < 0.1
    y[flip] = 1 - y[flip]  # the flipped labels are the hard examples
    model = LogisticRegression(scale=True)
    model._set_classes(np.array([0, 1]))
    scores = difficulty_scores(model, X, y.astype(np.float32))
    hardest = np.argsort(scores)[-200:]
    assert np.mean(flip[hardest]) > 0.8
    c = Curriculum(start=0.25, ramp_epochs=3)
    assert [c.share(e) for e in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    res = bootstrap(LogisticRegression(scale=True), X, y, curriculum=c, max_epochs=10)
    assert res.epochs >= 4 and res.validation_score > 0.85
    with pytest.raises(ValueError, match="start"):
        Curriculum(start=0.0)


def test_ab_assignment_is_sticky_and_balanced():
    ab = ABTest(["A", "B"], split=0.3, salt="exp-1")
    arms = [ab.assign(f"user-{i}") for i in range(20_000)]
    assert arms == [ab.assign(f"user-{i}") for i in range(20_000)]
    assert abs(np.mean(np.array(arms) == "B") - 0.3) < 0.015
    other = ABTest(["A", "B"], split=0.3, salt="exp-2")
    assert np.mean([other.assign(f"user-{i}") != a for i, a in enumerate(arms)]) > 0.3


def _simulate(ab: ABTest, p_a: float, p_b: float, n: int, rng, peek: bool = False) -> bool:
    decided = False
    for i in range(n):
        arm = ab.assign(i)
        ab.record(i, int(rng.random() < (p_a if arm == ab.arms[0] else p_b)))
        if peek and i % 50 == 49 and ab.result().decision != "inconclusive":
            decided = True
    return decided or ab.result().decision != "inconclusive"


def test_ab_tests_hold_their_error_rates():
    rng = np.random.default_rng(0)
    sims = 150
    z_false = sum(_simulate(ABTest(["A", "B"], salt=str(s), min_samples=50), 0.1, 0.1, 1000, rng)
                  for s in range(sims)) / sims
    assert z_false <= 0.09  # alpha = 0.05 plus sampling error over 150 experiments
    # Peeking every 50 outcomes: the always-valid mSPRT keeps its error rate.
    m_false = sum(_simulate(ABTest(["A", "B"], salt=str(s), method="msprt", min_samples=50),
                            0.1, 0.1, 1000, rng, peek=True) for s in range(sims)) / sims
    assert m_false <= 0.06
    # And both find a real effect.
    ab = ABTest(["A", "B"], salt="power")
    assert _simulate(ab, 0.10, 0.14, 8000, rng)
    r = ab.result()
    assert r.decision == "B" and r.ci_low < r.effect < r.ci_high and r.ci_low > 0
    assert r.relative_lift == pytest.approx(r.effect / r.arms[0].mean)


def test_ab_continuous_outcomes_and_bad_input():
    rng = np.random.default_rng(1)
    ab = ABTest(["old", "new"], outcome="continuous", method="msprt")
    for i in range(4000):
        arm = ab.assign(i)
        ab.record(i, float(rng.normal(1.0 if arm == "old" else 1.2, 1.0)))
    assert ab.result().decision == "new"
    with pytest.raises(ValueError, match="binary"):
        ABTest(["a", "b"]).record(1, 0.5)
    with pytest.raises(ValueError, match="two distinct"):
        ABTest(["a"])
    with pytest.raises(ValueError, match="unknown arm"):
        ABTest(["a", "b"]).record(1, 1, arm="c")


def test_naive_learner_is_the_per_key_average():
    naive = NaiveLearner(key=("lang", "kind"), smoothing=0.0)
    data = [({"lang": "go", "kind": "fix"}, 1), ({"lang": "go", "kind": "fix"}, 0),
            ({"lang": "go", "kind": "fix"}, 1), ({"lang": "py", "kind": "doc"}, 0)]
    for x, y in data:
        naive.learn_one(x, y)
    assert naive.predict_proba_one({"lang": "go", "kind": "fix"})[1] == pytest.approx(2 / 3)
    assert naive.predict_proba_one({"lang": "rs", "kind": "new"})[1] == pytest.approx(0.5)
    restored = NaiveLearner.from_state(naive.state())
    assert restored.predict_proba_one({"lang": "go", "kind": "fix"}) == \
        naive.predict_proba_one({"lang": "go", "kind": "fix"})
    reg = NaiveLearner(key=("k",), task="regression", smoothing=1.0)
    for v in (1.0, 3.0):
        reg.learn_one({"k": 1}, v)
    assert reg.predict_one({"k": 1}) == pytest.approx((4.0 + 2.0) / 3.0)
    with pytest.raises(ValueError, match="0/1"):
        naive.learn_one({"lang": "go"}, 2)
    with pytest.raises(TypeError, match="dict"):
        naive.learn_one([1, 2], 1)


def _examples_to_reach(model, X, y, target: float, window: int = 500) -> int:
    result = prequential(model, X, y, metrics=("log_loss",))
    p = np.clip(result.predictions.astype(np.float64), 1e-12, 1 - 1e-12)
    loss = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    rolling = np.convolve(loss, np.ones(window) / window, mode="valid")
    hit = np.flatnonzero(rolling <= target)
    return int(hit[0] + window) if hit.size else len(y) + 1


@pytest.mark.parametrize("stream", ["breast_cancer", "entity"])
def test_adaptive_learning_rates_need_half_the_examples_of_plain_sgd(stream):
    if stream == "breast_cancer":
        X, y = load_breast_cancer(return_X_y=True)
        idx = np.random.default_rng(0).integers(0, len(y), 20_000)  # a long shuffled stream
        X, y = X[idx].astype(np.float32), y[idx].astype(np.float64)
        target = 0.12
    else:
        from ducklearn.datasets import make_entity_stream

        s = make_entity_stream(40_000, seed=4, drift_at=None)
        X, y = s.X, s.y.astype(np.float64)
        target = 0.50
    plain = _examples_to_reach(LogisticRegression(optimizer=SGD(0.001), scale=True), X, y, target)
    hyper = _examples_to_reach(
        LogisticRegression(optimizer=SGD(0.001, hypergradient=1e-4), scale=True), X, y, target)
    adam = _examples_to_reach(LogisticRegression(optimizer=Adam(0.01), scale=True), X, y, target)
    assert hyper <= 0.5 * plain, (hyper, plain)
    assert adam <= 0.5 * plain, (adam, plain)


def test_hypergradient_rate_moves_and_round_trips():
    cfg = SGD(0.001, hypergradient=1e-3).to_config()
    learner = _core.Learner(3, [1], ["identity"], "logistic", cfg, True, 0, "zeros")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 3)).astype(np.float32)
    learner.prequential(X, (X[:, 0] > 0).astype(np.float32))
    assert learner.hypergradient_lr > 0.001  # consistent gradients: the rate grew
    clone = _core.Learner.from_state_dict(*learner.state_dict())
    assert clone.hypergradient_lr == learner.hypergradient_lr
    with pytest.raises(ValueError, match="hypergradient"):
        SGD(0.01, hypergradient=-1.0)
