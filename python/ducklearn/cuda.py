"""GPU entry points on device arrays (optional: needs a CUDA build and a CUDA device).

Arrays are recognised by ``__cuda_array_interface__``, so CuPy arrays work, and so does any
other producer of that protocol (PyTorch CUDA tensors, Numba device arrays). Results are
CuPy arrays. CuPy is imported only when a device call runs, never by ``import ducklearn``.

Work is queued on CuPy's current stream of the arrays' device and is not waited for, so
results are ordered with the caller's own CuPy work; a fault inside a kernel surfaces at
the next synchronization.

A build without CUDA keeps every name: :func:`is_available` returns ``False`` and the rest
raise ``ducklearn._core.CudaUnavailableError`` saying how to rebuild.

>>> import ducklearn.cuda
>>> isinstance(ducklearn.cuda.is_available(), bool)
True
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

from ducklearn import _core
from ducklearn.optim import Optimizer

__all__ = ["is_available", "device_count", "dense_forward", "DeviceOptimizer"]

CudaUnavailableError = _core.CudaUnavailableError

# Kept identical to the CPU-only stubs in cpp/src/cuda_stubs.cpp (a test compares them), so
# the error reads the same whichever layer notices first.
_NO_CUDA_BUILD = (
    "ducklearn was built without CUDA; rebuild with -DDUCKLEARN_ENABLE_CUDA=ON "
    "(pip install . -Ccmake.define.DUCKLEARN_ENABLE_CUDA=ON) on a machine with nvcc"
)
_ACTIVATIONS = ("identity", "linear", "relu", "leaky_relu", "tanh", "sigmoid", "logistic", "gelu")


def _require_build() -> None:
    """Raise before anything touches CuPy or the driver when the core has no CUDA."""
    if not _core.HAS_CUDA:
        raise CudaUnavailableError(_NO_CUDA_BUILD)


def _require_device() -> None:
    if _core.cuda.device_count() < 1:
        raise CudaUnavailableError(
            "no CUDA device is visible to this process (check the driver with nvidia-smi and "
            "CUDA_VISIBLE_DEVICES); ducklearn.cuda.is_available() says whether one is"
        )


def _cupy() -> Any:
    try:
        import cupy
    except ImportError as exc:
        raise ModuleNotFoundError(
            "ducklearn.cuda allocates its results with CuPy, which is not installed; "
            "install it with: pip install 'ducklearn[gpu]'"
        ) from exc
    return cupy


def is_available() -> bool:
    """True when this build has CUDA and at least one CUDA device is visible.

    Never raises: a missing driver or a broken CUDA install counts as "not available".
    The array functions also need CuPy (``pip install 'ducklearn[gpu]'``).
    """
    if not _core.HAS_CUDA:
        return False
    try:
        return _core.cuda.device_count() > 0
    except (_core.CudaUnavailableError, _core.DucklearnError):
        return False


def device_count() -> int:
    """Number of visible CUDA devices (0 without a driver or GPU).

    Raises ``CudaUnavailableError`` in a build without CUDA.
    """
    _require_build()
    return int(_core.cuda.device_count())


# ---------------------------------------------------------------------------------------------
# __cuda_array_interface__ checks
# ---------------------------------------------------------------------------------------------


class _DeviceArray(NamedTuple):
    name: str
    ptr: int
    shape: tuple[int, ...]
    size: int
    stream: int | None  # CAI v3: the producer's stream, None when no wait is needed


def _c_contiguous(shape: tuple[int, ...], strides: tuple[int, ...], itemsize: int) -> bool:
    expected = itemsize
    for dim, stride in zip(reversed(shape), reversed(strides), strict=True):
        if dim != 1 and stride != expected:  # a length-1 axis may carry any stride
            return False
        expected *= dim
    return True


def _device_array(
    obj: Any, name: str, ndim: int | None, *, writeable: bool = False
) -> _DeviceArray:
    """Validate ``obj`` as a C-contiguous float32 device array; messages name the fix."""
    iface = getattr(obj, "__cuda_array_interface__", None)
    if not isinstance(iface, dict):
        raise TypeError(
            f"{name} must be a CuPy array (an object with __cuda_array_interface__), got "
            f"{type(obj).__name__}; try cupy.asarray({name}, dtype=cupy.float32)"
        )
    shape = tuple(int(s) for s in iface["shape"])
    typestr = iface["typestr"]
    if typestr not in ("<f4", "=f4"):
        raise TypeError(
            f"{name} must be float32, got typestr {typestr!r}; try {name}.astype(cupy.float32)"
        )
    if ndim is not None and len(shape) != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {shape}")
    strides = iface.get("strides")
    if strides is not None and len(strides) != len(shape):
        raise ValueError(
            f"{name}.__cuda_array_interface__ has {len(strides)} strides for "
            f"{len(shape)} dimensions"
        )
    if strides is not None and not _c_contiguous(shape, tuple(strides), 4):
        raise ValueError(f"{name} must be C-contiguous; try cupy.ascontiguousarray({name})")
    if iface.get("mask") is not None:
        raise ValueError(f"{name} has a mask; pass the unmasked data as a plain array")
    ptr, readonly = iface["data"]
    if writeable and readonly:
        raise ValueError(
            f"{name} is read-only and would be updated in place; pass a writeable array "
            f"(e.g. {name}.copy())"
        )
    return _DeviceArray(name, int(ptr), shape, math.prod(shape), iface.get("stream"))


def _device_of(cp: Any, arrays: list[_DeviceArray]) -> int:
    """The one device holding every array (kernels run there)."""
    devices = {}
    for a in arrays:
        attrs = cp.cuda.runtime.pointerGetAttributes(a.ptr)
        dev = int(attrs.device)
        if dev < 0 or getattr(attrs, "type", -1) == 0:  # 0: cudaMemoryTypeUnregistered (host)
            raise ValueError(f"{a.name} does not point to CUDA device memory")
        devices[a.name] = dev
    if len(set(devices.values())) > 1:
        where = ", ".join(f"{k} on device {v}" for k, v in devices.items())
        raise ValueError(f"arrays must be on one device, got {where}; copy them to one device")
    return next(iter(devices.values()))


def _wait_for_producers(cp: Any, stream: Any, arrays: list[_DeviceArray]) -> None:
    """CAI v3: data written on another stream may still be in flight; order our stream
    after it without blocking the host."""
    for a in arrays:
        s = a.stream
        if s is None or s == stream.ptr or (s == 1 and stream.ptr == 0):  # 1: legacy default
            continue
        stream.wait_event(cp.cuda.ExternalStream(s).record())


# ---------------------------------------------------------------------------------------------
# Dense layer
# ---------------------------------------------------------------------------------------------


def dense_forward(
    X: Any, W: Any, b: Any = None, activation: str = "identity", alpha: float = 0.01
) -> Any:
    """``act(X @ W.T + b)`` on the GPU in one fused kernel.

    Parameters
    ----------
    X : device array, float32, C-contiguous, shape (n, in_features)
    W : device array, float32, C-contiguous, shape (out_features, in_features)
    b : device array, float32, shape (out_features,), optional
    activation : str
        ``"identity"``, ``"relu"``, ``"leaky_relu"``, ``"tanh"``, ``"sigmoid"`` or ``"gelu"``
        (tanh approximation), the same formulas as the CPU kernels.
    alpha : float
        Negative slope of ``leaky_relu``.

    Returns
    -------
    cupy.ndarray
        A new float32 array of shape (n, out_features) on the inputs' device.
    """
    _require_build()
    x = _device_array(X, "X", 2)
    w = _device_array(W, "W", 2)
    n, d = x.shape
    out, d_w = w.shape
    if n == 0 or d == 0:
        raise ValueError(f"X must have at least one row and one column, got shape {x.shape}")
    if out == 0:
        raise ValueError(f"W must have at least one row (output), got shape {w.shape}")
    if d_w != d:
        raise ValueError(
            f"W has {d_w} columns but X has {d}; W must have shape (out_features, {d})"
        )
    arrays = [x, w]
    if b is not None:
        bias = _device_array(b, "b", 1)
        if bias.size != out:
            raise ValueError(
                f"b has {bias.size} values but W has {out} rows; b must have shape ({out},)"
            )
        arrays.append(bias)
    if not isinstance(activation, str) or activation not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; use one of {', '.join(_ACTIVATIONS)}")
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not math.isfinite(alpha):
        raise ValueError(f"alpha must be a finite number, got {alpha!r}")
    _require_device()
    cp = _cupy()
    with cp.cuda.Device(_device_of(cp, arrays)):
        stream = cp.cuda.get_current_stream()
        _wait_for_producers(cp, stream, arrays)
        Y = cp.empty((n, out), dtype=cp.float32)
        _core.cuda.dense_forward(
            x.ptr,
            n,
            d,
            w.ptr,
            arrays[2].ptr if b is not None else 0,
            out,
            Y.data.ptr,
            activation,
            float(alpha),
            stream.ptr,
        )
    return Y


# ---------------------------------------------------------------------------------------------
# Optimizer
# ---------------------------------------------------------------------------------------------


class DeviceOptimizer:
    """Runs a :mod:`ducklearn.optim` optimizer on a device array, updated in place.

    The update rules, learning-rate schedule, clipping by global norm and weight decay are
    those of the CPU optimizer; the state (moments, accumulators) lives on the device as a
    ``(slots, n)`` float32 CuPy array, allocated on the first step.

    Parameters
    ----------
    optimizer : ducklearn.optim.Optimizer
        Supplies the hyperparameters (read once, here); its own CPU state is not used.
    check_finite : bool
        Refuse NaN or infinite gradients with ``ValueError`` and leave everything unchanged,
        like the CPU optimizer. The check waits for the device once per step; pass
        ``False`` to keep steps fully asynchronous.
    """

    def __init__(self, optimizer: Optimizer, *, check_finite: bool = True):
        _require_build()
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                "optimizer must be a ducklearn.optim.Optimizer (e.g. ducklearn.optim.Adam()), "
                f"got {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        self.check_finite = bool(check_finite)
        self._config = optimizer.to_config()
        self._slot_names = list(_core.Optimizer(self._config).slot_names)
        self._state: Any = None
        self._n = 0
        self._t = 0
        self._device: int | None = None

    def __repr__(self) -> str:
        return f"DeviceOptimizer({self.optimizer!r}, steps={self._t})"

    @property
    def steps(self) -> int:
        """Number of steps taken."""
        return self._t

    @property
    def current_lr(self) -> float:
        """Learning rate the next step will use."""
        return float(self._config.schedule.at(self._t))

    @property
    def size(self) -> int:
        """Parameter count the state was sized for (0 before the first step)."""
        return self._n

    @property
    def state(self) -> dict[str, Any]:
        """Copies of the state slots by name, as CuPy arrays (``{}`` before the first step)."""
        if self._state is None:
            return {}
        return {name: self._state[i].copy() for i, name in enumerate(self._slot_names)}

    def reset(self) -> None:
        """Forget the state and the step count."""
        self._state = None
        self._n = 0
        self._t = 0
        self._device = None

    def step(self, params: Any, grads: Any) -> float:
        """Update ``params`` in place from ``grads``; return the learning rate used.

        ``params`` must be a writeable, C-contiguous float32 device array (never copied);
        ``grads`` a C-contiguous float32 device array with as many values. The first call
        sizes the state; later calls must pass arrays of that size on the same device.
        """
        p = _device_array(params, "params", None, writeable=True)
        g = _device_array(grads, "grads", None)
        if p.size == 0:
            raise ValueError("params is empty")
        if g.size != p.size:
            raise ValueError(f"grads has {g.size} values but params has {p.size}")
        if self._n and p.size != self._n:
            raise ValueError(
                f"this optimizer was sized for {self._n} parameters but got {p.size}; "
                "use one DeviceOptimizer per parameter array (or reset())"
            )
        _require_device()
        cp = _cupy()
        device = _device_of(cp, [p, g])
        if self._device is not None and device != self._device:
            raise ValueError(
                f"the optimizer state is on device {self._device} but params is on device "
                f"{device}; keep params on one device (or reset())"
            )
        with cp.cuda.Device(device):
            stream = cp.cuda.get_current_stream()
            _wait_for_producers(cp, stream, [p, g])
            if self.check_finite and not bool(cp.isfinite(cp.asarray(grads)).all()):
                raise ValueError("grads contains NaN or infinity; nothing was updated")
            state = self._state
            if state is None:
                slots = int(self._config.slots)
                if self._config.kind == "adagrad":
                    init = float(self._config.initial_accumulator)
                    state = cp.full((slots, p.size), init, dtype=cp.float32)
                else:
                    state = cp.zeros((slots, p.size), dtype=cp.float32)
            _core.cuda.optimizer_step(
                self._config,
                self._t,
                p.ptr,
                g.ptr,
                state.data.ptr if state.size else 0,
                p.size,
                stream.ptr,
            )
        # Sized only once a step was accepted, so a refused first step leaves no state.
        self._state, self._n, self._device = state, p.size, device
        lr = self.current_lr
        self._t += 1
        return lr
