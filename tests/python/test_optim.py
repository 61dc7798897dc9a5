"""Optimizers and schedules against plain numpy implementations of the published rules.

References (float64, written from the papers / PyTorch docs, not from the C++):
SGD with momentum and Nesterov momentum in PyTorch's form (no dampening), AdaGrad (Duchi,
Hazan & Singer 2011), RMSProp (Tieleman & Hinton 2012), Adam (Kingma & Ba 2015, Algorithm 1,
bias-corrected), AdamW (Loshchilov & Hutter 2019, decoupled decay p *= 1 - lr * wd).
Shared extras: global-norm gradient clipping, then the coupled L2 term g += l2 * p, then the
update with decoupled decay.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from ducklearn import _core
from ducklearn.optim import (
    SGD,
    AdaGrad,
    Adam,
    AdamW,
    Constant,
    Cosine,
    ExponentialDecay,
    InverseScaling,
    Optimizer,
    PlateauDetector,
    RMSProp,
    Schedule,
    StepDecay,
    make_optimizer,
)

N_PARAMS = 37
N_STEPS = 200


# ---------------------------------------------------------------------------------------------
# references
# ---------------------------------------------------------------------------------------------


def schedule_ref(kind: str, t: int, lr: float, *, gamma=0.1, step_size=1000, power=0.5,
                 t_max=1000, min_lr=0.0, warmup_steps=0, warmup_start=0.0) -> float:
    def base(s: int) -> float:
        if kind == "constant":
            return lr
        if kind == "step":
            return lr * gamma ** (s // step_size)
        if kind == "exponential":
            return lr * gamma**s
        if kind == "inverse_scaling":
            return lr / (1.0 + s) ** power
        if kind == "cosine":
            return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(s, t_max) / t_max))
        raise AssertionError(kind)

    # Float hyperparameters live in float32 in the C++ config; use the stored values.
    lr, gamma, power, min_lr, warmup_start = (
        float(np.float32(v)) for v in (lr, gamma, power, min_lr, warmup_start))
    if warmup_steps > 0 and t < warmup_steps:
        return base(0) * (warmup_start + (1.0 - warmup_start) * t / warmup_steps)
    return base(t - warmup_steps)


def lr_fn(lr):
    """Reference learning rate at step t for a float or a Schedule instance."""
    if not isinstance(lr, Schedule):
        return lambda t: float(lr)
    params = lr.get_params()
    base_lr = params.pop("lr")
    kind = lr._kind
    return lambda t: schedule_ref(kind, t, base_lr, **params)


class RefOptimizer:
    """float64 numpy implementation of each update rule."""

    def __init__(self, opt: Optimizer):
        self.kind = opt._kind
        self.hp = opt.get_params()
        self.lr = lr_fn(self.hp["lr"])
        self.t = 0
        self.slots: dict[str, np.ndarray] = {}

    def step(self, p: np.ndarray, g: np.ndarray) -> float:
        hp = self.hp
        lr = self.lr(self.t)
        g = np.asarray(g, dtype=np.float64).copy()
        if hp["clip_norm"] > 0:
            norm = np.sqrt(np.sum(g * g))
            if norm > hp["clip_norm"]:
                g *= hp["clip_norm"] / norm
        g += hp["l2"] * p
        keep = 1.0 - lr * hp["weight_decay"]
        S = self.slots
        if self.kind == "sgd":
            mu = hp["momentum"]
            if mu == 0:
                upd = g
            else:
                v = mu * S.get("velocity", 0.0) + g  # PyTorch: buf = mu * buf + g (buf_0 = g)
                S["velocity"] = v
                upd = g + mu * v if hp["nesterov"] else v
            new = p * keep - lr * upd
        elif self.kind == "adagrad":
            G = S.get("sum_sq", np.full_like(p, hp["initial_accumulator"])) + g * g
            S["sum_sq"] = G
            new = p * keep - lr * g / (np.sqrt(G) + hp["eps"])
        elif self.kind == "rmsprop":
            rho = hp["rho"]
            s = rho * S.get("mean_sq", 0.0) + (1 - rho) * g * g
            S["mean_sq"] = s
            new = p * keep - lr * g / (np.sqrt(s) + hp["eps"])
        elif self.kind in ("adam", "adamw"):
            b1, b2 = hp["beta1"], hp["beta2"]
            m = b1 * S.get("m", 0.0) + (1 - b1) * g
            v = b2 * S.get("v", 0.0) + (1 - b2) * g * g
            S["m"], S["v"] = m, v
            t = self.t + 1
            m_hat = m / (1 - b1**t)
            v_hat = v / (1 - b2**t)
            new = p * keep - lr * m_hat / (np.sqrt(v_hat) + hp["eps"])
        else:
            raise AssertionError(self.kind)
        p[:] = new
        self.t += 1
        return lr


OPTIMIZERS = {
    "sgd": lambda: SGD(0.05),
    "sgd_momentum": lambda: SGD(0.05, momentum=0.9),
    "sgd_nesterov": lambda: SGD(0.05, momentum=0.9, nesterov=True),
    "sgd_all_extras": lambda: SGD(0.05, momentum=0.5, nesterov=True, l2=0.01,
                                  weight_decay=0.1, clip_norm=1.0),
    "adagrad": lambda: AdaGrad(0.1),
    "adagrad_extras": lambda: AdaGrad(0.1, initial_accumulator=0.1, eps=1e-6, l2=0.02,
                                      clip_norm=2.0),
    "rmsprop": lambda: RMSProp(0.01),
    "rmsprop_extras": lambda: RMSProp(0.01, rho=0.9, eps=1e-6, weight_decay=0.05,
                                      clip_norm=1.0),
    "adam": lambda: Adam(0.01),
    "adam_extras": lambda: Adam(0.02, beta1=0.8, beta2=0.99, eps=1e-6, l2=0.01, clip_norm=1.5),
    "adamw": lambda: AdamW(0.01),
    "adamw_extras": lambda: AdamW(0.01, weight_decay=0.1, clip_norm=1.0, beta2=0.95),
    "adam_cosine_warmup": lambda: Adam(Cosine(0.01, t_max=120, min_lr=1e-4, warmup_steps=20,
                                              warmup_start=0.1)),
    "sgd_step_decay": lambda: SGD(StepDecay(0.1, step_size=30, gamma=0.5), momentum=0.9),
    "rmsprop_inverse": lambda: RMSProp(InverseScaling(0.01, power=0.7, warmup_steps=10)),
    "adagrad_exponential": lambda: AdaGrad(ExponentialDecay(0.2, gamma=0.99)),
}


def _gradient_stream(rng, n_steps, n):
    """Gradients whose global norm moves across the clipping thresholds."""
    scales = rng.uniform(0.02, 1.0, size=n_steps)
    return [(s * rng.normal(size=n)).astype(np.float32) for s in scales]


# ---------------------------------------------------------------------------------------------
# update rules, step by step
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_matches_reference_step_by_step(simd_target, rng, name):
    opt = OPTIMIZERS[name]()
    ref = RefOptimizer(opt)
    w = rng.normal(size=N_PARAMS).astype(np.float32)
    p_ref = w.astype(np.float64)
    clipped = 0
    for t, g in enumerate(_gradient_stream(rng, N_STEPS, N_PARAMS)):
        assert opt.current_lr == pytest.approx(ref.lr(t), rel=1e-6, abs=1e-12)
        lr_ref = ref.step(p_ref, g)
        lr = opt.step(w, g)
        assert lr == pytest.approx(lr_ref, rel=1e-6, abs=1e-12), f"lr at step {t}"
        # float32 vs float64 over 200 steps (e.g. 1 - lr * wd rounded to float32 each step)
        # drifts by ~1e-5 at most; a wrong rule is off by orders of magnitude more.
        np.testing.assert_allclose(w, p_ref, rtol=3e-5, atol=3e-5, err_msg=f"step {t}")
        clipped += opt.clip_norm > 0 and np.linalg.norm(g) > opt.clip_norm
    assert opt.steps == N_STEPS
    state = opt.state
    assert sorted(state) == sorted(ref.slots)
    for key, val in ref.slots.items():
        np.testing.assert_allclose(state[key], val, rtol=1e-4, atol=1e-6, err_msg=key)
    if opt.clip_norm > 0:
        assert 0 < clipped < N_STEPS  # both branches of clipping were exercised


def test_first_adam_step_is_lr_times_sign():
    # Bias correction makes the first Adam step exactly lr * sign(g) (up to eps).
    w = np.zeros(4, dtype=np.float32)
    Adam(0.1).step(w, np.array([3.0, -0.5, 1e-3, 0.0]))
    np.testing.assert_allclose(w, [-0.1, 0.1, -0.1, 0.0], rtol=1e-4)


@pytest.mark.parametrize(("make", "expected"), [
    (lambda: AdaGrad(1.0, eps=1e-3), 0.5),  # g / (sqrt(g^2) + eps) = 1e-3 / 2e-3
    (lambda: RMSProp(1.0, rho=0.99, eps=1e-3), 1.0 / 1.1),  # sqrt(0.01 g^2) = 1e-4
    (lambda: Adam(1.0, eps=1e-3), 0.5),  # m_hat / (sqrt(v_hat) + eps) = g / (|g| + eps)
])
def test_eps_is_added_outside_the_square_root(make, expected):
    # A gradient of the size of eps tells "sqrt(s) + eps" from "sqrt(s + eps)".
    w = np.zeros(1, dtype=np.float32)
    make().step(w, np.array([1e-3]))
    assert -w[0] == pytest.approx(expected, rel=1e-4)


def test_adamw_decay_is_decoupled_from_the_gradient():
    # With a zero gradient Adam's step is 0, so AdamW only decays: p *= 1 - lr * wd.
    w = np.full(3, 2.0, dtype=np.float32)
    opt = AdamW(0.1, weight_decay=0.5)
    for _ in range(3):
        opt.step(w, np.zeros(3))
    np.testing.assert_allclose(w, 2.0 * (1 - 0.05) ** 3, rtol=1e-6)
    # Coupled l2 in Adam instead goes through the moments (a sign-like step, not a decay).
    w2 = np.full(3, 2.0, dtype=np.float32)
    Adam(0.1, l2=0.5).step(w2, np.zeros(3))
    np.testing.assert_allclose(w2, 2.0 - 0.1, rtol=1e-5)


def test_clip_norm_bounds_the_sgd_step():
    w = np.zeros(2, dtype=np.float32)
    SGD(1.0, clip_norm=1.0).step(w, np.array([30.0, 40.0]))  # norm 50 -> scaled to 1
    np.testing.assert_allclose(w, [-0.6, -0.8], rtol=1e-6)
    w = np.zeros(2, dtype=np.float32)
    SGD(1.0, clip_norm=100.0).step(w, np.array([30.0, 40.0]))  # below the bound: unchanged
    np.testing.assert_allclose(w, [-30.0, -40.0], rtol=1e-6)


# PyTorch as a second, independent reference (skipped when torch is not importable).
TORCH_CASES = {
    "sgd": (lambda: SGD(0.05), lambda t, p: t.optim.SGD(p, lr=0.05)),
    "sgd_momentum_l2": (lambda: SGD(0.05, momentum=0.9, l2=0.01),
                        lambda t, p: t.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01)),
    "sgd_nesterov": (lambda: SGD(0.05, momentum=0.9, nesterov=True),
                     lambda t, p: t.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True)),
    "adagrad": (lambda: AdaGrad(0.1, initial_accumulator=0.1, eps=1e-10),
                lambda t, p: t.optim.Adagrad(p, lr=0.1, initial_accumulator_value=0.1,
                                             eps=1e-10)),
    "rmsprop": (lambda: RMSProp(0.01, rho=0.9, eps=1e-8),
                lambda t, p: t.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-8)),
    "adam_l2": (lambda: Adam(0.01, l2=0.01),
                lambda t, p: t.optim.Adam(p, lr=0.01, betas=(0.9, 0.999), eps=1e-8,
                                          weight_decay=0.01)),
    "adamw": (lambda: AdamW(0.01, weight_decay=0.1),
              lambda t, p: t.optim.AdamW(p, lr=0.01, betas=(0.9, 0.999), eps=1e-8,
                                         weight_decay=0.1)),
}


@pytest.mark.parametrize("name", list(TORCH_CASES))
def test_optimizer_matches_torch(rng, name):
    torch = pytest.importorskip("torch")
    ours, theirs = TORCH_CASES[name]
    w = rng.normal(size=N_PARAMS).astype(np.float32)
    tp = torch.nn.Parameter(torch.tensor(w.copy()))
    topt = theirs(torch, [tp])
    opt = ours()
    for g in _gradient_stream(rng, N_STEPS, N_PARAMS):
        opt.step(w, g)
        tp.grad = torch.tensor(g.copy())
        topt.step()
    np.testing.assert_allclose(w, tp.detach().numpy(), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# schedules
# ---------------------------------------------------------------------------------------------


SCHEDULES = {
    "constant": (Constant, {"lr": 0.05}),
    "step": (StepDecay, {"lr": 0.1, "step_size": 7, "gamma": 0.5}),
    "exponential": (ExponentialDecay, {"lr": 0.1, "gamma": 0.98}),
    "inverse_scaling": (InverseScaling, {"lr": 0.1, "power": 0.6}),
    "cosine": (Cosine, {"lr": 0.1, "t_max": 150, "min_lr": 0.001}),
}
WARMUPS = {"no_warmup": {}, "warmup": {"warmup_steps": 25},
           "warmup_start": {"warmup_steps": 10, "warmup_start": 0.2}}


@pytest.mark.parametrize("warmup", list(WARMUPS))
@pytest.mark.parametrize("kind", list(SCHEDULES))
def test_schedule_matches_formula(kind, warmup):
    cls, kw = SCHEDULES[kind]
    sched = cls(**kw, **WARMUPS[warmup])
    cfg = sched.to_config()
    assert cfg.kind == kind
    for t in range(260):
        want = schedule_ref(kind, t, **kw, **WARMUPS[warmup])
        assert sched(t) == pytest.approx(want, rel=2e-6, abs=1e-12), f"t={t}"
        assert cfg.at(t) == pytest.approx(want, rel=2e-6, abs=1e-12)


@pytest.mark.parametrize("warmup", list(WARMUPS))
@pytest.mark.parametrize("kind", list(SCHEDULES))
def test_optimizer_follows_schedule(kind, warmup):
    cls, kw = SCHEDULES[kind]
    opt = SGD(cls(**kw, **WARMUPS[warmup]))
    w = np.zeros(3, dtype=np.float32)
    assert opt.current_lr == pytest.approx(schedule_ref(kind, 0, **kw, **WARMUPS[warmup]))
    for t in range(N_STEPS):
        want = schedule_ref(kind, t, **kw, **WARMUPS[warmup])
        w[:] = 0.0  # from 0 the step is exactly -lr * g, with no rounding against |p|
        lr = opt.step(w, np.ones(3))
        assert lr == pytest.approx(want, rel=2e-6, abs=1e-12)
        np.testing.assert_allclose(-w, want, rtol=1e-6, atol=1e-12)
        assert opt.current_lr == pytest.approx(
            schedule_ref(kind, t + 1, **kw, **WARMUPS[warmup]), rel=2e-6, abs=1e-12)


def test_schedule_shapes():
    # Warmup rises linearly to the base rate, then the decay starts from its own step 0.
    s = StepDecay(1.0, step_size=5, gamma=0.5, warmup_steps=4)
    assert [s(t) for t in range(4)] == pytest.approx([0.0, 0.25, 0.5, 0.75])
    assert s(4) == 1.0 and s(8) == 1.0 and s(9) == 0.5
    c = Cosine(1.0, t_max=10, min_lr=0.1)
    assert c(0) == 1.0
    assert c(5) == pytest.approx(0.55)
    assert c(10) == pytest.approx(0.1) and c(1000) == pytest.approx(0.1)
    assert InverseScaling(1.0, power=0.0)(100) == 1.0


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------


def test_params_must_be_writeable_contiguous_float32():
    g = np.ones(4)
    fix_it = r"np\.ascontiguousarray\(params, dtype=np\.float32\)"
    with pytest.raises(TypeError, match=r"float32.*" + fix_it):
        SGD(0.1).step(np.zeros(4), g)  # float64
    with pytest.raises(ValueError, match=r"C-contiguous.*np\.ascontiguousarray"):
        SGD(0.1).step(np.zeros(8, dtype=np.float32)[::2], g)
    with pytest.raises(ValueError, match=r"C-contiguous.*np\.ascontiguousarray"):
        SGD(0.1).step(np.zeros((4, 3), dtype=np.float32).T, np.ones((3, 4)))
    ro = np.zeros(4, dtype=np.float32)
    ro.flags.writeable = False
    # For a read-only array the fix is a writeable copy (np.ascontiguousarray would return
    # the same read-only array), and the message says so.
    with pytest.raises(ValueError, match=r"read-only.*\.copy\(\)"):
        SGD(0.1).step(ro, g)
    with pytest.raises(TypeError, match=r"np\.ascontiguousarray"):
        SGD(0.1).step([0.0, 0.0, 0.0, 0.0], g)


def test_params_are_updated_in_place_never_copied():
    w = np.zeros((2, 3), dtype=np.float32)  # any C-contiguous shape is a flat buffer
    view = w.reshape(-1)
    SGD(0.5).step(w, np.ones((2, 3)))
    np.testing.assert_array_equal(view, -0.5)


def test_grads_checks():
    w = np.zeros(4, dtype=np.float32)
    opt = SGD(0.1)
    with pytest.raises(ValueError, match="grads has 3 values but params has 4"):
        opt.step(w, np.ones(3))
    with pytest.raises(TypeError, match="numeric"):
        opt.step(w, np.array(["a", "b", "c", "d"]))
    with pytest.raises(TypeError, match="numeric"):
        opt.step(w, np.ones(4, dtype=bool))
    with pytest.raises(ValueError, match="empty"):
        SGD(0.1).step(np.zeros(0, dtype=np.float32), np.zeros(0))
    # Lists and float64 grads are fine (read-only input, converted).
    opt.step(w, [1, 1, 1, 1])
    opt.step(w, np.ones(4, dtype=np.float64))
    np.testing.assert_allclose(w, -0.2, rtol=1e-6)


def test_size_change_between_steps_raises():
    opt = Adam(0.1)
    opt.step(np.zeros(5, dtype=np.float32), np.ones(5))
    with pytest.raises(ValueError, match="sized for 5 parameters but got 6"):
        opt.step(np.zeros(6, dtype=np.float32), np.ones(6))
    assert opt.steps == 1
    opt.reset()  # the documented way out
    opt.step(np.zeros(6, dtype=np.float32), np.ones(6))
    assert opt.steps == 1 and opt.state["m"].shape == (6,)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("bad", (np.nan, np.inf, -np.inf))
def test_non_finite_grads_change_nothing(rng, name, bad):
    opt = OPTIMIZERS[name]()
    w = rng.normal(size=6).astype(np.float32)
    for _ in range(3):
        opt.step(w, rng.normal(size=6))
    w_before, state_before, steps_before = w.copy(), opt.state, opt.steps
    g = rng.normal(size=6)
    g[2] = bad
    with pytest.raises(ValueError, match="NaN or infinity"):
        opt.step(w, g)
    np.testing.assert_array_equal(w, w_before)
    assert opt.steps == steps_before
    for key, val in opt.state.items():
        np.testing.assert_array_equal(val, state_before[key])


def test_non_finite_grads_before_first_step():
    w = np.zeros(3, dtype=np.float32)
    opt = Adam()
    with pytest.raises(ValueError, match="NaN"):
        opt.step(w, [0.0, np.nan, 0.0])
    np.testing.assert_array_equal(w, 0.0)
    assert opt.steps == 0 and opt.state == {}


@pytest.mark.parametrize(("make", "exc", "pattern"), [
    (lambda: SGD(-0.1), ValueError, "lr must be a finite number > 0"),
    (lambda: SGD(0.0), ValueError, "lr"),
    (lambda: Adam(float("nan")), ValueError, "lr must be finite"),
    (lambda: Adam("0.1"), TypeError, "lr must be a number"),
    (lambda: Adam(True), TypeError, "lr must be a number"),
    (lambda: Adam(None), TypeError, "lr must be a number"),
    (lambda: Adam(beta1=1.0), ValueError, r"beta1 must be in \[0, 1\)"),
    (lambda: Adam(beta1=-0.1), ValueError, "beta1"),
    (lambda: Adam(beta2=1.0), ValueError, "beta2"),
    (lambda: Adam(eps=0.0), ValueError, "eps"),
    (lambda: AdamW(weight_decay=-0.01), ValueError, "weight_decay"),
    (lambda: SGD(0.1, nesterov=True), ValueError, "nesterov=True needs momentum"),
    (lambda: SGD(0.1, momentum=1.0), ValueError, "momentum"),
    (lambda: SGD(0.1, momentum=0.9, nesterov=1), TypeError, "nesterov must be a bool"),
    (lambda: SGD(0.1, momentum="0.9"), TypeError, "momentum must be a number"),
    (lambda: SGD(0.1, l2=-1.0), ValueError, "l2"),
    (lambda: SGD(0.1, clip_norm=-1.0), ValueError, "clip_norm"),
    (lambda: SGD(0.1, clip_norm=float("inf")), ValueError, "clip_norm"),
    (lambda: RMSProp(rho=1.0), ValueError, "rho"),
    (lambda: AdaGrad(initial_accumulator=-1.0), ValueError, "initial_accumulator"),
    (lambda: StepDecay(0.1, step_size=0), ValueError, "step_size"),
    (lambda: StepDecay(0.1, step_size=2.5), TypeError, "step_size must be an integer"),
    (lambda: StepDecay(0.1, step_size=5, gamma=1.5), ValueError, "gamma"),
    (lambda: ExponentialDecay(0.1, gamma=0.0), ValueError, "gamma"),
    (lambda: InverseScaling(0.1, power=-1.0), ValueError, "power"),
    (lambda: Cosine(0.1, t_max=0), ValueError, "t_max"),
    (lambda: Cosine(0.1, t_max=10, min_lr=0.2), ValueError, "min_lr"),
    (lambda: Constant(0.1, warmup_steps=-1), ValueError, "warmup_steps"),
    (lambda: Constant(0.1, warmup_steps=2.0), TypeError, "warmup_steps"),
    (lambda: Constant(0.1, warmup_steps=5, warmup_start=1.5), ValueError, "warmup_start"),
    (lambda: Constant(-1.0), ValueError, "lr"),
    (lambda: make_optimizer("adamax"), ValueError, "unknown optimizer 'adamax'.*adagrad"),
    (lambda: make_optimizer(3), TypeError, "optimizer must be a name"),
    (lambda: Constant(0.1)(1.5), TypeError, "t must be an integer"),
])
def test_bad_hyperparameters(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


def test_core_config_rejects_bad_names():
    cfg = _core.OptimizerConfig()
    with pytest.raises(ValueError, match="unknown optimizer"):
        cfg.kind = "lbfgs"
    sched = _core.ScheduleConfig()
    with pytest.raises(ValueError, match="unknown schedule"):
        sched.kind = "linear"
    cfg.schedule.lr = -1.0  # a reference into the config: the core validates on construction
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        _core.Optimizer(cfg)


# ---------------------------------------------------------------------------------------------
# state, steps, reset, clone, deepcopy, make_optimizer
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("make", "slots"), [
    (lambda: SGD(0.1), []),
    (lambda: SGD(0.1, momentum=0.9), ["velocity"]),
    (lambda: AdaGrad(), ["sum_sq"]),
    (lambda: RMSProp(), ["mean_sq"]),
    (lambda: Adam(), ["m", "v"]),
    (lambda: AdamW(), ["m", "v"]),
])
def test_state_slots(make, slots):
    opt = make()
    assert opt.state == {} and opt.steps == 0
    w = np.zeros(5, dtype=np.float32)
    opt.step(w, np.arange(5.0))
    state = opt.state
    assert list(state) == slots
    for val in state.values():
        assert val.shape == (5,) and val.dtype == np.float32
        val[:] = 123.0  # a copy: the optimizer's own state is untouched
    for val in opt.state.values():
        assert not np.any(val == 123.0)


def test_adagrad_initial_accumulator_seeds_state():
    opt = AdaGrad(0.1, initial_accumulator=0.5)
    opt.step(np.zeros(3, dtype=np.float32), np.array([1.0, 2.0, 0.0]))
    np.testing.assert_allclose(opt.state["sum_sq"], [1.5, 4.5, 0.5])


def test_steps_current_lr_and_reset():
    opt = SGD(ExponentialDecay(0.1, gamma=0.5), momentum=0.9)
    assert opt.steps == 0 and opt.current_lr == pytest.approx(0.1)
    w = np.zeros(3, dtype=np.float32)
    used = [opt.step(w, np.ones(3)) for _ in range(3)]
    assert used == pytest.approx([0.1, 0.05, 0.025])
    assert opt.steps == 3 and opt.current_lr == pytest.approx(0.0125)
    opt.reset()
    assert opt.steps == 0 and opt.state == {} and opt.current_lr == pytest.approx(0.1)
    w2 = np.zeros(3, dtype=np.float32)
    opt.step(w2, np.ones(3))
    np.testing.assert_allclose(w2, -0.1, rtol=1e-6)  # fresh velocity, schedule from 0


def test_clone_has_same_hyperparameters_and_no_state():
    opt = Adam(Cosine(0.01, t_max=50), beta1=0.8, l2=0.01, clip_norm=2.0)
    opt.step(np.zeros(3, dtype=np.float32), np.ones(3))
    new = opt.clone()
    assert new is not opt and type(new) is Adam
    assert new == opt and hash(new) == hash(opt)
    assert new.get_params() == opt.get_params()
    assert new.steps == 0 and new.state == {}
    assert "beta1=0.8" in repr(new) and repr(new).startswith("Adam(")
    assert new != Adam(Cosine(0.01, t_max=50), beta1=0.7, l2=0.01, clip_norm=2.0)
    assert AdamW(0.01) != Adam(0.01, weight_decay=0.01)  # same numbers, other class


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_deepcopy_copies_state_and_is_independent(rng, name):
    opt = OPTIMIZERS[name]()
    w = rng.normal(size=8).astype(np.float32)
    for _ in range(5):
        opt.step(w, rng.normal(size=8))
    twin = copy.deepcopy(opt)
    assert twin.steps == opt.steps == 5
    for key, val in opt.state.items():
        np.testing.assert_array_equal(twin.state[key], val)
    # The same gradients from the same point give the same trajectory...
    w_twin = w.copy()
    grads = [rng.normal(size=8) for _ in range(4)]
    for g in grads:
        opt.step(w, g)
        twin.step(w_twin, g)
    np.testing.assert_array_equal(w_twin, w)
    # ...and stepping one leaves the other alone.
    opt.step(w, grads[0])
    assert twin.steps == 9 and opt.steps == 10


def test_deepcopy_before_first_step():
    twin = copy.deepcopy(Adam(0.1))
    assert twin.steps == 0 and twin.state == {}
    w = np.zeros(2, dtype=np.float32)
    twin.step(w, np.ones(2))
    np.testing.assert_allclose(w, -0.1, rtol=1e-4)


def test_make_optimizer():
    for name, cls in (("sgd", SGD), ("adagrad", AdaGrad), ("rmsprop", RMSProp),
                      ("adam", Adam), ("AdamW", AdamW)):
        opt = make_optimizer(name)
        assert type(opt) is cls
        assert opt == cls()
    assert make_optimizer("adam", lr=0.5).lr == 0.5
    sched = Cosine(0.1, t_max=10)
    assert make_optimizer("sgd", lr=sched).lr is sched
    template = SGD(0.3, momentum=0.9, nesterov=True, clip_norm=1.0)
    template.step(np.zeros(2, dtype=np.float32), np.ones(2))
    fresh = make_optimizer(template)
    assert fresh == template and fresh is not template
    assert fresh.steps == 0 and fresh.state == {}
    over = make_optimizer(template, lr=0.01)
    assert over.lr == 0.01 and over.momentum == 0.9 and template.lr == 0.3


def test_core_optimizer_load_state_round_trip(rng):
    cfg = Adam(0.05).to_config()
    a = _core.Optimizer(cfg)
    w = rng.normal(size=10).astype(np.float32)
    for _ in range(4):
        a.step(w, rng.normal(size=10).astype(np.float32))
    b = _core.Optimizer(cfg)
    b.load_state(a.steps, np.array(a.state))
    assert b.steps == 4 and b.size == 10 and list(b.slot_names) == ["m", "v"]
    wa, wb = w.copy(), w.copy()
    g = rng.normal(size=10).astype(np.float32)
    assert a.step(wa, g) == b.step(wb, g)
    np.testing.assert_array_equal(wa, wb)
    with pytest.raises(ValueError, match="slots"):
        b.load_state(0, np.zeros((1, 10), dtype=np.float32))
    with pytest.raises(ValueError, match="2-D"):
        b.load_state(0, np.zeros(20, dtype=np.float32))
    # Plain SGD has no state but still remembers its size.
    s = _core.Optimizer(SGD(0.1).to_config())
    s.set_size(3, 7)
    assert s.steps == 3 and s.size == 7
    with pytest.raises(ValueError, match="sized for 7"):
        s.step(np.zeros(6, dtype=np.float32), np.zeros(6, dtype=np.float32))


# ---------------------------------------------------------------------------------------------
# PlateauDetector
# ---------------------------------------------------------------------------------------------


def test_plateau_smoothing_matches_ema():
    d = PlateauDetector(smoothing=0.3, patience=100, min_delta=0.0)
    losses = [5.0, 3.0, 4.0, 1.0, 2.0]
    ema, emas = None, []
    for loss in losses:
        d.update(loss)
        ema = loss if ema is None else 0.3 * loss + 0.7 * ema
        emas.append(ema)
        assert d.smoothed == pytest.approx(ema)
        # min_delta = 0: best is the lowest smoothed value so far, and since_best counts
        # the updates after it.
        assert d.best == pytest.approx(min(emas))
        assert d.since_best == len(emas) - 1 - int(np.argmin(emas))
    assert d.count == len(losses)


def test_plateau_converges_after_patience_on_a_flat_loss():
    d = PlateauDetector(smoothing=1.0, patience=3, min_delta=0.01)
    assert d.update(1.0) is False  # the first loss sets the baseline
    assert [d.update(1.0) for _ in range(3)] == [False, False, True]
    assert d.converged and d.since_best == 3 and d.best == 1.0


def test_plateau_relative_min_delta():
    d = PlateauDetector(smoothing=1.0, patience=2, min_delta=0.1)
    d.update(10.0)
    d.update(9.5)  # 5% better: not an improvement at min_delta = 10%
    assert d.since_best == 1 and d.best == 10.0
    d.update(8.9)  # 11% better than 10: an improvement, the counter restarts
    assert d.since_best == 0 and d.best == pytest.approx(8.9)
    assert not d.converged
    # Negative losses: "better" still means smaller.
    n = PlateauDetector(smoothing=1.0, patience=1, min_delta=0.1)
    n.update(-10.0)
    assert n.update(-10.5) is True  # only 5% better
    n.reset()
    n.update(-10.0)
    assert n.update(-12.0) is False


def test_plateau_never_converges_while_improving():
    d = PlateauDetector(smoothing=0.5, patience=2, min_delta=1e-3)
    for k in range(50):
        assert d.update(100.0 * 0.9**k) is False


def test_plateau_reset_and_errors():
    d = PlateauDetector(smoothing=1.0, patience=1)
    d.update(1.0)
    d.update(1.0)
    assert d.converged
    d.reset()
    assert not d.converged and d.count == 0 and d.since_best == 0
    with pytest.raises(ValueError, match="finite"):
        d.update(float("nan"))
    with pytest.raises(ValueError, match="finite"):
        d.update(float("inf"))
    assert d.count == 0
    with pytest.raises(ValueError, match="smoothing"):
        PlateauDetector(smoothing=0.0)
    with pytest.raises(ValueError, match="smoothing"):
        PlateauDetector(smoothing=1.5)
    with pytest.raises(ValueError, match="patience"):
        PlateauDetector(patience=0)
    with pytest.raises(ValueError, match="min_delta"):
        PlateauDetector(min_delta=-0.1)
