"""
CUDA entry points on device pointers
"""
from __future__ import annotations
import ducklearn._core
import typing
__all__: list[str] = ['compiled', 'dense_forward', 'device_count', 'optimizer_step']
def compiled() -> bool:
    """
    True when the core was built with DUCKLEARN_ENABLE_CUDA=ON.
    """
def dense_forward(X: typing.SupportsInt | typing.SupportsIndex, n: typing.SupportsInt | typing.SupportsIndex, in_features: typing.SupportsInt | typing.SupportsIndex, W: typing.SupportsInt | typing.SupportsIndex, b: typing.SupportsInt | typing.SupportsIndex, out_features: typing.SupportsInt | typing.SupportsIndex, Y: typing.SupportsInt | typing.SupportsIndex, activation: str, alpha: typing.SupportsFloat | typing.SupportsIndex, stream: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Y = act(X W^T + b) on device pointers (b may be 0), queued on stream; see ducklearn.cuda.dense_forward for the array-level API.
    """
def device_count() -> int:
    """
    Visible CUDA devices (0 without a driver or GPU); raises in a CPU-only build.
    """
def optimizer_step(config: ducklearn._core.OptimizerConfig, t: typing.SupportsInt | typing.SupportsIndex, params: typing.SupportsInt | typing.SupportsIndex, grads: typing.SupportsInt | typing.SupportsIndex, state: typing.SupportsInt | typing.SupportsIndex, n: typing.SupportsInt | typing.SupportsIndex, stream: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Optimizer step t on device pointers (state: config.slots x n floats, 0 when none), queued on stream; see ducklearn.cuda.DeviceOptimizer.
    """
