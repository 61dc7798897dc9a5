"""What this build and this machine provide: SIMD target, BLAS, threads, CUDA."""

from __future__ import annotations

import importlib.util
from typing import Any

from ducklearn import _core

__all__ = ["info", "set_simd_target", "set_blas_threads"]

_SIMD_TARGETS = ("auto", "generic", "avx2", "avx512")


def _cuda_device_present() -> bool:
    """True when CuPy is installed and sees a CUDA device (CuPy is never required)."""
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount()) > 0
    except Exception:  # no driver, no device, or a broken CUDA install: all mean "no device"
        return False


def info() -> dict[str, Any]:
    """Describe the native backend.

    Returns
    -------
    dict
        ``version``, ``simd_target`` (kernels in use), ``simd_best`` (best the CPU supports),
        ``blas``, ``blas_core``, ``blas_threads``, ``threads`` (hardware threads),
        ``cuda_compiled`` and ``cuda_device``.

    Examples
    --------
    >>> import ducklearn.backend
    >>> sorted(ducklearn.backend.info())[:3]
    ['blas', 'blas_core', 'blas_threads']
    """
    raw = _core.backend_info()
    out = dict(raw)
    out["threads"] = out.pop("hardware_threads")
    out["cuda_device"] = _cuda_device_present()
    return out


def set_simd_target(name: str) -> None:
    """Select the SIMD kernels: ``"auto"``, ``"generic"``, ``"avx2"`` or ``"avx512"``.

    Raises ``ValueError`` for an unknown name or a target this CPU does not support.
    The environment variable ``DUCKLEARN_SIMD`` sets the same cap at import time.
    """
    if name not in _SIMD_TARGETS:
        raise ValueError(f"unknown SIMD target {name!r}; use one of {', '.join(_SIMD_TARGETS)}")
    if not _core.set_simd_target(name):
        best = _core.backend_info()["simd_best"]
        raise ValueError(f"this CPU does not support {name!r} (best available: {best!r})")


def set_blas_threads(n: int) -> None:
    """Set how many threads BLAS uses for large products (``n >= 1``)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    _core.set_blas_threads(n)
