"""
Element-wise and dense kernels
"""
from __future__ import annotations
import numpy
import numpy.typing
import typing
__all__: list[str] = ['activation_backward', 'activation_forward', 'dense_forward', 'dot', 'gemm', 'loss', 'softmax']
def activation_backward(activation: str, z: typing.Any, da: typing.Any, alpha: typing.SupportsFloat | typing.SupportsIndex = 0.009999999776482582) -> numpy.typing.NDArray[numpy.float32]:
    ...
def activation_forward(activation: str, z: typing.Any, alpha: typing.SupportsFloat | typing.SupportsIndex = 0.009999999776482582) -> numpy.typing.NDArray[numpy.float32]:
    ...
def dense_forward(X: typing.Any, W: typing.Any, b: typing.Any = None, activation: str = 'identity', alpha: typing.SupportsFloat | typing.SupportsIndex = 0.009999999776482582) -> numpy.typing.NDArray[numpy.float32]:
    """
    act(X @ W.T + b) with the bias and activation fused; X 1-D uses the batch-1 kernel.
    """
def dot(x: typing.Any, y: typing.Any) -> float:
    ...
def gemm(A: typing.Any, B: typing.Any, trans_a: bool = False, trans_b: bool = False, alpha: typing.SupportsFloat | typing.SupportsIndex = 1.0) -> numpy.typing.NDArray[numpy.float32]:
    ...
def loss(loss: str, predictions: typing.Any, y: typing.Any, delta: typing.SupportsFloat | typing.SupportsIndex = 1.0, tau: typing.SupportsFloat | typing.SupportsIndex = 0.5, scale: typing.SupportsFloat | typing.SupportsIndex = 1.0) -> tuple[float, numpy.typing.NDArray[numpy.float32]]:
    """
    Summed loss and scale * dL/dpredictions (predictions are logits for classification).
    """
def softmax(z: typing.Any) -> numpy.typing.NDArray[numpy.float32]:
    ...
