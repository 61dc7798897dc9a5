"""Online normalizers for numeric columns: learn, transform, freeze, merge, save/load.

Each normalizer tracks ``d`` columns of float values (NaN = missing, skipped) and turns them
into an affine map ``(x - shift) * scale`` per column, optionally clipped to ``[lo, hi]``:

=============  ===========================================  ===================================
normalizer     statistic (streaming, mergeable)             map
=============  ===========================================  ===================================
standard       mean, variance (Welford; Chan et al. merge)  ``(x - mean) / std``
minmax         min, max                                     ``(x - min) / (max - min)``
robust         median, IQR (KLL quantile sketch)            ``(x - median) / IQR``
clipped        as standard                                  ``(x - mean) / std`` clipped to ±z
=============  ===========================================  ===================================

A degenerate spread (constant column, fewer than two values) gives scale 1, so a column
never blows up. Learning and transforming are separate: ``learn`` updates statistics;
``transform`` applies the current ones; ``freeze`` stops learning (``learn`` then raises), for
serving a fixed model. ``merge`` combines the states of several workers exactly (moments,
min/max) or within the sketch's error bound (quantiles). ``state()`` returns named float
arrays plus a JSON manifest, never pickle.

The quantile sketch is KLL (Karnin, Lang & Liberty, "Optimal Quantile Approximation in
Streams", FOCS 2016): compactors whose capacities shrink geometrically by 2/3 going down
from the top level, each compaction keeping every other item of a sorted buffer (odd or even
positions by a seeded coin) at twice the weight. With ``k`` = 256 the rank error of any
quantile is below about 1% of the count with high probability, in ``O(k)`` memory, and two
sketches merge by concatenating levels and compacting. The coin is a counter-based
generator (SplitMix64), so a given stream and seed always give the same sketch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ducklearn import _core

__all__ = [
    "KLLSketch",
    "Normalizer",
    "StandardNormalizer",
    "MinMaxNormalizer",
    "RobustNormalizer",
    "ClippedNormalizer",
    "make_normalizer",
    "normalizer_from_state",
]

STATE_FORMAT_VERSION = 1
_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


class KLLSketch:
    """Streaming, mergeable quantile sketch of one column (NaN skipped).

    Parameters
    ----------
    k : int, default 256
        Capacity of the top compactor; the rank error shrinks as about ``1.7 / k``.
    seed : int, default 0
        Seed of the compaction coin.

    Examples
    --------
    >>> import numpy as np
    >>> s = KLLSketch()
    >>> s.update(np.arange(100_000, dtype=np.float64))
    >>> abs(s.quantile(0.5) - 50_000) < 1_000
    True
    """

    def __init__(self, k: int = 256, seed: int = 0) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 8:
            raise ValueError(f"k must be an integer >= 8, got {k!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        self.k = k
        self.seed = seed
        self._flips = 0
        self.levels: list[np.ndarray] = [np.empty(0)]
        self.n = 0
        self.min = math.inf
        self.max = -math.inf

    def _capacity(self, h: int) -> int:
        depth = len(self.levels) - 1 - h
        return max(2, int(math.ceil(self.k * (2.0 / 3.0) ** depth)))

    def _coin(self) -> int:
        self._flips += 1
        return _splitmix64((self.seed << 32) ^ self._flips) & 1

    def update(self, values: Any) -> None:
        """Adds values (NaN skipped)."""
        v = np.asarray(values, dtype=np.float64).ravel()
        v = v[~np.isnan(v)]
        if v.size == 0:
            return
        self.n += int(v.size)
        self.min = min(self.min, float(v.min()))
        self.max = max(self.max, float(v.max()))
        self.levels[0] = np.concatenate([self.levels[0], v])
        self._compress()

    def _compress(self) -> None:
        h = 0
        while h < len(self.levels):
            level = self.levels[h]
            if level.size > self._capacity(h):
                if h + 1 == len(self.levels):
                    self.levels.append(np.empty(0))
                level = np.sort(level, kind="stable")
                leftover = level[-1:] if level.size % 2 else level[:0]
                even = level[: level.size - leftover.size]
                promoted = even[self._coin()::2]
                self.levels[h] = leftover
                self.levels[h + 1] = np.concatenate([self.levels[h + 1], promoted])
            h += 1

    def merge(self, other: KLLSketch) -> KLLSketch:
        """Adds another sketch's items (in place); returns self."""
        if not isinstance(other, KLLSketch):
            raise TypeError(f"can only merge a KLLSketch, got {type(other).__name__}")
        while len(self.levels) < len(other.levels):
            self.levels.append(np.empty(0))
        for h, lv in enumerate(other.levels):
            self.levels[h] = np.concatenate([self.levels[h], lv])
        self.n += other.n
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        self._flips += other._flips
        self._compress()
        return self

    def quantiles(self, qs: Any) -> np.ndarray:
        """Approximate quantiles for ``qs`` in [0, 1] (NaN while empty)."""
        q = np.asarray(qs, dtype=np.float64)
        if np.any((q < 0) | (q > 1)) or np.any(np.isnan(q)):
            raise ValueError("quantile levels must be in [0, 1]")
        if self.n == 0:
            return np.full(q.shape, np.nan)
        items = np.concatenate(self.levels)
        weights = np.concatenate(
            [np.full(lv.size, 2.0 ** h) for h, lv in enumerate(self.levels)]
        )
        order = np.argsort(items, kind="stable")
        items, cum = items[order], np.cumsum(weights[order])
        idx = np.searchsorted(cum, q * cum[-1], side="left")
        out = items[np.minimum(idx, items.size - 1)]
        # The exact extremes are tracked, so q = 0 and q = 1 are exact.
        out = np.where(q == 0.0, self.min, np.where(q == 1.0, self.max, out))
        return out

    def quantile(self, q: float) -> float:
        return float(self.quantiles([q])[0])

    def rank(self, x: float) -> float:
        """Approximate fraction of values <= x."""
        if self.n == 0:
            return math.nan
        total = 0.0
        for h, lv in enumerate(self.levels):
            total += float(np.count_nonzero(lv <= x)) * 2.0 ** h
        return total / sum(lv.size * 2.0 ** h for h, lv in enumerate(self.levels))

    @property
    def size(self) -> int:
        """Items retained (memory is O(k))."""
        return int(sum(lv.size for lv in self.levels))

    def state(self, prefix: str = "") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {f"{prefix}level{h}": lv.copy() for h, lv in enumerate(self.levels)}
        manifest = {"k": self.k, "seed": self.seed, "flips": self._flips, "n": self.n,
                    "min": None if self.n == 0 else self.min,
                    "max": None if self.n == 0 else self.max, "n_levels": len(self.levels)}
        return arrays, manifest

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray], manifest: Mapping[str, Any],
                   prefix: str = "") -> KLLSketch:
        s = cls(int(manifest["k"]), int(manifest["seed"]))
        s._flips = int(manifest["flips"])
        s.n = int(manifest["n"])
        s.min = math.inf if manifest["min"] is None else float(manifest["min"])
        s.max = -math.inf if manifest["max"] is None else float(manifest["max"])
        s.levels = []
        for h in range(int(manifest["n_levels"])):
            key = f"{prefix}level{h}"
            if key not in arrays:
                raise ValueError(f"sketch state is missing array {key!r}")
            s.levels.append(np.asarray(arrays[key], dtype=np.float64).copy())
        # Compaction keeps weight exactly (pairs become one item of twice the weight).
        if sum(lv.size * 2 ** h for h, lv in enumerate(s.levels)) != s.n:
            raise ValueError("sketch state is inconsistent: its weight differs from its count")
        return s


def _as_rows(X: Any, d: int, name: str = "X") -> np.ndarray:
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim == 1 and d == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2 or arr.shape[1] != d:
        raise ValueError(f"{name} must have shape (n, {d}), got {arr.shape}")
    if np.isinf(arr).any():
        raise ValueError(f"{name} contains infinity; normalizers accept finite values and NaN "
                         "(missing)")
    return arr


class Normalizer:
    """Base class: ``d`` columns, learn/transform/freeze/merge/state (see module docs)."""

    kind: ClassVar[str] = ""

    def __init__(self, d: int) -> None:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
            raise ValueError(f"d must be a positive number of columns, got {d!r}")
        self.d = int(d)
        self.frozen = False
        self._stats = _core.features.RunningStats(self.d)

    # -- learning -----------------------------------------------------------------------------

    def learn(self, X: Any) -> Normalizer:
        """Updates the statistics with rows of ``X`` (n x d; NaN = missing)."""
        if self.frozen:
            raise RuntimeError(f"this {type(self).__name__} is frozen; call unfreeze() to learn")
        arr = _as_rows(X, self.d)
        if arr.shape[0]:
            self._stats.update(arr.astype(np.float32))
            self._learn_extra(arr)
        return self

    def _learn_extra(self, arr: np.ndarray) -> None:
        pass

    def freeze(self) -> Normalizer:
        self.frozen = True
        return self

    def unfreeze(self) -> Normalizer:
        self.frozen = False
        return self

    # -- statistics -------------------------------------------------------------------------

    @property
    def count(self) -> np.ndarray:
        return self._stats.count

    @property
    def mean(self) -> np.ndarray:
        c = self._stats.count
        return np.where(c > 0, self._stats.mean, np.nan)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self._stats.variance(0))

    @property
    def min(self) -> np.ndarray:
        return np.where(self._stats.count > 0, self._stats.min.astype(np.float64), np.nan)

    @property
    def max(self) -> np.ndarray:
        return np.where(self._stats.count > 0, self._stats.max.astype(np.float64), np.nan)

    def params(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(shift, scale, lo, hi), each d float64: ``clip((x - shift) * scale, lo, hi)``."""
        raise NotImplementedError

    def transform(self, X: Any) -> np.ndarray:
        """Normalized copy of ``X`` (NaN stays NaN)."""
        arr = _as_rows(X, self.d)
        shift, scale, lo, hi = self.params()
        return np.clip((arr - shift) * scale, lo, hi)

    def learn_transform(self, X: Any) -> np.ndarray:
        return self.learn(X).transform(X)

    # -- merging and persistence --------------------------------------------------------------

    def merge(self, other: Normalizer) -> Normalizer:
        """Adds the statistics of another worker's normalizer of the same kind and width."""
        if type(other) is not type(self) or other.d != self.d:
            raise ValueError(
                f"can only merge a {type(self).__name__} over {self.d} columns, got "
                f"{type(other).__name__} over {getattr(other, 'd', '?')}"
            )
        if self.frozen:
            raise RuntimeError(f"this {type(self).__name__} is frozen; call unfreeze() to merge")
        self._stats.merge(other._stats)
        self._merge_extra(other)
        return self

    def _merge_extra(self, other: Normalizer) -> None:
        pass

    def _options(self) -> dict[str, Any]:
        return {}

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Named arrays and a JSON-able manifest (:func:`normalizer_from_state` reads them)."""
        s = self._stats
        arrays = {"count": s.count, "mean": s.mean, "m2": s.m2,
                  "min": s.min, "max": s.max}
        manifest = {"format_version": STATE_FORMAT_VERSION, "kind": self.kind, "d": self.d,
                    "frozen": self.frozen, "options": self._options()}
        return arrays, manifest

    def _load_extra(self, arrays: Mapping[str, np.ndarray], manifest: Mapping[str, Any]) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}(d={self.d}, n={int(self.count.max(initial=0))}, " \
               f"frozen={self.frozen})"


class StandardNormalizer(Normalizer):
    """``(x - mean) / std`` from Welford running moments."""

    kind = "standard"

    def params(self):
        mean = np.nan_to_num(self.mean, nan=0.0)
        std = np.nan_to_num(self.std, nan=0.0)
        scale = np.where(std > 0, 1.0 / np.where(std > 0, std, 1.0), 1.0)
        inf = np.full(self.d, np.inf)
        return mean, scale, -inf, inf


class ClippedNormalizer(StandardNormalizer):
    """Standard scores clipped to ``[-z, z]`` (outliers cannot dominate a linear model)."""

    kind = "clipped"

    def __init__(self, d: int, z: float = 3.0) -> None:
        super().__init__(d)
        if isinstance(z, bool) or not isinstance(z, (int, float)) or not (0 < z < math.inf):
            raise ValueError(f"z must be a positive finite number, got {z!r}")
        self.z = float(z)

    def params(self):
        shift, scale, _, _ = super().params()
        return shift, scale, np.full(self.d, -self.z), np.full(self.d, self.z)

    def _options(self):
        return {"z": self.z}

    def _merge_extra(self, other):
        if other.z != self.z:
            raise ValueError(f"cannot merge clipped normalizers with z={self.z} and z={other.z}")


class MinMaxNormalizer(Normalizer):
    """``(x - min) / (max - min)``: values seen so far map into [0, 1]."""

    kind = "minmax"

    def params(self):
        mn, mx = np.nan_to_num(self.min, nan=0.0), np.nan_to_num(self.max, nan=0.0)
        rng = mx - mn
        scale = np.where(rng > 0, 1.0 / np.where(rng > 0, rng, 1.0), 1.0)
        inf = np.full(self.d, np.inf)
        return mn, scale, -inf, inf


class RobustNormalizer(Normalizer):
    """``(x - median) / IQR`` from a KLL sketch per column (falls back to the standard
    deviation, then 1, when the IQR is 0)."""

    kind = "robust"

    def __init__(self, d: int, k: int = 256, seed: int = 0) -> None:
        super().__init__(d)
        self.k = k
        self.seed = seed
        self.sketches = [KLLSketch(k, seed + j) for j in range(self.d)]

    def _learn_extra(self, arr):
        for j, s in enumerate(self.sketches):
            s.update(arr[:, j])

    def _merge_extra(self, other):
        for s, o in zip(self.sketches, other.sketches, strict=True):
            s.merge(o)

    @property
    def median(self) -> np.ndarray:
        return np.array([s.quantile(0.5) for s in self.sketches])

    def iqr(self) -> np.ndarray:
        return np.array([float(np.diff(s.quantiles([0.25, 0.75]))[0]) if s.n else np.nan
                         for s in self.sketches])

    def params(self):
        med = np.nan_to_num(self.median, nan=0.0)
        iqr = np.nan_to_num(self.iqr(), nan=0.0)
        std = np.nan_to_num(self.std, nan=0.0)
        spread = np.where(iqr > 0, iqr, np.where(std > 0, std, 1.0))
        inf = np.full(self.d, np.inf)
        return med, 1.0 / spread, -inf, inf

    def _options(self):
        return {"k": self.k, "seed": self.seed,
                "sketches": [s.state()[1] for s in self.sketches]}

    def state(self):
        arrays, manifest = super().state()
        for j, s in enumerate(self.sketches):
            arrays.update(s.state(prefix=f"sketch{j}.")[0])
        return arrays, manifest

    def _load_extra(self, arrays, manifest):
        metas = manifest["options"]["sketches"]
        if len(metas) != self.d:
            raise ValueError("robust normalizer state has the wrong number of sketches")
        self.sketches = [KLLSketch.from_state(arrays, m, prefix=f"sketch{j}.")
                         for j, m in enumerate(metas)]


_KINDS: dict[str, type[Normalizer]] = {
    cls.kind: cls for cls in (StandardNormalizer, MinMaxNormalizer, RobustNormalizer,
                              ClippedNormalizer)
}


def make_normalizer(kind: str, d: int, **options: Any) -> Normalizer:
    """A fresh normalizer: ``kind`` in 'standard', 'minmax', 'robust', 'clipped'."""
    cls = _KINDS.get(kind)
    if cls is None:
        raise ValueError(f"unknown normalizer {kind!r}; expected one of {sorted(_KINDS)}")
    return cls(d, **options)


def normalizer_from_state(arrays: Mapping[str, np.ndarray],
                          manifest: Mapping[str, Any]) -> Normalizer:
    """Rebuilds a normalizer from :meth:`Normalizer.state` output."""
    if manifest.get("format_version") != STATE_FORMAT_VERSION:
        raise ValueError(f"normalizer state format_version {manifest.get('format_version')!r} "
                         f"is not supported (expected {STATE_FORMAT_VERSION})")
    kind = manifest.get("kind")
    options = dict(manifest.get("options", {}))
    options.pop("sketches", None)
    norm = make_normalizer(kind, int(manifest["d"]), **options)
    d = norm.d
    try:
        count = np.asarray(arrays["count"], dtype=np.float64)
        mean = np.asarray(arrays["mean"], dtype=np.float64)
        m2 = np.asarray(arrays["m2"], dtype=np.float64)
        mn = np.asarray(arrays["min"], dtype=np.float32)
        mx = np.asarray(arrays["max"], dtype=np.float32)
    except KeyError as exc:
        raise ValueError(f"normalizer state is missing array {exc}") from None
    if any(a.shape != (d,) for a in (count, mean, m2, mn, mx)):
        raise ValueError(f"normalizer state arrays must each have {d} entries")
    norm._stats.load(count, mean, m2, mn, mx)
    norm._load_extra(arrays, manifest)
    norm.frozen = bool(manifest.get("frozen", False))
    return norm
