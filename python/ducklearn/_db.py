"""One small database layer under the registry catalog, the event store and the tracker.

Every store is selected by URL and speaks the same SQL through :class:`Database`:

- ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (SQLAlchemy's rule: the
  path is what follows the third slash) or a plain filesystem path: SQLite in WAL mode, one
  connection per thread, ``BEGIN IMMEDIATE`` for write transactions so concurrent writers
  from several processes queue on the database lock instead of failing half-way.
- ``postgresql://user@host:port/db`` (or ``postgres://``): PostgreSQL through psycopg 3,
  one autocommit connection per thread with explicit transactions.

SQL is written once with ``?`` placeholders; the PostgreSQL dialect rewrites them. DDL uses
``{bigint}``, ``{real}``, ``{blob}`` and ``{autoid}`` which each dialect fills in.

Connections are per (thread, process): a forked child never touches its parent's sockets or
SQLite handles, it opens its own on first use.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import math
import os
import re
import sqlite3
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = [
    "Database",
    "canonical_json",
    "now_us",
    "to_us",
    "from_us",
    "sha256_hex",
    "check_name",
    "advisory_key",
    "atomic_write",
]

# ---------------------------------------------------------------------------------------------
# Small shared helpers
# ---------------------------------------------------------------------------------------------


def canonical_json(obj: Any, *, default: Any = None) -> str:
    """Deterministic JSON: sorted keys, no spaces, no NaN/inf (they are not JSON).
    ``default``: as for :func:`json.dumps` (converts objects JSON does not know)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=default)


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def advisory_key(name: str) -> int:
    """A PostgreSQL advisory-lock key for a name: the first 8 bytes of its SHA-256, signed."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def atomic_write(path: str, data: bytes, *, prefix: str = ".tmp-", suffix: str = "") -> None:
    """Write ``path`` atomically (temporary ``prefix*suffix`` file beside it, fsync, rename,
    fsync of the directory): a crash leaves the old file or the new one, never a torn one."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def now_us() -> int:
    """Microseconds since the Unix epoch (UTC): exact, sortable, an index-friendly integer."""
    return time.time_ns() // 1000


def to_us(when: Any, *, argument: str = "when") -> int:
    """A point in time as epoch microseconds.

    Accepts an aware ``datetime``, an ISO-8601 string with a UTC offset, or epoch seconds
    (int/float). Naive datetimes are refused: guessing the time zone of an audit query is
    how "what was in production at 14:00" gets answered for the wrong 14:00.
    """
    if isinstance(when, _dt.datetime):
        if when.tzinfo is None:
            raise ValueError(
                f"{argument} is a naive datetime; pass an aware one, e.g. "
                f"datetime.now(timezone.utc) or {when.isoformat()}+00:00"
            )
        delta = when - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(when, str):
        text = when.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = _dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"{argument}={when!r} is not an ISO-8601 time; use e.g. "
                "'2025-01-31T14:00:00+00:00'"
            ) from None
        return to_us(parsed, argument=argument)
    if isinstance(when, bool) or not isinstance(when, (int, float)):
        raise TypeError(
            f"{argument} must be a datetime, an ISO-8601 string or epoch seconds, "
            f"got {type(when).__name__}"
        )
    if not math.isfinite(when):
        raise ValueError(f"{argument} must be finite, got {when}")
    return int(round(when * 1_000_000))


def from_us(us: int) -> _dt.datetime:
    return _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(microseconds=us)


_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9_])?")


def check_name(value: Any, what: str) -> str:
    """Validate a user-chosen identifier (model name, experiment...).

    Letters, digits, ``.``, ``_`` and ``-``; starts with a letter or digit, ends with neither
    ``.`` nor ``-``; at most 128 characters; no ``..``. Names never become paths here (blobs
    are addressed by digest), but anything that later shows up in a path, URL or shell line
    is safe by construction.
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {type(value).__name__}")
    if not _NAME_RE.fullmatch(value) or ".." in value:
        raise ValueError(
            f"invalid {what} {value!r}: use 1-128 letters, digits, '.', '_' or '-', starting "
            "with a letter or digit (no path separators, no '..', no spaces)"
        )
    return value


# ---------------------------------------------------------------------------------------------
# URL parsing
# ---------------------------------------------------------------------------------------------


def parse_url(url: Any, *, argument: str = "url") -> tuple[str, str]:
    """(dialect, target): ("sqlite", path) or ("postgresql", conninfo URL)."""
    if isinstance(url, os.PathLike):
        url = os.fspath(url)
    if not isinstance(url, str) or not url:
        raise TypeError(
            f"{argument} must be a non-empty string: a path, 'sqlite:///path.db' or "
            f"'postgresql://user@host/db', got {url!r}"
        )
    scheme = url.split(":", 1)[0].lower() if "://" in url else ""
    if scheme in ("postgresql", "postgres"):
        return "postgresql", url
    if scheme == "sqlite":
        rest = url[len("sqlite://"):]
        if not rest.startswith("/") or rest in ("/", "/:memory:"):
            raise ValueError(
                f"{argument}={url!r}: give a database file, e.g. 'sqlite:///registry.db' "
                "(relative) or 'sqlite:////var/lib/app/registry.db' (absolute); in-memory "
                "databases cannot be shared between connections"
            )
        path = urllib.parse.unquote(rest[1:].split("?", 1)[0])
        return "sqlite", path
    if scheme:
        raise ValueError(
            f"{argument}={url!r}: unsupported scheme {scheme!r}; use a path, 'sqlite:///...' "
            "or 'postgresql://...'"
        )
    return "sqlite", url


# ---------------------------------------------------------------------------------------------
# Database
# ---------------------------------------------------------------------------------------------


class Tx:
    """A write transaction (or a read on an autocommit connection)."""

    def __init__(self, db: Database, conn: Any):
        self._db = db
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        params = tuple(params)
        if not params and self._db.dialect == "postgresql":
            # No parameters: psycopg leaves the text alone (PL/pgSQL bodies keep their '%').
            return self._conn.execute(sql)
        return self._conn.execute(self._db.sql(sql), params)

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        return self.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return list(self.execute(sql, params).fetchall())

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self._db.dialect == "sqlite":
            self._conn.executemany(sql, rows)
        else:
            with self._conn.cursor() as cur:
                cur.executemany(self._db.sql(sql), rows)

    def insert_rows(self, table: str, columns: str, rows: Sequence[Sequence[Any]]) -> None:
        """Bulk insert: one executemany on SQLite, COPY on PostgreSQL."""
        if not rows:
            return
        if self._db.dialect == "sqlite":
            self.many(f"INSERT INTO {table} ({columns}) VALUES "
                      f"({', '.join('?' * len(rows[0]))})", rows)
        else:
            with self._conn.cursor() as cur, cur.copy(
                f"COPY {table} ({columns}) FROM STDIN"
            ) as copy:
                for r in rows:
                    copy.write_row(r)

    @property
    def raw(self) -> Any:
        """The driver connection (psycopg COPY, SQLite pragmas)."""
        return self._conn


class Database:
    """Connections, transactions and DDL for one URL (see the module docstring)."""

    def __init__(self, url: Any, *, argument: str = "url", create_dirs: bool = True):
        self.dialect, self.target = parse_url(url, argument=argument)
        self.url = url if isinstance(url, str) else os.fspath(url)
        if self.dialect == "sqlite":
            self.path = os.path.abspath(self.target)
            parent = os.path.dirname(self.path)
            if create_dirs:
                os.makedirs(parent, exist_ok=True)
            elif not os.path.isdir(parent):
                raise FileNotFoundError(f"{argument}: directory {parent!r} does not exist")
            self.synchronous = "FULL"
        else:
            try:
                import psycopg  # noqa: F401
            except ImportError:
                raise ImportError(
                    "PostgreSQL stores need psycopg 3: pip install 'ducklearn[postgres]'"
                ) from None
            self.path = None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[tuple[int, Any]] = []
        self._closed = False

    # -- dialect ------------------------------------------------------------------------------

    def sql(self, sql: str) -> str:
        if self.dialect == "sqlite":
            return sql
        return sql.replace("%", "%%").replace("?", "%s")

    def ddl(self, sql: str) -> str:
        if self.dialect == "sqlite":
            return sql.format(bigint="INTEGER", real="REAL", blob="BLOB",
                              autoid="INTEGER PRIMARY KEY AUTOINCREMENT")
        return sql.format(bigint="BIGINT", real="DOUBLE PRECISION", blob="BYTEA",
                          autoid="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY")

    # -- connections --------------------------------------------------------------------------

    def _open(self) -> Any:
        if self._closed:
            raise RuntimeError(f"the store at {self.url!r} is closed")
        if self.dialect == "sqlite":
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 60000")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise RuntimeError(f"could not put {self.path!r} in WAL mode (got {mode!r})")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            conn.execute("PRAGMA foreign_keys = ON")
            return conn
        import psycopg

        conn = psycopg.connect(self.target, autocommit=True)
        # psycopg prepares statements it sees often; a generic plan for a parametrized search
        # ignores the parameter values and can be 100x slower (a full scan in started-at
        # order instead of an index lookup of 0.1% of the runs). Always plan with the values.
        conn.execute("SET plan_cache_mode = force_custom_plan")
        return conn

    def conn(self) -> Any:
        """This thread's connection (opened on first use; reopened after a fork)."""
        pid = os.getpid()
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == pid:
            if self.dialect == "postgresql" and conn.closed:
                conn = None
            else:
                return conn
        conn = self._open()
        self._local.conn = conn
        self._local.pid = pid
        with self._lock:
            self._conns.append((pid, conn))
        return conn

    def close(self) -> None:
        """Close every connection this process opened."""
        pid = os.getpid()
        with self._lock:
            conns, self._conns = self._conns, []
            self._closed = True
        for owner, conn in conns:
            if owner == pid:
                with contextlib.suppress(Exception):
                    conn.close()
        self._local = threading.local()

    # -- transactions -------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        """A write transaction: SQLite takes the write lock at BEGIN (IMMEDIATE), so a
        read-then-write inside it can never be overtaken by another writer."""
        conn = self.conn()
        if self.dialect == "sqlite":
            if conn.in_transaction:
                raise RuntimeError("nested transactions on one connection are not supported")
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(self, conn)
                conn.execute("COMMIT")
            except BaseException:
                # Also after a failed COMMIT: the connection must not stay inside a
                # transaction that the next caller would mistake for its own.
                if conn.in_transaction:
                    with contextlib.suppress(Exception):
                        conn.execute("ROLLBACK")
                raise
        else:
            with conn.transaction():
                yield Tx(self, conn)

    def read(self) -> Tx:
        """Autocommit reads on this thread's connection."""
        return Tx(self, self.conn())

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.read().all(sql, params)

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        return self.read().one(sql, params)

    # -- schema -------------------------------------------------------------------------------

    def lock_schema(self, tx: Tx, component: str) -> None:
        """Serialize schema creation between processes (PostgreSQL's CREATE ... IF NOT
        EXISTS races on the catalog; SQLite is already serialized by BEGIN IMMEDIATE)."""
        if self.dialect == "postgresql":
            tx.execute("SELECT pg_advisory_xact_lock(?)", (advisory_key(component),))

    def _schema_version(self, tx: Tx, component: str) -> int | None:
        if self.dialect == "sqlite":
            exists = tx.one("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                            "name = 'ducklearn_schema'")
        else:
            exists = tx.one("SELECT to_regclass('ducklearn_schema')")
            exists = exists if exists and exists[0] is not None else None
        if exists is None:
            return None
        row = tx.one("SELECT version FROM ducklearn_schema WHERE component = ?", (component,))
        return None if row is None else int(row[0])

    def ensure_schema(self, component: str, version: int, statements: Sequence[str]) -> None:
        """Create a component's tables once; refuse a database written by a newer schema.

        An existing, current schema is only read, so a role without CREATE rights (an
        append-only event writer) can open the store."""
        if self._schema_version(self.read(), component) == version:
            return
        with self.transaction() as tx:
            self.lock_schema(tx, "ducklearn-schema")
            tx.execute("CREATE TABLE IF NOT EXISTS ducklearn_schema "
                       "(component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
            row = tx.one("SELECT version FROM ducklearn_schema WHERE component = ?",
                         (component,))
            if row is not None:
                found = int(row[0])
                if found > version:
                    raise RuntimeError(
                        f"{self.url!r} holds a {component} schema version {found}; this "
                        f"ducklearn understands up to {version}. Upgrade ducklearn."
                    )
                if found == version:
                    return
                raise RuntimeError(
                    f"{self.url!r} holds an older {component} schema version {found}; "
                    f"this ducklearn needs {version} and has no migration for it"
                )
            for stmt in statements:
                tx.execute(self.ddl(stmt))
            tx.execute("INSERT INTO ducklearn_schema (component, version) VALUES (?, ?)",
                       (component, version))

    def __repr__(self) -> str:
        return f"Database({self.url!r})"
