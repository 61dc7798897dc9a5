"""Compiled extraction: records in, a normalized float32 matrix (or CSR) and dead letters out.

:meth:`FeatureSchema.compile() <ducklearn.features.FeatureSchema.compile>` builds an
:class:`Extractor`. Parsing, validation and every per-record transform run in C++
(``_core.features.FeaturePlan``); this module dispatches the input format, keeps the online
normalizers, and turns raw issues into :class:`~ducklearn.features.DeadLetter` entries.

Inputs: a list (or tuple) of dicts, a pandas DataFrame, a pyarrow Table, or a dict of
numpy/list columns. Missing values are ``None`` or an absent key in dicts and dict columns,
nulls in Arrow, and ``NaN``/``None``/``NA``/``NaT`` in pandas (pandas' own convention). A
``NaN`` anywhere else is a value, and it is rejected (``not_finite``).
"""

from __future__ import annotations

import datetime as _dt
import math
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ducklearn import _core
from ducklearn.features.normalize import (
    Normalizer,
    RobustNormalizer,
    StandardNormalizer,
    make_normalizer,
    normalizer_from_state,
)
from ducklearn.features.schema import NORMALIZERS, FeatureSchema, Numeric, Timestamp
from ducklearn.features.validation import (
    DeadLetter,
    RecordValidationError,
    build_dead_letters,
    check_policy,
)

__all__ = ["Extractor", "CSRMatrix", "to_unix_seconds"]

STATE_FORMAT_VERSION = 1
_EPOCH = _dt.datetime(1970, 1, 1)


def to_unix_seconds(value: Any) -> float | None:
    """Seconds since the Unix epoch (UTC) of a timestamp value; None for NaT.

    Accepts numbers, ``datetime`` (naive means UTC), ``date``, ``numpy.datetime64``,
    ``pandas.Timestamp`` and ISO 8601 strings; anything else raises ``TypeError``.
    """
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            return (value - _EPOCH).total_seconds()
        return value.timestamp()
    if isinstance(value, _dt.date):
        return (_dt.datetime(value.year, value.month, value.day) - _EPOCH).total_seconds()
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            return None
        return float(value.astype("datetime64[us]").astype(np.int64)) / 1e6
    if isinstance(value, str):
        try:
            parsed = _dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise TypeError(f"not an ISO 8601 timestamp: {value!r}") from exc
        return to_unix_seconds(parsed)
    if type(value).__name__ == "NaTType":
        return None
    raise TypeError(f"cannot read {type(value).__name__} as a timestamp")


class CSRMatrix:
    """Minimal CSR container used when scipy is not installed (scipy-compatible arrays).

    ``scipy.sparse.csr_matrix((m.data, m.indices, m.indptr), shape=m.shape)`` converts it.
    """

    def __init__(self, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray,
                 shape: tuple[int, int]) -> None:
        self.data, self.indices, self.indptr, self.shape = data, indices, indptr, shape

    @property
    def nnz(self) -> int:
        return int(self.data.size)

    def toarray(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=np.float32)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        out[rows, self.indices] = self.data
        return out

    def __repr__(self) -> str:
        return f"CSRMatrix(shape={self.shape}, nnz={self.nnz})"


def _is_dataframe(obj: Any) -> bool:
    return hasattr(obj, "columns") and hasattr(obj, "iloc") and hasattr(obj, "dtypes")


def _is_arrow_table(obj: Any) -> bool:
    return type(obj).__module__.startswith("pyarrow") and hasattr(obj, "column_names")


class Extractor:
    """Turns entity records into feature matrices according to a :class:`FeatureSchema`.

    Parameters
    ----------
    schema : FeatureSchema
    unknown_fields : {'error', 'ignore', 'record'}, default 'error'
        What a key the schema does not declare does (see :mod:`.validation`).
    strict : bool, default False
        Raise :class:`RecordValidationError` on the first bad record instead of returning
        dead letters.
    sparse : bool, default False
        Default output of :meth:`transform`: CSR instead of dense.
    normalize : str, dict or None, optional
        Override the fields' ``normalize`` option: one kind for every numeric/timestamp
        field, a ``{field: kind}`` dict, or None to use each field's own option. Fields with
        ``bins`` are never normalized: a single kind skips them, and a dict entry other than
        None for one raises ``ValueError``.
    clip_z : float, default 3.0
        Bound of the ``clipped`` normalizer.
    seed : int, default 0
        Hash seed (changes every hashed column; part of the saved state).

    Attributes
    ----------
    column_names : list of str
    n_features : int
    schema_hash : str
    unknown_fields : collections.Counter
        Keys seen under the ``'record'`` policy, with counts.

    Examples
    --------
    >>> from ducklearn.features import CodeFile
    >>> ex = CodeFile.compile()
    >>> X, rejected = ex.learn_transform([
    ...     {"size_bytes": 1200, "lines": 40, "language": "python", "owners": ["core"]},
    ...     {"size_bytes": -5, "lines": 3, "language": "go"}])
    >>> X.shape == (1, ex.n_features), rejected[0].field, rejected[0].reason
    (True, 'size_bytes', 'out_of_range')
    """

    def __init__(self, schema: FeatureSchema, *, unknown_fields: str = "error",
                 strict: bool = False, sparse: bool = False,
                 normalize: str | Mapping[str, str | None] | None = None,
                 clip_z: float = 3.0, seed: int = 0) -> None:
        if not isinstance(schema, FeatureSchema):
            raise TypeError(f"schema must be a FeatureSchema, got {type(schema).__name__}")
        self._policy = check_policy(unknown_fields)
        for name, flag in (("strict", strict), ("sparse", sparse)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be True or False, got {flag!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 32:
            raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
        self.schema = schema
        self.strict = strict
        self.sparse = sparse
        self.seed = seed
        self.clip_z = float(clip_z)
        self.unknown_fields_policy = unknown_fields
        self.unknown_fields: Counter[str] = Counter()
        index = {f.name: i for i, f in enumerate(schema.fields)}
        specs = [f._plan() for f in schema.fields]
        # The schema's constant impute values (transformed units); _sync overlays the learned
        # mean/median ones and the fixed-reference offsets on a copy.
        self._impute = np.array([s.get("impute", 0.0) for s in specs], dtype=np.float64)
        self._plan = _core.features.FeaturePlan(
            specs,
            [{"a": index[c.a], "b": index[c.b], "hash_bits": c.hash_bits}
             for c in schema.crosses],
            seed, to_unix_seconds,
        )
        self._field_index = index
        self._kinds = self._resolve_normalize(normalize)
        # Field indices per normalizer kind, and the scalar fields whose moments feed
        # impute="mean" (numeric, timestamp age).
        self._groups: dict[str, list[int]] = {}
        for i, kind in enumerate(self._kinds):
            if kind is not None:
                self._groups.setdefault(kind, []).append(i)
        self._normalizers: dict[str, Normalizer] = {
            kind: make_normalizer(kind, len(idx), **({"z": self.clip_z} if kind == "clipped"
                                                     else {}))
            for kind, idx in self._groups.items()
        }
        self._mean_idx = [i for i, f in enumerate(schema.fields)
                          if isinstance(f, (Numeric, Timestamp)) and f.impute == "mean"]
        self._median_idx = [i for i, f in enumerate(schema.fields)
                            if isinstance(f, (Numeric, Timestamp)) and f.impute == "median"]
        self._moments = StandardNormalizer(len(self._mean_idx)) if self._mean_idx else None
        self._medians = RobustNormalizer(len(self._median_idx)) if self._median_idx else None
        # Fixed-reference timestamps: the plan measures ages from `now`; the offset to the
        # field's own reference is folded into shift/impute (exact, see _sync).
        self._fixed_ref = [(i, f.reference, self._unit(f)) for i, f in enumerate(schema.fields)
                           if isinstance(f, Timestamp) and f.reference is not None and f.age]
        self._frozen = False
        self._dirty = True
        self._synced_now: float | None = None
        # Learning and publishing statistics are serialized; extraction runs outside the
        # lock on the snapshot the plan holds, so serving threads never wait on a learner.
        self._lock = threading.RLock()

    # -- construction helpers -------------------------------------------------------------

    @staticmethod
    def _unit(f: Timestamp) -> float:
        from ducklearn.features.schema import _AGE_UNITS

        return _AGE_UNITS[f.age_unit]

    def _resolve_normalize(self, normalize: Any) -> list[str | None]:
        kinds: list[str | None] = []
        overrides: Mapping[str, Any] = {}
        if isinstance(normalize, Mapping):
            unknown = set(normalize) - set(self._field_index)
            if unknown:
                raise ValueError(f"normalize names unknown field(s) {sorted(unknown)}")
            overrides = normalize
        elif normalize is not None and normalize not in NORMALIZERS:
            raise ValueError(f"normalize must be one of {NORMALIZERS}, a dict, or None; got "
                             f"{normalize!r}")
        for f in self.schema.fields:
            # Piecewise-linear columns are already in [0, 1]: an extractor-wide kind skips
            # binned fields like non-numeric ones, a per-field one is a mistake.
            binned = isinstance(f, Numeric) and f.bins is not None
            scalar = (isinstance(f, Numeric) and not binned) or \
                (isinstance(f, Timestamp) and f.age)
            if not scalar:
                if f.name in overrides and overrides[f.name] is not None:
                    why = ("has bins and cannot be normalized (its columns are already in "
                           "[0, 1]); use None for it" if binned else
                           f"({f.kind}) cannot be normalized")
                    raise ValueError(f"field {f.name!r} {why}")
                kinds.append(None)
                continue
            kind = f.normalize
            if f.name in overrides:
                kind = overrides[f.name]
            elif isinstance(normalize, str):
                kind = normalize
            if kind not in NORMALIZERS:
                raise ValueError(f"normalize for {f.name!r} must be one of {NORMALIZERS}")
            kinds.append(kind)
        return kinds

    # -- public properties ----------------------------------------------------------------

    @property
    def column_names(self) -> list[str]:
        """Output column names (stable; see :mod:`ducklearn.features.schema`)."""
        return list(self._plan.column_names)

    @property
    def n_features(self) -> int:
        return int(self._plan.n_features)

    @property
    def schema_hash(self) -> str:
        return self.schema.hash

    @property
    def field_names(self) -> list[str]:
        return self.schema.field_names

    @property
    def normalizers(self) -> dict[str, tuple[list[str], Normalizer]]:
        """``{kind: (field names, normalizer)}``."""
        names = self.schema.field_names
        return {k: ([names[i] for i in self._groups[k]], n) for k, n in self._normalizers.items()}

    @property
    def frozen(self) -> bool:
        return self._frozen

    def __repr__(self) -> str:
        return (f"Extractor(schema={self.schema.name!r}, n_features={self.n_features}, "
                f"hash={self.schema_hash}, frozen={self._frozen})")

    # -- input dispatch -------------------------------------------------------------------

    def _parse(self, records: Any, now: float) -> tuple[Any, Any, int, list[tuple]]:
        """(parsed batch, record getter for dead letters, n, issues found here)."""
        if isinstance(records, (list, tuple)):
            return (self._plan.parse_records(records, self._policy, now),
                    records.__getitem__, len(records), [])
        if isinstance(records, Mapping) and not _is_dataframe(records):
            return self._parse_columns(records, "dict", now)
        if _is_dataframe(records):
            return self._parse_columns(records, "pandas", now)
        if _is_arrow_table(records):
            return self._parse_columns(records, "arrow", now)
        if isinstance(records, np.ndarray) and records.dtype == object and records.ndim == 1:
            return self._parse(list(records), now)
        raise TypeError(
            "records must be a list of dicts, a pandas DataFrame, a pyarrow Table or a dict "
            f"of columns, got {type(records).__name__}; for one record use transform_one"
        )

    def _column_names_of(self, data: Any, kind: str) -> list[str]:
        if kind == "dict":
            return list(data.keys())
        if kind == "pandas":
            return [str(c) for c in data.columns]
        return list(data.column_names)

    def _parse_columns(self, data: Any, kind: str, now: float):
        names = self._column_names_of(data, kind)
        if kind == "dict":
            lengths = {}
            for k, v in data.items():
                if isinstance(v, (str, bytes)) or not hasattr(v, "__len__"):
                    raise TypeError(f"column {k!r} must be an array or list, got "
                                    f"{type(v).__name__} (a single record goes in a list)")
                lengths[k] = len(v)
            if len(set(lengths.values())) > 1:
                raise ValueError(f"columns have different lengths: {lengths}")
            n = next(iter(lengths.values())) if lengths else 0
        elif kind == "pandas":
            n = len(data)
        else:
            n = data.num_rows
        unknown = [c for c in names if c not in self._field_index]
        rejected = None
        pre_issues: list[tuple] = []
        if unknown and self._policy == 0:
            rejected = np.ones(n, dtype=np.uint8)
            pre_issues = [(r, -1, int(_core.features.ISSUE_UNKNOWN_FIELD), repr(c))
                          for r in range(n) for c in unknown]
        elif unknown and self._policy == 2:
            for c in unknown:
                self.unknown_fields[str(c)] += n
        cols = []
        for f in self.schema.fields:
            if f.name not in names:
                cols.append(("missing",))
                continue
            if kind == "dict":
                cols.append(self._dict_column(f, data[f.name], n))
            elif kind == "pandas":
                cols.append(self._pandas_column(f, data[f.name]))
            else:
                cols.append(self._arrow_column(f, data.column(f.name)))
        batch = self._plan.parse_columns(cols, n, rejected, now)

        def row(i: int) -> dict[str, Any]:
            if kind == "pandas":
                return {c: data[c].iloc[i] for c in data.columns}
            if kind == "arrow":
                return {c: data.column(c)[i].as_py() for c in names}
            return {c: data[c][i] for c in names}

        return batch, row, n, pre_issues

    @staticmethod
    def _numeric_values(values: np.ndarray, missing: np.ndarray | None):
        status = (np.zeros(values.shape[0], dtype=np.uint8) if missing is None
                  else missing.astype(np.uint8))
        return ("values", np.ascontiguousarray(values, dtype=np.float64), status)

    def _dict_column(self, f: Any, col: Any, n: int):
        arr = col if isinstance(col, np.ndarray) else None
        if arr is not None and arr.ndim == 1:
            k = arr.dtype.kind
            if f.kind in ("numeric", "timestamp") and k in "iuf":
                return self._numeric_values(arr, None)
            if f.kind == "boolean" and k == "b":
                return self._numeric_values(arr, None)
            if f.kind == "timestamp" and k == "M":
                nat = np.isnat(arr)
                secs = arr.astype("datetime64[us]").astype(np.int64) / 1e6
                return self._numeric_values(np.where(nat, 0.0, secs), nat)
            return ("objects", arr.tolist() if k != "O" else list(arr))
        return ("objects", list(col))

    def _pandas_column(self, f: Any, s: Any):
        import pandas as pd

        dtype = s.dtype
        na = s.isna().to_numpy()
        if f.kind in ("numeric", "timestamp") and pd.api.types.is_numeric_dtype(dtype) \
                and not pd.api.types.is_bool_dtype(dtype):
            vals = s.to_numpy(dtype=np.float64, na_value=0.0)
            return self._numeric_values(np.where(na, 0.0, vals), na)
        if f.kind == "boolean" and pd.api.types.is_bool_dtype(dtype):
            vals = s.to_numpy(dtype=np.float64, na_value=0.0)
            return self._numeric_values(vals, na)
        if f.kind == "timestamp" and pd.api.types.is_datetime64_any_dtype(dtype):
            if getattr(dtype, "tz", None) is not None:
                s = s.dt.tz_convert("UTC").dt.tz_localize(None)
            secs = s.to_numpy(dtype="datetime64[us]").astype(np.int64) / 1e6
            return self._numeric_values(np.where(na, 0.0, secs), na)
        objs = s.to_numpy(dtype=object)
        if na.any():
            objs = objs.copy()
            objs[na] = None
        return ("objects", list(objs))

    def _arrow_column(self, f: Any, col: Any):
        import pyarrow as pa

        t = col.type
        nulls = col.is_null().to_numpy(zero_copy_only=False) if col.null_count else None
        if f.kind in ("numeric", "timestamp") and (pa.types.is_integer(t) or
                                                   pa.types.is_floating(t)):
            vals = col.to_numpy(zero_copy_only=False)
            vals = np.where(nulls, 0.0, vals) if nulls is not None else vals
            return self._numeric_values(np.asarray(vals, dtype=np.float64), nulls)
        if f.kind == "boolean" and pa.types.is_boolean(t):
            vals = np.asarray(col.to_numpy(zero_copy_only=False), dtype=object)
            vals = np.array([bool(v) if v is not None else False for v in vals], dtype=np.float64)
            return self._numeric_values(vals, nulls)
        if f.kind == "timestamp" and pa.types.is_timestamp(t):
            ints = col.cast(pa.int64()).to_numpy(zero_copy_only=False)
            ints = np.where(nulls, 0, ints) if nulls is not None else ints
            per_s = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}[t.unit]
            return self._numeric_values(np.asarray(ints, dtype=np.float64) / per_s, nulls)
        return ("objects", col.to_pylist())

    # -- the core loop ---------------------------------------------------------------------

    def _run(self, records: Any, *, learn: bool, output: str | None, now: float | None,
             monitor: Any = None):
        now = _check_now(now)
        batch, getter, n, pre = self._parse(records, now)
        keep, issues, unknown, counts = batch.validate(monitor is not None)
        if pre:
            issues = list(issues) + pre
        if unknown:
            for _, key in unknown:
                self.unknown_fields[key.strip("'\"") if isinstance(key, str) else key] += 1
        rejected = build_dead_letters(issues, self.schema, getter) if issues else []
        if self.strict and rejected:
            raise RecordValidationError(rejected[0])
        raw = plan_raw = None
        if learn or monitor is not None:
            # The plan reuses these values when it fills the matrix (no second log1p pass).
            plan_raw = batch.raw()
            raw = self._observed(plan_raw, now)
        if learn:
            with self._lock:
                self._learn_raw(raw)
        X = None
        if output is not None:
            with self._lock:
                self._sync(now)
            if output == "dense":
                X = batch.dense(plan_raw)
            else:
                data, indices, indptr = batch.csr(plan_raw)
                X = self._make_csr(data, indices, indptr, int(keep.sum()))
        if monitor is not None:
            monitor.observe(raw, counts, rejected, n, unknown=len(unknown))
        return X, rejected, keep

    def _make_csr(self, data, indices, indptr, n_rows):
        shape = (n_rows, self.n_features)
        try:
            import scipy.sparse as sp
        except ImportError:
            return CSRMatrix(data, indices, indptr, shape)
        return sp.csr_matrix((data, indices, indptr), shape=shape)

    def _learn_raw(self, raw: np.ndarray) -> None:
        if self._frozen:
            raise RuntimeError("this extractor is frozen; call unfreeze() before learning")
        if raw.shape[0] == 0:
            return
        for kind, idx in self._groups.items():
            self._normalizers[kind].learn(raw[:, idx])
        if self._moments is not None:
            self._moments.learn(raw[:, self._mean_idx])
        if self._medians is not None:
            self._medians.learn(raw[:, self._median_idx])
        self._dirty = True

    def _sync(self, now: float) -> None:
        """Pushes normalization and impute values into the plan when they changed."""
        if not self._dirty and (not self._fixed_ref or self._synced_now == now):
            return
        nf = len(self.schema.fields)
        shift, scale = np.zeros(nf), np.ones(nf)
        lo, hi = np.full(nf, -np.inf), np.full(nf, np.inf)
        for kind, idx in self._groups.items():
            s, c, a, b = self._normalizers[kind].params()
            shift[idx], scale[idx], lo[idx], hi[idx] = s, c, a, b
        impute = self._impute.copy()
        if self._moments is not None:
            impute[self._mean_idx] = np.nan_to_num(self._moments.mean, nan=0.0)
        if self._medians is not None:
            impute[self._median_idx] = np.nan_to_num(self._medians.median, nan=0.0)
        for i, ref, unit in self._fixed_ref:
            delta = (now - ref) / unit
            shift[i] += delta
            impute[i] += delta
        # One atomic snapshot: a fill running in another thread keeps the one it started with.
        self._plan.set_normalization(shift, scale, lo, hi, impute)
        self._dirty = False
        self._synced_now = now

    # -- public API -----------------------------------------------------------------------

    def transform(self, records: Any, *, sparse: bool | None = None, now: float | None = None,
                  monitor: Any = None) -> tuple[Any, list[DeadLetter]]:
        """Features of the valid records and dead letters for the others.

        Parameters
        ----------
        records : list of dicts, DataFrame, pyarrow Table or dict of columns
        sparse : bool, optional
            CSR output (``scipy.sparse.csr_matrix``, or :class:`CSRMatrix` without scipy);
            defaults to the extractor's ``sparse`` option.
        now : float, optional
            Unix time that timestamp ages are measured from (default: the current time).
        monitor : QualityMonitor, optional
            Also feed this batch to a :class:`~ducklearn.features.QualityMonitor`.

        Returns
        -------
        X : numpy.ndarray or CSR matrix
            ``n_valid x n_features`` float32 (C-contiguous when dense), rows in input order.
        rejected : list of DeadLetter
            One per rejected record; ``X.shape[0] + len(rejected) == len(records)``.
        """
        use_sparse = self.sparse if sparse is None else sparse
        if not isinstance(use_sparse, bool):
            raise TypeError(f"sparse must be True, False or None, got {sparse!r}")
        X, rejected, _ = self._run(records, learn=False, output="csr" if use_sparse else "dense",
                                   now=now, monitor=monitor)
        return X, rejected

    def learn(self, records: Any, *, now: float | None = None,
              monitor: Any = None) -> list[DeadLetter]:
        """Updates the normalizers with the valid records; returns the dead letters."""
        if self._frozen:
            raise RuntimeError("this extractor is frozen; call unfreeze() before learning")
        _, rejected, _ = self._run(records, learn=True, output=None, now=now, monitor=monitor)
        return rejected

    def learn_transform(self, records: Any, *, sparse: bool | None = None,
                        now: float | None = None,
                        monitor: Any = None) -> tuple[Any, list[DeadLetter]]:
        """:meth:`learn` then :meth:`transform` on one parse of the batch."""
        if self._frozen:
            raise RuntimeError("this extractor is frozen; call unfreeze() before learning")
        use_sparse = self.sparse if sparse is None else sparse
        X, rejected, _ = self._run(records, learn=True, output="csr" if use_sparse else "dense",
                                   now=now, monitor=monitor)
        return X, rejected

    def transform_one(self, record: Mapping[str, Any], *, now: float | None = None) -> np.ndarray:
        """Features of one record (1-D float32); raises RecordValidationError if invalid."""
        if not isinstance(record, Mapping):
            raise TypeError(f"record must be a dict, got {type(record).__name__}")
        X, rejected, _ = self._run([record], learn=False, output="dense", now=now)
        if rejected:
            raise RecordValidationError(rejected[0])
        return X[0]

    def _observed(self, plan_raw: np.ndarray, now: float) -> np.ndarray:
        """The plan's raw scalars as learners and monitors see them: the plan measures every
        age from ``now``, but a fixed-reference timestamp's age is from its own reference."""
        if not self._fixed_ref:
            return plan_raw
        raw = plan_raw.copy()
        for i, ref, unit in self._fixed_ref:
            raw[:, i] -= (now - ref) / unit
        return raw

    def _raw(self, records: Any, now: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(kept rows x fields raw scalars as learners and monitors see them, keep flags)."""
        now = _check_now(now)
        batch, _, _, _ = self._parse(records, now)
        keep = batch.validate(False)[0]
        return self._observed(batch.raw(), now), keep

    def accepted_index(self, records: Any, *, now: float | None = None) -> np.ndarray:
        """Indices of the records that pass validation (without extracting features)."""
        _, _, keep = self._run(records, learn=False, output=None, now=now)
        return np.flatnonzero(keep)

    def freeze(self) -> Extractor:
        """Stops learning: normalization stays fixed (for serving a fixed model)."""
        self._frozen = True
        for n in self._all_normalizers():
            n.freeze()
        return self

    def unfreeze(self) -> Extractor:
        self._frozen = False
        for n in self._all_normalizers():
            n.unfreeze()
        return self

    def _all_normalizers(self) -> list[Normalizer]:
        return list(self._named_normalizers().values())

    def _named_normalizers(self) -> dict[str, Normalizer]:
        """Every normalizer under its state key: the kinds, then ``_moments``/``_medians``."""
        named: dict[str, Normalizer] = dict(self._normalizers)
        if self._moments is not None:
            named["_moments"] = self._moments
        if self._medians is not None:
            named["_medians"] = self._medians
        return named

    def merge(self, other: Extractor) -> Extractor:
        """Adds another worker's normalizer statistics (same schema, in place)."""
        if not isinstance(other, Extractor) or other.schema_hash != self.schema_hash:
            raise ValueError("can only merge an Extractor compiled from the same schema "
                             f"(hash {self.schema_hash})")
        if other._kinds != self._kinds:
            raise ValueError("cannot merge extractors with different normalizers")
        with self._lock:
            self._merge(other)
        return self

    def _merge(self, other: Extractor) -> None:
        for kind, n in self._normalizers.items():
            n.merge(other._normalizers[kind])
        if self._moments is not None:
            self._moments.merge(other._moments)
        if self._medians is not None:
            self._medians.merge(other._medians)
        self.unknown_fields.update(other.unknown_fields)
        self._dirty = True

    # -- persistence ----------------------------------------------------------------------

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Named arrays and a JSON-able manifest; :meth:`from_state` rebuilds the extractor."""
        arrays: dict[str, np.ndarray] = {}
        norms: dict[str, Any] = {}
        for key, n in self._named_normalizers().items():
            a, m = n.state()
            arrays.update({f"normalizer.{key}.{k}": v for k, v in a.items()})
            norms[key] = m
        manifest = {
            "format_version": STATE_FORMAT_VERSION,
            "kind": "ducklearn.features.Extractor",
            "schema": self.schema.to_dict(),
            "schema_hash": self.schema_hash,
            "options": {"unknown_fields": self.unknown_fields_policy, "strict": self.strict,
                        "sparse": self.sparse, "seed": self.seed, "clip_z": self.clip_z,
                        "normalize": {f.name: k for f, k in zip(self.schema.fields, self._kinds,
                                                                strict=True)}},
            "normalizers": norms,
            "frozen": self._frozen,
            "column_names_hash": _names_hash(self.column_names),
            "n_features": self.n_features,
            "unknown_fields_seen": dict(self.unknown_fields),
        }
        return arrays, manifest

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray],
                   manifest: Mapping[str, Any]) -> Extractor:
        if manifest.get("kind") != "ducklearn.features.Extractor":
            raise ValueError(f"state is for {manifest.get('kind')!r}, not an Extractor")
        if manifest.get("format_version") != STATE_FORMAT_VERSION:
            raise ValueError(f"extractor state format_version {manifest.get('format_version')!r}"
                             f" is not supported (expected {STATE_FORMAT_VERSION})")
        schema = FeatureSchema.from_dict(manifest["schema"])
        if schema.hash != manifest["schema_hash"]:
            raise ValueError("extractor state: schema hash does not match the schema")
        ex = cls(schema, **manifest["options"])
        if ex.n_features != manifest["n_features"] or \
                _names_hash(ex.column_names) != manifest["column_names_hash"]:
            raise ValueError("extractor state: column layout differs from this ducklearn build")
        named = ex._named_normalizers()
        if set(named) != set(manifest["normalizers"]):
            raise ValueError("extractor state: normalizer groups do not match the schema")
        for key in named:
            prefix = f"normalizer.{key}."
            sub = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
            loaded = normalizer_from_state(sub, manifest["normalizers"][key])
            if loaded.d != named[key].d:
                raise ValueError(f"extractor state: normalizer {key!r} has the wrong width")
            if key == "_moments":
                ex._moments = loaded
            elif key == "_medians":
                ex._medians = loaded
            else:
                ex._normalizers[key] = loaded
        ex._frozen = bool(manifest.get("frozen", False))
        ex.unknown_fields.update(manifest.get("unknown_fields_seen", {}))
        ex._dirty = True
        return ex

    def save(self, path: str) -> None:
        """Writes ``path`` (a .npz of named arrays, no pickle) and ``path + '.json'``, each
        atomically."""
        import io
        import json

        from ducklearn._db import atomic_write

        arrays, manifest = self.state()
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write(path, buf.getvalue())
        atomic_write(f"{path}.json", json.dumps(manifest, allow_nan=False).encode())

    @classmethod
    def load(cls, path: str) -> Extractor:
        import json

        with open(f"{path}.json") as fh:
            manifest = json.load(fh)
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return cls.from_state(arrays, manifest)


def _check_now(now: Any) -> float:
    if now is None:
        return time.time()
    if isinstance(now, bool) or not isinstance(now, (int, float, np.integer, np.floating)):
        raise TypeError(f"now must be Unix seconds (a number), got {type(now).__name__}")
    now = float(now)
    if not math.isfinite(now):
        raise ValueError(f"now must be a finite Unix time, got {now!r}")
    return now


def _names_hash(names: Sequence[str]) -> str:
    import hashlib

    return hashlib.sha256("\x1f".join(names).encode()).hexdigest()[:16]
