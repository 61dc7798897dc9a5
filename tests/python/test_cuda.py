"""ducklearn.cuda: the CPU-only contract, argument checks, and the kernels on a real GPU.

Which tests run depends on the build and the machine:

* CPU-only build: every device call raises CudaUnavailableError naming DUCKLEARN_ENABLE_CUDA.
* CUDA build: argument checks (on stand-in __cuda_array_interface__ objects, no device needed);
  without a device, calls raise CudaUnavailableError instead of crashing.
* CUDA build and a device (``-m gpu``): kernels against numpy and the CPU optimizers. Gated
  twice: ``_core.HAS_CUDA``, then a visible device and an importable CuPy.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import ducklearn.cuda as dcuda
import numpy as np
import pytest
from ducklearn import _core, optim

HAS_CUDA = bool(_core.HAS_CUDA)

cpu_only = pytest.mark.skipif(HAS_CUDA, reason="checks the CPU-only build")
cuda_build = pytest.mark.skipif(not HAS_CUDA, reason="needs DUCKLEARN_ENABLE_CUDA=ON")
cuda_build_no_device = pytest.mark.skipif(
    not HAS_CUDA or dcuda.is_available(), reason="needs a CUDA build on a machine without a GPU"
)

ACTIVATIONS = ["identity", "relu", "leaky_relu", "tanh", "sigmoid", "gelu"]


class FakeDeviceArray:
    """Exports __cuda_array_interface__ without memory behind it: enough for the checks that
    run before anything touches a device."""

    def __init__(self, shape, typestr="<f4", strides=None, readonly=False, ptr=0x10000):
        self.__cuda_array_interface__ = {
            "shape": tuple(shape),
            "typestr": typestr,
            "strides": strides,
            "data": (ptr, readonly),
            "version": 3,
        }


# ---------------------------------------------------------------------------------------------
# Every build
# ---------------------------------------------------------------------------------------------


def test_import_does_not_import_cupy():
    code = (
        "import sys\n"
        "import ducklearn, ducklearn.cuda\n"
        "ducklearn.cuda.is_available()\n"
        "assert 'cupy' not in sys.modules, 'ducklearn imported cupy eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_compiled_flag_matches_build():
    assert _core.cuda.compiled() is HAS_CUDA
    assert isinstance(dcuda.is_available(), bool)
    if not HAS_CUDA:
        assert dcuda.is_available() is False


# ---------------------------------------------------------------------------------------------
# CPU-only build
# ---------------------------------------------------------------------------------------------

X32 = np.zeros((2, 3), dtype=np.float32)
W32 = np.zeros((4, 3), dtype=np.float32)

CPU_ONLY_CALLS: dict[str, Callable[[], object]] = {
    "cuda.device_count": dcuda.device_count,
    "cuda.dense_forward": lambda: dcuda.dense_forward(X32, W32),
    "cuda.DeviceOptimizer": lambda: dcuda.DeviceOptimizer(optim.Adam()),
    "_core.cuda.device_count": _core.cuda.device_count,
    "_core.cuda.dense_forward": lambda: _core.cuda.dense_forward(
        0, 1, 1, 0, 0, 1, 0, "relu", 0.01, 0
    ),
    "_core.cuda.optimizer_step": lambda: _core.cuda.optimizer_step(
        optim.SGD().to_config(), 0, 0, 0, 0, 1, 0
    ),
}


@cpu_only
@pytest.mark.parametrize("name", sorted(CPU_ONLY_CALLS))
def test_cpu_build_raises_cuda_unavailable(name, monkeypatch):
    # A None entry makes `import cupy` fail: the build check must come before CuPy.
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(_core.CudaUnavailableError, match="DUCKLEARN_ENABLE_CUDA=ON"):
        CPU_ONLY_CALLS[name]()


@cpu_only
def test_cpu_build_python_and_core_messages_agree():
    with pytest.raises(_core.CudaUnavailableError) as core_err:
        _core.cuda.device_count()
    with pytest.raises(_core.CudaUnavailableError) as py_err:
        dcuda.dense_forward(X32, W32)
    assert str(py_err.value) == str(core_err.value)
    assert "built without CUDA" in str(py_err.value)
    assert isinstance(py_err.value, RuntimeError)


# ---------------------------------------------------------------------------------------------
# CUDA build: argument checks (no device needed: they run before the device is touched)
# ---------------------------------------------------------------------------------------------


def _dense_args(**over):
    args = {
        "X": FakeDeviceArray((5, 3)),
        "W": FakeDeviceArray((4, 3)),
        "b": FakeDeviceArray((4,)),
        "activation": "relu",
    }
    args.update(over)
    return args


@cuda_build
@pytest.mark.parametrize(
    "over, error, match",
    [
        ({"X": X32}, TypeError, r"X must be a CuPy array.*cupy\.asarray\(X"),
        ({"W": [[1.0, 2.0, 3.0]]}, TypeError, "W must be a CuPy array"),
        ({"X": FakeDeviceArray((5, 3), typestr="<f8")}, TypeError, r"X must be float32.*astype"),
        ({"X": FakeDeviceArray((15,))}, ValueError, "X must be 2-D"),
        ({"W": FakeDeviceArray((4, 3, 1))}, ValueError, "W must be 2-D"),
        ({"X": FakeDeviceArray((5, 3), strides=(4, 20))}, ValueError, "X must be C-contiguous"),
        ({"X": FakeDeviceArray((5, 3), strides=(4,))}, ValueError, "1 strides for 2 dimensions"),
        ({"X": FakeDeviceArray((0, 3))}, ValueError, "at least one row"),
        ({"W": FakeDeviceArray((4, 2))}, ValueError, r"W has 2 columns but X has 3"),
        ({"b": FakeDeviceArray((5,))}, ValueError, r"b has 5 values but W has 4 rows"),
        ({"b": FakeDeviceArray((4, 1))}, ValueError, "b must be 1-D"),
        ({"activation": "swish"}, ValueError, "unknown activation 'swish'"),
        ({"alpha": float("nan")}, ValueError, "alpha must be a finite number"),
    ],
)
def test_dense_forward_rejects_bad_arguments(over, error, match):
    with pytest.raises(error, match=match):
        dcuda.dense_forward(**_dense_args(**over))


@cuda_build
def test_contiguity_ignores_strides_of_length_one_axes():
    # (1, 3) with an arbitrary row stride is still one contiguous run of floats.
    assert dcuda._c_contiguous((1, 3), (999, 4), 4)
    assert dcuda._c_contiguous((5, 3), (12, 4), 4)
    assert not dcuda._c_contiguous((5, 3), (4, 20), 4)
    assert not dcuda._c_contiguous((5, 3), (16, 4), 4)  # a padded row pitch


@cuda_build
def test_device_optimizer_rejects_bad_arguments():
    with pytest.raises(TypeError, match="ducklearn.optim.Optimizer"):
        dcuda.DeviceOptimizer("adam")
    adam = optim.Adam()
    adam.beta1 = 2.0  # set after the optimizer's own check; DeviceOptimizer validates again
    with pytest.raises(ValueError, match="beta1"):
        dcuda.DeviceOptimizer(adam)
    opt = dcuda.DeviceOptimizer(optim.Adam())
    with pytest.raises(ValueError, match="params is read-only"):
        opt.step(FakeDeviceArray((8,), readonly=True), FakeDeviceArray((8,)))
    with pytest.raises(ValueError, match="grads has 7 values but params has 8"):
        opt.step(FakeDeviceArray((8,)), FakeDeviceArray((7,)))
    with pytest.raises(TypeError, match="grads must be float32"):
        opt.step(FakeDeviceArray((8,)), FakeDeviceArray((8,), typestr="<f2"))
    with pytest.raises(TypeError, match="params must be a CuPy array"):
        opt.step(np.zeros(8, dtype=np.float32), FakeDeviceArray((8,)))
    with pytest.raises(ValueError, match="params is empty"):
        opt.step(FakeDeviceArray((0,)), FakeDeviceArray((0,)))
    assert opt.steps == 0 and opt.state == {}


# ---------------------------------------------------------------------------------------------
# CUDA build on a machine without a GPU
# ---------------------------------------------------------------------------------------------


@cuda_build_no_device
def test_cuda_build_without_device_raises_cuda_unavailable():
    assert dcuda.device_count() == 0
    assert dcuda.is_available() is False
    with pytest.raises(_core.CudaUnavailableError, match="no CUDA device"):
        dcuda.dense_forward(**_dense_args())
    with pytest.raises(_core.CudaUnavailableError, match="no CUDA device"):
        dcuda.DeviceOptimizer(optim.SGD()).step(FakeDeviceArray((8,)), FakeDeviceArray((8,)))
    # The core itself maps "no driver / no device" launch failures to the same type.
    with pytest.raises(_core.CudaUnavailableError, match="no usable CUDA device"):
        _core.cuda.dense_forward(0x1000, 1, 1, 0x2000, 0, 1, 0x3000, "relu", 0.01, 0)
    clip = optim.Adam(clip_norm=1.0).to_config()
    with pytest.raises(_core.CudaUnavailableError, match="no usable CUDA device"):
        _core.cuda.optimizer_step(clip, 0, 0x1000, 0x2000, 0x3000, 1, 0)


@cuda_build
def test_core_checks_arguments_before_touching_the_device():
    with pytest.raises(ValueError, match="X is a null pointer"):
        _core.cuda.dense_forward(0, 1, 1, 0x2000, 0, 1, 0x3000, "relu", 0.01, 0)
    with pytest.raises(ValueError, match="n \\(rows of X\\) must be >= 1"):
        _core.cuda.dense_forward(0x1000, 0, 1, 0x2000, 0, 1, 0x3000, "relu", 0.01, 0)
    with pytest.raises(ValueError, match="Y overlaps X"):
        _core.cuda.dense_forward(0x1000, 4, 4, 0x9000, 0, 4, 0x1010, "relu", 0.01, 0)
    with pytest.raises(ValueError, match="unknown activation"):
        _core.cuda.dense_forward(0x1000, 1, 1, 0x2000, 0, 1, 0x3000, "swish", 0.01, 0)
    adam = optim.Adam().to_config()
    with pytest.raises(ValueError, match="state is a null pointer"):
        _core.cuda.optimizer_step(adam, 0, 0x1000, 0x2000, 0, 4, 0)
    with pytest.raises(ValueError, match="params and grads overlap"):
        _core.cuda.optimizer_step(adam, 0, 0x1000, 0x1008, 0x3000, 4, 0)
    with pytest.raises(ValueError, match="step t must be >= 0"):
        _core.cuda.optimizer_step(adam, -1, 0x1000, 0x2000, 0x3000, 4, 0)
    bad = optim.Adam().to_config()
    bad.beta2 = 1.5
    with pytest.raises(ValueError, match="beta2"):
        _core.cuda.optimizer_step(bad, 0, 0x1000, 0x2000, 0x3000, 4, 0)


# ---------------------------------------------------------------------------------------------
# On a GPU
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def cp():
    """CuPy, when this build has CUDA (first gate) and a device is visible (second gate)."""
    if not HAS_CUDA:
        pytest.skip("ducklearn was built without CUDA")
    if not dcuda.is_available():
        pytest.skip("no CUDA device visible")
    return pytest.importorskip("cupy")


@pytest.fixture
def generic_simd():
    """The CPU reference on the portable kernels, which the device steps match bit for bit
    (the AVX2/AVX-512 builds let the compiler fuse multiply-adds)."""
    before = _core.backend_info()["simd_target"]
    assert _core.set_simd_target("generic")
    yield
    _core.set_simd_target(before)


def _reference_dense(X, W, b, activation, alpha):
    z = X.astype(np.float64) @ W.astype(np.float64).T
    if b is not None:
        z += b
    if activation == "relu":
        return np.maximum(z, 0.0)
    if activation == "leaky_relu":
        return np.where(z > 0, z, alpha * z)
    if activation == "tanh":
        return np.tanh(z)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if activation == "gelu":
        return 0.5 * z * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (z + 0.044715 * z**3)))
    return z


@pytest.mark.gpu
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_forward_matches_numpy_and_cpu(cp, rng, activation, with_bias):
    alpha = 0.2
    # Sizes straddle the 64-wide tiles and the 16-deep K slices on purpose.
    for n in (1, 7, 130):
        for d in (3, 65):
            for out in (1, 33, 129):
                X = rng.standard_normal((n, d)).astype(np.float32)
                W = (rng.standard_normal((out, d)) / np.sqrt(d)).astype(np.float32)
                b = rng.standard_normal(out).astype(np.float32) if with_bias else None
                Y = dcuda.dense_forward(
                    cp.asarray(X),
                    cp.asarray(W),
                    None if b is None else cp.asarray(b),
                    activation=activation,
                    alpha=alpha,
                )
                assert isinstance(Y, cp.ndarray)
                assert Y.shape == (n, out) and Y.dtype == cp.float32
                got = cp.asnumpy(Y)
                where = f"n={n} in={d} out={out}"
                np.testing.assert_allclose(
                    got,
                    _reference_dense(X, W, b, activation, alpha),
                    rtol=2e-5,
                    atol=2e-5,
                    err_msg=where,
                )
                cpu = _core.kernels.dense_forward(X, W, b, activation, alpha)
                np.testing.assert_allclose(got, cpu, rtol=2e-5, atol=2e-5, err_msg=where)


@pytest.mark.gpu
def test_dense_forward_large_on_a_side_stream(cp, rng):
    X = rng.standard_normal((1000, 300)).astype(np.float32)
    W = (rng.standard_normal((200, 300)) / np.sqrt(300)).astype(np.float32)
    b = rng.standard_normal(200).astype(np.float32)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        Y = dcuda.dense_forward(cp.asarray(X), cp.asarray(W), cp.asarray(b), activation="gelu")
    stream.synchronize()
    np.testing.assert_allclose(
        cp.asnumpy(Y), _reference_dense(X, W, b, "gelu", 0.01), rtol=1e-4, atol=1e-4
    )


@pytest.mark.gpu
def test_dense_forward_rejects_device_arrays_it_cannot_use(cp):
    X = cp.zeros((5, 4), dtype=cp.float32)
    W = cp.zeros((3, 4), dtype=cp.float32)
    with pytest.raises(TypeError, match="float32"):
        dcuda.dense_forward(X.astype(cp.float64), W)
    with pytest.raises(ValueError, match="C-contiguous"):
        dcuda.dense_forward(cp.zeros((5, 8), dtype=cp.float32)[:, ::2], W)
    with pytest.raises(ValueError, match="C-contiguous"):
        dcuda.dense_forward(X, cp.asfortranarray(W))


def _optimizer_cases() -> dict[str, Callable[[], optim.Optimizer]]:
    cosine = optim.Cosine(0.05, t_max=40, warmup_steps=5, min_lr=0.001)
    return {
        "sgd": lambda: optim.SGD(lr=0.05),
        "sgd-momentum-l2": lambda: optim.SGD(lr=0.05, momentum=0.9, l2=0.01),
        "sgd-nesterov-clip-decay": lambda: optim.SGD(
            lr=cosine, momentum=0.9, nesterov=True, weight_decay=0.1, clip_norm=1.0
        ),
        "sgd-clip": lambda: optim.SGD(lr=0.05, clip_norm=2.0),
        "adagrad": lambda: optim.AdaGrad(lr=0.1, initial_accumulator=0.1),
        "adagrad-clip-l2-decay": lambda: optim.AdaGrad(
            lr=cosine, l2=0.01, weight_decay=0.05, clip_norm=3.0
        ),
        "rmsprop": lambda: optim.RMSProp(lr=0.01),
        "rmsprop-clip-l2-decay": lambda: optim.RMSProp(
            lr=0.01, l2=0.01, weight_decay=0.05, clip_norm=1.0
        ),
        "adam": lambda: optim.Adam(lr=0.01),
        "adam-clip-l2": lambda: optim.Adam(
            lr=optim.StepDecay(0.01, step_size=10, gamma=0.5), l2=0.01, clip_norm=2.0
        ),
        "adamw": lambda: optim.AdamW(lr=0.01),
        "adamw-clip-decay": lambda: optim.AdamW(lr=cosine, weight_decay=0.1, clip_norm=1.0),
    }


OPTIMIZER_CASES = _optimizer_cases()


def _run_both(cp, rng, make, n, steps=50, shape=None):
    """Step a CPU optimizer and a DeviceOptimizer on the same gradients."""
    p_cpu = rng.standard_normal(n).astype(np.float32)
    p_dev = cp.asarray(p_cpu if shape is None else p_cpu.reshape(shape))
    cpu, dev = make(), dcuda.DeviceOptimizer(make())
    for t in range(steps):
        # Every third step is small, so clipping both triggers and does not.
        g = (rng.standard_normal(n) * (0.01 if t % 3 == 0 else 1.0)).astype(np.float32)
        lr_cpu = cpu.step(p_cpu, g)
        lr_dev = dev.step(p_dev, cp.asarray(g if shape is None else g.reshape(shape)))
        assert lr_dev == lr_cpu
    return cpu, dev, p_cpu, cp.asnumpy(p_dev).ravel()


@pytest.mark.gpu
@pytest.mark.parametrize("case", sorted(OPTIMIZER_CASES))
def test_device_optimizer_matches_cpu_over_50_steps(cp, rng, generic_simd, case):
    n = 1031  # several blocks plus a ragged tail
    cpu, dev, p_cpu, p_dev = _run_both(cp, rng, OPTIMIZER_CASES[case], n)
    assert dev.steps == cpu.steps == 50
    assert dev.current_lr == cpu.current_lr
    np.testing.assert_allclose(p_dev, p_cpu, rtol=1e-6, atol=1e-7)
    cpu_state, dev_state = cpu.state, dev.state
    assert sorted(dev_state) == sorted(cpu_state)
    for name, values in cpu_state.items():
        np.testing.assert_allclose(
            cp.asnumpy(dev_state[name]), values, rtol=1e-6, atol=1e-7, err_msg=name
        )


@pytest.mark.gpu
@pytest.mark.parametrize("case", ["sgd-nesterov-clip-decay", "adagrad", "rmsprop", "adamw"])
def test_device_optimizer_close_to_the_active_cpu_kernels(cp, rng, case):
    # Whatever SIMD target runs here (FMA contraction moves the last bits, never more).
    _, _, p_cpu, p_dev = _run_both(cp, rng, OPTIMIZER_CASES[case], 4099)
    np.testing.assert_allclose(p_dev, p_cpu, rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
def test_device_optimizer_updates_nd_arrays_in_place_on_a_side_stream(cp, rng, generic_simd):
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        _, _, p_cpu, p_dev = _run_both(
            cp, rng, OPTIMIZER_CASES["adam-clip-l2"], 33 * 31, steps=10, shape=(33, 31)
        )
    stream.synchronize()
    np.testing.assert_allclose(p_dev, p_cpu, rtol=1e-6, atol=1e-7)


@pytest.mark.gpu
def test_device_optimizer_refuses_non_finite_gradients(cp):
    dev = dcuda.DeviceOptimizer(optim.Adam(lr=0.1))
    p = cp.ones(16, dtype=cp.float32)
    dev.step(p, cp.full(16, 0.5, dtype=cp.float32))
    before_p, before_state = p.copy(), dev.state
    bad = cp.full(16, 0.5, dtype=cp.float32)
    bad[3] = cp.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        dev.step(p, bad)
    assert dev.steps == 1
    cp.testing.assert_array_equal(p, before_p)
    for name, values in dev.state.items():
        cp.testing.assert_array_equal(values, before_state[name])


@pytest.mark.gpu
def test_device_optimizer_size_is_fixed_until_reset(cp):
    dev = dcuda.DeviceOptimizer(optim.AdaGrad(initial_accumulator=0.25), check_finite=False)
    p = cp.zeros(8, dtype=cp.float32)
    assert dev.step(p, cp.ones(8, dtype=cp.float32)) == pytest.approx(0.01)
    assert dev.size == 8
    # AdaGrad's accumulator starts at initial_accumulator, then adds g**2 = 1.
    cp.testing.assert_allclose(dev.state["sum_sq"], cp.full(8, 1.25, dtype=cp.float32))
    with pytest.raises(ValueError, match="sized for 8 parameters but got 9"):
        dev.step(cp.zeros(9, dtype=cp.float32), cp.ones(9, dtype=cp.float32))
    dev.reset()
    assert dev.steps == 0 and dev.state == {}
    dev.step(cp.zeros(9, dtype=cp.float32), cp.ones(9, dtype=cp.float32))
    assert dev.size == 9
