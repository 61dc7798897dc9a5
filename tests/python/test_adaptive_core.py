"""The adaptive-learning core through its bindings: the drift detectors against River's, the
AdaptiveLearner's behaviour on streams that change (or do not), forgetting prevention, exact
state round trips, and configuration errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from ducklearn import _core
from ducklearn.learn import Adaptation
from river import drift as river_drift
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

# ----------------------------------------------------------------------------------------------
# helpers


def _learner(n_inputs: int = 3, *, kind: str = "adagrad", lr: float = 0.5, hidden: int = 0,
             seed: int = 0, standardize: bool = False) -> _core.Learner:
    """A logistic learner built the way the Python estimators build theirs."""
    cfg = _core.OptimizerConfig()
    cfg.kind = kind
    sched = _core.ScheduleConfig()
    sched.lr = lr
    cfg.schedule = sched
    if hidden:
        return _core.Learner(n_inputs, [hidden, 1], ["tanh", "identity"], "logistic", cfg,
                             standardize, seed)
    return _core.Learner(n_inputs, [1], ["identity"], "logistic", cfg, standardize, seed, "zeros")


def _flip_stream(seed: int, n_pre: int, n_post: int, noise: float = 0.0):
    """x ~ U(-1, 1)^3; y = [x0 > 0], then y = [x0 < 0] from example n_pre on."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n_pre + n_post, 3)).astype(np.float32)
    y = np.where(np.arange(n_pre + n_post) < n_pre, X[:, 0] > 0, X[:, 0] < 0)
    flip = rng.random(len(y)) < noise
    return X, (y ^ flip).astype(np.float32)


def _accuracy(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (p[:, 0] > 0.5) == (y > 0.5)


def _piecewise_streams():
    """Gaussian and Bernoulli streams whose mean jumps (up and down) 4 times."""
    for seed in range(8):
        rng = np.random.default_rng(seed)
        parts = []
        for _ in range(5):
            n = int(rng.integers(300, 1500))
            if seed % 2 == 0:
                parts.append(rng.normal(rng.uniform(0, 3), 1.0, n))
            else:
                parts.append((rng.random(n) < rng.uniform(0.05, 0.95)).astype(float))
        yield seed, np.concatenate(parts)


# ----------------------------------------------------------------------------------------------
# detectors against River 0.26


@pytest.mark.parametrize("clock", [1, 32])
def test_adwin_detections_match_river(clock: int) -> None:
    """ducklearn's ADWIN and River's detect at exactly the same indices.

    Two deliberate differences are aligned here, and only these two:
    - River 0.26's ``ADWIN.update`` restarts from an empty window on the update after it
      reports a drift; ducklearn keeps the part of the window that still agrees (Bifet &
      Gavaldà's ADWIN, which a learner's change-age estimate needs). Calling ``reset()`` after
      each detection gives River's behaviour.
    - River waits for ``grace_period`` (default 10) values; ducklearn checks once the window
      exceeds 2 × min_window (also 10 at the defaults), so grace_period = 2 × min_window.
    Both then run the same exponential histogram and the same cut test with the same
    floating-point operations, so the detection indices agree exactly (checked to be so on
    these streams; any disagreement is a change of algorithm, not rounding).
    """
    compared = 0
    for seed, xs in _piecewise_streams():
        ours = _core.ADWIN(delta=0.002, clock=clock, max_buckets=5, min_window=5)
        theirs = river_drift.ADWIN(delta=0.002, clock=clock, max_buckets=5,
                                   min_window_length=5, grace_period=10)
        ours_at, theirs_at = [], []
        for i, x in enumerate(xs.tolist()):
            fired = ours.update(x)
            theirs.update(x)
            if fired:
                ours_at.append(i)
            if theirs.drift_detected:
                theirs_at.append(i)
            assert ours.width == theirs.width, f"seed {seed}, value {i}"
            if fired:
                ours.reset()  # River restarts on its next update
        assert ours_at == theirs_at, f"seed {seed}"
        assert len(ours_at) >= 2, f"seed {seed}: the streams should make both detect"
        compared += len(ours_at)
    assert compared >= 20


def test_adwin_without_restart_matches_rivers_window() -> None:
    """Without River's restart, the window itself (width, mean, variance) is River's too."""
    helper = pytest.importorskip("river._river_rust.drift").AdaptiveWindowing
    for seed, xs in _piecewise_streams():
        ours = _core.ADWIN(0.002, 32, 5, 5)
        theirs = helper(0.002, 32, 5, 5, 10)
        got, want = [], []
        for x in xs.tolist():
            got.append((ours.update(x), ours.width, ours.mean, ours.variance))
            fired = theirs.update(x)
            width = theirs.get_width()
            want.append((fired, width, theirs.get_total() / width, theirs.get_variance() / width))
        got_a, want_a = np.array(got, dtype=float), np.array(want, dtype=float)
        np.testing.assert_array_equal(got_a[:, :2], want_a[:, :2], err_msg=f"seed {seed}")
        np.testing.assert_allclose(got_a[:, 2:], want_a[:, 2:], rtol=1e-9, atol=1e-12)
        assert ours.detections == theirs.get_n_detections() >= 2


@pytest.mark.parametrize(
    "min_instances, delta, threshold, alpha",
    [(30, 0.005, 50.0, 1 - 1e-4), (10, 0.01, 5.0, 0.999), (30, 0.0, 20.0, 1.0)],
)
def test_page_hinkley_detections_match_river(min_instances, delta, threshold, alpha) -> None:
    """Same detection indices as River's PageHinkley in mode "up".

    ducklearn's test is one-sided (a rising loss is a change; a falling one is the model
    learning), River's defaults to mode="both". River starts its running minimum at +inf and
    ducklearn at 0, but the first cumulative value is -delta <= 0 in both, so from then on the
    statistics coincide; River restarts on the update after a detection and ducklearn at the
    detection, which is the same thing. Agreement is therefore exact.
    """
    compared = 0
    for seed in range(12):
        rng = np.random.default_rng(seed)
        level, parts = 0.0, []
        for _ in range(6):
            level += rng.uniform(-1.0, 1.5)
            parts.append(rng.normal(level, 0.5, int(rng.integers(200, 800))))
        xs = np.concatenate(parts).tolist()
        ours = _core.PageHinkley(min_instances, delta, threshold, alpha)
        theirs = river_drift.PageHinkley(min_instances=min_instances, delta=delta,
                                         threshold=threshold, alpha=alpha, mode="up")
        ours_at, theirs_at = [], []
        for i, x in enumerate(xs):
            if ours.update(x):
                ours_at.append(i)
            theirs.update(x)
            if theirs.drift_detected:
                theirs_at.append(i)
        assert ours_at == theirs_at, f"seed {seed}"
        compared += len(ours_at)
    assert compared >= 12


def test_page_hinkley_ignores_falls_that_rivers_two_sided_default_reports() -> None:
    rng = np.random.default_rng(3)
    xs = np.concatenate([rng.normal(2.0, 0.3, 500), rng.normal(0.0, 0.3, 1500)]).tolist()
    ours, up, both = (_core.PageHinkley(), river_drift.PageHinkley(mode="up"),
                      river_drift.PageHinkley())
    fired = {"ours": 0, "up": 0, "both": 0}
    for x in xs:
        fired["ours"] += ours.update(x)
        up.update(x)
        both.update(x)
        fired["up"] += up.drift_detected
        fired["both"] += both.drift_detected
    assert fired == {"ours": 0, "up": 0, "both": fired["both"]}
    assert fired["both"] >= 1


# ----------------------------------------------------------------------------------------------
# AdaptiveLearner behaviour


ACCEPTANCE_SEEDS = range(12)


def test_fast_adaptation_recovers_from_an_abrupt_flip() -> None:
    """Product acceptance: after a flip of a clean rule, the 100 predictions following the first
    10 post-change examples are at least 90% as accurate as before the change.

    Pre-change accuracy is the prequential accuracy over the whole pre-change segment (the
    model's own learning curve included, as the post-change model's is). Per seed, not on
    average. A fresh model at the change point is what Adaptation.fast() can at best swap in;
    on rare seeds (about 1 in 100 with this stream) even that lands just under 90%, so this
    gate is tight, not loose.
    """
    n = 1000
    ratios, controls = [], []
    for seed in ACCEPTANCE_SEEDS:
        X, y = _flip_stream(seed, n, n)
        learner = _core.AdaptiveLearner(_learner(), Adaptation.fast().to_config(), seed)
        preds, _ = learner.learn(X, y)
        ok = _accuracy(preds, y)
        pre, post = ok[:n].mean(), ok[n + 10:n + 110].mean()
        assert post >= 0.9 * pre, f"seed {seed}: {post:.3f} after vs {pre:.3f} before"
        assert learner.stats["swaps"] >= 1
        ratios.append(post / pre)

        plain = _core.AdaptiveLearner(_learner(), Adaptation.none().to_config(), seed)
        preds, _ = plain.learn(X, y)
        ok = _accuracy(preds, y)
        controls.append(ok[n + 10:n + 110].mean() / ok[:n].mean())
    assert np.mean(ratios) >= 0.95
    # The flip is real: without adaptation the old rule is still applied.
    assert max(controls) < 0.5


@pytest.mark.parametrize("noise", [0.1, 0.3])
def test_default_adaptation_makes_no_swaps_on_a_stationary_stream(noise: float) -> None:
    for seed in range(8):
        rng = np.random.default_rng(100 + seed)
        X = rng.normal(size=(8000, 3)).astype(np.float32)
        y = (X[:, 0] + 0.5 * X[:, 1] > 0) ^ (rng.random(8000) < noise)
        learner = _core.AdaptiveLearner(_learner(), Adaptation().to_config(), seed)
        learner.learn(X, y.astype(np.float32))
        stats = learner.stats
        assert stats["swaps"] == 0, f"seed {seed}: {stats}"
        assert stats["backgrounds_started"] == 0, f"seed {seed}: {stats}"


def test_the_swap_gate_holds_when_the_detector_fires_on_noise() -> None:
    """A trigger-happy detector starts many challengers on a stationary stream; the default
    significance gate (grace 50, paired z >= 3) lets none of them take over."""
    adaptation = Adaptation(detector="page_hinkley", ph_threshold=5.0, background_patience=300)
    started = 0
    for seed in range(6):
        rng = np.random.default_rng(200 + seed)
        X = rng.normal(size=(8000, 3)).astype(np.float32)
        y = (X[:, 0] + 0.5 * X[:, 1] > 0) ^ (rng.random(8000) < 0.2)
        learner = _core.AdaptiveLearner(_learner(), adaptation.to_config(), seed)
        learner.learn(X, y.astype(np.float32))
        stats = learner.stats
        assert stats["swaps"] == 0, f"seed {seed}: {stats}"
        started += stats["backgrounds_started"]
    assert started >= 30, "the gate was not exercised"


def _task(rng: np.random.Generator, n: int, which: str):
    """Two tasks on disjoint inputs (x3 = +1 or -1) with rules on different features: task A
    is y = [x0 > 0], task B is y = [x1 > 0]. A small MLP can hold both; learning B alone
    overwrites A (a linear model cannot hold both and must compromise)."""
    X = rng.uniform(-1, 1, (n, 4)).astype(np.float32)
    X[:, 3] = 1.0 if which == "A" else -1.0
    y = X[:, 0] > 0 if which == "A" else X[:, 1] > 0
    return X, y.astype(np.float32)


def _two_task_accuracy(adaptation: Adaptation, seed: int, *, hidden: int, kind: str, lr: float,
                       consolidate: bool) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    XA, yA = _task(rng, 2000, "A")
    XB, yB = _task(rng, 2000, "B")
    TA, tA = _task(rng, 1000, "A")
    TB, tB = _task(rng, 1000, "B")
    learner = _core.AdaptiveLearner(_learner(4, kind=kind, lr=lr, hidden=hidden, seed=seed),
                                    adaptation.to_config(), seed)
    learner.learn(XA, yA)
    assert _accuracy(learner.snapshot().predict(TA), tA).mean() > 0.9
    if consolidate:
        learner.consolidate(500)
    learner.learn(XB, yB)
    snap = learner.snapshot()
    return _accuracy(snap.predict(TA), tA).mean(), _accuracy(snap.predict(TB), tB).mean()


def test_replay_and_ewc_retain_the_first_task() -> None:
    plain = Adaptation.none()
    kept = Adaptation(detector="none", background=False, replay_capacity=500, replay_batch=8,
                      ewc_lambda=50.0)
    a_plain, a_kept, b_kept = [], [], []
    for seed in range(4):
        a, _ = _two_task_accuracy(plain, seed, hidden=16, kind="adam", lr=0.01,
                                  consolidate=False)
        a_plain.append(a)
        a, b = _two_task_accuracy(kept, seed, hidden=16, kind="adam", lr=0.01, consolidate=True)
        a_kept.append(a)
        b_kept.append(b)
    # Plain learning forgets A (chance level); replay + EWC keep it and still learn B.
    assert max(a_plain) < 0.65
    assert min(a_kept) > 0.9
    assert min(b_kept) > 0.9
    assert np.mean(a_kept) > np.mean(a_plain) + 0.3


def test_ewc_alone_pulls_towards_the_first_task() -> None:
    """EWC without replay steps (a linear model, which cannot fit both tasks): the anchor keeps
    clearly more of task A than plain learning does."""
    plain = Adaptation.none()
    ewc = Adaptation(detector="none", background=False, replay_capacity=500,
                     replay_every=10**9, ewc_lambda=50.0)
    a_plain = [_two_task_accuracy(plain, s, hidden=0, kind="adagrad", lr=0.5,
                                  consolidate=False)[0] for s in range(4)]
    a_ewc = [_two_task_accuracy(ewc, s, hidden=0, kind="adagrad", lr=0.5,
                                consolidate=True)[0] for s in range(4)]
    assert np.mean(a_ewc) > np.mean(a_plain) + 0.1


# ----------------------------------------------------------------------------------------------
# state round trips


def _through_a_checkpoint(state: tuple[dict, dict]) -> tuple[dict, dict]:
    """What a checkpoint does with a state dict: tensors to safetensors, the rest to JSON."""
    tensors, meta = state
    blob = st_save({k: np.ascontiguousarray(v) for k, v in tensors.items()})
    return st_load(blob), json.loads(json.dumps(meta))


def _continue_identically(learner: _core.AdaptiveLearner, X: np.ndarray, y: np.ndarray,
                          start: int, chunk: int) -> dict:
    """Restores `learner` through a checkpoint, then feeds both the rest of the stream in
    chunks of `chunk` rows: predictions, losses, counters and the final state must agree bit
    for bit. Returns the final state's metadata."""
    restored = _core.AdaptiveLearner.from_state_dict(*_through_a_checkpoint(learner.state_dict()))
    assert restored.has_background == learner.has_background
    assert restored.stats == learner.stats
    for i in range(start, len(y), chunk):
        p1, l1 = learner.learn(X[i:i + chunk], y[i:i + chunk])
        p2, l2 = restored.learn(X[i:i + chunk], y[i:i + chunk])
        np.testing.assert_array_equal(p1, p2)
        np.testing.assert_array_equal(l1, l2)
    assert restored.stats == learner.stats
    t1, m1 = learner.state_dict()
    t2, m2 = restored.state_dict()
    assert m1 == m2
    assert t1.keys() == t2.keys()
    for key in t1:
        np.testing.assert_array_equal(t1[key], t2[key], err_msg=key)
    return m1


def test_learner_state_dict_round_trip_continues_identically() -> None:
    learner = _learner(4, kind="adam", lr=0.01, hidden=8, seed=2, standardize=True)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 4)).astype(np.float32)
    X[:, 2] *= 50
    y = (X[:, 0] - X[:, 1] > 0).astype(np.float32)
    learner.prequential(X[:200], y[:200])
    learner.consolidate(X[:64], y[:64], 0.5, 0.9)
    learner.lr_scale = 0.6
    learner.prequential(X[200:300], y[200:300])

    tensors, meta = _through_a_checkpoint(learner.state_dict())
    restored = _core.Learner.from_state_dict(tensors, meta)
    assert restored.lr_scale == pytest.approx(0.6)
    assert restored.examples_seen == learner.examples_seen
    np.testing.assert_array_equal(restored.params, learner.params)
    np.testing.assert_array_equal(restored.prequential(X[300:], y[300:]),
                                  learner.prequential(X[300:], y[300:]))
    np.testing.assert_array_equal(restored.params, learner.params)


def test_adaptive_state_dict_round_trip_mid_race_continues_identically() -> None:
    adaptation = Adaptation(replay_capacity=128, replay_every=2, replay_batch=4,
                            drift_lr_boost=2.0, consolidate_every=400, ewc_lambda=0.5)
    X, y = _flip_stream(7, 1500, 1500, noise=0.05)
    learner = _core.AdaptiveLearner(_learner(), adaptation.to_config(), 7)
    i = 0
    while not learner.has_background:
        learner.learn(X[i:i + 1], y[i:i + 1])
        i += 1
    learner.learn(X[i:i + 5], y[i:i + 5])
    i += 5
    assert learner.has_background and learner.replay_size > 0
    _continue_identically(learner, X, y, i, 250)
    assert learner.stats["swaps"] >= 1


def test_snapshot_is_frozen_while_the_learner_trains() -> None:
    learner = _learner(3, kind="adam", lr=0.05, hidden=8, seed=1)
    X, y = _flip_stream(1, 300, 300)
    learner.prequential(X[:300], y[:300])
    snap = learner.snapshot()
    before = snap.predict(X)
    np.testing.assert_array_equal(before, learner.predict(X))
    learner.prequential(X[300:], y[300:])
    np.testing.assert_array_equal(snap.predict(X), before)
    assert not np.array_equal(learner.predict(X), before)


# ----------------------------------------------------------------------------------------------
# configuration errors

BAD_FIELDS = [
    ("adwin_delta", 0.0), ("adwin_delta", 1.5), ("adwin_delta", math.nan),
    ("adwin_clock", 0), ("ph_min_instances", 0), ("ph_threshold", 0.0),
    ("ph_delta", -0.1), ("ph_delta", math.nan),
    ("drift_lr_boost", 0.5), ("boost_decay", 0), ("recent_window", 0),
    ("background_epochs", -1), ("background_lr_scale", 0.0), ("background_grace", 0),
    ("background_patience", 10), ("swap_margin", 1.0), ("swap_z", -1.0),
    ("loss_smoothing", 0.0), ("loss_smoothing", 1.5),
    ("plateau_factor", 0.0), ("plateau_factor", 1.5), ("plateau_every", 0),
    ("plateau_patience", 0), ("plateau_min_delta", -0.1), ("min_lr_scale", 0.0),
    ("replay_capacity", -1), ("replay_every", 0), ("replay_batch", 0),
    ("replay_alpha", -0.5), ("ewc_lambda", -1.0), ("ewc_decay", 1.5),
    ("consolidate_every", -1), ("consolidate_samples", 0),
    ("consolidate_every", 100),  # needs a replay buffer to draw from
]


@pytest.mark.parametrize("field, value", BAD_FIELDS)
def test_bad_adaptation_raises_value_error_naming_the_field(field: str, value) -> None:
    with pytest.raises(ValueError, match=field):
        Adaptation(**{field: value})
    # The core's own config (and so the learner's constructor) says the same.
    cfg = Adaptation().to_config()
    setattr(cfg, field, value)
    with pytest.raises(ValueError, match=field):
        cfg.validate()
    with pytest.raises(ValueError, match=field):
        _core.AdaptiveLearner(_learner(), cfg, 0)


def test_bad_core_only_fields_and_detector_names() -> None:
    cfg = _core.AdaptationConfig()
    cfg.ph_alpha = 1.5  # not exposed by Adaptation; the core checks it all the same
    with pytest.raises(ValueError, match="ph_alpha"):
        cfg.validate()
    with pytest.raises(ValueError, match="detector"):
        Adaptation(detector="cusum")
    with pytest.raises(ValueError, match="detector"):
        _core.AdaptationConfig().detector = "cusum"
    with pytest.raises(TypeError, match="recent_window"):
        Adaptation(recent_window=2.5)
    with pytest.raises(TypeError, match="swap_z"):
        Adaptation(swap_z="3")
    for make in (lambda: _core.ADWIN(delta=0.0), lambda: _core.ADWIN(clock=0),
                 lambda: _core.PageHinkley(threshold=0.0), lambda: _core.PageHinkley(alpha=2.0),
                 lambda: _core.ReplayBuffer(0, 3)):
        with pytest.raises(ValueError):
            make()


def test_presets_are_valid_and_distinct() -> None:
    fast, none = Adaptation.fast(), Adaptation.none()
    assert fast.detector == "page_hinkley" and fast.to_config().detector == "page_hinkley"
    assert none.detector == "none" and not none.background
    assert Adaptation.fast(swap_z=4.0).swap_z == 4.0
    with pytest.raises(ValueError, match="swap_z"):
        Adaptation.fast(swap_z=-1.0)
