"""Input checks shared by every public entry point.

Each check raises ``TypeError`` or ``ValueError`` naming the argument and the fix, and never
mutates anything, so a call that fails leaves the model as it was.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["NotFittedError", "check_X", "check_y", "check_record", "feature_names_of"]


class NotFittedError(ValueError, AttributeError):
    """The estimator must be fitted (or have learned at least one example) first."""


_sklearn_not_fitted: type | None = None


def not_fitted_error(message: str) -> NotFittedError:
    """A NotFittedError that is also scikit-learn's when scikit-learn is loaded, so that
    tools written against either class catch it (scikit-learn is never imported here)."""
    global _sklearn_not_fitted
    exc_module = sys.modules.get("sklearn.exceptions")
    if exc_module is None:
        return NotFittedError(message)
    if _sklearn_not_fitted is None:
        _sklearn_not_fitted = type(
            "NotFittedError", (NotFittedError, exc_module.NotFittedError), {}
        )
    return _sklearn_not_fitted(message)


def _is_sparse(X: Any) -> bool:
    return hasattr(X, "tocsr") and hasattr(X, "nnz")


def feature_names_of(X: Any) -> list[str] | None:
    """Column names of a DataFrame-like input with string columns, else ``None``."""
    cols = getattr(X, "columns", None)
    if cols is None or not hasattr(X, "iloc"):
        return None
    names = list(cols)
    if names and all(isinstance(c, str) for c in names):
        return names
    return None


def check_X(X: Any, *, name: str = "X", n_features: int | None = None,
            estimator: str = "the model", allow_empty: bool = False) -> np.ndarray:
    """Return ``X`` as a C-contiguous float32 matrix, or raise a clear error.

    Accepts numpy arrays, nested sequences and DataFrames (numeric columns only). Rejects
    sparse matrices, complex, object/string data, non-2-D shapes, NaN and infinity, and a
    column count different from ``n_features`` when given.
    """
    if _is_sparse(X):
        raise TypeError(
            f"{name} is a sparse matrix, which is not supported (sparse input is not "
            f"supported); convert it with {name}.toarray()"
        )
    if isinstance(X, Mapping):
        raise TypeError(
            f"{name} is a dict; use learn_one/predict_one for one record or pass a 2-D array"
        )
    # Fast path: already what the C++ core wants (no copy, no conversion).
    if type(X) is np.ndarray and X.dtype == np.float32 and X.ndim == 2:
        arr = X if X.flags.c_contiguous else np.ascontiguousarray(X)
    else:
        try:
            raw = np.asarray(X)
        except Exception as exc:  # ragged lists and the like
            raise ValueError(f"{name} could not be read as a 2-D numeric array: {exc}") from exc
        if raw.dtype.kind == "c":
            raise ValueError(f"Complex data not supported in {name}; pass real numbers")
        if raw.dtype.kind not in "fiub":
            if raw.dtype.kind == "O":
                try:
                    raw = raw.astype(np.float64)
                except (TypeError, ValueError) as exc:
                    raise TypeError(
                        f"{name} must contain only numbers, got non-numeric values ({exc})"
                    ) from exc
            else:
                raise TypeError(f"{name} must be numeric, got dtype {raw.dtype}")
        if raw.ndim != 2:
            if raw.ndim == 1:
                raise ValueError(
                    f"Expected 2D array, got 1D array instead: {name} has shape {raw.shape}. "
                    f"Reshape your data either using {name}.reshape(-1, 1) if it has a single "
                    f"feature or {name}.reshape(1, -1) if it contains a single sample."
                )
            raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {raw.shape}")
        if raw.dtype.kind == "f" and raw.dtype != np.float32:
            # Values beyond float32 range would silently become inf after the cast.
            with np.errstate(invalid="ignore"):
                big = np.abs(raw) > np.finfo(np.float32).max
            if np.any(big & np.isfinite(raw)):
                raise ValueError(f"{name} has values too large for float32 (> 3.4e38)")
        arr = np.ascontiguousarray(raw, dtype=np.float32)
    if arr.shape[1] == 0:
        raise ValueError(
            f"{name} has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required."
        )
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(
            f"{name} has 0 sample(s) (shape={arr.shape}) while a minimum of 1 is required."
        )
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(
            f"X has {arr.shape[1]} features, but {estimator} is expecting {n_features} "
            "features as input."
        )
    if not np.isfinite(arr).all():
        bad = "NaN" if np.isnan(arr).any() else "infinity"
        raise ValueError(
            f"Input {name} contains {bad} (NaN and inf are not accepted); impute or drop "
            "those values first"
        )
    return arr


def check_y(y: Any, n_samples: int, *, name: str = "y") -> np.ndarray:
    """Return ``y`` as a 1-D array of ``n_samples`` labels or targets.

    A column vector (n, 1) is accepted with a DataConversionWarning, as in scikit-learn.
    """
    if y is None:
        raise ValueError(f"{name} is required (got None); pass the labels or targets")
    if _is_sparse(y):
        raise TypeError(f"{name} must be dense; convert it with {name}.toarray().ravel()")
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        warnings.warn(
            _data_conversion_warning(
                f"A column-vector {name} was passed when a 1d array was expected. Please "
                "change the shape of y to (n_samples,), for example using ravel()."
            ),
            stacklevel=3,
        )
        arr = arr.ravel()
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D with one entry per row, got shape {arr.shape}")
    if arr.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {arr.shape[0]} entries but X has {n_samples} rows; they must match"
        )
    return arr


def _data_conversion_warning(message: str) -> Warning:
    # scikit-learn's own class when it is installed, so its tooling recognises the warning.
    try:
        from sklearn.exceptions import DataConversionWarning
    except ImportError:  # pragma: no cover - scikit-learn is optional
        return UserWarning(message)
    return DataConversionWarning(message)


def check_record(x: Any, name: str = "x") -> Mapping:
    """A record for learn_one/predict_one must be a mapping of feature name to number."""
    if not isinstance(x, Mapping):
        raise TypeError(
            f"{name} must be a dict of feature name -> number, got {type(x).__name__}; "
            "use learn_many/predict_many for arrays"
        )
    return x
