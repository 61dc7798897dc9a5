"""ducklearn: online machine learning for applications.

The hot paths (kernels, layers, optimizers, feature kernels, training loops) are C++ in
``ducklearn._core``; this package is the thin Python layer over them.
"""

from __future__ import annotations

from ducklearn import _blas_setup

_blas_setup.choose_openblas_kernels()

from ducklearn._core import __version__  # noqa: E402 - after the BLAS kernel choice

__all__ = ["__version__"]
