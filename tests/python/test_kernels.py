"""Kernels in ``_core.kernels`` against float64 numpy references.

Every SIMD-dispatched kernel runs under each target this CPU supports (the ``simd_target``
fixture), over sizes that are not multiples of any vector width.
"""

from __future__ import annotations

import numpy as np
import pytest
from ducklearn import _core

K = _core.kernels

SIZES = (1, 3, 17, 33, 257)
ACTIVATIONS = ("identity", "relu", "leaky_relu", "tanh", "sigmoid", "gelu")
GELU_C = np.sqrt(2.0 / np.pi)
GELU_A = 0.044715
ALPHA = 0.2  # leaky slope used in the tests (not the 0.01 default, so that it is seen)


# ---------------------------------------------------------------------------------------------
# float64 references
# ---------------------------------------------------------------------------------------------


def act_ref(name: str, z: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    if name == "identity":
        return z.copy()
    if name == "relu":
        return np.where(z > 0, z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, alpha * z)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic
    if name == "gelu":
        return 0.5 * z * (1.0 + np.tanh(GELU_C * (z + GELU_A * z**3)))
    raise AssertionError(name)


def act_grad_ref(name: str, z: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    if name == "identity":
        return np.ones_like(z)
    if name == "relu":
        return np.where(z > 0, 1.0, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, alpha)
    if name == "tanh":
        return 1.0 - np.tanh(z) ** 2
    if name == "sigmoid":
        s = act_ref("sigmoid", z)
        return s * (1.0 - s)
    if name == "gelu":
        t = np.tanh(GELU_C * (z + GELU_A * z**3))
        return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * GELU_A * z * z)
    raise AssertionError(name)


def softmax_ref(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def loss_ref(name: str, P: np.ndarray, y: np.ndarray, delta: float = 1.0,
             tau: float = 0.5) -> tuple[float, np.ndarray]:
    """Summed loss and dL/dP in float64, straight from the textbook formulas."""
    P = np.asarray(P, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if name == "logistic":
        z = P[:, 0]
        total = np.sum(np.logaddexp(0.0, z) - y * z)
        return float(total), (act_ref("sigmoid", z) - y)[:, None]
    if name == "softmax":
        c = y.astype(np.int64)
        m = P.max(axis=1, keepdims=True)
        lse = (m + np.log(np.exp(P - m).sum(axis=1, keepdims=True)))[:, 0]
        total = np.sum(lse - P[np.arange(len(c)), c])
        grad = softmax_ref(P)
        grad[np.arange(len(c)), c] -= 1.0
        return float(total), grad
    r = P - y[:, None]
    if name == "squared":
        return float(np.sum(0.5 * r * r)), r
    if name == "huber":
        a = np.abs(r)
        total = np.sum(np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta)))
        return float(total), np.where(a <= delta, r, delta * np.sign(r))
    if name == "pinball":
        u = -r  # y - p
        total = np.sum(np.where(u >= 0, tau * u, (tau - 1.0) * u))
        return float(total), np.where(u > 0, -tau, np.where(u < 0, 1.0 - tau, 0.0))
    raise AssertionError(name)


# ---------------------------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------------------------


def _inputs(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.normal(0.0, 3.0, size=n).astype(np.float32)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activation_forward_matches_reference(simd_target, rng, act, n):
    z = _inputs(rng, n)
    a = K.activation_forward(act, z, ALPHA)
    assert a.dtype == np.float32 and a.shape == z.shape
    np.testing.assert_allclose(a, act_ref(act, z), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activation_forward_extremes(simd_target, act):
    z = np.array([-100, -50, -30, -10, -1e-3, -0.0, 0.0, 1e-3, 0.5, 0.7, 10, 30, 50, 100],
                 dtype=np.float32)
    a = K.activation_forward(act, z, ALPHA)
    assert np.isfinite(a).all()
    np.testing.assert_allclose(a, act_ref(act, z), rtol=1e-5, atol=1e-6)


def test_activation_keeps_shape_and_default_alpha(simd_target, rng):
    z = rng.normal(size=(5, 7)).astype(np.float32)
    a = K.activation_forward("leaky_relu", z)
    assert a.shape == (5, 7)
    np.testing.assert_allclose(a, act_ref("leaky_relu", z, 0.01), rtol=1e-6, atol=1e-7)
    # Non-float32 and non-contiguous inputs are converted (read-only inputs).
    z64 = rng.normal(size=(7, 5))
    np.testing.assert_allclose(K.activation_forward("tanh", z64.T), np.tanh(z64.T),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activation_backward_matches_finite_differences(simd_target, rng, act, n):
    z = _inputs(rng, n)
    h = 1e-2
    if act in ("relu", "leaky_relu"):
        # Keep away from the kink at 0, where the central difference straddles two slopes.
        z = np.where(np.abs(z) < 4 * h, z + np.float32(8 * h), z).astype(np.float32)
    da = rng.normal(size=n).astype(np.float32)
    dz = K.activation_backward(act, z, da, ALPHA)
    assert dz.dtype == np.float32 and dz.shape == z.shape

    # 1. Against the float64 reference's own central difference (tight).
    h64 = 1e-6
    fd64 = (act_ref(act, z.astype(np.float64) + h64) - act_ref(act, z.astype(np.float64) - h64))
    fd64 /= 2 * h64
    np.testing.assert_allclose(dz, da * fd64, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dz, da * act_grad_ref(act, z), rtol=1e-5, atol=1e-6)

    # 2. Against a central difference of the kernel's own forward in float32 (loose): the
    # forward and backward kernels agree with each other, not just with the formulas.
    zp = (z + np.float32(h)).astype(np.float32)
    zm = (z - np.float32(h)).astype(np.float32)
    fd = (K.activation_forward(act, zp, ALPHA).astype(np.float64)
          - K.activation_forward(act, zm, ALPHA)) / (zp.astype(np.float64) - zm)
    np.testing.assert_allclose(dz, da * fd, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activation_backward_extremes(simd_target, act):
    z = np.array([-100, -30, -10, -0.7, -0.3, 0.3, 0.7, 10, 30, 100], dtype=np.float32)
    da = np.linspace(-2, 2, z.size).astype(np.float32)
    dz = K.activation_backward(act, z, da, ALPHA)
    assert np.isfinite(dz).all()
    np.testing.assert_allclose(dz, da * act_grad_ref(act, z), rtol=1e-5, atol=1e-6)


def test_relu_subgradient_at_zero_is_zero(simd_target):
    z = np.zeros(5, dtype=np.float32)
    da = np.ones(5, dtype=np.float32)
    np.testing.assert_array_equal(K.activation_backward("relu", z, da), 0.0)
    np.testing.assert_allclose(K.activation_backward("leaky_relu", z, da, 0.3), 0.3)


def test_activation_aliases_and_errors():
    z = np.linspace(-3, 3, 11, dtype=np.float32)
    np.testing.assert_array_equal(K.activation_forward("linear", z), z)
    np.testing.assert_array_equal(K.activation_forward("logistic", z),
                                  K.activation_forward("sigmoid", z))
    with pytest.raises(ValueError, match="unknown activation 'swish'.*relu"):
        K.activation_forward("swish", z)
    with pytest.raises(ValueError, match="same shape"):
        K.activation_backward("tanh", z, z[:5])
    with pytest.raises(TypeError):
        K.activation_forward("relu", "not an array")


# ---------------------------------------------------------------------------------------------
# softmax
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cols", SIZES)
@pytest.mark.parametrize("rows", (1, 3, 17))
def test_softmax_rows_match_numpy(rng, rows, cols):
    z = rng.normal(0, 4, size=(rows, cols)).astype(np.float32)
    p = K.softmax(z)
    assert p.shape == z.shape and p.dtype == np.float32
    np.testing.assert_allclose(p, softmax_ref(z), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)


def test_softmax_is_shift_invariant_and_stable(rng):
    z = rng.normal(size=(4, 9)).astype(np.float32)
    big = (z + np.float32(1000)).astype(np.float32)
    p = K.softmax(big)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p, softmax_ref(z), rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(K.softmax(np.array([[-1e4, 0.0, 1e4]])), [[0, 0, 1]], atol=1e-7)


def test_softmax_errors():
    with pytest.raises(ValueError, match="2-D"):
        K.softmax(np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="at least one column"):
        K.softmax(np.zeros((2, 0), dtype=np.float32))


# ---------------------------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------------------------


def _loss_case(rng: np.random.Generator, name: str, n: int, k: int, delta: float,
               tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and targets whose residuals stay at least 0.05 away from any kink."""
    if name == "logistic":
        P = rng.normal(0, 3, size=(n, 1)).astype(np.float32)
        y = rng.integers(0, 2, size=n).astype(np.float32)
        return P, y
    if name == "softmax":
        P = rng.normal(0, 2, size=(n, k)).astype(np.float32)
        y = rng.integers(0, k, size=n).astype(np.float32)
        return P, y
    y = rng.normal(0, 2, size=n).astype(np.float32)
    mag = rng.uniform(0.05, 3.0, size=(n, k))
    if name == "huber":  # |r| not within 0.05 of delta
        mag = np.where(np.abs(mag - delta) < 0.05, mag + 0.1, mag)
    r = mag * rng.choice([-1.0, 1.0], size=(n, k))
    return (y[:, None] + r).astype(np.float32), y


LOSS_CASES = [
    ("logistic", 1, {}),
    ("softmax", 3, {}),
    ("softmax", 17, {}),
    ("squared", 1, {}),
    ("squared", 3, {}),
    ("huber", 1, {"delta": 1.0}),
    ("huber", 2, {"delta": 0.3}),
    ("pinball", 1, {"tau": 0.5}),
    ("pinball", 3, {"tau": 0.9}),
    ("pinball", 1, {"tau": 0.1}),
]


@pytest.mark.parametrize("n", (1, 3, 17, 33))
@pytest.mark.parametrize(("name", "k", "kw"), LOSS_CASES)
def test_loss_value_and_gradient_match_reference(rng, name, k, kw, n):
    delta, tau = kw.get("delta", 1.0), kw.get("tau", 0.5)
    P, y = _loss_case(rng, name, n, k, delta, tau)
    total, grad = K.loss(name, P, y, delta=delta, tau=tau)
    ref_total, ref_grad = loss_ref(name, P, y, delta, tau)
    assert grad.shape == P.shape and grad.dtype == np.float32
    assert total == pytest.approx(ref_total, rel=1e-6, abs=1e-6)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("name", "k", "kw"), LOSS_CASES)
def test_loss_gradient_matches_finite_differences(rng, name, k, kw):
    delta, tau = kw.get("delta", 1.0), kw.get("tau", 0.5)
    n = 5
    P, y = _loss_case(rng, name, n, k, delta, tau)
    _, grad = K.loss(name, P, y, delta=delta, tau=tau)
    h = np.float32(1e-3)
    fd = np.zeros(P.shape)
    for idx in np.ndindex(P.shape):
        Pp, Pm = P.copy(), P.copy()
        Pp[idx] += h
        Pm[idx] -= h
        step = float(Pp[idx]) - float(Pm[idx])  # the float32 step actually taken
        lp, _ = K.loss(name, Pp, y, delta=delta, tau=tau)
        lm, _ = K.loss(name, Pm, y, delta=delta, tau=tau)
        fd[idx] = (lp - lm) / step
    np.testing.assert_allclose(grad, fd, rtol=1e-3, atol=1e-4)


def test_loss_scale_multiplies_gradient_only(rng):
    P, y = _loss_case(rng, "huber", 7, 2, 1.0, 0.5)
    total1, g1 = K.loss("huber", P, y)
    total2, g2 = K.loss("huber", P, y, scale=0.25)
    assert total2 == total1
    np.testing.assert_allclose(g2, 0.25 * g1, rtol=1e-6)


def test_logistic_loss_is_stable_for_large_logits():
    P = np.array([[-80.0], [-30.0], [30.0], [80.0]], dtype=np.float32)
    y = np.array([1, 0, 1, 0], dtype=np.float32)
    total, grad = K.loss("logistic", P, y)
    # softplus(-80) - 80*... : the two wrong-side examples each cost about |z|.
    assert total == pytest.approx(80.0 + 80.0, rel=1e-6)
    np.testing.assert_allclose(grad[:, 0], [-1.0, 0.0, 0.0, 1.0], atol=1e-6)


def test_pinball_subgradient_at_zero_residual():
    P = np.array([[1.0], [2.0]], dtype=np.float32)
    y = np.array([1.0, 2.0], dtype=np.float32)
    total, grad = K.loss("pinball", P, y, tau=0.3)
    assert total == 0.0
    np.testing.assert_array_equal(grad, 0.0)


def test_loss_aliases():
    P = np.array([[0.3, -1.0, 2.0]], dtype=np.float32)
    y = np.array([2.0], dtype=np.float32)
    assert K.loss("cross_entropy", P, y)[0] == K.loss("softmax", P, y)[0]
    assert K.loss("squared_error", P, y)[0] == K.loss("squared", P, y)[0]
    assert K.loss("quantile", P, y, tau=0.2)[0] == K.loss("pinball", P, y, tau=0.2)[0]
    P1, y1 = P[:, :1], np.array([1.0], dtype=np.float32)
    logistic = K.loss("logistic", P1, y1)[0]
    assert K.loss("log", P1, y1)[0] == K.loss("log_loss", P1, y1)[0] == logistic


def test_loss_errors():
    P = np.zeros((3, 2), dtype=np.float32)
    y = np.zeros(3, dtype=np.float32)
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        K.loss("hinge", P, y)
    with pytest.raises(ValueError, match="delta"):
        K.loss("huber", P, y, delta=0.0)
    with pytest.raises(ValueError, match="tau"):
        K.loss("pinball", P, y, tau=1.0)
    with pytest.raises(ValueError, match="tau"):
        K.loss("pinball", P, y, tau=0.0)
    with pytest.raises(ValueError, match="rows"):
        K.loss("squared", P, y[:2])
    with pytest.raises(ValueError, match="class index"):
        K.loss("softmax", P, np.array([0, 2, 1], dtype=np.float32))  # 2 outside [0, 2)
    with pytest.raises(ValueError, match="class index"):
        K.loss("softmax", P, np.array([0, 0.5, 1], dtype=np.float32))
    with pytest.raises(ValueError, match="class index"):
        K.loss("softmax", P, np.array([0, -1, 1], dtype=np.float32))
    # Logistic reads one logit per row; more columns used to leave garbage in the gradient.
    with pytest.raises(ValueError, match="logistic"):
        K.loss("logistic", P, y)


# ---------------------------------------------------------------------------------------------
# dense_forward, gemm, dot
# ---------------------------------------------------------------------------------------------


def dense_ref(X, W, b, act, alpha=ALPHA):
    Z = np.asarray(X, np.float64) @ np.asarray(W, np.float64).T
    if b is not None:
        Z = Z + np.asarray(b, np.float64)
    return act_ref(act, Z, alpha)


# (n, in, out); the last three are above the 16k multiply-add BLAS threshold.
DENSE_SHAPES = [(1, 3, 1), (3, 17, 5), (17, 33, 3), (2, 257, 17), (5, 1, 33),
                (33, 33, 17), (257, 17, 5), (64, 257, 3)]


@pytest.mark.parametrize("bias", (True, False), ids=("bias", "nobias"))
@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("shape", DENSE_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_dense_forward_batch_matches_numpy(simd_target, rng, shape, act, bias):
    n, d_in, d_out = shape
    X = rng.normal(size=(n, d_in)).astype(np.float32)
    W = (rng.normal(size=(d_out, d_in)) / np.sqrt(d_in)).astype(np.float32)
    b = rng.normal(size=d_out).astype(np.float32) if bias else None
    Y = K.dense_forward(X, W, b, act, ALPHA)
    assert Y.shape == (n, d_out) and Y.dtype == np.float32
    np.testing.assert_allclose(Y, dense_ref(X, W, b, act), rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("bias", (True, False), ids=("bias", "nobias"))
@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize(("d_in", "d_out"), [(1, 1), (3, 17), (17, 3), (33, 5), (257, 33)])
def test_dense_forward_single_row_matches_numpy(simd_target, rng, d_in, d_out, act, bias):
    x = rng.normal(size=d_in).astype(np.float32)
    W = (rng.normal(size=(d_out, d_in)) / np.sqrt(d_in)).astype(np.float32)
    b = rng.normal(size=d_out).astype(np.float32) if bias else None
    y = K.dense_forward(x, W, b, act, ALPHA)
    assert y.shape == (d_out,)
    np.testing.assert_allclose(y, dense_ref(x[None, :], W, b, act)[0], rtol=1e-4, atol=2e-5)
    # The batch-1 kernel and the batch kernel agree row by row.
    Y = K.dense_forward(np.stack([x, x]), W, b, act, ALPHA)
    np.testing.assert_allclose(Y[1], y, rtol=1e-5, atol=1e-6)


def test_dense_forward_errors(rng):
    W = np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="features"):
        K.dense_forward(np.zeros((2, 5), np.float32), W)
    with pytest.raises(ValueError, match="features"):
        K.dense_forward(np.zeros(5, np.float32), W)
    with pytest.raises(ValueError, match="b must have"):
        K.dense_forward(np.zeros((2, 4), np.float32), W, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="2-D"):
        K.dense_forward(np.zeros((2, 2, 4), np.float32), W)
    with pytest.raises(ValueError, match="unknown activation"):
        K.dense_forward(np.zeros((2, 4), np.float32), W, None, "softplus")


# (m, n, k): first four below 16k multiply-adds, the others above (BLAS path).
GEMM_SHAPES = [(1, 1, 1), (3, 17, 5), (17, 3, 33), (33, 17, 1), (1, 257, 33),
               (17, 33, 33), (257, 3, 33), (33, 257, 17), (64, 64, 64)]


@pytest.mark.parametrize("trans_b", (False, True), ids=("B", "Bt"))
@pytest.mark.parametrize("trans_a", (False, True), ids=("A", "At"))
@pytest.mark.parametrize("shape", GEMM_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gemm_matches_numpy(simd_target, rng, shape, trans_a, trans_b):
    m, n, k = shape
    A = rng.normal(size=(k, m) if trans_a else (m, k)).astype(np.float32)
    B = rng.normal(size=(n, k) if trans_b else (k, n)).astype(np.float32)
    alpha = 0.75
    C = K.gemm(A, B, trans_a, trans_b, alpha)
    assert C.shape == (m, n) and C.dtype == np.float32
    opA = A.astype(np.float64).T if trans_a else A.astype(np.float64)
    opB = B.astype(np.float64).T if trans_b else B.astype(np.float64)
    np.testing.assert_allclose(C, alpha * opA @ opB, rtol=1e-4, atol=1e-5 * np.sqrt(k))


def test_gemm_accepts_non_contiguous_inputs(rng):
    A = rng.normal(size=(9, 7))
    B = rng.normal(size=(9, 5))
    # A.T is Fortran-ordered float64: converted, not misread.
    np.testing.assert_allclose(K.gemm(A.T, B), A.T @ B, rtol=1e-5, atol=1e-5)


def test_gemm_errors():
    with pytest.raises(ValueError, match="inner dimensions"):
        K.gemm(np.zeros((2, 3), np.float32), np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match="inner dimensions"):
        K.gemm(np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32), trans_a=True)
    with pytest.raises(ValueError, match="2-D"):
        K.gemm(np.zeros(3, np.float32), np.zeros((3, 2), np.float32))


@pytest.mark.parametrize("n", (*SIZES, 1000))
def test_dot_matches_numpy(simd_target, rng, n):
    x = rng.normal(size=n).astype(np.float32)
    y = rng.normal(size=n).astype(np.float32)
    ref = float(x.astype(np.float64) @ y.astype(np.float64))
    assert K.dot(x, y) == pytest.approx(ref, rel=1e-5, abs=1e-5 * np.sqrt(n))


def test_dot_errors():
    with pytest.raises(ValueError, match="same shape"):
        K.dot(np.zeros(3, np.float32), np.zeros(4, np.float32))
