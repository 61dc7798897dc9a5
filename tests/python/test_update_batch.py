"""Micro-batched test-then-train (``Adaptation(update_batch=k)``): k = 1 is the per-example
loop bit for bit; k > 1 is "predict the block, then one step on its mean gradient", with
every prediction made before its own label is learned, the drift policies still working, and
checkpoints that continue exactly."""

from __future__ import annotations

import numpy as np
import pytest
from ducklearn import _core
from ducklearn.learn import Adaptation
from test_adaptive_core import _accuracy, _continue_identically, _flip_stream, _learner


def _params(learner: _core.AdaptiveLearner) -> np.ndarray:
    return learner.active_state_dict()[0]["params"]


def test_update_batch_one_is_the_per_example_loop_bit_for_bit() -> None:
    X, y = _flip_stream(3, 400, 0, noise=0.1)
    ref = _learner(hidden=8, kind="adam", lr=0.01, seed=4, standardize=True)
    expected = ref.prequential(X, y)
    for adaptation in (Adaptation.none(), Adaptation.none().replace(update_batch=1)):
        learner = _core.AdaptiveLearner(
            _learner(hidden=8, kind="adam", lr=0.01, seed=4, standardize=True),
            adaptation.to_config(), 0)
        preds = np.concatenate([learner.learn(X[i:i + 37], y[i:i + 37])[0]
                                for i in range(0, len(y), 37)])
        np.testing.assert_array_equal(preds, expected)
        np.testing.assert_array_equal(_params(learner), ref.params)


@pytest.mark.parametrize("hidden", [0, 8])
def test_blocks_match_predict_then_learn_batch(hidden: int) -> None:
    """The public batch API as the reference: predict a block, then learn_batch on it. Calls of
    50 rows end on a partial block (6 × 8 + 2), which is a smaller batch."""
    X, y = _flip_stream(5, 203, 0, noise=0.1)
    ref = _learner(hidden=hidden, kind="adam", lr=0.05, seed=1)
    learner = _core.AdaptiveLearner(_learner(hidden=hidden, kind="adam", lr=0.05, seed=1),
                                    Adaptation.none().replace(update_batch=8).to_config(), 0)
    preds, losses = [], []
    for start in range(0, len(y), 50):
        p, loss = learner.learn(X[start:start + 50], y[start:start + 50])
        preds.append(p)
        losses.append(loss)
        stop = min(start + 50, len(y))
        for b in range(start, stop, 8):
            e = min(b + 8, stop)
            expected = ref.predict(X[b:e])
            np.testing.assert_allclose(p[b - start:e - start], expected, rtol=0, atol=1e-5)
            ref.learn_batch(X[b:e], y[b:e])
        # The same rows, gradients and steps: the weights agree exactly.
        np.testing.assert_array_equal(_params(learner), ref.params)
    p = np.concatenate(preds)[:, 0].astype(np.float64)
    eps = 1e-7
    want = -np.where(y > 0.5, np.log(np.clip(p, eps, 1)), np.log(np.clip(1 - p, eps, 1)))
    np.testing.assert_allclose(np.concatenate(losses), want, rtol=1e-4, atol=1e-5)
    assert learner.stats["examples"] == len(y)


def test_predictions_are_made_before_the_block_learns_its_labels() -> None:
    """Eight copies of one positive example: all eight are predicted by the untrained model
    (with k = 1 each would see the previous updates), and the next call sees the step."""
    x = np.full((8, 3), 0.5, dtype=np.float32)
    y = np.ones(8, dtype=np.float32)
    blocked = _core.AdaptiveLearner(_learner(lr=0.5),
                                    Adaptation.none().replace(update_batch=8).to_config(), 0)
    p, _ = blocked.learn(x, y)
    np.testing.assert_array_equal(p, np.full((8, 1), 0.5, dtype=np.float32))  # zero weights
    after, _ = blocked.learn(x[:1], y[:1])
    assert after[0, 0] > 0.5

    single = _core.AdaptiveLearner(_learner(lr=0.5), Adaptation.none().to_config(), 0)
    p1, _ = single.learn(x, y)
    assert p1[0, 0] == 0.5 and np.all(np.diff(p1[:, 0]) > 0)


def test_drift_is_detected_and_recovered_from_with_blocks_of_eight() -> None:
    n = 1000
    for seed in range(5):
        X, y = _flip_stream(seed, n, n)
        learner = _core.AdaptiveLearner(_learner(), Adaptation.fast(update_batch=8).to_config(),
                                        seed)
        preds, _ = learner.learn(X, y)
        stats = learner.stats
        assert stats["drifts"] >= 1 and stats["swaps"] >= 1
        assert n <= stats["last_drift_at"] < n + 100, stats
        ok = _accuracy(preds, y)
        assert ok[n + 200:].mean() >= 0.95, f"seed {seed}: not recovered"


def test_checkpoint_mid_race_with_blocks_continues_identically() -> None:
    adaptation = Adaptation(replay_capacity=128, replay_every=3, replay_batch=4,
                            drift_lr_boost=2.0, update_batch=8)
    X, y = _flip_stream(7, 1500, 1500, noise=0.05)
    learner = _core.AdaptiveLearner(
        _learner(hidden=8, kind="adam", lr=0.02, seed=3, standardize=True),
        adaptation.to_config(), 7)
    i = 0
    while not learner.has_background:
        learner.learn(X[i:i + 13], y[i:i + 13])
        i += 13
    assert learner.replay_size > 0 and learner.has_background
    # 61 rows: every call ends on a partial block.
    meta = _continue_identically(learner, X, y, i, 61)
    assert meta["adaptive.config.update_batch"] == 8


@pytest.mark.parametrize("value, error", [
    (0, ValueError), (-3, ValueError), (1 << 20, ValueError),
    (True, TypeError), (2.5, TypeError), ("8", TypeError),
])
def test_bad_update_batch_is_refused_naming_it(value, error) -> None:
    with pytest.raises(error, match="update_batch"):
        Adaptation(update_batch=value)
    with pytest.raises(error, match="update_batch"):
        Adaptation.none().replace(update_batch=value)


def test_bool_fields_refuse_non_bools() -> None:
    with pytest.raises(TypeError, match="background"):
        Adaptation(background=1)
