"""The typed schema of audit events.

Every event type names the payload fields it requires and their JSON types; extra fields
are allowed (components add context freely) but declared ones are checked on ``append``, so
a misspelt field fails where it is written rather than in an audit years later.

Components that need a type of their own declare it once at import time::

    from ducklearn.events import define_event_type
    define_event_type("replay.evicted", {"count": int})
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["EVENT_TYPES", "define_event_type", "check_payload"]

_TYPE_RE = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+")

_STR = (str,)
_INT = (int,)
_NUM = (int, float)
_OPT_STR = (str, type(None))

# type -> {field: accepted Python types}
EVENT_TYPES: dict[str, dict[str, tuple[type, ...]]] = {
    # registry (written by ducklearn.registry)
    "model.registered": {"version": _STR, "bump": _STR, "computed_bump": _STR},
    "model.retired": {"version": _STR},
    "model.archived": {"version": _STR},
    "alias.moved": {"alias": _STR, "from": _OPT_STR, "to": _STR},
    "alias.rolled_back": {"alias": _STR, "from": _OPT_STR, "to": _STR},
    "alias.deleted": {"alias": _STR, "from": _OPT_STR},
    "promotion.requested": {"alias": _STR, "version": _STR, "request_id": _INT},
    "promotion.approved": {"alias": _STR, "version": _STR, "request_id": _INT},
    "promotion.rejected": {"alias": _STR, "version": _STR, "request_id": _INT},
    "access.denied": {"operation": _STR, "reason": _STR},
    "role.granted": {"principal": _STR, "role": _STR, "scope": _STR},
    "role.revoked": {"principal": _STR, "role": _STR, "scope": _STR},
    "registry.gc": {"deleted": _INT, "freed_bytes": _INT},
    "registry.policy_changed": {"setting": _STR},
    # learning, serving, monitoring (written by the learner, the server and the monitor)
    "training.started": {},
    "training.completed": {},
    "training.failed": {"error": _STR},
    "checkpoint.saved": {},
    "snapshot.published": {},
    "prediction.sampled": {},
    "drift.detected": {"detector": _STR},
    "alert.raised": {"severity": _STR},
    "serving.swapped": {},
    "serving.fallback": {"reason": _STR},
    # experiment tracking
    "run.started": {"run_id": _STR},
    "run.finished": {"run_id": _STR, "status": _STR},
}


def define_event_type(name: str, fields: Mapping[str, type | tuple[type, ...]] | None = None
                      ) -> None:
    """Declare an event type and the payload fields it requires.

    Parameters
    ----------
    name : str
        Dotted lower-case name, e.g. ``"replay.evicted"``.
    fields : dict of field name -> type or tuple of types, optional
        Required payload fields (``int``, ``float``, ``str``, ``bool``, ``list``, ``dict``,
        ``type(None)``). Redefining a type with different fields raises ``ValueError``.
    """
    if not isinstance(name, str) or not _TYPE_RE.fullmatch(name) or len(name) > 64:
        raise ValueError(f"event type {name!r} must be dotted lower-case words, e.g. "
                         "'training.completed'")
    spec: dict[str, tuple[type, ...]] = {}
    for field, kinds in (fields or {}).items():
        if not isinstance(field, str) or not field:
            raise ValueError(f"payload field names must be non-empty strings, got {field!r}")
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        if not all(isinstance(k, type) for k in kinds):
            raise TypeError(f"field {field!r}: give a type or a tuple of types")
        spec[field] = kinds
    existing = EVENT_TYPES.get(name)
    if existing is not None and existing != spec:
        raise ValueError(f"event type {name!r} is already defined with fields "
                         f"{sorted(existing)}; pick another name")
    EVENT_TYPES[name] = spec


def check_payload(type_: str, payload: Mapping[str, Any]) -> None:
    """Raise ValueError/TypeError unless payload satisfies the type's schema."""
    spec = EVENT_TYPES.get(type_)
    if spec is None:
        raise ValueError(
            f"unknown event type {type_!r}; declare it first with "
            f"ducklearn.events.define_event_type({type_!r}, {{...}}) (known types: "
            f"{', '.join(sorted(EVENT_TYPES)[:8])}, ...)"
        )
    for field, kinds in spec.items():
        if field not in payload:
            raise ValueError(f"event {type_!r} needs payload field {field!r}")
        value = payload[field]
        if isinstance(value, np.generic):
            value = value.item()  # numpy scalars are stored as the Python numbers they equal
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if not ok and float in kinds and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            names = "/".join(k.__name__ for k in kinds)
            raise TypeError(f"event {type_!r}: payload field {field!r} must be {names}, got "
                            f"{type(value).__name__}")
