"""ducklearn: online machine learning for applications.

The hot paths (kernels, layers, optimizers, feature kernels, training loops) are C++ in
``ducklearn._core``; this package is the thin Python layer over them.
"""

from __future__ import annotations

from ducklearn._core import __version__

__all__ = ["__version__"]
