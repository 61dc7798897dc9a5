"""Validation policies and dead letters.

Every record of a batch is checked against the schema. A record that fails is not
transformed; it becomes a :class:`DeadLetter` naming its index in the batch, every failing
field and the reason, with the record itself so it can be fixed and replayed. Nothing is
silently dropped or coerced: ``accepted + rejected == submitted`` for every batch.

Reasons (``DeadLetter.errors[i].code``):

==================  =====================================================================
code                meaning
==================  =====================================================================
missing_required    a required field is absent or ``None``
wrong_type          a value of the wrong type (a string for a number, an int for a bool...)
not_finite          NaN or infinity in a numeric or timestamp field
out_of_range        outside the field's declared ``valid_range``
unknown_category    a level outside the vocabulary of a categorical without "other" bucket
unknown_field       a key that the schema does not declare (policy ``unknown_fields='error'``)
not_a_mapping       the record is not a dict / mapping
==================  =====================================================================

Unknown fields follow the extractor's policy: ``'error'`` rejects the record, ``'ignore'``
accepts it silently, ``'record'`` accepts it and counts the key (``Extractor.unknown_fields``
and the quality report). In strict mode the first rejected record raises
:class:`RecordValidationError` with exactly the message its dead letter carries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ducklearn import _core

__all__ = [
    "DeadLetter",
    "FieldError",
    "RecordValidationError",
    "UNKNOWN_FIELD_POLICIES",
    "REASONS",
]

UNKNOWN_FIELD_POLICIES = ("error", "ignore", "record")

#: Reason codes by the numbers the C++ plan and its binding report.
REASONS: dict[int, str] = {
    1: "missing_required",
    2: "wrong_type",
    3: "not_finite",
    4: "out_of_range",
    5: "unknown_category",
    int(_core.features.ISSUE_NOT_MAPPING): "not_a_mapping",
    int(_core.features.ISSUE_UNKNOWN_FIELD): "unknown_field",
}


class RecordValidationError(ValueError):
    """A record failed validation in strict mode. ``dead_letter`` has the details."""

    def __init__(self, dead_letter: DeadLetter) -> None:
        super().__init__(dead_letter.message)
        self.dead_letter = dead_letter


@dataclass(frozen=True)
class FieldError:
    """One failing field of a record (``field`` is None for record-level problems)."""

    field: str | None
    code: str
    message: str


@dataclass(frozen=True)
class DeadLetter:
    """A rejected record: its position in the submitted batch and every reason.

    Attributes
    ----------
    index : int
        Position of the record in the batch that was submitted.
    field : str or None
        The first failing field (None when the record itself is malformed).
    reason : str
        The first failure's code (see the module docs).
    errors : tuple of FieldError
        Every failure of the record, in schema order.
    record : object
        The submitted record (a dict, or the row rebuilt from columnar input), for replay.
    """

    index: int
    field: str | None
    reason: str
    errors: tuple[FieldError, ...]
    record: Any = field(default=None, compare=False, repr=False)

    @property
    def message(self) -> str:
        """``record 3: field 'lines': out_of_range: ...; field 'x': ...``."""
        return f"record {self.index}: " + "; ".join(
            (f"field {e.field!r}: " if e.field is not None else "") + e.message
            for e in self.errors
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the record is included when it is JSON-able)."""
        return {
            "index": self.index, "field": self.field, "reason": self.reason,
            "message": self.message,
            "errors": [{"field": e.field, "code": e.code, "message": e.message}
                       for e in self.errors],
        }


def _describe(code: str, field_spec: Any, detail: Any) -> str:
    if code == "missing_required":
        return "missing_required: the field is required but absent or None"
    if code == "wrong_type":
        expected = {
            "numeric": "a real number (int or float)",
            "boolean": "True or False",
            "categorical": "a string",
            "text": "a string",
            "tokens": "a list or tuple of strings",
            "timestamp": "Unix seconds, a datetime, numpy.datetime64 or an ISO 8601 string",
        }[field_spec.kind]
        return f"wrong_type: expected {expected}, got {detail}"
    if code == "not_finite":
        return f"not_finite: got {detail!r}; NaN and infinity are not accepted (use None for " \
               "a missing value)"
    if code == "out_of_range":
        lo, hi = field_spec.valid_range
        return f"out_of_range: {detail!r} is outside the declared valid range [{lo:g}, {hi:g}]"
    if code == "unknown_category":
        return "unknown_category: the level is not in the vocabulary and the field has no " \
               "'other' bucket"
    if code == "unknown_field":
        return f"unknown_field: {detail} is not declared by the schema (unknown_fields='error')"
    if code == "not_a_mapping":
        return f"not_a_mapping: a record must be a dict of field -> value, got {detail}"
    return code


def build_dead_letters(issues: Sequence[tuple], schema: Any, records: Any,
                       offset: int = 0) -> list[DeadLetter]:
    """Groups raw (row, field index, code, detail) issues into one DeadLetter per row."""
    by_row: dict[int, list[tuple[int, int, str, Any]]] = {}
    fields = schema.fields
    for row, fidx, code_num, detail in issues:
        code = REASONS.get(int(code_num), f"code_{code_num}")
        if isinstance(detail, float) and math.isnan(detail) and code != "not_finite":
            detail = None
        by_row.setdefault(int(row), []).append((int(fidx), int(code_num), code, detail))
    out = []
    for row in sorted(by_row):
        # Record-level problems first, then fields in schema order.
        items = sorted(by_row[row], key=lambda t: (t[0] >= 0, t[0], t[1]))
        errors = tuple(
            FieldError(fields[f].name if f >= 0 else None, code,
                       _describe(code, fields[f] if f >= 0 else None, detail))
            for f, _, code, detail in items
        )
        rec = records(row) if callable(records) else None
        out.append(DeadLetter(row + offset, errors[0].field, errors[0].code, errors, rec))
    return out


def check_policy(policy: Any) -> int:
    if policy not in UNKNOWN_FIELD_POLICIES:
        raise ValueError(
            f"unknown_fields must be one of {UNKNOWN_FIELD_POLICIES}, got {policy!r}"
        )
    return UNKNOWN_FIELD_POLICIES.index(policy)

