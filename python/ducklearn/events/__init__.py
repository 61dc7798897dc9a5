"""The audit event store: an append-only, hash-chained log of what happened to models.

Training, deployment (alias moves, approvals, denials), checkpoint and sampled prediction
events go through one interface, :class:`EventStore`, backed by SQLite (WAL, batched commits)
or PostgreSQL (COPY batches), selected by URL. :meth:`EventStore.verify` recomputes the hash
chain and says where it breaks; the database itself refuses updates and deletes.
"""

from __future__ import annotations

from ducklearn.events.store import (
    GENESIS_HASH,
    Event,
    EventStore,
    Problem,
    VerifyReport,
    event_hash,
    verify_jsonl,
)
from ducklearn.events.types import EVENT_TYPES, define_event_type

__all__ = [
    "EventStore",
    "Event",
    "Problem",
    "VerifyReport",
    "EVENT_TYPES",
    "GENESIS_HASH",
    "define_event_type",
    "event_hash",
    "verify_jsonl",
]
