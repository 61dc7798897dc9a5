"""Finite-difference gradient checks of ``_core.Sequential.forward_backward``.

The model runs in float32, so the checks use central differences with a step of 1e-3 on a
random subset of parameters and a relative + absolute tolerance. Rows whose pre-activations
or residuals sit near a kink (ReLU at 0, Huber at |r| = delta, pinball at r = 0) are dropped,
because a central difference straddling a kink does not measure the derivative.
"""

from __future__ import annotations

import numpy as np
import pytest
from ducklearn import _core
from test_kernels import ACTIVATIONS, act_ref, loss_ref

H = 1e-3
KINKED = ("relu", "leaky_relu")
MARGIN = 0.05  # rows with a pre-activation or residual this close to a kink are dropped


def layers_of(model: _core.Sequential, params: np.ndarray | None = None):
    """(W, b, activation) per layer, read from the flat buffer through the layer offsets."""
    p = np.asarray(model.params if params is None else params, dtype=np.float64)
    out = []
    for L in model.layers:
        W = p[L["w_offset"]:L["w_offset"] + L["out"] * L["in"]].reshape(L["out"], L["in"])
        b = p[L["b_offset"]:L["b_offset"] + L["out"]]
        out.append((W, b, L["activation"]))
    return out


def forward_ref(model, X, alpha):
    """float64 forward pass; returns the outputs and every layer's pre-activations."""
    A = np.asarray(X, dtype=np.float64)
    zs = []
    for W, b, act in layers_of(model):
        Z = A @ W.T + b
        zs.append(Z)
        A = act_ref(act, Z, alpha)
    return A, zs


def away_from_kinks(model, X, y, loss, alpha, delta=1.0):
    """Mask of rows whose kinked pre-activations and residuals are at least MARGIN away."""
    out, zs = forward_ref(model, X, alpha)
    keep = np.ones(len(X), dtype=bool)
    for (_, _, act), Z in zip(layers_of(model), zs, strict=True):
        if act in KINKED:
            keep &= (np.abs(Z) > MARGIN).all(axis=1)
    r = out - y[:, None]
    if loss == "huber":
        keep &= (np.abs(np.abs(r) - delta) > MARGIN).all(axis=1)
    if loss == "pinball":
        keep &= (np.abs(r) > MARGIN).all(axis=1)
    return keep


def check_gradient(model, X, y, loss, rng, *, n_check=40, delta=1.0, tau=0.5, alpha=0.01,
                   rtol=2e-2, atol=2e-3):
    n = len(X)
    scale = 1.0 / n
    total = model.forward_backward(X, y, loss, delta, tau, scale)
    grads = model.grads.copy()
    params = model.params  # a view: writes go straight into the model

    # The returned loss is the summed loss of the reference forward pass.
    out, _ = forward_ref(model, X, alpha)
    ref_total, _ = loss_ref(loss, out, y, delta, tau)
    assert total == pytest.approx(ref_total, rel=1e-4, abs=1e-4)

    idx = rng.choice(model.n_params, size=min(n_check, model.n_params), replace=False)
    for i in idx:
        old = params[i]
        params[i] = old + np.float32(H)
        up = float(params[i])
        lp = model.forward_backward(X, y, loss, delta, tau, scale)
        params[i] = old - np.float32(H)
        down = float(params[i])
        lm = model.forward_backward(X, y, loss, delta, tau, scale)
        params[i] = old
        fd = (lp - lm) / (up - down) * scale
        assert abs(grads[i] - fd) <= atol + rtol * abs(fd), (
            f"param {i}: analytic {grads[i]:.6g} vs finite difference {fd:.6g}")
    return grads


def _data(rng, n, d):
    return rng.normal(0.0, 1.0, size=(n, d)).astype(np.float32)


@pytest.mark.parametrize("batch", (1, 16), ids=("batch1", "batch16"))
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_single_dense_layer(rng, act, batch):
    alpha = 0.1
    model = _core.Sequential(6, [3], [act], leaky_alpha=alpha, seed=3)
    model.params[:] = rng.normal(0, 0.7, size=model.n_params).astype(np.float32)
    X = _data(rng, 4 * batch, 6)
    y = rng.normal(size=len(X)).astype(np.float32)
    keep = away_from_kinks(model, X, y, "squared", alpha)
    X, y = X[keep][:batch], y[keep][:batch]
    assert len(X) == batch
    check_gradient(model, X, y, "squared", rng, alpha=alpha)


MLP_CASES = [
    # (n_inputs, widths, activations, loss, kwargs)
    (5, [7, 6, 3], ["tanh", "relu", "identity"], "softmax", {}),
    (5, [7, 6, 3], ["gelu", "sigmoid", "identity"], "softmax", {}),
    (4, [8, 1], ["relu", "identity"], "logistic", {}),
    (4, [8, 1], ["leaky_relu", "identity"], "huber", {"delta": 0.5}),
    (4, [8, 1], ["tanh", "identity"], "pinball", {"tau": 0.8}),
    (3, [5, 4, 2], ["sigmoid", "gelu", "tanh"], "squared", {}),
]


@pytest.mark.parametrize("batch", (1, 12), ids=("batch1", "batch12"))
@pytest.mark.parametrize(("n_in", "widths", "acts", "loss", "kw"), MLP_CASES,
                         ids=lambda v: v if isinstance(v, str) else None)
def test_mlp(rng, n_in, widths, acts, loss, kw, batch):
    alpha = 0.05
    model = _core.Sequential(n_in, widths, acts, leaky_alpha=alpha, seed=11)
    # Non-zero biases so that their gradients are exercised away from the init values.
    model.params[:] += rng.normal(0, 0.1, size=model.n_params).astype(np.float32)
    X = _data(rng, 6 * batch, n_in)
    if loss == "softmax":
        y = rng.integers(0, widths[-1], size=len(X)).astype(np.float32)
    elif loss == "logistic":
        y = rng.integers(0, 2, size=len(X)).astype(np.float32)
    else:
        y = rng.normal(size=len(X)).astype(np.float32)
    keep = away_from_kinks(model, X, y, loss, alpha, kw.get("delta", 1.0))
    X, y = X[keep][:batch], y[keep][:batch]
    assert len(X) == batch
    check_gradient(model, X, y, loss, rng, alpha=alpha, n_check=60,
                   delta=kw.get("delta", 1.0), tau=kw.get("tau", 0.5))


def test_mlp_large_batch_uses_blas_path(rng):
    # 700 rows x 5 x 7 = 24.5k multiply-adds: forward and backward products take the BLAS path.
    model = _core.Sequential(5, [7, 6, 3], ["tanh", "tanh", "identity"], seed=5)
    X = _data(rng, 700, 5)
    y = rng.integers(0, 3, size=len(X)).astype(np.float32)
    check_gradient(model, X, y, "softmax", rng, n_check=30)


@pytest.mark.parametrize(("widths", "acts", "loss"), [
    ([7, 6, 3], ["tanh", "relu", "identity"], "softmax"),
    ([8, 1], ["gelu", "identity"], "logistic"),
    ([8, 1], ["leaky_relu", "identity"], "squared"),
])
def test_grads_is_the_mean_gradient(simd_target, rng, widths, acts, loss):
    """With grad_scale = 1/n, grads is the mean of the per-example gradients.

    Batch 1 takes the gemv/ger kernels and batch n the gemm path, so this also checks
    that the two backward paths agree.
    """
    n_in = 5
    model = _core.Sequential(n_in, widths, acts, seed=7)
    n = 9
    X = _data(rng, n, n_in)
    if loss == "softmax":
        y = rng.integers(0, widths[-1], size=n).astype(np.float32)
    elif loss == "logistic":
        y = rng.integers(0, 2, size=n).astype(np.float32)
    else:
        y = rng.normal(size=n).astype(np.float32)

    per_example = []
    totals = []
    for i in range(n):
        totals.append(model.forward_backward(X[i:i + 1], y[i:i + 1], loss, grad_scale=1.0))
        per_example.append(model.grads.copy())
    total = model.forward_backward(X, y, loss, grad_scale=1.0 / n)
    np.testing.assert_allclose(model.grads, np.mean(per_example, axis=0), rtol=1e-4, atol=1e-6)
    assert total == pytest.approx(sum(totals), rel=1e-5)

    # grad_scale = 1 gives the summed gradient; grads are overwritten, not accumulated.
    model.forward_backward(X, y, loss, grad_scale=1.0)
    np.testing.assert_allclose(model.grads, np.sum(per_example, axis=0), rtol=1e-4, atol=1e-5)
    model.forward_backward(X, y, loss, grad_scale=1.0)
    np.testing.assert_allclose(model.grads, np.sum(per_example, axis=0), rtol=1e-4, atol=1e-5)


def test_forward_matches_reference_and_layout(rng):
    model = _core.Sequential(5, [7, 6, 3], ["relu", "gelu", "identity"], seed=2)
    assert model.n_params == 5 * 7 + 7 + 7 * 6 + 6 + 6 * 3 + 3
    assert [(L["in"], L["out"]) for L in model.layers] == [(5, 7), (7, 6), (6, 3)]
    X = _data(rng, 300, 5)  # above the 256-row inference block
    out, _ = forward_ref(model, X, 0.01)
    np.testing.assert_allclose(model.forward(X), out, rtol=1e-4, atol=1e-5)
    # params is a live view: editing it changes the model's outputs.
    model.params[:] = 0.0
    np.testing.assert_array_equal(model.forward(X), 0.0)


def test_forward_backward_errors(rng):
    model = _core.Sequential(4, [3], ["identity"])
    X = _data(rng, 5, 4)
    with pytest.raises(ValueError, match="features"):
        model.forward_backward(_data(rng, 5, 3), np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="length"):
        model.forward_backward(X, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="at least one row"):
        model.forward_backward(X[:0], np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="unknown loss"):
        model.forward_backward(X, np.zeros(5, np.float32), "hinge")
    with pytest.raises(ValueError, match="class index"):
        model.forward_backward(X, np.full(5, 3, np.float32), "softmax")
    # Three outputs but a one-logit loss: an error, not a gradient with garbage in it.
    with pytest.raises(ValueError, match="logistic"):
        model.forward_backward(X, np.zeros(5, np.float32), "logistic")
    with pytest.raises(ValueError):
        _core.Sequential(4, [3, 2], ["relu"])
    with pytest.raises(ValueError, match="unknown init"):
        _core.Sequential(4, [3], ["relu"], init="orthogonal")
