"""The model registry: versions computed from what changed, aliases with their full
history, lineage, content-addressed storage, governance and an audit trail.

>>> from ducklearn.registry import Registry          # doctest: +SKIP
>>> reg = Registry("models/", actor="alice")           # doctest: +SKIP

See :class:`Registry`. Catalogs live in SQLite (default) or PostgreSQL, selected by URL;
tensors are stored once per distinct chunk (:mod:`ducklearn.registry.blobs`); every change
is an event in :class:`ducklearn.events.EventStore`.
"""

from __future__ import annotations

from ducklearn.registry.blobs import BlobCorruptError, DatabaseBlobStore, LocalBlobStore
from ducklearn.registry.governance import (
    PERMISSIONS,
    ROLES,
    ApprovalRequired,
    ConflictError,
    NotFoundError,
    PermissionDenied,
    RegistryError,
    SelfApprovalError,
)
from ducklearn.registry.registry import (
    AliasMove,
    GCReport,
    IntegrityError,
    ModelInfo,
    ModelVersion,
    PromotionRequest,
    Registry,
    data_fingerprint,
)
from ducklearn.registry.semver import parse_version

__all__ = [
    "Registry",
    "ModelVersion",
    "ModelInfo",
    "AliasMove",
    "PromotionRequest",
    "GCReport",
    "RegistryError",
    "NotFoundError",
    "ConflictError",
    "PermissionDenied",
    "ApprovalRequired",
    "SelfApprovalError",
    "IntegrityError",
    "BlobCorruptError",
    "LocalBlobStore",
    "DatabaseBlobStore",
    "ROLES",
    "PERMISSIONS",
    "data_fingerprint",
    "parse_version",
]
