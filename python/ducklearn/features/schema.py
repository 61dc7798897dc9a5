"""Declarative feature schemas: the fields of an entity, their types and options.

A :class:`FeatureSchema` is a list of fields (:class:`Numeric`, :class:`Boolean`,
:class:`Categorical`, :class:`Tokens`, :class:`Text`, :class:`Timestamp`) plus optional
:class:`Cross` interactions. It has a stable content hash (:attr:`FeatureSchema.hash`) and a
user-managed integer :attr:`~FeatureSchema.version`, round-trips through JSON, and compiles
into an :class:`~ducklearn.features.Extractor` whose per-record work runs in C++.

Output columns, per field in schema order, then per cross (names are stable and documented
because models, stores and dashboards refer to them):

============== ===================================================== ==========================
field          columns                                               names
============== ===================================================== ==========================
Numeric        1 (after log1p / clip / normalization)                ``name``
Numeric, bins  T = len(bins) - 1 piecewise-linear bins, in [0, 1]    ``name:bin0``, ...,
                                                                     ``name:bin{T-1}``
Boolean        1 (0 or 1)                                            ``name``
Categorical    vocabulary one-hot + "other" bucket, or 2^hash_bits   ``name=level``,
                                                                     ``name=__other__``,
                                                                     ``name#k``
Tokens, Text   2^hash_bits hashed buckets                            ``name#k``
Timestamp      hour-of-day sin/cos, day-of-week sin/cos, age         ``name:hour_sin``, ...,
                                                                     ``name:age``
any field      missing indicator (``missing_indicator=True``)        ``name:missing``
Cross          categorical side: 2^hash_bits; numeric x numeric: 1  ``a*b#k``, ``a*b``
============== ===================================================== ==========================

Hashing is MurmurHash3 (x86, 32-bit) of the UTF-8 value seeded by the hash of the field name,
so equal values of different fields land in unrelated buckets; the bucket is the low
``hash_bits`` bits. Tokens and Text use signed hashing by default (the sign is bit 31), so
colliding tokens cancel in expectation instead of adding up (Weinberger et al., 2009). With
``m`` distinct values hashed into ``B = 2^hash_bits`` buckets, the expected fraction of values
that share their bucket with another is ``1 - (1 - 1/B)^(m - 1)`` (about ``(m - 1) / B`` for
``m`` much smaller than ``B``); choose ``hash_bits`` so that this is small for the vocabulary
size you expect. :func:`expected_collision_rate` computes it.

A numeric field with ``bins`` (ascending edges ``e_0 < ... < e_T`` in transformed units, after
log1p/clip) is written as its piecewise-linear encoding (Gorishniy, Rubachev and Babenko,
2022, "On Embeddings for Numerical Features in Tabular Deep Learning"): column ``t`` is
``clip((x - e_t) / (e_{t+1} - e_t), 0, 1)``, so a value below ``e_0`` gives all zeros and one
above ``e_T`` all ones. A linear model on these columns fits any piecewise-linear function of
``x`` with knots at the edges (thresholds, plateaus), which it cannot on the one raw column.
A missing value is encoded at its impute value. The columns are already in [0, 1], so a
binned field is not normalized (``normalize`` must be None), and it cannot be crossed.
:meth:`FeatureSchema.with_quantile_bins` fits edges at quantiles of sample records.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

__all__ = [
    "Field",
    "Numeric",
    "Boolean",
    "Categorical",
    "Tokens",
    "Text",
    "Timestamp",
    "Cross",
    "FeatureSchema",
    "NORMALIZERS",
    "expected_collision_rate",
    "User",
    "Project",
    "CodeFile",
]

#: Per-field normalizers (see :mod:`ducklearn.features.normalize`).
NORMALIZERS = ("standard", "minmax", "robust", "clipped", None)

SCHEMA_FORMAT_VERSION = 1

_AGE_UNITS = {"seconds": 1.0, "minutes": 60.0, "hours": 3600.0, "days": 86400.0,
              "weeks": 7 * 86400.0}


def expected_collision_rate(n_values: int, hash_bits: int) -> float:
    """Expected fraction of ``n_values`` distinct values whose bucket is shared.

    Under a uniform hash into ``B = 2**hash_bits`` buckets, one value avoids all others
    with probability ``(1 - 1/B) ** (n_values - 1)``.

    Examples
    --------
    >>> round(expected_collision_rate(100, 10), 4)
    0.0922
    """
    if n_values < 0 or not 1 <= hash_bits <= 31:
        raise ValueError("n_values must be >= 0 and hash_bits in [1, 31]")
    if n_values <= 1:
        return 0.0
    return 1.0 - (1.0 - 2.0 ** -hash_bits) ** (n_values - 1)


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"{what} name must be a non-empty string, got {name!r}")
    if any(ch in name for ch in "=#*:"):
        raise ValueError(
            f"{what} name {name!r} must not contain '=', '#', '*' or ':' (they separate the "
            "parts of column names); rename the field"
        )
    return name


def _check_pair(value: Any, what: str) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be a (low, high) pair of numbers, got {value!r}") from exc
    if math.isnan(lo) or math.isnan(hi) or lo > hi:
        raise ValueError(f"{what} must satisfy low <= high, got {value!r}")
    return (lo, hi)


def _check_bits(value: Any, what: str, lo: int = 1, hi: int = 24) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{what} must be an integer in [{lo}, {hi}], got {value!r}")
    return value


def _check_impute(value: Any, what: str) -> float | str:
    if isinstance(value, str):
        if value not in ("mean", "median"):
            raise ValueError(f"{what} must be a number, 'mean' or 'median', got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{what} must be a finite number, 'mean' or 'median', got {value!r}")
    return float(value)


def _check_bins(value: Any, what: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise TypeError(f"{what} must be a sequence of bin edges (numbers), got {value!r}")
    edges = tuple(value)
    for v in edges:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or \
                type(v).__name__ == "bool_":
            raise TypeError(f"{what} must contain only numbers, got {v!r}")
    edges = tuple(float(v) for v in edges)
    if len(edges) < 2:
        raise ValueError(f"{what} needs at least 2 edges (one bin), got {len(edges)}; "
                         "pass bins=None to keep the plain numeric column")
    if not all(math.isfinite(v) for v in edges):
        raise ValueError(f"{what} must be finite numbers, got {value!r}")
    if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise ValueError(f"{what} must be strictly increasing, got {value!r}; sort them and "
                         "drop duplicates")
    return edges


def _check_normalize(value: Any, what: str) -> str | None:
    if value not in NORMALIZERS:
        raise ValueError(f"{what} must be one of {NORMALIZERS}, got {value!r}")
    return value


@dataclass(frozen=True)
class Field:
    """Options every field has.

    Parameters
    ----------
    name : str
        The record key (no ``= # * :``, which separate parts of column names).
    required : bool, default False
        A record without this field (absent or ``None``) is rejected. Optional fields are
        imputed (numbers) or left empty (categories, tokens).
    missing_indicator : bool, default False
        Adds a ``name:missing`` column, 1 where the value was missing.
    description : str
        Free text for documentation; not part of the content hash.
    """

    name: str
    required: bool = False
    missing_indicator: bool = False
    description: str = field(default="", compare=False)

    kind: ClassVar[str] = ""

    def __post_init__(self) -> None:
        _check_name(self.name, "field")
        for flag in ("required", "missing_indicator"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"field {self.name!r}: {flag} must be True or False")
        if not isinstance(self.description, str):
            raise TypeError(f"field {self.name!r}: description must be a string")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (``type`` plus every option)."""
        out: dict[str, Any] = {"type": self.kind}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def _plan(self) -> dict[str, Any]:
        """The options the C++ plan reads (see bind_feature_plan.cpp)."""
        return {"name": self.name, "kind": self.kind, "required": self.required,
                "missing_indicator": self.missing_indicator}


@dataclass(frozen=True)
class Numeric(Field):
    """A real number.

    Parameters
    ----------
    impute : float, 'mean' or 'median', default 'mean'
        Value for a missing cell of an optional field: a constant in raw units, or the
        running mean/median the normalizer has learned (0 before it has seen data).
    log1p : bool, default False
        Replace ``v`` by ``sign(v) * log1p(|v|)`` (for heavy-tailed counts and sizes).
    clip : (low, high), optional
        Clip after ``log1p``, before normalization (in the transformed units).
    valid_range : (low, high), optional
        Declared valid range of the raw value: a value outside rejects the record.
    normalize : {'standard', 'minmax', 'robust', 'clipped', None}, default 'standard'
        Online normalizer of the column (see :mod:`ducklearn.features.normalize`). With
        ``bins`` it must be None (the default 'standard' becomes None): the encoding is
        already in [0, 1].
    bins : sequence of float, optional
        Ascending bin edges in transformed units (after log1p and clip): the field becomes
        ``len(bins) - 1`` piecewise-linear columns ``name:bin0``... instead of one (see the
        module docs). :meth:`FeatureSchema.with_quantile_bins` fits them from data.
    """

    impute: float | str = "mean"
    log1p: bool = False
    clip: tuple[float, float] | None = None
    valid_range: tuple[float, float] | None = None
    normalize: str | None = "standard"
    bins: tuple[float, ...] | None = None

    kind: ClassVar[str] = "numeric"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "impute", _check_impute(self.impute, f"{self.name}.impute"))
        object.__setattr__(self, "clip", _check_pair(self.clip, f"{self.name}.clip"))
        object.__setattr__(self, "valid_range",
                           _check_pair(self.valid_range, f"{self.name}.valid_range"))
        if not isinstance(self.log1p, bool):
            raise TypeError(f"field {self.name!r}: log1p must be True or False")
        _check_normalize(self.normalize, f"{self.name}.normalize")
        object.__setattr__(self, "bins", _check_bins(self.bins, f"{self.name}.bins"))
        if self.bins is not None and self.normalize is not None:
            if self.normalize != "standard":
                raise ValueError(
                    f"{self.name}.normalize={self.normalize!r} cannot apply to a binned field "
                    "(its piecewise-linear columns are already in [0, 1]); pass normalize=None"
                )
            object.__setattr__(self, "normalize", None)  # the default, not a request

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if out["bins"] is None:
            del out["bins"]  # unbinned fields keep the descriptions (and hashes) they had
        return out

    def transform_value(self, v: float) -> float:
        """The raw-to-transformed map the C++ plan applies (log1p, then clip)."""
        if self.log1p:
            v = math.copysign(math.log1p(abs(v)), v)
        if self.clip is not None:
            v = min(max(v, self.clip[0]), self.clip[1])
        return v

    def _plan(self) -> dict[str, Any]:
        out = super()._plan()
        out.update(log1p=self.log1p, clip=self.clip, valid_range=self.valid_range,
                   impute=self.transform_value(self.impute)
                   if not isinstance(self.impute, str) else 0.0,
                   bin_edges=list(self.bins or ()))
        return out


@dataclass(frozen=True)
class Boolean(Field):
    """``True``/``False`` (Python or numpy bools only; 0/1 integers are a wrong type).

    Parameters
    ----------
    impute : float, default 0.0
        Value (0 to 1) for a missing cell of an optional field.
    """

    impute: float = 0.0

    kind: ClassVar[str] = "boolean"

    def __post_init__(self) -> None:
        super().__post_init__()
        value = _check_impute(self.impute, f"{self.name}.impute")
        if isinstance(value, str) or not 0.0 <= value <= 1.0:
            raise ValueError(f"{self.name}.impute must be a number in [0, 1], got {value!r}")
        object.__setattr__(self, "impute", value)

    def _plan(self) -> dict[str, Any]:
        out = super()._plan()
        out["impute"] = self.impute
        return out


@dataclass(frozen=True)
class Categorical(Field):
    """One string level: one-hot over a fixed vocabulary, or hashed buckets.

    Parameters
    ----------
    vocabulary : sequence of str, optional
        Known levels, one column each, in this order.
    hash_bits : int, optional
        Instead of a vocabulary: ``2**hash_bits`` hashed buckets (for open-ended levels such
        as team or license names).
    other_bucket : bool, default True
        With a vocabulary, unknown levels go to a ``name=__other__`` column; with False they
        reject the record.
    """

    vocabulary: tuple[str, ...] | None = None
    hash_bits: int | None = None
    other_bucket: bool = True

    kind: ClassVar[str] = "categorical"

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.vocabulary is None) == (self.hash_bits is None):
            raise ValueError(
                f"categorical {self.name!r} needs exactly one of vocabulary=[...] or hash_bits"
            )
        if self.vocabulary is not None:
            if isinstance(self.vocabulary, str) or not isinstance(self.vocabulary, Iterable):
                raise TypeError(f"{self.name}.vocabulary must be a list of strings")
            vocab = tuple(self.vocabulary)
            if not vocab or not all(isinstance(v, str) for v in vocab):
                raise TypeError(f"{self.name}.vocabulary must be a non-empty list of strings")
            if len(set(vocab)) != len(vocab):
                raise ValueError(f"{self.name}.vocabulary has duplicate levels")
            object.__setattr__(self, "vocabulary", vocab)
        else:
            _check_bits(self.hash_bits, f"{self.name}.hash_bits")
        if not isinstance(self.other_bucket, bool):
            raise TypeError(f"{self.name}.other_bucket must be True or False")

    def _plan(self) -> dict[str, Any]:
        out = super()._plan()
        out.update(vocabulary=list(self.vocabulary or ()), hash_bits=self.hash_bits or 0,
                   other_bucket=self.other_bucket)
        return out


@dataclass(frozen=True)
class Tokens(Field):
    """A list of strings (imports, owners, languages...), hashed into ``2**hash_bits`` buckets.

    Parameters
    ----------
    hash_bits : int, default 10
    ngrams : int, default 1
        Also hash every run of 2..ngrams consecutive tokens (joined by a space).
    weighting : {'count', 'binary', 'log'}, default 'count'
        Term frequency, presence, or ``log1p`` of the term frequency.
    l2_normalize : bool, default False
        Scale the field's block of columns to unit Euclidean norm.
    signed : bool, default True
        Signed hashing (collisions cancel in expectation); False adds +1 per occurrence.
    """

    hash_bits: int = 10
    ngrams: int = 1
    weighting: str = "count"
    l2_normalize: bool = False
    signed: bool = True

    kind: ClassVar[str] = "tokens"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_bits(self.hash_bits, f"{self.name}.hash_bits")
        _check_bits(self.ngrams, f"{self.name}.ngrams", 1, 8)
        if self.weighting not in ("count", "binary", "log"):
            raise ValueError(f"{self.name}.weighting must be 'count', 'binary' or 'log'")
        for flag in ("l2_normalize", "signed"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{self.name}.{flag} must be True or False")

    def _plan(self) -> dict[str, Any]:
        out = super()._plan()
        out.update(hash_bits=self.hash_bits, ngram_max=self.ngrams, weighting=self.weighting,
                   l2_normalize=self.l2_normalize, signed_hash=self.signed)
        return out


@dataclass(frozen=True)
class Text(Tokens):
    """One string, tokenized in C++, then hashed like :class:`Tokens`.

    Tokens are maximal runs of word characters, ASCII letters lowercased: ASCII letters and
    digits, and characters beyond ASCII (so words of any script stay whole) except the
    common punctuation blocks (U+0080-U+00BF, U+2000-U+206F, U+3000-U+303F) and the BOM.
    ``_core.features.tokenize_text`` shows the tokens of a string.
    """

    kind: ClassVar[str] = "text"


@dataclass(frozen=True)
class Timestamp(Field):
    """A point in time: Unix seconds (int/float), ``datetime`` (naive means UTC),
    ``numpy.datetime64``, ``pandas.Timestamp`` or an ISO 8601 string.

    Parameters
    ----------
    hour_of_day, day_of_week : bool, default True
        Cyclical encodings (sin and cos, UTC) so 23:00 sits next to 00:00.
    age : bool, default True
        ``(reference - t) / age_unit``, normalized like a numeric column.
    age_unit : {'seconds', 'minutes', 'hours', 'days', 'weeks'}, default 'days'
    reference : float, optional
        Fixed reference time (Unix seconds); by default the ``now`` of each transform call.
    valid_range : (low, high), optional
        Declared valid range in Unix seconds.
    impute : float, 'mean' or 'median', default 'mean'
        Age (in ``age_unit``) used for a missing optional timestamp.
    normalize : see :class:`Numeric`, default 'standard'
    """

    hour_of_day: bool = True
    day_of_week: bool = True
    age: bool = True
    age_unit: str = "days"
    reference: float | None = None
    valid_range: tuple[float, float] | None = None
    impute: float | str = "mean"
    normalize: str | None = "standard"

    kind: ClassVar[str] = "timestamp"

    def __post_init__(self) -> None:
        super().__post_init__()
        for flag in ("hour_of_day", "day_of_week", "age"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{self.name}.{flag} must be True or False")
        if not (self.hour_of_day or self.day_of_week or self.age or self.missing_indicator):
            raise ValueError(f"timestamp {self.name!r} would produce no columns")
        if self.age_unit not in _AGE_UNITS:
            raise ValueError(f"{self.name}.age_unit must be one of {sorted(_AGE_UNITS)}")
        if self.reference is not None:
            if isinstance(self.reference, bool) or not isinstance(self.reference, (int, float)) \
                    or not math.isfinite(self.reference):
                raise TypeError(f"{self.name}.reference must be Unix seconds (a finite number)")
            object.__setattr__(self, "reference", float(self.reference))
        object.__setattr__(self, "valid_range",
                           _check_pair(self.valid_range, f"{self.name}.valid_range"))
        object.__setattr__(self, "impute", _check_impute(self.impute, f"{self.name}.impute"))
        _check_normalize(self.normalize, f"{self.name}.normalize")

    def _plan(self) -> dict[str, Any]:
        out = super()._plan()
        out.update(hour_of_day=self.hour_of_day, day_of_week=self.day_of_week, age=self.age,
                   age_unit=_AGE_UNITS[self.age_unit], valid_range=self.valid_range,
                   impute=0.0 if isinstance(self.impute, str) else self.impute)
        return out


_FIELD_TYPES: dict[str, type[Field]] = {
    cls.kind: cls for cls in (Numeric, Boolean, Categorical, Tokens, Text, Timestamp)
}


@dataclass(frozen=True)
class Cross:
    """An interaction of two fields.

    Categorical x categorical hashes the pair of levels into ``2**hash_bits`` buckets;
    categorical x numeric puts the normalized number in the level's hashed bucket; numeric x
    numeric is one column, the product of the normalized values. Booleans and timestamp ages
    count as numeric; tokens and text cannot be crossed.
    """

    a: str
    b: str
    hash_bits: int = 8

    def __post_init__(self) -> None:
        _check_name(self.a, "cross")
        _check_name(self.b, "cross")
        if self.a == self.b:
            raise ValueError(f"a cross needs two different fields, got {self.a!r} twice")
        _check_bits(self.hash_bits, f"cross {self.a}*{self.b}.hash_bits")

    @property
    def name(self) -> str:
        return f"{self.a}*{self.b}"

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "hash_bits": self.hash_bits}


def _field_from_dict(d: Mapping[str, Any]) -> Field:
    if not isinstance(d, Mapping) or "type" not in d:
        raise ValueError(f"a field description needs a 'type', got {d!r}")
    cls = _FIELD_TYPES.get(d["type"])
    if cls is None:
        raise ValueError(f"unknown field type {d['type']!r}; expected one of "
                         f"{sorted(_FIELD_TYPES)}")
    known = {f.name for f in fields(cls)}
    extra = set(d) - known - {"type"}
    if extra:
        raise ValueError(f"unknown option(s) {sorted(extra)} for a {d['type']} field")
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k != "type"}
    return cls(**kwargs)


class FeatureSchema:
    """A named, versioned list of fields and crosses.

    Parameters
    ----------
    name : str
        Entity type (``"code_file"``...), also the feature store's entity type by default.
    fields : sequence of Field
    crosses : sequence of Cross or (a, b) pairs
    version : int, default 1
        Bump it when the meaning of a field changes; stored with every feature-store row.

    Examples
    --------
    >>> from ducklearn.features import FeatureSchema, Numeric, Categorical
    >>> s = FeatureSchema("pr", [Numeric("lines", log1p=True),
    ...                          Categorical("lang", vocabulary=["py", "go"])])
    >>> s.compile().column_names
    ['lines', 'lang=py', 'lang=go', 'lang=__other__']
    >>> FeatureSchema.from_json(s.to_json()).hash == s.hash
    True
    """

    def __init__(self, name: str, fields: Sequence[Field], crosses: Sequence[Any] = (),
                 *, version: int = 1, description: str = "") -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty string, got {name!r}")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"version must be an integer >= 1, got {version!r}")
        fields = list(fields)
        if not fields:
            raise ValueError("a schema needs at least one field")
        for f in fields:
            if not isinstance(f, Field) or type(f) is Field:
                raise TypeError(
                    f"fields must be Numeric, Boolean, Categorical, Tokens, Text or Timestamp "
                    f"instances, got {f!r}"
                )
        names = [f.name for f in fields]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"field names must be unique; repeated: {dup}")
        by_name = {f.name: f for f in fields}
        xs: list[Cross] = []
        for c in crosses:
            if not isinstance(c, Cross):
                if isinstance(c, Sequence) and not isinstance(c, str) and len(c) in (2, 3):
                    c = Cross(*c)
                else:
                    raise TypeError(f"crosses must be Cross instances or (a, b) pairs, got {c!r}")
            for side in (c.a, c.b):
                f = by_name.get(side)
                if f is None:
                    raise ValueError(f"cross {c.name!r} names unknown field {side!r}")
                if isinstance(f, Tokens) or (isinstance(f, Timestamp) and not f.age):
                    raise ValueError(
                        f"cross {c.name!r}: field {side!r} cannot be crossed (only categorical, "
                        "numeric, boolean and timestamp-age fields can)"
                    )
                if isinstance(f, Numeric) and f.bins is not None:
                    raise ValueError(
                        f"cross {c.name!r}: field {side!r} has bins, and a binned field has no "
                        "single value to cross; drop the cross or the field's bins"
                    )
            xs.append(c)
        self.name = name
        self.version = version
        self.description = description
        self._fields = tuple(fields)
        self._crosses = tuple(xs)
        self._by_name = by_name

    # -- access -----------------------------------------------------------------------------

    @property
    def fields(self) -> tuple[Field, ...]:
        return self._fields

    @property
    def crosses(self) -> tuple[Cross, ...]:
        return self._crosses

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self._fields]

    def __getitem__(self, name: str) -> Field:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"schema {self.name!r} has no field {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Field]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, FeatureSchema) and self.hash == other.hash
                and self.version == other.version)

    def __hash__(self) -> int:
        return hash((self.hash, self.version))

    def __repr__(self) -> str:
        return (f"FeatureSchema({self.name!r}, {len(self._fields)} fields, "
                f"{len(self._crosses)} crosses, version={self.version}, hash={self.hash})")

    # -- identity and serialization ---------------------------------------------------------

    def _content(self) -> dict[str, Any]:
        def strip(d: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in d.items() if k != "description"}

        return {
            "name": self.name,
            "fields": [strip(f.to_dict()) for f in self._fields],
            "crosses": [c.to_dict() for c in self._crosses],
        }

    @property
    def hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the canonical JSON of name, fields and crosses.

        Descriptions and the version are not part of it; any change that alters extraction
        is. Stable across processes, platforms and Python versions.
        """
        canon = json.dumps(self._content(), sort_keys=True, separators=(",", ":"),
                           allow_nan=False)
        return hashlib.sha256(canon.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        d = self._content()
        d["fields"] = [f.to_dict() for f in self._fields]
        d.update(format_version=SCHEMA_FORMAT_VERSION, version=self.version,
                 description=self.description, hash=self.hash)
        return d

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureSchema:
        if not isinstance(d, Mapping):
            raise TypeError(f"a schema description must be a mapping, got {type(d).__name__}")
        fv = d.get("format_version", SCHEMA_FORMAT_VERSION)
        if fv != SCHEMA_FORMAT_VERSION:
            raise ValueError(f"schema format_version {fv!r} is not supported "
                             f"(this ducklearn reads {SCHEMA_FORMAT_VERSION})")
        schema = cls(d["name"], [_field_from_dict(f) for f in d["fields"]],
                     [Cross(**c) for c in d.get("crosses", [])],
                     version=int(d.get("version", 1)), description=d.get("description", ""))
        if "hash" in d and d["hash"] != schema.hash:
            raise ValueError(f"schema {schema.name!r}: stored hash {d['hash']} does not match "
                             f"its content ({schema.hash}); the description was altered")
        return schema

    @classmethod
    def from_json(cls, text: str | bytes) -> FeatureSchema:
        return cls.from_dict(json.loads(text))

    # -- deriving ---------------------------------------------------------------------------

    def extend(self, *fields: Field, crosses: Sequence[Any] = (), name: str | None = None,
               version: int | None = None, replace_fields: bool = False) -> FeatureSchema:
        """A new schema with extra fields (and crosses). ``replace_fields=True`` lets a field
        with an existing name replace it in place."""
        current = list(self._fields)
        for f in fields:
            if f.name in self._by_name:
                if not replace_fields:
                    raise ValueError(f"field {f.name!r} exists; pass replace_fields=True to "
                                     "replace it")
                current[[g.name for g in current].index(f.name)] = f
            else:
                current.append(f)
        return FeatureSchema(name or self.name, current, [*self._crosses, *crosses],
                             version=version or self.version, description=self.description)

    def without(self, *names: str) -> FeatureSchema:
        """A new schema without the named fields (and crosses that use them)."""
        missing = [n for n in names if n not in self._by_name]
        if missing:
            raise KeyError(f"schema {self.name!r} has no field(s) {missing}")
        drop = set(names)
        return FeatureSchema(self.name, [f for f in self._fields if f.name not in drop],
                             [c for c in self._crosses if c.a not in drop and c.b not in drop],
                             version=self.version, description=self.description)

    def with_options(self, name: str, **options: Any) -> FeatureSchema:
        """A new schema where field ``name`` has some options changed."""
        return self.extend(replace(self[name], **options), replace_fields=True)

    def with_quantile_bins(self, records: Any, n_bins: int = 16,
                           fields: Sequence[str] | None = None) -> FeatureSchema:
        """A new schema whose numeric fields get bin edges at quantiles of ``records``.

        Each chosen field's transformed values (after log1p and clip, as the C++ plan
        computes them; missing values and rejected records left out) give edges
        ``np.unique(np.quantile(values, np.linspace(0, 1, n_bins + 1)))``: ``n_bins`` bins of
        equal counts, fewer where quantiles coincide (discrete values). Binned fields get
        ``normalize=None`` (see :class:`Numeric`). A field with fewer than 2 distinct values
        keeps no bins, with a ``UserWarning`` naming it. The version is unchanged; the hash
        changes with the edges.

        Parameters
        ----------
        records : list of dicts, DataFrame, pyarrow Table or dict of columns
            Sample records (e.g. the history a model bootstraps on); keys the schema does not
            declare are ignored.
        n_bins : int, default 16
            Bins per field, in [1, 1024].
        fields : sequence of str, optional
            Numeric fields to bin (their existing edges are refitted). Default: every
            numeric field without bins that no cross uses.

        Examples
        --------
        >>> s = FeatureSchema("s", [Numeric("x"), Categorical("c", vocabulary=["a"])])
        >>> b = s.with_quantile_bins({"x": [0.0, 1.0, 2.0, 3.0, 4.0], "c": ["a"] * 5}, 4)
        >>> b["x"].bins
        (0.0, 1.0, 2.0, 3.0, 4.0)
        >>> b.compile().column_names
        ['x:bin0', 'x:bin1', 'x:bin2', 'x:bin3', 'c=a', 'c=__other__']
        """
        import numpy as np

        if isinstance(n_bins, bool) or not isinstance(n_bins, int) or not 1 <= n_bins <= 1024:
            raise ValueError(f"n_bins must be an integer in [1, 1024], got {n_bins!r}")
        crossed = {side for c in self._crosses for side in (c.a, c.b)}
        if fields is None:
            chosen = [f.name for f in self._fields
                      if isinstance(f, Numeric) and f.bins is None and f.name not in crossed]
        else:
            if isinstance(fields, str) or not isinstance(fields, Iterable):
                raise TypeError(f"fields must be a list of field names, got {fields!r}")
            chosen = list(fields)
            for name in chosen:
                f = self[name]
                if not isinstance(f, Numeric):
                    raise ValueError(f"fields: {name!r} is a {f.kind} field; only numeric "
                                     "fields can be binned")
                if name in crossed:
                    raise ValueError(f"fields: {name!r} is used by a cross and cannot be "
                                     "binned; drop the cross first")
        if not chosen:
            return self
        # The plan computes the transformed values (log1p, clip) exactly as it will encode
        # them; its raw values do not depend on bins, so this schema itself reads them.
        raw, _ = self.compile(unknown_fields="ignore")._raw(records)
        new: list[Field] = []
        too_few: list[str] = []
        for i, f in enumerate(self._fields):
            if f.name not in chosen:
                new.append(f)
                continue
            values = raw[:, i]
            values = values[~np.isnan(values)]
            edges = (np.unique(np.quantile(values, np.linspace(0.0, 1.0, n_bins + 1)))
                     if values.size else np.empty(0))
            if edges.size < 2:
                too_few.append(f.name)
                new.append(replace(f, bins=None))
            else:
                new.append(replace(f, bins=tuple(float(e) for e in edges), normalize=None))
        if too_few:
            warnings.warn(f"with_quantile_bins: field(s) {too_few} have fewer than 2 distinct "
                          "values in the sample and keep no bins", UserWarning, stacklevel=2)
        return FeatureSchema(self.name, new, self._crosses, version=self.version,
                             description=self.description)

    def compile(self, **options: Any):
        """An :class:`~ducklearn.features.Extractor` for this schema (options documented
        there: ``unknown_fields``, ``strict``, ``sparse``, ``seed``)."""
        from ducklearn.features.extract import Extractor

        return Extractor(self, **options)


# ---------------------------------------------------------------------------------------------
# Ready-made schemas
# ---------------------------------------------------------------------------------------------

LANGUAGES = ("python", "java", "cpp", "c", "javascript", "typescript", "go", "rust", "csharp",
             "kotlin", "swift", "ruby", "php", "scala", "shell")

#: A developer who receives suggestions.
User = FeatureSchema("user", [
    Numeric("experience_days", log1p=True, valid_range=(0, 36_500),
            description="days since the user's first commit"),
    Numeric("accepted_suggestions", log1p=True, valid_range=(0, 1e9), impute=0.0),
    Numeric("rejected_suggestions", log1p=True, valid_range=(0, 1e9), impute=0.0),
    Numeric("acceptance_rate", valid_range=(0, 1), normalize="minmax", missing_indicator=True,
            description="accepted / (accepted + rejected) over the last 90 days"),
    Numeric("commits_90d", log1p=True, valid_range=(0, 1e7), impute=0.0),
    Numeric("reviews_90d", log1p=True, valid_range=(0, 1e7), impute=0.0),
    Numeric("avg_session_minutes", log1p=True, valid_range=(0, 1440)),
    Numeric("n_repositories", log1p=True, valid_range=(0, 1e6)),
    Numeric("typical_active_hour", valid_range=(0, 24), normalize="minmax",
            description="median local hour of the user's activity"),
    Numeric("timezone_offset_hours", valid_range=(-12, 14), normalize="minmax", impute=0.0),
    Categorical("role", vocabulary=("developer", "reviewer", "maintainer", "manager", "bot")),
    Categorical("seniority", vocabulary=("junior", "mid", "senior", "staff", "principal")),
    Boolean("is_bot"),
    Tokens("preferred_languages", hash_bits=6, weighting="binary"),
    Timestamp("last_active", missing_indicator=True),
], version=1, description="a developer who receives and acts on suggestions")

#: A repository / project.
Project = FeatureSchema("project", [
    Numeric("n_files", log1p=True, valid_range=(0, 1e8), required=True),
    Numeric("lines_of_code", log1p=True, valid_range=(0, 1e10)),
    Numeric("n_contributors", log1p=True, valid_range=(0, 1e6)),
    Numeric("active_contributors_90d", log1p=True, valid_range=(0, 1e6), impute=0.0),
    Numeric("commits_90d", log1p=True, valid_range=(0, 1e8), impute=0.0),
    Numeric("ci_pass_rate", valid_range=(0, 1), normalize="minmax", missing_indicator=True),
    Numeric("ci_runs_90d", log1p=True, valid_range=(0, 1e8), impute=0.0),
    Numeric("mean_build_time_s", log1p=True, valid_range=(0, 1e6)),
    Numeric("test_coverage_pct", valid_range=(0, 100), normalize="minmax",
            missing_indicator=True),
    Numeric("open_issues", log1p=True, valid_range=(0, 1e7), normalize="robust"),
    Numeric("open_pull_requests", log1p=True, valid_range=(0, 1e7), normalize="robust"),
    Numeric("stars", log1p=True, valid_range=(0, 1e9), normalize="robust"),
    Categorical("primary_language", vocabulary=LANGUAGES),
    Categorical("visibility", vocabulary=("public", "internal", "private")),
    Categorical("license", hash_bits=4),
    Boolean("has_ci"),
    Tokens("language_mix", hash_bits=6, weighting="log",
           description="one token per file, by language: the language mix as term counts"),
    Timestamp("created_at", hour_of_day=False, day_of_week=False),
    Timestamp("last_release", hour_of_day=False, day_of_week=False, missing_indicator=True),
], crosses=[("primary_language", "visibility", 4)], version=1,
    description="a repository the application suggests changes in")

#: A source file; the benchmark entity (20 numeric, 3 categorical, a token field).
CodeFile = FeatureSchema("code_file", [
    Numeric("size_bytes", log1p=True, valid_range=(0, 1e10), required=True),
    Numeric("lines", log1p=True, valid_range=(0, 1e8), required=True),
    Numeric("lines_added_30d", log1p=True, valid_range=(0, 1e8), impute=0.0),
    Numeric("lines_deleted_30d", log1p=True, valid_range=(0, 1e8), impute=0.0),
    Numeric("churn_90d", log1p=True, valid_range=(0, 1e6), impute=0.0,
            description="commits touching the file in the last 90 days"),
    Numeric("n_authors", log1p=True, valid_range=(0, 1e5)),
    Numeric("author_experience_days", log1p=True, valid_range=(0, 36_500)),
    Numeric("cyclomatic_complexity", log1p=True, valid_range=(0, 1e6)),
    Numeric("max_function_complexity", log1p=True, valid_range=(0, 1e5)),
    Numeric("test_coverage_pct", valid_range=(0, 100), normalize="minmax",
            missing_indicator=True),
    Numeric("n_functions", log1p=True, valid_range=(0, 1e6)),
    Numeric("n_imports", log1p=True, valid_range=(0, 1e5)),
    Numeric("n_dependents", log1p=True, valid_range=(0, 1e7), normalize="robust"),
    Numeric("past_bug_fixes", log1p=True, valid_range=(0, 1e6), impute=0.0),
    Numeric("open_issues", log1p=True, valid_range=(0, 1e6), impute=0.0),
    Numeric("comment_ratio", valid_range=(0, 1), normalize="minmax"),
    Numeric("duplication_ratio", valid_range=(0, 1), normalize="minmax"),
    Numeric("review_latency_hours", log1p=True, valid_range=(0, 1e5), normalize="clipped"),
    Numeric("ci_flaky_rate", valid_range=(0, 1), normalize="minmax"),
    Numeric("file_age_days", log1p=True, valid_range=(0, 36_500)),
    Categorical("language", vocabulary=LANGUAGES, required=True),
    Categorical("file_kind", vocabulary=("source", "test", "config", "docs", "build",
                                         "generated")),
    Categorical("repo_tier", vocabulary=("critical", "standard", "experimental")),
    Tokens("owners", hash_bits=6, weighting="binary", description="code owners (teams/users)"),
    Timestamp("last_modified", age=True, age_unit="days", missing_indicator=True),
], crosses=[("language", "file_kind", 6)], version=1,
    description="a source file that suggestions touch")
