"""The model registry (see :class:`Registry`)."""

from __future__ import annotations

import contextlib
import datetime as _dt
import getpass
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ducklearn._db import (
    Database,
    Tx,
    advisory_key,
    canonical_json,
    check_name,
    from_us,
    now_us,
    parse_url,
    to_us,
)
from ducklearn.events import EventStore
from ducklearn.modelfile import (
    _DTYPES,
    ModelFile,
    ModelFileError,
    _check_json,
    _check_metrics,
    _feature_schema,
    _tensor_table,
    from_bytes,
    pack,
    read_model_file,
    save_model,
    tensor_digest,
    to_bytes,
)
from ducklearn.registry import semver
from ducklearn.registry.blobs import (
    DEFAULT_CHUNK_SIZE,
    BlobCorruptError,
    BlobStore,
    DatabaseBlobStore,
    LocalBlobStore,
)
from ducklearn.registry.governance import (
    PERMISSIONS,
    ApprovalRequired,
    ConflictError,
    NotFoundError,
    PermissionDenied,
    RegistryError,
    SelfApprovalError,
    check_alias,
    check_principal,
    check_role,
    roles_allowing,
)

__all__ = ["Registry", "ModelVersion", "ModelInfo", "AliasMove", "PromotionRequest",
           "GCReport", "IntegrityError", "data_fingerprint"]

SCHEMA_VERSION = 1
DEFAULT_PROTECTED = ("production",)
REQUEST_TTL_DAYS = 7.0
_GC_LOCK_KEY = advisory_key("ducklearn_registry.blobs")
_UNSET: Any = object()

_SCHEMA = [
    """CREATE TABLE registry_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE registry_models (
        name TEXT PRIMARY KEY,
        created_us {bigint} NOT NULL,
        created_by TEXT NOT NULL,
        protected_aliases TEXT NOT NULL)""",
    """CREATE TABLE registry_versions (
        name TEXT NOT NULL REFERENCES registry_models (name),
        version TEXT NOT NULL,
        major INTEGER NOT NULL,
        minor INTEGER NOT NULL,
        patch INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        status TEXT NOT NULL,
        created_us {bigint} NOT NULL,
        created_by TEXT NOT NULL,
        model_type TEXT NOT NULL,
        contract_hash TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        metadata_hash TEXT NOT NULL,
        base_version TEXT,
        parent TEXT,
        run_id TEXT,
        data_fingerprint TEXT,
        library_version TEXT,
        schema_hash TEXT,
        bump TEXT NOT NULL,
        computed_bump TEXT NOT NULL,
        bump_reason TEXT,
        size_bytes {bigint} NOT NULL,
        manifest TEXT NOT NULL,
        chunks TEXT NOT NULL,
        status_us {bigint},
        status_reason TEXT,
        PRIMARY KEY (name, version),
        UNIQUE (name, seq),
        UNIQUE (name, major, minor, patch))""",
    "CREATE INDEX registry_versions_run ON registry_versions (run_id)",
    "CREATE INDEX registry_versions_parent ON registry_versions (parent)",
    """CREATE TABLE registry_version_blobs (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        digest TEXT NOT NULL,
        PRIMARY KEY (name, version, digest))""",
    "CREATE INDEX registry_version_blobs_digest ON registry_version_blobs (digest)",
    """CREATE TABLE registry_aliases (
        name TEXT NOT NULL,
        alias TEXT NOT NULL,
        version TEXT NOT NULL,
        moved_us {bigint} NOT NULL,
        moved_by TEXT NOT NULL,
        PRIMARY KEY (name, alias))""",
    """CREATE TABLE registry_alias_history (
        id {autoid},
        name TEXT NOT NULL,
        alias TEXT NOT NULL,
        kind TEXT NOT NULL,
        from_version TEXT,
        to_version TEXT,
        actor TEXT NOT NULL,
        approved_by TEXT,
        request_id {bigint},
        reason TEXT NOT NULL,
        moved_us {bigint} NOT NULL)""",
    "CREATE INDEX registry_alias_history_at ON registry_alias_history (name, alias, moved_us)",
    """CREATE TABLE registry_requests (
        id {autoid},
        name TEXT NOT NULL,
        alias TEXT NOT NULL,
        version TEXT NOT NULL,
        requested_by TEXT NOT NULL,
        requested_us {bigint} NOT NULL,
        reason TEXT NOT NULL,
        status TEXT NOT NULL,
        decided_by TEXT,
        decided_us {bigint},
        decision_reason TEXT)""",
    "CREATE INDEX registry_requests_status ON registry_requests (status, name)",
    """CREATE TABLE registry_roles (
        principal TEXT NOT NULL,
        role TEXT NOT NULL,
        scope TEXT NOT NULL,
        granted_by TEXT NOT NULL,
        granted_us {bigint} NOT NULL,
        PRIMARY KEY (principal, role, scope))""",
]


# The alias history answers "what was production at time T": the database refuses to edit
# or delete it, as it does for the event log.
_HISTORY_GUARDS = {
    "sqlite": [
        """CREATE TRIGGER registry_alias_history_no_update BEFORE UPDATE
           ON registry_alias_history
           BEGIN SELECT RAISE(ABORT, 'registry_alias_history is append-only'); END""",
        """CREATE TRIGGER registry_alias_history_no_delete BEFORE DELETE
           ON registry_alias_history
           BEGIN SELECT RAISE(ABORT, 'registry_alias_history is append-only'); END""",
    ],
    "postgresql": [
        """CREATE FUNCTION registry_alias_history_reject() RETURNS trigger
           LANGUAGE plpgsql AS $$
           BEGIN
             RAISE EXCEPTION 'registry_alias_history is append-only: % is not allowed', TG_OP
               USING ERRCODE = 'insufficient_privilege';
           END $$""",
        """CREATE TRIGGER registry_alias_history_no_change BEFORE UPDATE OR DELETE
           ON registry_alias_history FOR EACH ROW
           EXECUTE FUNCTION registry_alias_history_reject()""",
        """CREATE TRIGGER registry_alias_history_no_truncate BEFORE TRUNCATE
           ON registry_alias_history FOR EACH STATEMENT
           EXECUTE FUNCTION registry_alias_history_reject()""",
    ],
}


class IntegrityError(RegistryError):
    """Stored data does not match its checksums (damaged or missing blobs)."""


def data_fingerprint(*arrays: Any) -> str:
    """A stable fingerprint of training data for lineage: SHA-256 over each array's dtype,
    shape and bytes (pass X, y, sample weights... in a fixed order)."""
    h = hashlib.sha256()
    for a in arrays:
        arr = np.ascontiguousarray(np.asarray(a))
        if arr.dtype == object:
            raise TypeError("data_fingerprint needs numeric or string arrays, not objects")
        h.update(f"{arr.dtype.str}{arr.shape};".encode())
        h.update(memoryview(arr).cast("B"))
    return "sha256:" + h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelVersion:
    """One registered version (immutable apart from its status)."""

    name: str
    version: str
    seq: int
    status: str  # "active", "retired" or "archived"
    created_at: _dt.datetime
    created_by: str
    model_type: str
    bump: str
    computed_bump: str
    bump_reason: str | None
    base_version: str | None
    parent: str | None
    run_id: str | None
    data_fingerprint: str | None
    library_version: str | None
    schema_hash: str | None
    contract_hash: str
    content_hash: str
    metadata_hash: str
    size_bytes: int
    status_reason: str | None
    manifest: dict[str, Any] = field(repr=False)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.manifest.get("metrics") or {})

    @property
    def tags(self) -> dict[str, str]:
        return dict(self.manifest.get("tags") or {})

    @property
    def description(self) -> str:
        return self.manifest.get("description") or ""

    @property
    def lineage_info(self) -> dict[str, Any]:
        return dict(self.manifest.get("lineage") or {})

    @property
    def contract(self) -> dict[str, Any]:
        return dict((self.manifest.get("state") or {}).get("contract") or {})

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "manifest"}
        out["created_at"] = self.created_at.isoformat()
        out.update(ref=self.ref, metrics=self.metrics, tags=self.tags,
                   description=self.description, lineage=self.lineage_info,
                   contract=self.contract)
        return out


@dataclass(frozen=True)
class AliasMove:
    """One entry of an alias's history."""

    id: int
    name: str
    alias: str
    kind: str  # "promote", "rollback" or "delete"
    from_version: str | None
    to_version: str | None
    actor: str
    approved_by: str | None
    request_id: int | None
    reason: str
    at: _dt.datetime

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["at"] = self.at.isoformat()
        return out


@dataclass(frozen=True)
class PromotionRequest:
    id: int
    name: str
    alias: str
    version: str
    requested_by: str
    requested_at: _dt.datetime
    reason: str
    status: str  # "pending", "approved", "rejected"
    decided_by: str | None
    decided_at: _dt.datetime | None
    decision_reason: str | None

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["requested_at"] = self.requested_at.isoformat()
        out["decided_at"] = self.decided_at.isoformat() if self.decided_at else None
        return out


@dataclass(frozen=True)
class ModelInfo:
    name: str
    created_at: _dt.datetime
    created_by: str
    protected_aliases: tuple[str, ...]
    versions: int
    latest: str | None
    aliases: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["created_at"] = self.created_at.isoformat()
        out["protected_aliases"] = list(self.protected_aliases)
        return out


@dataclass(frozen=True)
class GCReport:
    deleted: int
    freed_bytes: int
    kept: int
    dry_run: bool


_VCOLS = ("name, version, seq, status, created_us, created_by, model_type, bump, "
          "computed_bump, bump_reason, base_version, parent, run_id, data_fingerprint, "
          "library_version, schema_hash, contract_hash, content_hash, metadata_hash, "
          "size_bytes, status_reason, manifest")
_HCOLS = ("id, name, alias, kind, from_version, to_version, actor, approved_by, request_id, "
          "reason, moved_us")
_RCOLS = ("id, name, alias, version, requested_by, requested_us, reason, status, decided_by, "
          "decided_us, decision_reason")


def _version_from_row(r: Sequence[Any]) -> ModelVersion:
    return ModelVersion(
        name=r[0], version=r[1], seq=int(r[2]), status=r[3], created_at=from_us(int(r[4])),
        created_by=r[5], model_type=r[6], bump=r[7], computed_bump=r[8], bump_reason=r[9],
        base_version=r[10], parent=r[11], run_id=r[12], data_fingerprint=r[13],
        library_version=r[14], schema_hash=r[15], contract_hash=r[16], content_hash=r[17],
        metadata_hash=r[18], size_bytes=int(r[19]), status_reason=r[20],
        manifest=json.loads(r[21]))


def _move_from_row(r: Sequence[Any]) -> AliasMove:
    return AliasMove(id=int(r[0]), name=r[1], alias=r[2], kind=r[3], from_version=r[4],
                     to_version=r[5], actor=r[6], approved_by=r[7],
                     request_id=None if r[8] is None else int(r[8]), reason=r[9],
                     at=from_us(int(r[10])))


def _request_from_row(r: Sequence[Any]) -> PromotionRequest:
    return PromotionRequest(id=int(r[0]), name=r[1], alias=r[2], version=r[3],
                            requested_by=r[4], requested_at=from_us(int(r[5])), reason=r[6],
                            status=r[7], decided_by=r[8],
                            decided_at=None if r[9] is None else from_us(int(r[9])),
                            decision_reason=r[10])


def _check_reason(reason: Any, argument: str = "reason", required: bool = True) -> str:
    if reason is None and not required:
        return ""
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError(f"{argument} must be a non-empty string saying why (it is kept in "
                         "the history and the audit log)")
    if len(reason) > 2000:
        raise ValueError(f"{argument} is longer than 2000 characters")
    return reason.strip()


def _parse_ref(ref: Any, argument: str, default_name: str | None) -> tuple[str, str]:
    """"name@version" or (with a default model name) "version" -> (name, version)."""
    if not isinstance(ref, str) or not ref:
        raise TypeError(f"{argument} must be 'name@version' or a version string, got {ref!r}")
    name, sep, version = ref.partition("@")
    if not sep:
        if default_name is None:
            raise ValueError(f"{argument} must be 'name@version', got {ref!r}")
        name, version = default_name, ref
    check_name(name, f"{argument} model name")
    return name, version


class _Write:
    """A catalog transaction plus the audit events it records.

    When the event store lives in the catalog's database the events are written inside the
    transaction (they commit or roll back with the change); otherwise they are appended and
    flushed right after the commit.
    """

    def __init__(self, registry: Registry, tx: Tx):
        self.registry = registry
        self.tx = tx
        self.after: list[tuple[str, str, dict[str, Any]]] = []

    def emit(self, type_: str, subject: str, payload: dict[str, Any]) -> None:
        reg = self.registry
        if reg._events_shared:
            reg.events._append_in(self.tx, type_, actor=reg.actor, subject=subject,
                                  payload=payload)
        else:
            self.after.append((type_, subject, payload))


# ---------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------


class Registry:
    """Versioned, governed, audited storage of models.

    Parameters
    ----------
    location : str or path
        A directory (created if needed: ``catalog.db`` + ``blobs/``), a SQLite URL
        (``sqlite:///models.db``; blobs in ``models.db.blobs/``) or a PostgreSQL URL
        (``postgresql://user@host/db``; blobs in a table of the same database unless
        ``blob_store`` says otherwise).
    actor : str, optional
        The principal performing operations (default ``$DUCKLEARN_ACTOR`` or the OS
        user). Whoever creates a registry becomes its first admin; everyone (``"*"``) may
        read until an admin revokes that.
    events : str, EventStore or None
        Where audit events go. Default: the catalog's own database, so every change and its
        event commit in one transaction.
    blob_store : path or BlobStore, optional
        Where tensor chunks go (a directory, or an object with the
        :class:`~ducklearn.registry.blobs.BlobStore` methods).
    chunk_size : int, default 262144
        Tensors larger than this are stored as chunks of this many bytes, so versions that
        share part of a tensor share those chunks.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> from ducklearn.linear import LogisticRegression
    >>> from ducklearn.registry import Registry
    >>> X = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(int)
    >>> reg = Registry(tempfile.mkdtemp(), actor="alice")
    >>> v1 = reg.register("churn", LogisticRegression().fit(X, y), metrics={"auc": 0.91})
    >>> v1.version
    '1.0.0'
    >>> v2 = reg.register("churn", LogisticRegression(l2=0.01).fit(X, y))
    >>> v2.version, v2.bump                           # same contract, new weights
    ('1.1.0', 'minor')
    >>> reg.promote("churn", "staging", "1.1.0", reason="beats 1.0.0 offline").to_version
    '1.1.0'
    >>> reg.load("churn", "staging").predict(X[:3]).shape
    (3,)
    >>> reg.close()
    """

    def __init__(self, location: Any, *, actor: str | None = None,
                 events: Any = None, blob_store: Any = None,
                 chunk_size: int = DEFAULT_CHUNK_SIZE, compression_level: int = 3):
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or (
            chunk_size < 4096 or chunk_size > (64 << 20)
        ):
            raise ValueError(f"chunk_size must be an integer in [4096, 64 MiB], got "
                             f"{chunk_size!r}")
        if isinstance(compression_level, bool) or not isinstance(compression_level, int) or (
            not 1 <= compression_level <= 22
        ):
            raise ValueError(f"compression_level must be 1..22, got {compression_level!r}")
        self.actor = check_principal(
            actor or os.environ.get("DUCKLEARN_ACTOR") or getpass.getuser(), "actor")
        if self.actor == "*":
            raise ValueError("actor '*' means everyone; act as a named principal")
        self.chunk_size = chunk_size
        db_url, blob_root, self._lock_path = self._locate(location)
        self._db = Database(db_url, argument="location")
        # As given, so Registry(reg.location) reopens this registry (for a directory the
        # catalog path alone would open a file registry with another blob directory).
        self.location = os.fspath(location)
        self._db.ensure_schema("registry", SCHEMA_VERSION,
                               _SCHEMA + _HISTORY_GUARDS[self._db.dialect])
        if blob_store is None:
            self.blobs: BlobStore = (LocalBlobStore(blob_root, level=compression_level)
                                     if blob_root else
                                     DatabaseBlobStore(self._db, level=compression_level))
        elif isinstance(blob_store, (str, os.PathLike)):
            self.blobs = LocalBlobStore(blob_store, level=compression_level)
        elif all(callable(getattr(blob_store, m, None))
                 for m in ("put", "get", "has", "delete", "iter_blobs")):
            self.blobs = blob_store
        else:
            raise TypeError("blob_store must be a directory path or a BlobStore (put, get, "
                            "has, delete, iter_blobs)")
        if events is None:
            self.events = EventStore(db_url, _database=self._db)
            self._events_shared = True
            self._owns_events = True
        elif isinstance(events, EventStore):
            self.events = events
            self._events_shared = events._db is self._db
            self._owns_events = False
        else:
            self.events = EventStore(events)
            self._events_shared = False
            self._owns_events = True
        self._bootstrap()

    @staticmethod
    def _locate(location: Any) -> tuple[str, str | None, str | None]:
        if isinstance(location, os.PathLike):
            location = os.fspath(location)
        dialect, target = parse_url(location, argument="location")
        if dialect == "postgresql":
            return location, None, None
        if "://" in location:
            path = os.path.abspath(target)
        elif location.endswith((".db", ".sqlite", ".sqlite3")) or os.path.isfile(location):
            path = os.path.abspath(location)
        else:
            os.makedirs(location, exist_ok=True)
            root = os.path.abspath(location)
            return (os.path.join(root, "catalog.db"), os.path.join(root, "blobs"),
                    os.path.join(root, "catalog.db.lock"))
        return path, path + ".blobs", path + ".lock"

    def _bootstrap(self) -> None:
        """The creator of a registry becomes its admin; everyone may read."""
        now = now_us()
        with self._db.transaction() as tx:
            row = tx.one("INSERT INTO registry_settings (key, value) VALUES ('created_by', ?) "
                         "ON CONFLICT (key) DO NOTHING RETURNING key", (self.actor,))
            if row is None:
                return
            tx.execute("INSERT INTO registry_settings (key, value) VALUES "
                       "('default_protected', ?)", (json.dumps(list(DEFAULT_PROTECTED)),))
            tx.many("INSERT INTO registry_roles (principal, role, scope, granted_by, "
                    "granted_us) VALUES (?, ?, '*', ?, ?)",
                    [(self.actor, "admin", self.actor, now), ("*", "viewer", self.actor, now)])

    # -- plumbing -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self) -> Iterator[_Write]:
        with self._db.transaction() as tx:
            w = _Write(self, tx)
            yield w
        if w.after:
            for type_, subject, payload in w.after:
                self.events.append(type_, actor=self.actor, subject=subject, payload=payload)
            self.events.flush()

    @contextlib.contextmanager
    def _blob_lock(self, exclusive: bool) -> Iterator[None]:
        """Registrations hold it shared from their first blob write to their commit; the
        garbage collector holds it exclusively, so it never deletes a blob that a
        registration in flight is about to reference."""
        if self._db.dialect == "sqlite":
            import fcntl

            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                yield
            finally:
                os.close(fd)  # closing the descriptor releases the lock
        else:
            conn = self._db.conn()
            fn = "pg_advisory_lock" if exclusive else "pg_advisory_lock_shared"
            conn.execute(f"SELECT {fn}(%s)", (_GC_LOCK_KEY,))
            try:
                yield
            finally:
                conn.execute(f"SELECT {fn.replace('lock', 'unlock', 1)}(%s)", (_GC_LOCK_KEY,))

    def _roles(self, principal: str, model: str | None) -> set[str]:
        rows = self._db.query(
            "SELECT role FROM registry_roles WHERE principal IN (?, '*') AND scope IN (?, '*')",
            (principal, model or "*"))
        return {r[0] for r in rows}

    def _deny(self, operation: str, model: str | None, message: str,
              cls: type[PermissionDenied] = PermissionDenied) -> None:
        payload = {"operation": operation, "reason": message, "principal": self.actor}
        with self._write() as w:
            w.emit("access.denied", model or "registry", payload)
        raise cls(message, principal=self.actor, operation=operation, model=model)

    def _authorize(self, operation: str, model: str | None = None) -> None:
        roles = self._roles(self.actor, model)
        if any(operation in PERMISSIONS[r] for r in roles):
            return
        needed = " or ".join(roles_allowing(operation))
        where = f"model {model!r}" if model else "this registry"
        scope = f" --model {model}" if model else ""
        self._deny(operation, model,
                   f"{self.actor!r} may not {operation} on {where}: it needs the {needed} role "
                   f"(has: {', '.join(sorted(roles)) or 'none'}). An admin can grant it: "
                   f"ducklearn registry grant {self.actor} {roles_allowing(operation)[0]}"
                   f"{scope}")

    def _lock_model(self, tx: Tx, name: str, *, create: bool = False) -> list[str]:
        if create:
            default = tx.one("SELECT value FROM registry_settings WHERE key = "
                             "'default_protected'")
            tx.execute("INSERT INTO registry_models (name, created_us, created_by, "
                       "protected_aliases) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                       (name, now_us(), self.actor,
                        default[0] if default else json.dumps(list(DEFAULT_PROTECTED))))
        lock = " FOR UPDATE" if self._db.dialect == "postgresql" else ""
        row = tx.one(f"SELECT protected_aliases FROM registry_models WHERE name = ?{lock}",
                     (name,))
        if row is None:
            raise NotFoundError(f"no model named {name!r} in this registry (see "
                                "Registry.models())")
        return json.loads(row[0])

    def _resolve(self, q: Tx, name: str, ref: str | None) -> ModelVersion:
        """A version by number ("1.2.0"), prefix ("1", "1.2": the newest match), alias or
        "latest" (the newest version that still has its tensors)."""
        check_name(name, "name")
        if ref is None or ref == "latest":
            row = q.one(f"SELECT {_VCOLS} FROM registry_versions WHERE name = ? AND "
                        "status <> 'archived' ORDER BY seq DESC LIMIT 1", (name,))
            if row is None:
                self._missing_model(q, name)
                raise NotFoundError(f"model {name!r} has no loadable version")
            return _version_from_row(row)
        if not isinstance(ref, str) or not ref:
            raise TypeError(f"version must be a version, prefix, alias or 'latest', got "
                            f"{ref!r}")
        if ref[0].isdigit():
            parts = ref.split(".")
            try:
                nums = [int(p) for p in parts]
                if len(nums) > 3 or any(str(n) != p for n, p in zip(nums, parts, strict=True)):
                    raise ValueError
            except ValueError:
                raise ValueError(f"version {ref!r} is not MAJOR[.MINOR[.PATCH]]") from None
            if len(nums) == 3:
                row = q.one(f"SELECT {_VCOLS} FROM registry_versions WHERE name = ? AND "
                            "version = ?", (name, ref))
            else:
                cols = ["major", "minor"][:len(nums)]
                cond = " AND ".join(f"{c} = ?" for c in cols)
                row = q.one(f"SELECT {_VCOLS} FROM registry_versions WHERE name = ? AND "
                            f"{cond} AND status <> 'archived' ORDER BY major DESC, minor DESC, "
                            "patch DESC LIMIT 1", (name, *nums))
            if row is None:
                self._missing_model(q, name)
                raise NotFoundError(f"model {name!r} has no version {ref!r}")
            return _version_from_row(row)
        check_alias(ref, "version or alias")
        row = q.one(f"SELECT {', '.join('v.' + c.strip() for c in _VCOLS.split(','))} "
                    "FROM registry_aliases a JOIN registry_versions v ON v.name = a.name AND "
                    "v.version = a.version WHERE a.name = ? AND a.alias = ?", (name, ref))
        if row is None:
            self._missing_model(q, name)
            raise NotFoundError(f"model {name!r} has no alias {ref!r}")
        return _version_from_row(row)

    @staticmethod
    def _missing_model(q: Tx, name: str) -> None:
        if q.one("SELECT 1 FROM registry_models WHERE name = ?", (name,)) is None:
            raise NotFoundError(f"no model named {name!r} in this registry")

    # -- registering --------------------------------------------------------------------------

    def _model_file(self, model: Any, *, metrics: Any, tags: Any, description: Any,
                    lineage: dict[str, Any], feature_schema: Any) -> ModelFile:
        if isinstance(model, ModelFile):
            mf = model
        elif isinstance(model, (str, os.PathLike)):
            mf = read_model_file(model)
        elif isinstance(model, (bytes, bytearray, memoryview)):
            mf = from_bytes(model)
        elif callable(getattr(model, "state", None)):
            return pack(model, metrics=metrics, tags=tags, description=description,
                        lineage=lineage, feature_schema=feature_schema)
        else:
            raise TypeError("model must be a fitted estimator, a ModelFile, model-file bytes "
                            f"or a path to a model file, got {type(model).__name__}")
        manifest = json.loads(canonical_json(mf.manifest))
        if metrics is not None:
            manifest["metrics"] = {**manifest.get("metrics", {}), **_check_metrics(metrics)}
        if tags is not None:
            if not isinstance(tags, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
            ):
                raise TypeError("tags must be a dict of str -> str")
            manifest["tags"] = {**manifest.get("tags", {}), **tags}
        if description is not None:
            if not isinstance(description, str):
                raise TypeError("description must be a string")
            manifest["description"] = description
        if lineage:
            manifest["lineage"] = {**manifest.get("lineage", {}), **lineage}
        tensors = mf.tensors
        if feature_schema is not None:
            schema_json, schema_hash, pipeline = _feature_schema(feature_schema)
            manifest["feature_schema"], manifest["schema_hash"] = schema_json, schema_hash
            tensors = {k: v for k, v in tensors.items() if not k.startswith("features.")}
            manifest["tensors"] = {k: v for k, v in manifest["tensors"].items()
                                   if not k.startswith("features.")}
            manifest["features"] = None
            if pipeline is not None:
                kind, pipe_tensors, pipe_manifest = pipeline
                tensors.update({f"features.{k}": v for k, v in pipe_tensors.items()})
                manifest["features"] = {"type": kind, "state": pipe_manifest}
                manifest["tensors"].update(_tensor_table(
                    {f"features.{k}": v for k, v in pipe_tensors.items()}))
        return ModelFile(manifest=manifest, tensors=tensors)

    def _chunk(self, tensors: Mapping[str, np.ndarray]
               ) -> tuple[dict[str, list[str]], dict[str, tuple[bytes, int]], int]:
        chunks: dict[str, list[str]] = {}
        blobs: dict[str, tuple[bytes, int]] = {}
        total = 0
        for name, arr in tensors.items():
            a = np.ascontiguousarray(arr)
            raw = memoryview(a).cast("B")
            total += len(raw)
            step = self.chunk_size - self.chunk_size % max(a.itemsize, 1)
            digests = []
            for off in range(0, max(len(raw), 1), step):
                piece = bytes(raw[off:off + step])
                d = hashlib.sha256(piece).hexdigest()
                digests.append(d)
                blobs.setdefault(d, (piece, a.itemsize))
            chunks[name] = digests
        return chunks, blobs, total

    def register(self, name: str, model: Any, *, parent: str | None = None,
                 run_id: str | None = None, data_fingerprint: str | None = None,
                 metrics: Mapping[str, float] | None = None,
                 tags: Mapping[str, str] | None = None, description: str | None = None,
                 feature_schema: Any = None, lineage: Mapping[str, Any] | None = None,
                 bump: str | None = None, reason: str | None = None) -> ModelVersion:
        """Register a model and return its version (computed; see
        :mod:`ducklearn.registry.semver`).

        Parameters
        ----------
        name : str
            Model name (letters, digits, ``.``, ``_``, ``-``).
        model : estimator, path, bytes or ModelFile
            A fitted estimator, or a model file (validated, checksums included).
        parent : str, optional
            The version this one was trained from: ``"1.2.0"`` (same model) or
            ``"other@1.2.0"``. It is the base of the version bump and the first step of
            :meth:`lineage`; without it the base is the model's newest version.
        run_id, data_fingerprint : str, optional
            Lineage: the experiment run and the training data (:func:`data_fingerprint`).
        metrics, tags, description, feature_schema, lineage
            Stored in the manifest (see :func:`ducklearn.modelfile.pack`).
        bump : {"major", "minor", "patch"}, optional
            Override the computed bump; needs ``reason``.

        A registration with the same content and metadata as its base returns the base
        version unchanged, so a retried call never creates a duplicate. Blobs are written
        first and the version appears in one catalog transaction: a crash at any point
        leaves either no trace in the catalog or the complete version.
        """
        check_name(name, "name")
        if bump is not None:
            if bump not in semver.BUMPS:
                raise ValueError(f"bump must be one of {semver.BUMPS} or None, got {bump!r}")
            reason = _check_reason(reason, "reason (required with bump)")
        elif reason is not None:
            raise ValueError("reason applies to an overridden bump; pass bump= too, or put "
                             "the note in description=")
        parent_ref = None
        if parent is not None:
            parent_ref = _parse_ref(parent, "parent", name)
            semver.parse_version(parent_ref[1])
        for argument, value in (("run_id", run_id), ("data_fingerprint", data_fingerprint)):
            if value is not None and (not isinstance(value, str) or not value
                                      or len(value) > 256):
                raise ValueError(f"{argument} must be a non-empty string of at most 256 "
                                 "characters")
        extra = dict(_check_json(dict(lineage), "lineage")) if lineage is not None else {}
        if parent_ref is not None:
            extra["parent"] = f"{parent_ref[0]}@{parent_ref[1]}"
        if run_id is not None:
            extra["run_id"] = run_id
        if data_fingerprint is not None:
            extra["data_fingerprint"] = data_fingerprint
        self._authorize("register", name)
        mf = self._model_file(model, metrics=metrics, tags=tags, description=description,
                              lineage=extra, feature_schema=feature_schema)
        manifest = mf.manifest
        lin = manifest.get("lineage") or {}
        fps = semver.fingerprints(manifest)
        chunks, blobs, size = self._chunk(mf.tensors)
        with self._blob_lock(exclusive=False):
            put_many = getattr(self.blobs, "put_many", None)
            if put_many is not None:
                put_many([(d, data, itemsize) for d, (data, itemsize) in blobs.items()])
            else:
                for digest, (data, itemsize) in blobs.items():
                    self.blobs.put(digest, data, itemsize)
            return self._commit_version(name, manifest, fps, chunks, size, lin, parent_ref,
                                        bump, reason)

    def _commit_version(self, name: str, manifest: dict[str, Any], fps: semver.Fingerprints,
                        chunks: dict[str, list[str]], size: int, lin: Mapping[str, Any],
                        parent_ref: tuple[str, str] | None, bump: str | None,
                        reason: str | None) -> ModelVersion:
        with self._write() as w:
            tx = w.tx
            self._lock_model(tx, name, create=True)
            existing = [(int(a), int(b), int(c)) for a, b, c in tx.all(
                "SELECT major, minor, patch FROM registry_versions WHERE name = ?", (name,))]
            base = None
            if parent_ref is not None:
                row = tx.one(f"SELECT {_VCOLS} FROM registry_versions WHERE name = ? AND "
                             "version = ?", parent_ref)
                if row is None:
                    raise NotFoundError(f"parent {parent_ref[0]}@{parent_ref[1]} is not "
                                        "registered")
                parent_v = _version_from_row(row)
                if parent_ref[0] == name:
                    base = parent_v
            if base is None and existing:
                base = _version_from_row(tx.one(
                    f"SELECT {_VCOLS} FROM registry_versions WHERE name = ? ORDER BY seq DESC "
                    "LIMIT 1", (name,)))
            base_fp = None if base is None else semver.Fingerprints(
                base.contract_hash, base.content_hash, base.metadata_hash)
            computed = semver.computed_bump(base_fp, fps)
            if computed is None and bump is None:
                return base  # idempotent: the same model registered again
            if computed == "initial":
                if bump is not None:
                    raise ValueError("the first version of a model is always 1.0.0; register "
                                     "it without bump=")
                chosen = "initial"
            else:
                chosen = bump or computed
            major, minor, patch = semver.next_version(
                existing, None if base is None else (
                    int(base.version.split(".")[0]), int(base.version.split(".")[1]),
                    int(base.version.split(".")[2])), chosen)
            version = f"{major}.{minor}.{patch}"
            seq = int(tx.one("SELECT COALESCE(MAX(seq), 0) + 1 FROM registry_versions "
                             "WHERE name = ?", (name,))[0])
            now = now_us()
            tx.execute(
                f"INSERT INTO registry_versions ({_VCOLS}, major, minor, patch, chunks, "
                "status_us) VALUES (" + ", ".join(["?"] * 27) + ")",
                (name, version, seq, "active", now, self.actor, manifest["model_type"],
                 chosen, computed if computed is not None else "none", reason,
                 None if base is None else base.version,
                 None if parent_ref is None else f"{parent_ref[0]}@{parent_ref[1]}",
                 lin.get("run_id"), lin.get("data_fingerprint"),
                 manifest.get("library_version"), manifest.get("schema_hash"),
                 fps.contract, fps.content, fps.metadata, size, None,
                 canonical_json(manifest), major, minor, patch, canonical_json(chunks), now))
            digests = sorted({d for ds in chunks.values() for d in ds})
            tx.many("INSERT INTO registry_version_blobs (name, version, digest) VALUES "
                    "(?, ?, ?)", [(name, version, d) for d in digests])
            w.emit("model.registered", f"{name}@{version}", {
                "version": version, "bump": chosen,
                "computed_bump": computed if computed is not None else "none",
                "reason": reason, "base": None if base is None else base.version,
                "parent": None if parent_ref is None else f"{parent_ref[0]}@{parent_ref[1]}",
                "run_id": lin.get("run_id"), "content_hash": fps.content,
                "contract_hash": fps.contract, "size_bytes": size})
            row = tx.one(f"SELECT {_VCOLS} FROM registry_versions WHERE name = ? AND "
                         "version = ?", (name, version))
        return _version_from_row(row)

    def annotate(self, name: str, version: str, *, metrics: Mapping[str, float] | None = None,
                 tags: Mapping[str, str] | None = None,
                 description: str | None = None) -> ModelVersion:
        """A new patch version of ``version`` with updated metadata and the same tensors
        (no blob is written)."""
        check_name(name, "name")
        if metrics is None and tags is None and description is None:
            raise ValueError("annotate needs at least one of metrics, tags, description")
        self._authorize("annotate", name)
        src = self.get(name, version)
        if src.status == "archived":
            raise ConflictError(f"{src.ref} is archived; annotate a version that has tensors")
        row = self._db.query_one("SELECT chunks FROM registry_versions WHERE name = ? AND "
                                 "version = ?", (name, src.version))
        chunks = json.loads(row[0])
        mf = ModelFile(manifest=src.manifest, tensors={})
        manifest = self._model_file(mf, metrics=metrics, tags=tags, description=description,
                                    lineage={}, feature_schema=None).manifest
        fps = semver.fingerprints(manifest)
        with self._blob_lock(exclusive=False):
            return self._commit_version(name, manifest, fps, chunks, src.size_bytes,
                                        manifest.get("lineage") or {}, (name, src.version),
                                        None, None)

    # -- reading ------------------------------------------------------------------------------

    def get(self, name: str, version: str | None = "latest") -> ModelVersion:
        """A version's record: ``version`` is "1.2.0", a prefix ("1", "1.2": the newest
        match), an alias or "latest"."""
        self._authorize("read", name if isinstance(name, str) else None)
        return self._resolve(self._db.read(), name, version)

    def resolve(self, name: str, alias: str) -> str:
        """The version an alias (or any reference accepted by :meth:`get`) points to."""
        return self.get(name, alias).version

    def versions(self, name: str, *, status: str | None = None) -> list[ModelVersion]:
        """Every version of a model in registration order."""
        check_name(name, "name")
        self._authorize("read", name)
        if status not in (None, "active", "retired", "archived"):
            raise ValueError(f"status must be 'active', 'retired', 'archived' or None, got "
                             f"{status!r}")
        sql = f"SELECT {_VCOLS} FROM registry_versions WHERE name = ?"
        params: list[Any] = [name]
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        rows = self._db.query(sql + " ORDER BY seq", params)
        if not rows:
            self._missing_model(self._db.read(), name)
        return [_version_from_row(r) for r in rows]

    def models(self) -> list[ModelInfo]:
        """Every model with its version count, newest version and aliases."""
        self._authorize("read")
        out = []
        aliases: dict[str, dict[str, str]] = {}
        for n, a, v in self._db.query("SELECT name, alias, version FROM registry_aliases"):
            aliases.setdefault(n, {})[a] = v
        for name, created, by, protected, count, latest in self._db.query(
            "SELECT m.name, m.created_us, m.created_by, m.protected_aliases, "
            "(SELECT count(*) FROM registry_versions v WHERE v.name = m.name), "
            "(SELECT v.version FROM registry_versions v WHERE v.name = m.name "
            " ORDER BY v.seq DESC LIMIT 1) FROM registry_models m ORDER BY m.name"
        ):
            out.append(ModelInfo(name=name, created_at=from_us(int(created)), created_by=by,
                                 protected_aliases=tuple(json.loads(protected)),
                                 versions=int(count), latest=latest,
                                 aliases=dict(sorted(aliases.get(name, {}).items()))))
        return out

    def aliases(self, name: str) -> dict[str, str]:
        """{alias: version} for a model."""
        check_name(name, "name")
        self._authorize("read", name)
        return dict(self._db.query("SELECT alias, version FROM registry_aliases WHERE "
                                   "name = ? ORDER BY alias", (name,)))

    def _read_tensors(self, v: ModelVersion) -> dict[str, np.ndarray]:
        if v.status == "archived":
            raise ConflictError(f"{v.ref} was archived ({v.status_reason or 'retention'}): its "
                                "tensors were released; its record and lineage remain")
        row = self._db.query_one("SELECT chunks FROM registry_versions WHERE name = ? AND "
                                 "version = ?", (v.name, v.version))
        chunks = json.loads(row[0])
        get_many = getattr(self.blobs, "get_many", None)
        fetched: dict[str, bytes] = {}
        if get_many is not None:
            # One round trip for the whole version instead of one per chunk.
            try:
                fetched = get_many([d for ds in chunks.values() for d in ds])
            except KeyError as exc:
                raise IntegrityError(f"{v.ref}: blob {str(exc)[1:21]}... is missing from the "
                                     "blob store; restore it from a backup") from None
            except BlobCorruptError as exc:
                raise IntegrityError(f"{v.ref}: {exc}") from None
        tensors = {}
        for tname, spec in v.manifest["tensors"].items():
            try:
                data = b"".join(fetched[d] if get_many is not None else self.blobs.get(d)
                                for d in chunks[tname])
            except KeyError as exc:
                raise IntegrityError(f"{v.ref}: blob {str(exc)[:20]}... of tensor {tname!r} is "
                                     "missing from the blob store; restore it from a backup"
                                     ) from None
            except BlobCorruptError as exc:
                raise IntegrityError(f"{v.ref}: tensor {tname!r}: {exc}") from None
            arr = np.frombuffer(data, dtype=_DTYPES[spec["dtype"]]).reshape(spec["shape"])
            # A one-chunk tensor whose chunk digest is the tensor's own was just verified,
            # byte for byte, by the blob store; several chunks are checked once assembled.
            if chunks[tname] != [spec["sha256"]] and tensor_digest(arr) != spec["sha256"]:
                raise IntegrityError(f"{v.ref}: tensor {tname!r} fails its checksum")
            tensors[tname] = arr
        return tensors

    def load_file(self, name: str, version: str | None = "latest") -> ModelFile:
        """The version as a validated :class:`~ducklearn.modelfile.ModelFile`."""
        v = self.get(name, version)
        return ModelFile(manifest=v.manifest, tensors=self._read_tensors(v))

    def load(self, name: str, version: str | None = "latest") -> Any:
        """The estimator (bit-identical to the one registered)."""
        try:
            return self.load_file(name, version).model()
        except ModelFileError as exc:
            raise IntegrityError(f"{name}@{version}: {exc}") from None

    def export(self, name: str, version: str | None, path: str | os.PathLike) -> ModelVersion:
        """Write the version as a model file (byte-identical to the file it was registered
        from, when it came from one with no added metadata)."""
        v = self.get(name, version)
        save_model(ModelFile(manifest=v.manifest, tensors=self._read_tensors(v)), path)
        return v

    def to_bytes(self, name: str, version: str | None = "latest") -> bytes:
        return to_bytes(self.load_file(name, version))

    # -- aliases ------------------------------------------------------------------------------

    def _move(self, w: _Write, name: str, alias: str, version: str, kind: str, reason: str,
              approved_by: str | None = None, request_id: int | None = None,
              expected: Any = _UNSET, actor: str | None = None) -> AliasMove:
        """Move an alias inside w's transaction. ``actor`` is who asked for the move (the
        requester of an approved promotion); the approver goes in ``approved_by``."""
        tx = w.tx
        actor = actor or self.actor
        row = tx.one("SELECT status FROM registry_versions WHERE name = ? AND version = ?",
                     (name, version))
        if row is None:
            raise NotFoundError(f"model {name!r} has no version {version!r}")
        if row[0] == "archived" or (row[0] == "retired" and kind != "rollback"):
            raise ConflictError(f"{name}@{version} is {row[0]}; only active versions can be "
                                "promoted" + (" (archived versions have no tensors)"
                                              if row[0] == "archived" else ""))
        cur = tx.one("SELECT version FROM registry_aliases WHERE name = ? AND alias = ?",
                     (name, alias))
        current = None if cur is None else cur[0]
        if expected is not _UNSET and expected != current:
            raise ConflictError(f"{name}:{alias} points to {current!r}, not the expected "
                                f"{expected!r}: someone moved it; re-read and retry")
        now = now_us()
        if current is None:
            tx.execute("INSERT INTO registry_aliases (name, alias, version, moved_us, moved_by) "
                       "VALUES (?, ?, ?, ?, ?)", (name, alias, version, now, actor))
        else:
            tx.execute("UPDATE registry_aliases SET version = ?, moved_us = ?, moved_by = ? "
                       "WHERE name = ? AND alias = ?", (version, now, actor, name, alias))
        hid = tx.one("INSERT INTO registry_alias_history (name, alias, kind, from_version, "
                     "to_version, actor, approved_by, request_id, reason, moved_us) VALUES "
                     "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                     (name, alias, kind, current, version, actor, approved_by, request_id,
                      reason, now))[0]
        w.emit("alias.rolled_back" if kind == "rollback" else "alias.moved", name,
               {"alias": alias, "from": current, "to": version, "reason": reason,
                "approved_by": approved_by, "request_id": request_id})
        return AliasMove(id=int(hid), name=name, alias=alias, kind=kind, from_version=current,
                         to_version=version, actor=actor, approved_by=approved_by,
                         request_id=request_id, reason=reason, at=from_us(now))

    def promote(self, name: str, alias: str, version: str, *, reason: str,
                expected: Any = _UNSET) -> AliasMove:
        """Point ``alias`` at ``version`` (an unprotected alias; protected ones go through
        :meth:`request_promotion` and :meth:`approve`).

        ``expected`` makes the move conditional: it fails with :class:`ConflictError` if
        the alias does not point to ``expected`` (None: does not exist) at that moment.
        """
        check_name(name, "name")
        alias = check_alias(alias)
        reason = _check_reason(reason)
        self._authorize("promote", name)
        with self._write() as w:
            protected = self._lock_model(w.tx, name)
            if alias not in protected:
                v = self._resolve(w.tx, name, version).version
                return self._move(w, name, alias, v, "promote", reason, expected=expected)
        self._deny("promote", name,
                   f"{name}:{alias} is protected: ask for it with request_promotion() (CLI: "
                   f"ducklearn registry promote ... creates a request) and have a different "
                   "principal with the approver role approve it", ApprovalRequired)
        raise AssertionError("unreachable")  # _deny raises

    def request_promotion(self, name: str, alias: str, version: str, *,
                          reason: str) -> PromotionRequest:
        """Ask for ``alias`` to point at ``version``; an approver (not the requester)
        decides with :meth:`approve` or :meth:`reject`."""
        check_name(name, "name")
        alias = check_alias(alias)
        reason = _check_reason(reason)
        self._authorize("request_promotion", name)
        with self._write() as w:
            self._lock_model(w.tx, name)
            v = self._resolve(w.tx, name, version)
            if v.status != "active":
                raise ConflictError(f"{v.ref} is {v.status}; only active versions can be "
                                    "promoted")
            now = now_us()
            rid = int(w.tx.one(
                "INSERT INTO registry_requests (name, alias, version, requested_by, "
                "requested_us, reason, status) VALUES (?, ?, ?, ?, ?, ?, 'pending') "
                "RETURNING id", (name, alias, v.version, self.actor, now, reason))[0])
            w.emit("promotion.requested", f"{name}@{v.version}",
                   {"alias": alias, "version": v.version, "request_id": rid, "reason": reason})
        return self.request(rid)

    def request(self, request_id: int) -> PromotionRequest:
        if isinstance(request_id, bool) or not isinstance(request_id, int):
            raise TypeError(f"request_id must be an integer, got {request_id!r}")
        row = self._db.query_one(f"SELECT {_RCOLS} FROM registry_requests WHERE id = ?",
                                 (request_id,))
        if row is None:
            raise NotFoundError(f"no promotion request {request_id}")
        self._authorize("read", row[1])
        return _request_from_row(row)

    def requests(self, name: str | None = None, *, status: str | None = "pending"
                 ) -> list[PromotionRequest]:
        """Promotion requests (pending ones by default), oldest first."""
        if name is not None:
            check_name(name, "name")
        self._authorize("read", name)
        sql, params = f"SELECT {_RCOLS} FROM registry_requests WHERE 1 = 1", []
        if name is not None:
            sql += " AND name = ?"
            params.append(name)
        if status is not None:
            if status not in ("pending", "approved", "rejected"):
                raise ValueError("status must be 'pending', 'approved', 'rejected' or None")
            sql += " AND status = ?"
            params.append(status)
        return [_request_from_row(r) for r in self._db.query(sql + " ORDER BY id", params)]

    def _decide(self, request_id: int, approve: bool, reason: str | None) -> Any:
        req = self.request(request_id)
        operation = "approve" if approve else "reject"
        self._authorize(operation, req.name)
        if req.requested_by == self.actor:
            self._deny(operation, req.name,
                       f"{self.actor!r} made request {request_id} and cannot {operation} it: "
                       "a different principal with the approver role must decide",
                       SelfApprovalError)
        with self._write() as w:
            self._lock_model(w.tx, req.name)
            row = w.tx.one(f"SELECT {_RCOLS} FROM registry_requests WHERE id = ?",
                           (request_id,))
            req = _request_from_row(row)
            if req.status != "pending":
                raise ConflictError(f"request {request_id} was already {req.status} by "
                                    f"{req.decided_by}")
            now = now_us()
            age_days = (now - to_us(req.requested_at)) / 86_400e6
            if approve and age_days > REQUEST_TTL_DAYS:
                raise ConflictError(f"request {request_id} is {age_days:.1f} days old (limit "
                                    f"{REQUEST_TTL_DAYS:g}); ask for a fresh request")
            w.tx.execute("UPDATE registry_requests SET status = ?, decided_by = ?, "
                         "decided_us = ?, decision_reason = ? WHERE id = ?",
                         ("approved" if approve else "rejected", self.actor, now, reason,
                          request_id))
            w.emit(f"promotion.{'approved' if approve else 'rejected'}",
                   f"{req.name}@{req.version}",
                   {"alias": req.alias, "version": req.version, "request_id": request_id,
                    "requested_by": req.requested_by, "reason": reason})
            if not approve:
                return None
            return self._move(w, req.name, req.alias, req.version, "promote",
                              req.reason + (f" (approval: {reason})" if reason else ""),
                              approved_by=self.actor, request_id=request_id,
                              actor=req.requested_by)

    def approve(self, request_id: int, *, reason: str | None = None) -> AliasMove:
        """Approve a pending promotion request and move the alias (one transaction)."""
        reason = _check_reason(reason, required=False) or None
        return self._decide(request_id, True, reason)

    def reject(self, request_id: int, *, reason: str) -> PromotionRequest:
        """Reject a pending promotion request."""
        reason = _check_reason(reason)
        self._decide(request_id, False, reason)
        return self.request(request_id)

    def rollback(self, name: str, alias: str, *, reason: str, to: str | None = None
                 ) -> AliasMove:
        """Move ``alias`` back: to the version it pointed to before its last move, or to
        ``to``. A protected alias may only return to a version it held before (one that
        was approved for it), so rolling back never needs a fresh approval."""
        check_name(name, "name")
        alias = check_alias(alias)
        reason = _check_reason(reason)
        self._authorize("rollback", name)
        with self._write() as w:
            protected = self._lock_model(w.tx, name)
            cur = w.tx.one("SELECT version FROM registry_aliases WHERE name = ? AND alias = ?",
                           (name, alias))
            if cur is None:
                raise NotFoundError(f"model {name!r} has no alias {alias!r}")
            held = [r[0] for r in w.tx.all(
                "SELECT to_version FROM registry_alias_history WHERE name = ? AND alias = ? "
                "AND to_version IS NOT NULL ORDER BY id", (name, alias))]
            if to is None:
                last = w.tx.one("SELECT from_version FROM registry_alias_history WHERE "
                                "name = ? AND alias = ? AND to_version = ? ORDER BY id DESC "
                                "LIMIT 1", (name, alias, cur[0]))
                if last is None or last[0] is None:
                    raise ConflictError(f"{name}:{alias} has no earlier version to roll back "
                                        "to; pass to=")
                target = last[0]
            else:
                target = self._resolve(w.tx, name, to).version
            if target == cur[0]:
                raise ConflictError(f"{name}:{alias} already points to {target}")
            if alias in protected and target not in held:
                denied = (f"{name}:{alias} is protected and never held {target}; promote it "
                          "through an approved request instead")
            else:
                return self._move(w, name, alias, target, "rollback", reason)
        self._deny("rollback", name, denied, ApprovalRequired)
        raise AssertionError("unreachable")

    def delete_alias(self, name: str, alias: str, *, reason: str) -> AliasMove:
        """Remove an alias (recorded in its history; protected aliases: admins only)."""
        check_name(name, "name")
        alias = check_alias(alias)
        reason = _check_reason(reason)
        self._authorize("delete_alias", name)
        with self._write() as w:
            protected = self._lock_model(w.tx, name)
            if alias in protected and "admin" not in self._roles(self.actor, name):
                denied = True
            else:
                denied = False
                cur = w.tx.one("SELECT version FROM registry_aliases WHERE name = ? AND "
                               "alias = ?", (name, alias))
                if cur is None:
                    raise NotFoundError(f"model {name!r} has no alias {alias!r}")
                now = now_us()
                w.tx.execute("DELETE FROM registry_aliases WHERE name = ? AND alias = ?",
                             (name, alias))
                hid = w.tx.one(
                    "INSERT INTO registry_alias_history (name, alias, kind, from_version, "
                    "to_version, actor, reason, moved_us) VALUES (?, ?, 'delete', ?, NULL, "
                    "?, ?, ?) RETURNING id", (name, alias, cur[0], self.actor, reason, now))[0]
                w.emit("alias.deleted", name, {"alias": alias, "from": cur[0],
                                               "reason": reason})
                move = AliasMove(id=int(hid), name=name, alias=alias, kind="delete",
                                 from_version=cur[0], to_version=None, actor=self.actor,
                                 approved_by=None, request_id=None, reason=reason,
                                 at=from_us(now))
        if denied:
            self._deny("delete_alias", name, f"{name}:{alias} is protected; only an admin "
                       "may delete it")
        return move

    def history(self, name: str, alias: str | None = None, *, since: Any = None,
                until: Any = None) -> list[AliasMove]:
        """Every alias move of a model (or of one alias), oldest first."""
        check_name(name, "name")
        self._authorize("read", name)
        sql, params = f"SELECT {_HCOLS} FROM registry_alias_history WHERE name = ?", [name]
        if alias is not None:
            sql += " AND alias = ?"
            params.append(check_alias(alias))
        if since is not None:
            sql += " AND moved_us >= ?"
            params.append(to_us(since, argument="since"))
        if until is not None:
            sql += " AND moved_us < ?"
            params.append(to_us(until, argument="until"))
        return [_move_from_row(r) for r in self._db.query(sql + " ORDER BY id", params)]

    def version_at(self, name: str, alias: str, when: Any) -> str | None:
        """The version ``alias`` pointed to at time ``when`` (aware datetime, ISO string or
        epoch seconds); None if it did not exist then."""
        check_name(name, "name")
        alias = check_alias(alias)
        self._authorize("read", name)
        row = self._db.query_one(
            "SELECT to_version FROM registry_alias_history WHERE name = ? AND alias = ? AND "
            "moved_us <= ? ORDER BY moved_us DESC, id DESC LIMIT 1",
            (name, alias, to_us(when)))
        return None if row is None else row[0]

    # -- lineage ------------------------------------------------------------------------------

    def lineage(self, name: str, version: str | None = "latest", *, max_depth: int = 1000
                ) -> list[ModelVersion]:
        """The version and its ancestors through ``parent`` links (possibly across models),
        newest first. Each entry carries its run id, data fingerprint, library version and
        feature schema hash."""
        out = [self.get(name, version)]
        seen = {out[0].ref}
        while out[-1].parent and len(out) < max_depth:
            pname, pver = _parse_ref(out[-1].parent, "parent", None)
            if f"{pname}@{pver}" in seen:
                break
            try:
                out.append(self.get(pname, pver))
            except NotFoundError:
                break
            seen.add(out[-1].ref)
        return out

    def derived(self, name: str, version: str) -> list[ModelVersion]:
        """Versions whose parent is ``name@version`` (one level down)."""
        v = self.get(name, version)
        rows = self._db.query(f"SELECT {_VCOLS} FROM registry_versions WHERE parent = ? "
                              "ORDER BY created_us", (v.ref,))
        return [_version_from_row(r) for r in rows]

    # -- lifecycle ----------------------------------------------------------------------------

    def _set_status(self, name: str, version: str, status: str, reason: str) -> ModelVersion:
        with self._write() as w:
            self._lock_model(w.tx, name)
            v = self._resolve(w.tx, name, version)
            aliased = [r[0] for r in w.tx.all("SELECT alias FROM registry_aliases WHERE "
                                              "name = ? AND version = ?", (name, v.version))]
            if aliased:
                raise ConflictError(f"{v.ref} is still the target of {aliased}; move those "
                                    f"aliases first")
            order = {"active": 0, "retired": 1, "archived": 2}
            if order[v.status] >= order[status]:
                raise ConflictError(f"{v.ref} is already {v.status}")
            w.tx.execute("UPDATE registry_versions SET status = ?, status_us = ?, "
                         "status_reason = ? WHERE name = ? AND version = ?",
                         (status, now_us(), reason, name, v.version))
            if status == "archived":
                w.tx.execute("DELETE FROM registry_version_blobs WHERE name = ? AND "
                             "version = ?", (name, v.version))
                w.tx.execute("UPDATE registry_requests SET status = 'rejected', "
                             "decided_by = ?, decided_us = ?, decision_reason = ? WHERE "
                             "name = ? AND version = ? AND status = 'pending'",
                             (self.actor, now_us(), "version archived", name, v.version))
            w.emit(f"model.{status}", v.ref, {"version": v.version, "reason": reason})
            row = w.tx.one(f"SELECT {_VCOLS} FROM registry_versions WHERE name = ? AND "
                           "version = ?", (name, v.version))
        return _version_from_row(row)

    def retire(self, name: str, version: str, *, reason: str) -> ModelVersion:
        """Mark a version retired: it stays loadable (and a rollback target) but can no
        longer be promoted."""
        check_name(name, "name")
        reason = _check_reason(reason)
        self._authorize("retire", name)
        return self._set_status(name, version, "retired", reason)

    def archive(self, name: str, version: str, *, reason: str) -> ModelVersion:
        """Release a version's tensors (collected by :meth:`gc`); its record, history and
        lineage stay."""
        check_name(name, "name")
        reason = _check_reason(reason)
        self._authorize("archive", name)
        return self._set_status(name, version, "archived", reason)

    def apply_retention(self, name: str | None = None, *, keep_last: int = 10,
                        min_age_days: float = 30.0, dry_run: bool = False
                        ) -> list[ModelVersion]:
        """Archive old versions: all but the newest ``keep_last`` of each model that are
        older than ``min_age_days``, excluding versions an alias points to or a pending
        request names. Returns the versions archived (or that would be, with dry_run)."""
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
            raise ValueError(f"keep_last must be an integer >= 1, got {keep_last!r}")
        if isinstance(min_age_days, bool) or not isinstance(min_age_days, (int, float)) or (
            not min_age_days >= 0
        ):
            raise ValueError(f"min_age_days must be a number >= 0, got {min_age_days!r}")
        if name is not None:
            check_name(name, "name")
        self._authorize("retention", name)
        names = [name] if name is not None else [m.name for m in self.models()]
        cutoff = now_us() - int(min_age_days * 86_400e6)
        out = []
        for n in names:
            versions = self.versions(n)
            keep = {v.version for v in versions[-keep_last:]}
            keep |= {r[0] for r in self._db.query(
                "SELECT version FROM registry_aliases WHERE name = ?", (n,))}
            keep |= {r[0] for r in self._db.query(
                "SELECT version FROM registry_requests WHERE name = ? AND status = 'pending'",
                (n,))}
            for v in versions:
                if v.version in keep or v.status == "archived" or to_us(v.created_at) > cutoff:
                    continue
                if dry_run:
                    out.append(v)
                    continue
                try:
                    out.append(self._set_status(n, v.version, "archived",
                                                f"retention: keep_last={keep_last}, "
                                                f"min_age_days={min_age_days:g}"))
                except ConflictError:
                    continue  # promoted in the meantime
        return out

    def gc(self, *, dry_run: bool = False) -> GCReport:
        """Delete blobs no version references (left by archiving or by registrations that
        failed before their commit)."""
        self._authorize("gc")
        deleted = freed = kept = 0
        with self._blob_lock(exclusive=True):
            referenced = {r[0] for r in self._db.query(
                "SELECT DISTINCT digest FROM registry_version_blobs")}
            for info in list(self.blobs.iter_blobs()):
                if info.digest in referenced:
                    kept += 1
                    continue
                deleted += 1
                freed += info.stored_size if dry_run else self.blobs.delete(info.digest)
            sweep = getattr(self.blobs, "sweep_temporary", None)
            if sweep is not None and not dry_run:
                freed += sweep(now_us())
        if not dry_run:
            with self._write() as w:
                w.emit("registry.gc", "registry", {"deleted": deleted, "freed_bytes": freed,
                                                   "kept": kept})
        return GCReport(deleted=deleted, freed_bytes=freed, kept=kept, dry_run=dry_run)

    def storage(self) -> dict[str, int]:
        """Blob count and stored bytes (after dedupe and compression)."""
        self._authorize("read")
        n = size = 0
        for info in self.blobs.iter_blobs():
            n += 1
            size += info.stored_size
        return {"blobs": n, "stored_bytes": size}

    # -- governance ---------------------------------------------------------------------------

    def grant(self, principal: str, role: str, *, model: str = "*") -> None:
        """Give ``principal`` (``"*"``: everyone) a role on one model or all (``"*"``)."""
        check_principal(principal)
        check_role(role)
        if model != "*":
            check_name(model, "model")
        self._authorize("grant", None if model == "*" else model)
        with self._write() as w:
            w.tx.execute("INSERT INTO registry_roles (principal, role, scope, granted_by, "
                         "granted_us) VALUES (?, ?, ?, ?, ?) ON CONFLICT (principal, role, "
                         "scope) DO NOTHING", (principal, role, model, self.actor, now_us()))
            w.emit("role.granted", "registry" if model == "*" else model,
                   {"principal": principal, "role": role, "scope": model})

    def revoke(self, principal: str, role: str, *, model: str = "*") -> None:
        """Remove a role binding (refuses to remove the last admin)."""
        check_principal(principal)
        check_role(role)
        if model != "*":
            check_name(model, "model")
        self._authorize("grant", None if model == "*" else model)
        with self._write() as w:
            if role == "admin" and model == "*":
                admins = w.tx.all("SELECT principal FROM registry_roles WHERE role = 'admin' "
                                  "AND scope = '*'")
                if [a[0] for a in admins] == [principal]:
                    raise ConflictError("cannot revoke the last admin of the registry; grant "
                                        "admin to someone else first")
            gone = w.tx.one("DELETE FROM registry_roles WHERE principal = ? AND role = ? AND "
                            "scope = ? RETURNING principal", (principal, role, model))
            if gone is None:
                raise NotFoundError(f"{principal!r} has no {role} role on {model!r}")
            w.emit("role.revoked", "registry" if model == "*" else model,
                   {"principal": principal, "role": role, "scope": model})

    def roles(self, principal: str | None = None) -> list[dict[str, Any]]:
        """Role bindings: [{principal, role, scope, granted_by, granted_at}]."""
        self._authorize("read")
        sql, params = ("SELECT principal, role, scope, granted_by, granted_us FROM "
                       "registry_roles"), []
        if principal is not None:
            sql += " WHERE principal = ?"
            params.append(check_principal(principal))
        return [{"principal": p, "role": r, "scope": s, "granted_by": g,
                 "granted_at": from_us(int(t)).isoformat()}
                for p, r, s, g, t in self._db.query(sql + " ORDER BY principal, role, scope",
                                                    params)]

    def protected_aliases(self, name: str) -> list[str]:
        """The aliases of a model that move only through approved requests."""
        check_name(name, "name")
        self._authorize("read", name)
        row = self._db.query_one("SELECT protected_aliases FROM registry_models WHERE "
                                 "name = ?", (name,))
        if row is None:
            raise NotFoundError(f"no model named {name!r} in this registry")
        return list(json.loads(row[0]))

    def protect(self, name: str, aliases: Sequence[str]) -> list[str]:
        """Set a model's protected aliases (promotions to them need an approval)."""
        check_name(name, "name")
        if isinstance(aliases, str):
            raise TypeError("aliases must be a list of alias names, e.g. ['production']")
        wanted = sorted({check_alias(a) for a in aliases})
        self._authorize("protect", name)
        with self._write() as w:
            before = self._lock_model(w.tx, name)
            w.tx.execute("UPDATE registry_models SET protected_aliases = ? WHERE name = ?",
                         (json.dumps(wanted), name))
            w.emit("registry.policy_changed", name,
                   {"setting": "protected_aliases", "from": before, "to": wanted})
        return wanted

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        if self._owns_events:
            self.events.close()
        else:
            self.events.flush()
        self._db.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Registry({self.location!r}, actor={self.actor!r})"

