"""Feature quality monitoring: missing rates, rejections, running statistics and drift (PSI).

A :class:`QualityMonitor` watches the batches an :class:`~ducklearn.features.Extractor`
processes (``extractor.transform(records, monitor=m)``, or ``m.observe_records(records)``)
and keeps, per field:

- counts: present, missing (and the missing rate), wrong type, not finite, out of range,
  missing required, unknown category, "other" level, and records rejected because of it;
- running mean, standard deviation, min and max of the field's raw scalar (the number after
  log1p/clip for numerics, 0/1 for booleans, the age for timestamps, the token count for
  tokens and text) over accepted records;
- the population stability index (PSI) of the latest ``window_size`` accepted values against
  a reference window (the first ``reference_size`` accepted values, or :meth:`set_reference`):
  ``PSI = sum_b (p_b - q_b) * ln(p_b / q_b)`` over ``bins`` quantile bins of the reference
  (numeric-like fields) or over levels (categoricals), with proportions floored at 1e-4 so
  empty bins stay finite. Rule of thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25
  significant shift.

:meth:`report` returns all of it as a JSON-able dict; :meth:`metrics` as flat samples
``(name, labels, value)`` that any exporter can publish; :meth:`prometheus_collector` wraps
them for ``prometheus_client`` when that package is installed (it is never required).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ducklearn import _core

__all__ = ["QualityMonitor", "psi"]

_COUNT_NAMES = ("present", "missing", "wrong_type", "not_finite", "out_of_range",
                "missing_required", "unknown_category", "other_level")
_FLOOR = 1e-4


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI between two histograms of counts (same bins)."""
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    if r.shape != c.shape or r.sum() <= 0 or c.sum() <= 0:
        return math.nan
    p = np.maximum(c / c.sum(), _FLOOR)
    q = np.maximum(r / r.sum(), _FLOOR)
    return float(np.sum((p - q) * np.log(p / q)))


def _psi_status(value: float | None) -> str | None:
    if value is None or math.isnan(value):
        return None
    return "stable" if value < 0.1 else ("moderate" if value <= 0.25 else "significant")


class QualityMonitor:
    """Per-field data quality of the records an extractor sees (see the module docs).

    Parameters
    ----------
    extractor : Extractor
    reference_size : int, default 10_000
        Accepted records that form the reference window (unless set_reference is called).
    window_size : int, default 10_000
        Latest accepted records compared against the reference.
    bins : int, default 10
        Quantile bins of numeric-like fields for PSI.
    """

    def __init__(self, extractor: Any, *, reference_size: int = 10_000,
                 window_size: int = 10_000, bins: int = 10) -> None:
        from ducklearn.features.extract import Extractor

        if not isinstance(extractor, Extractor):
            raise TypeError(f"extractor must be an Extractor, got {type(extractor).__name__}")
        for name, v, lo in (("reference_size", reference_size, 10),
                            ("window_size", window_size, 10), ("bins", bins, 2)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        self.extractor = extractor
        self.schema = extractor.schema
        self.reference_size = reference_size
        self.window_size = window_size
        self.bins = bins
        fields = self.schema.fields
        self._nf = len(fields)
        self._categorical = np.array([f.kind == "categorical" for f in fields])
        self._scalar_idx = [i for i, f in enumerate(fields) if f.kind != "categorical"]
        self.reset()

    def reset(self) -> None:
        """Forgets everything, the reference included."""
        self.submitted = 0
        self.accepted = 0
        self.rejected = 0
        self.unknown_field_records = 0
        self._counts = np.zeros((len(_COUNT_NAMES), self._nf), dtype=np.int64)
        self._rejected_by_field = np.zeros(self._nf, dtype=np.int64)
        self._reasons: dict[str, int] = {}
        self._stats = (_core.features.RunningStats(len(self._scalar_idx))
                       if self._scalar_idx else None)
        self._reference = np.full((self.reference_size, self._nf), np.nan)
        self._ref_filled = 0
        self._ref_fixed = False
        self._window = np.full((self.window_size, self._nf), np.nan)
        self._win_pos = 0
        self._win_filled = 0
        self._edges: list[np.ndarray | None] | None = None

    # -- feeding ----------------------------------------------------------------------------

    def observe_records(self, records: Any, *, now: float | None = None) -> list:
        """Validates ``records`` with the extractor and observes them; returns dead letters."""
        _, rejected, _ = self.extractor._run(records, learn=False, output=None, now=now,
                                             monitor=self)
        return rejected

    def observe(self, raw: np.ndarray, counts: np.ndarray | None, rejected: Sequence[Any],
                n_submitted: int, *, unknown: int = 0) -> None:
        """Adds one processed batch (called by the extractor)."""
        raw = np.asarray(raw, dtype=np.float64)
        if raw.ndim != 2 or raw.shape[1] != self._nf:
            raise ValueError(f"raw must have shape (n, {self._nf}), got {raw.shape}")
        self.submitted += int(n_submitted)
        self.accepted += raw.shape[0]
        self.rejected += len(rejected)
        self.unknown_field_records += int(unknown)
        if counts is not None:
            self._counts += counts
        names = {f.name: i for i, f in enumerate(self.schema.fields)}
        for dl in rejected:
            seen = set()
            for e in dl.errors:
                self._reasons[e.code] = self._reasons.get(e.code, 0) + 1
                if e.field is not None and e.field not in seen:
                    seen.add(e.field)
                    self._rejected_by_field[names[e.field]] += 1
        if raw.shape[0] == 0:
            return
        if self._stats is not None:
            self._stats.update(raw[:, self._scalar_idx].astype(np.float32))
        rows = raw
        if not self._ref_fixed and self._ref_filled < self.reference_size:
            take = min(self.reference_size - self._ref_filled, rows.shape[0])
            self._reference[self._ref_filled:self._ref_filled + take] = rows[:take]
            self._ref_filled += take
            self._edges = None
            rows = rows[take:]
        if rows.shape[0] == 0:
            return
        if rows.shape[0] >= self.window_size:
            self._window[:] = rows[-self.window_size:]
            self._win_pos, self._win_filled = 0, self.window_size
            return
        end = self._win_pos + rows.shape[0]
        if end <= self.window_size:
            self._window[self._win_pos:end] = rows
        else:
            split = self.window_size - self._win_pos
            self._window[self._win_pos:] = rows[:split]
            self._window[:end - self.window_size] = rows[split:]
        self._win_pos = end % self.window_size
        self._win_filled = min(self.window_size, self._win_filled + rows.shape[0])

    def set_reference(self, records: Any, *, now: float | None = None) -> None:
        """Fixes the reference window to these records' accepted values."""
        raw, _ = self.extractor._raw(records, now)
        if raw.shape[0] == 0:
            raise ValueError("no valid records in the reference batch")
        self._reference = raw[-self.reference_size:].copy()
        self._ref_filled = self._reference.shape[0]
        self._ref_fixed = True
        self._edges = None

    def reset_window(self) -> None:
        """Empties the current window (the reference stays)."""
        self._window[:] = np.nan
        self._win_pos = self._win_filled = 0

    # -- PSI ------------------------------------------------------------------------------

    def _bin_edges(self) -> list[np.ndarray | None]:
        if self._edges is None:
            ref = self._reference[:self._ref_filled]
            edges: list[np.ndarray | None] = []
            for i in range(self._nf):
                col = ref[:, i]
                col = col[~np.isnan(col)]
                if col.size == 0 or self._categorical[i]:
                    edges.append(None)
                    continue
                qs = np.unique(np.quantile(col, np.linspace(0, 1, self.bins + 1)[1:-1]))
                edges.append(qs)
            self._edges = edges
        return self._edges

    def field_psi(self) -> list[float | None]:
        """PSI per field (None until both windows hold values of the field)."""
        if self._ref_filled == 0 or self._win_filled == 0:
            return [None] * self._nf
        edges = self._bin_edges()
        ref = self._reference[:self._ref_filled]
        cur = self._window[:self._win_filled]
        out: list[float | None] = []
        for i in range(self._nf):
            r = ref[:, i][~np.isnan(ref[:, i])]
            c = cur[:, i][~np.isnan(cur[:, i])]
            if r.size == 0 or c.size == 0:
                out.append(None)
                continue
            if self._categorical[i]:
                levels = np.union1d(np.unique(r), np.unique(c))
                rh = np.array([np.count_nonzero(r == v) for v in levels])
                ch = np.array([np.count_nonzero(c == v) for v in levels])
            else:
                e = edges[i]
                rh = np.bincount(np.searchsorted(e, r, side="right"), minlength=e.size + 1)
                ch = np.bincount(np.searchsorted(e, c, side="right"), minlength=e.size + 1)
            out.append(psi(rh, ch))
        return out

    # -- reporting ----------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """Everything as a JSON-able dict (see the module docs)."""
        stats = {}
        if self._stats is not None:
            count = self._stats.count
            var = self._stats.variance(0)
            for k, i in enumerate(self._scalar_idx):
                has = count[k] > 0
                stats[i] = {
                    "mean": float(self._stats.mean[k]) if has else None,
                    "std": float(math.sqrt(var[k])) if has and not math.isnan(var[k]) else None,
                    "min": float(self._stats.min[k]) if has else None,
                    "max": float(self._stats.max[k]) if has else None,
                }
        psis = self.field_psi()
        fields = {}
        for i, f in enumerate(self.schema.fields):
            counts = {name: int(self._counts[k, i]) for k, name in enumerate(_COUNT_NAMES)}
            seen = counts["present"] + counts["missing"]
            entry: dict[str, Any] = {"kind": f.kind, **counts,
                                     "missing_rate": counts["missing"] / seen if seen else None,
                                     "rejected": int(self._rejected_by_field[i]),
                                     "psi": psis[i], "psi_status": _psi_status(psis[i])}
            entry.update(stats.get(i, {"mean": None, "std": None, "min": None, "max": None}))
            fields[f.name] = entry
        return {
            "schema": self.schema.name,
            "schema_hash": self.schema.hash,
            "schema_version": self.schema.version,
            "records": {"submitted": self.submitted, "accepted": self.accepted,
                        "rejected": self.rejected,
                        "rejection_rate": self.rejected / self.submitted
                        if self.submitted else None,
                        "with_unknown_fields": self.unknown_field_records},
            "reasons": dict(sorted(self._reasons.items())),
            "reference": {"size": self._ref_filled, "fixed": self._ref_fixed},
            "window": {"size": self._win_filled},
            "fields": fields,
        }

    def metrics(self, prefix: str = "ducklearn_feature") -> list[tuple[str, dict[str, str], float]]:
        """Flat samples ``(name, labels, value)`` for an exporter (counters end in _total)."""
        rep = self.report()
        schema = rep["schema"]
        out: list[tuple[str, dict[str, str], float]] = []
        for outcome in ("accepted", "rejected"):
            out.append((f"{prefix}_records_total", {"schema": schema, "outcome": outcome},
                        float(rep["records"][outcome])))
        for reason, n in rep["reasons"].items():
            out.append((f"{prefix}_rejections_total", {"schema": schema, "reason": reason},
                        float(n)))
        for name, f in rep["fields"].items():
            labels = {"schema": schema, "field": name}
            out.append((f"{prefix}_missing_total", labels, float(f["missing"])))
            out.append((f"{prefix}_out_of_range_total", labels, float(f["out_of_range"])))
            out.append((f"{prefix}_rejected_total", labels, float(f["rejected"])))
            for key in ("missing_rate", "mean", "std", "min", "max", "psi"):
                if f[key] is not None and not math.isnan(f[key]):
                    out.append((f"{prefix}_{key}", labels, float(f[key])))
        return out

    def prometheus_collector(self, prefix: str = "ducklearn_feature"):
        """A ``prometheus_client`` collector publishing :meth:`metrics` on every scrape.

        Register it with ``prometheus_client.REGISTRY.register(...)``. Raises ImportError
        with the install command when prometheus_client is missing.
        """
        try:
            from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        except ImportError as exc:
            raise ImportError("prometheus_collector needs prometheus_client; "
                              "pip install prometheus-client") from exc
        monitor = self

        class _Collector:
            def collect(self):
                families: dict[str, Any] = {}
                for name, labels, value in monitor.metrics(prefix):
                    fam = families.get(name)
                    if fam is None:
                        keys = sorted(labels)
                        if name.endswith("_total"):
                            fam = CounterMetricFamily(name[:-6], f"ducklearn {name}",
                                                      labels=keys)
                        else:
                            fam = GaugeMetricFamily(name, f"ducklearn {name}", labels=keys)
                        families[name] = fam
                    fam.add_metric([labels[k] for k in sorted(labels)], value)
                yield from families.values()

        return _Collector()
