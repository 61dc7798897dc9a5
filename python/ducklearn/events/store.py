"""The append-only, hash-chained audit log (see :class:`EventStore`)."""

from __future__ import annotations

import atexit
import contextlib
import datetime as _dt
import json
import logging
import os
import re
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from ducklearn._db import (
    Database,
    Tx,
    advisory_key,
    canonical_json,
    from_us,
    now_us,
    sha256_hex,
    to_us,
)
from ducklearn.events.types import _TYPE_RE, check_payload

__all__ = ["EventStore", "Event", "Problem", "VerifyReport", "event_hash", "verify_jsonl",
           "GENESIS_HASH"]

log = logging.getLogger("ducklearn.events")

GENESIS_HASH = "0" * 64
SCHEMA_VERSION = 1
MAX_PAYLOAD_BYTES = 1 << 20
_PAGE = 5000
_MAX_PROBLEMS = 100
_COLUMNS = "seq, time_us, type, actor, subject, model, version, payload, prev_hash, hash"
# Subjects that name a registry model ("name" or "name@version") fill the indexed model and
# version columns; entities use a prefix with a colon ("user:42"), which names never contain.
_SUBJECT_RE = re.compile(
    r"(?P<model>[A-Za-z0-9](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9_])?)(?:@(?P<version>[^@\s]+))?")
_CTRL_RE = re.compile(r"[\x00-\x1f\x7f]")
# What the database answers to a write that would break the log.
_NO_UPDATE = "ducklearn_events is append-only: UPDATE is not allowed"
_NO_DELETE = "ducklearn_events is append-only: DELETE is not allowed"
_NOT_CHAINED = ("ducklearn_events: an INSERT must extend the chain (seq = head seq + 1, "
                "prev_hash = head hash)")
_HEAD_FIXED = "ducklearn_event_head only moves with the chain"
# Advisory-lock key that serializes chain extension between PostgreSQL writers.
_PG_CHAIN_LOCK = advisory_key("ducklearn_events.chain")


def event_hash(seq: int, time_us: int, type_: str, actor: str, subject: str, payload: str,
               prev_hash: str) -> str:
    """SHA-256 (hex) of one event: the canonical JSON array
    ``[seq, time_us, type, actor, subject, payload_json_text, prev_hash]``.

    The payload enters as its exact canonical JSON text, so any verifier that reproduces
    that text (sorted keys, no spaces, UTF-8) reproduces the hash.
    """
    record = canonical_json([seq, time_us, type_, actor, subject, payload, prev_hash])
    return sha256_hex(record)


@dataclass(frozen=True)
class Event:
    """One stored event."""

    seq: int
    time_us: int
    type: str
    actor: str
    subject: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str
    model: str | None = None
    version: str | None = None

    @property
    def time(self) -> _dt.datetime:
        return from_us(self.time_us)

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "time": self.time.isoformat(), "time_us": self.time_us,
                "type": self.type, "actor": self.actor, "subject": self.subject,
                "payload": self.payload, "prev_hash": self.prev_hash, "hash": self.hash}


@dataclass(frozen=True)
class Problem:
    """Where the chain breaks: ``seq`` of the first event affected and what was found."""

    seq: int
    kind: str  # "modified", "broken_link", "missing", "truncated", "head", "anchor"
    message: str


@dataclass(frozen=True)
class VerifyReport:
    """Result of :meth:`EventStore.verify`; truthy when the chain is intact."""

    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    problems: tuple[Problem, ...] = field(default_factory=tuple)

    def __bool__(self) -> bool:
        return self.ok

    @property
    def first_bad_seq(self) -> int | None:
        return self.problems[0].seq if self.problems else None

    def summary(self) -> str:
        if self.ok:
            return (f"OK: {self.checked} events, chain intact, head seq {self.head_seq} "
                    f"hash {self.head_hash[:16]}...")
        lines = [f"TAMPERED: {len(self.problems)} problem(s) in {self.checked} events"]
        lines += [f"  seq {p.seq}: {p.kind}: {p.message}" for p in self.problems]
        return "\n".join(lines)


class _ChainChecker:
    """Incremental verification shared by the store and JSONL exports."""

    def __init__(self) -> None:
        self.expected = 1
        self.prev = GENESIS_HASH
        self.checked = 0
        self.problems: list[Problem] = []

    def add(self, problem: Problem) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(problem)

    def feed(self, seq: int, time_us: int, type_: str, actor: str, subject: str,
             payload: str, prev_hash: str, stored_hash: str) -> None:
        if seq != self.expected:
            if seq > self.expected:
                gap = (f"event {self.expected} is" if seq == self.expected + 1
                       else f"events {self.expected}..{seq - 1} are")
                self.add(Problem(self.expected, "missing",
                                 f"{gap} missing: deleted from the log"))
            else:
                self.add(Problem(seq, "reordered",
                                 f"event {seq} appears after event {self.expected - 1}"))
        if prev_hash != self.prev:
            self.add(Problem(seq, "broken_link",
                             "its prev_hash is not the hash of the event before it: an "
                             "earlier event was modified, deleted or reordered"))
        if event_hash(seq, time_us, type_, actor, subject, payload, prev_hash) != stored_hash:
            self.add(Problem(seq, "modified",
                             "its contents do not match its hash: it was modified after it "
                             "was written"))
        self.prev = stored_hash
        self.expected = seq + 1
        self.checked += 1


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def _check_text(value: Any, argument: str, max_len: int = 256) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{argument} must be a non-empty string, got {value!r}")
    if len(value) > max_len or _CTRL_RE.search(value):
        raise ValueError(f"{argument} must be at most {max_len} characters without control "
                         f"characters, got {value[:40]!r}")
    return value


_OPEN_STORES: weakref.WeakSet[EventStore] = weakref.WeakSet()


@atexit.register
def _flush_all_at_exit() -> None:  # pragma: no cover - runs at interpreter exit
    for store in list(_OPEN_STORES):
        with contextlib.suppress(Exception):
            store.close()


class EventStore:
    """Append-only, hash-chained log of typed events in SQLite or PostgreSQL.

    Parameters
    ----------
    url : str or path
        ``sqlite:///events.db``, a file path, or ``postgresql://user@host/db``.
    batch_size : int, default 512
        Buffered events that trigger a commit by the background writer.
    flush_interval : float, default 0.05
        Seconds an appended event may wait before the background writer commits it.
    max_buffer : int, default 100000
        An ``append`` that finds this many events waiting commits them itself
        (back-pressure instead of unbounded memory).

    Notes
    -----
    Every event is ``{seq, time, type, actor, subject, payload, prev_hash, hash}`` with
    ``hash = SHA-256([seq, time_us, type, actor, subject, payload, prev_hash])``
    (:func:`event_hash`), so :meth:`verify` finds any event that was modified, deleted or
    reordered. The database enforces the log too: SQLite triggers (PostgreSQL triggers and
    privileges) reject UPDATE, DELETE and TRUNCATE and any INSERT that does not extend the
    chain; the head (last seq and hash) is kept in its own row that only moves with the
    chain, so deleting the newest events is detected as well. An attacker who can drop the
    triggers and rewrite the whole suffix and the head is caught only against an anchor
    kept elsewhere: save :meth:`head` outside the database and pass it to ``verify``.

    ``append`` is thread-safe and returns at once; a background writer commits events in
    batches (one transaction each). :meth:`flush` makes everything appended so far durable;
    :meth:`close` flushes and stops the writer. Open stores are flushed when the
    interpreter exits, but multiprocessing workers end without that hook: call
    :meth:`close` (or :meth:`flush`) before a worker returns. A forked child starts with
    an empty buffer; what its parent had buffered stays the parent's to commit.

    Examples
    --------
    >>> import os, tempfile
    >>> from ducklearn.events import EventStore
    >>> store = EventStore(os.path.join(tempfile.mkdtemp(), "events.db"))
    >>> store.append("training.completed", actor="learner", subject="churn@1.2.0",
    ...              payload={"examples": 5000})
    >>> store.flush()
    1
    >>> store.verify().ok
    True
    >>> [e.type for e in store.query(model="churn")]
    ['training.completed']
    >>> store.close()
    """

    def __init__(self, url: Any, *, batch_size: int = 512, flush_interval: float = 0.05,
                 max_buffer: int = 100_000, _database: Database | None = None):
        for name, value in (("batch_size", batch_size), ("max_buffer", max_buffer)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if isinstance(flush_interval, bool) or not isinstance(flush_interval, (int, float)) or (
            not flush_interval > 0
        ):
            raise ValueError(f"flush_interval must be a number of seconds > 0, got "
                             f"{flush_interval!r}")
        self._db = _database if _database is not None else Database(url, argument="url")
        self._owns_db = _database is None
        self.url = self._db.url
        self.batch_size = batch_size
        self.flush_interval = float(flush_interval)
        self.max_buffer = max_buffer
        self._init_schema()
        self._reset_process_state()
        self._closed = False
        _OPEN_STORES.add(self)

    def _reset_process_state(self) -> None:
        self._pid = os.getpid()
        self._buffer: list[tuple[int, str, str, str, str | None, str | None, str]] = []
        self._buf_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Condition(self._buf_lock)
        self._writer: threading.Thread | None = None
        self._stop = False
        self._last_error: BaseException | None = None

    # -- schema -------------------------------------------------------------------------------

    def _init_schema(self) -> None:
        common = [
            """CREATE TABLE ducklearn_events (
                seq {bigint} PRIMARY KEY,
                time_us {bigint} NOT NULL,
                type TEXT NOT NULL,
                actor TEXT NOT NULL,
                subject TEXT NOT NULL,
                model TEXT,
                version TEXT,
                payload TEXT NOT NULL,
                prev_hash TEXT NOT NULL,
                hash TEXT NOT NULL)""",
            "CREATE INDEX ducklearn_events_type ON ducklearn_events (type, time_us)",
            "CREATE INDEX ducklearn_events_model ON ducklearn_events (model, version, seq)",
            "CREATE INDEX ducklearn_events_time ON ducklearn_events (time_us)",
            "CREATE INDEX ducklearn_events_subject ON ducklearn_events (subject, seq)",
            "CREATE INDEX ducklearn_events_actor ON ducklearn_events (actor, seq)",
            """CREATE TABLE ducklearn_event_head (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                seq {bigint} NOT NULL,
                hash TEXT NOT NULL)""",
            f"INSERT INTO ducklearn_event_head (id, seq, hash) VALUES (1, 0, '{GENESIS_HASH}')",
        ]
        if self._db.dialect == "sqlite":
            guards = [
                """CREATE TRIGGER ducklearn_events_no_update BEFORE UPDATE ON ducklearn_events
                   BEGIN SELECT RAISE(ABORT, '""" + _NO_UPDATE + """'); END""",
                """CREATE TRIGGER ducklearn_events_no_delete BEFORE DELETE ON ducklearn_events
                   BEGIN SELECT RAISE(ABORT, '""" + _NO_DELETE + """'); END""",
                """CREATE TRIGGER ducklearn_events_chain BEFORE INSERT ON ducklearn_events
                   WHEN NEW.seq IS NOT (SELECT seq + 1 FROM ducklearn_event_head WHERE id = 1)
                     OR NEW.prev_hash IS NOT (SELECT hash FROM ducklearn_event_head
                                              WHERE id = 1)
                   BEGIN SELECT RAISE(ABORT, '""" + _NOT_CHAINED + """'); END""",
                """CREATE TRIGGER ducklearn_events_advance AFTER INSERT ON ducklearn_events
                   BEGIN UPDATE ducklearn_event_head SET seq = NEW.seq, hash = NEW.hash
                   WHERE id = 1; END""",
                """CREATE TRIGGER ducklearn_event_head_guard BEFORE UPDATE ON ducklearn_event_head
                   WHEN NEW.id IS NOT OLD.id OR NEW.seq IS NOT OLD.seq + 1
                     OR NEW.hash IS NOT (SELECT hash FROM ducklearn_events WHERE seq = NEW.seq)
                   BEGIN SELECT RAISE(ABORT, '""" + _HEAD_FIXED + """'); END""",
                """CREATE TRIGGER ducklearn_event_head_no_delete BEFORE DELETE
                   ON ducklearn_event_head
                   BEGIN SELECT RAISE(ABORT, 'ducklearn_event_head cannot be deleted'); END""",
            ]
        else:
            # A statement-level check over the transition table validates a whole batch
            # (COPY or multi-row INSERT) at once and moves the head once; a per-row trigger
            # would rewrite the head row once per event. SECURITY DEFINER lets a writer role
            # that holds only INSERT on the events extend the chain.
            guards = [
                """CREATE FUNCTION ducklearn_events_reject() RETURNS trigger
                   LANGUAGE plpgsql AS $$
                   BEGIN
                     RAISE EXCEPTION 'ducklearn_events is append-only: % is not allowed',
                       TG_OP USING ERRCODE = 'insufficient_privilege';
                   END $$""",
                """CREATE TRIGGER ducklearn_events_no_change BEFORE UPDATE OR DELETE
                   ON ducklearn_events FOR EACH ROW EXECUTE FUNCTION ducklearn_events_reject()""",
                """CREATE TRIGGER ducklearn_events_no_truncate BEFORE TRUNCATE
                   ON ducklearn_events FOR EACH STATEMENT
                   EXECUTE FUNCTION ducklearn_events_reject()""",
                """CREATE FUNCTION ducklearn_events_chain() RETURNS trigger
                   LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
                   DECLARE
                     h_seq bigint; h_hash text; n bigint; lo bigint; hi bigint; bad bigint;
                     last_hash text;
                   BEGIN
                     SELECT seq, hash INTO h_seq, h_hash FROM ducklearn_event_head
                       WHERE id = 1 FOR UPDATE;
                     SELECT count(*), min(seq), max(seq) INTO n, lo, hi FROM new_rows;
                     IF n = 0 THEN RETURN NULL; END IF;
                     IF lo <> h_seq + 1 OR hi - lo + 1 <> n THEN
                       RAISE EXCEPTION 'ducklearn_events: an INSERT must extend the chain '
                         '(seq % expected, got % .. %)', h_seq + 1, lo, hi;
                     END IF;
                     SELECT count(*) INTO bad FROM new_rows r
                       LEFT JOIN new_rows p ON p.seq = r.seq - 1
                       WHERE (r.seq = lo AND r.prev_hash <> h_hash)
                          OR (r.seq > lo AND (p.hash IS NULL OR r.prev_hash <> p.hash));
                     IF bad > 0 THEN
                       RAISE EXCEPTION 'ducklearn_events: prev_hash must be the hash of the '
                         'event before it';
                     END IF;
                     SELECT hash INTO last_hash FROM new_rows WHERE seq = hi;
                     UPDATE ducklearn_event_head SET seq = hi, hash = last_hash WHERE id = 1;
                     RETURN NULL;
                   END $$""",
                """CREATE TRIGGER ducklearn_events_chain AFTER INSERT ON ducklearn_events
                   REFERENCING NEW TABLE AS new_rows
                   FOR EACH STATEMENT EXECUTE FUNCTION ducklearn_events_chain()""",
                """CREATE FUNCTION ducklearn_event_head_guard() RETURNS trigger
                   LANGUAGE plpgsql AS $$
                   BEGIN
                     IF TG_OP <> 'UPDATE' OR pg_trigger_depth() < 2 OR NEW.id <> OLD.id
                        OR NEW.seq <= OLD.seq THEN
                       RAISE EXCEPTION 'ducklearn_event_head only moves with the chain'
                         USING ERRCODE = 'insufficient_privilege';
                     END IF;
                     RETURN NEW;
                   END $$""",
                """CREATE TRIGGER ducklearn_event_head_guard BEFORE UPDATE OR DELETE
                   ON ducklearn_event_head FOR EACH ROW
                   EXECUTE FUNCTION ducklearn_event_head_guard()""",
                """CREATE TRIGGER ducklearn_event_head_no_truncate BEFORE TRUNCATE
                   ON ducklearn_event_head FOR EACH STATEMENT
                   EXECUTE FUNCTION ducklearn_event_head_guard()""",
                "REVOKE UPDATE, DELETE, TRUNCATE ON ducklearn_events FROM PUBLIC",
                "REVOKE UPDATE, DELETE, TRUNCATE ON ducklearn_event_head FROM PUBLIC",
            ]
        self._db.ensure_schema("events", SCHEMA_VERSION, common + guards)

    def grant_append_only(self, role: str) -> None:
        """PostgreSQL: let ``role`` append and read events and nothing else.

        Run it as the tables' owner. A writer connecting as ``role`` can INSERT (the chain
        trigger runs with the owner's rights) and SELECT; UPDATE, DELETE, TRUNCATE and
        disabling the triggers (owner-only) are refused by the server.
        """
        if self._db.dialect != "postgresql":
            raise NotImplementedError("grant_append_only applies to PostgreSQL stores; SQLite "
                                      "has no roles (its triggers guard the log)")
        if not isinstance(role, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", role):
            raise ValueError(f"role must be a plain PostgreSQL identifier, got {role!r}")
        with self._db.transaction() as tx:
            tx.execute(f'GRANT SELECT, INSERT ON ducklearn_events TO "{role}"')
            tx.execute(f'GRANT SELECT ON ducklearn_event_head TO "{role}"')
            tx.execute(f'GRANT SELECT ON ducklearn_schema TO "{role}"')

    # -- writing ------------------------------------------------------------------------------

    def _encode(self, type_: str, actor: str, subject: str, payload: Any, time: Any
                ) -> tuple[int, str, str, str, str | None, str | None, str]:
        if not isinstance(type_, str) or not _TYPE_RE.fullmatch(type_):
            raise ValueError(f"type must be a dotted lower-case event type such as "
                             f"'training.completed', got {type_!r}")
        _check_text(actor, "actor")
        _check_text(subject, "subject", 512)
        if payload is None:
            payload = {}
        if not isinstance(payload, Mapping):
            raise TypeError(f"payload must be a dict, got {type(payload).__name__}")
        try:
            text = canonical_json(payload, default=_json_default)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"payload must be JSON-serializable with finite numbers and "
                             f"string keys: {exc}") from None
        if len(text) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"payload is {len(text)} bytes of JSON; the limit is "
                             f"{MAX_PAYLOAD_BYTES} (store large data as an artifact and "
                             "reference it)")
        check_payload(type_, payload)
        time_us = now_us() if time is None else to_us(time, argument="time")
        model = version = None
        m = _SUBJECT_RE.fullmatch(subject)
        if m and ".." not in m.group("model"):
            model, version = m.group("model"), m.group("version")
        elif "model" in payload:
            pm, pv = payload.get("model"), payload.get("version")
            model = pm if isinstance(pm, str) else None
            version = pv if isinstance(pv, str) and model else None
        return (time_us, type_, actor, subject, model, version, text)

    def append(self, type: str, *, actor: str, subject: str,
               payload: Mapping[str, Any] | None = None, time: Any = None) -> None:
        """Append one event (thread-safe, returns at once; see :meth:`flush`).

        Parameters
        ----------
        type : str
            A declared event type (``ducklearn.events.EVENT_TYPES``).
        actor : str
            Who caused it: a user, a service account, ``"learner"``...
        subject : str
            What it is about: ``"name"`` or ``"name@version"`` for a registry model (these
            are indexed for :meth:`query` by ``model``/``version``) or an entity such as
            ``"user:42"``.
        payload : dict, optional
            JSON-able details (numpy scalars and arrays are converted).
        time : datetime, ISO string or epoch seconds, optional
            When it happened (default: now).
        """
        row = self._encode(type, actor, subject, payload, time)
        if self._closed:
            raise RuntimeError("the event store is closed")
        if os.getpid() != self._pid:
            # A forked child: the parent still owns (and will commit) what it buffered.
            self._reset_process_state()
        with self._buf_lock:
            self._buffer.append(row)
            pending = len(self._buffer)
            if self._writer is None or not self._writer.is_alive():
                self._start_writer()
            if pending == 1 or pending >= self.batch_size:
                # First event of a batch starts the writer's interval; a full batch ends it.
                self._wake.notify()
        if pending >= self.max_buffer:
            self.flush()

    def _start_writer(self) -> None:
        self._stop = False
        self._writer = threading.Thread(target=self._writer_loop, name="ducklearn-events",
                                        daemon=True)
        self._writer.start()

    def _writer_loop(self) -> None:
        while True:
            with self._buf_lock:
                if not self._buffer and not self._stop:
                    self._wake.wait()
                if self._stop and not self._buffer:
                    return
                if len(self._buffer) < self.batch_size and not self._stop:
                    # Let a batch form, but never hold an event longer than the interval.
                    self._wake.wait(self.flush_interval)
            try:
                self._flush_some()
                self._last_error = None
            except Exception as exc:  # noqa: BLE001 - kept, retried, re-raised by flush()
                self._last_error = exc
                log.warning("ducklearn events: commit failed, will retry: %s", exc)
                with self._buf_lock:
                    self._wake.wait(min(1.0, 10 * self.flush_interval))
                if self._stop:
                    return

    def _flush_some(self) -> int:
        with self._flush_lock:
            with self._buf_lock:
                batch = self._buffer[:max(self.batch_size, 4096)]
            if not batch:
                return 0
            with self._db.transaction() as tx:
                self._insert(tx, batch)
            with self._buf_lock:
                del self._buffer[:len(batch)]
            return len(batch)

    def _insert(self, tx: Tx, batch: Sequence[tuple]) -> list[tuple]:
        """Chain and insert rows inside tx; returns the stored rows."""
        if self._db.dialect == "postgresql":
            tx.execute("SELECT pg_advisory_xact_lock(?)", (_PG_CHAIN_LOCK,))
        seq, prev = tx.one("SELECT seq, hash FROM ducklearn_event_head WHERE id = 1")
        rows = []
        for time_us, type_, actor, subject, model, version, text in batch:
            seq += 1
            h = event_hash(seq, time_us, type_, actor, subject, text, prev)
            rows.append((seq, time_us, type_, actor, subject, model, version, text, prev, h))
            prev = h
        tx.insert_rows("ducklearn_events", _COLUMNS, rows)
        return rows

    def _append_in(self, tx: Tx, type_: str, *, actor: str, subject: str,
                   payload: Mapping[str, Any] | None = None) -> Event:
        """Append one event inside a caller's transaction on this store's database, so the
        event commits (or rolls back) with the change it records."""
        row = self._encode(type_, actor, subject, payload, None)
        (stored,) = self._insert(tx, [row])
        return _event_from_row(stored)

    def flush(self) -> int:
        """Commit every event appended so far; returns how many were committed.

        Raises the database error if the commit fails (the events stay buffered and are
        retried).
        """
        total = 0
        while True:
            with self._buf_lock:
                if not self._buffer:
                    return total
            total += self._flush_some()

    @property
    def pending(self) -> int:
        """Events appended but not yet committed."""
        with self._buf_lock:
            return len(self._buffer)

    def close(self) -> None:
        """Flush, stop the background writer and close the connections."""
        if self._closed:
            return
        try:
            if os.getpid() == self._pid:
                self.flush()
        finally:
            with self._buf_lock:
                self._stop = True
                self._wake.notify_all()
            writer = self._writer
            if writer is not None and writer.is_alive() and os.getpid() == self._pid:
                writer.join(timeout=10)
            self._closed = True
            _OPEN_STORES.discard(self)
            if self._owns_db:
                self._db.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- reading ------------------------------------------------------------------------------

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the newest committed event: keep it outside the database as an
        anchor for :meth:`verify`."""
        row = self._db.query_one("SELECT seq, hash FROM ducklearn_event_head WHERE id = 1")
        return int(row[0]), str(row[1])

    def _where(self, *, type: str | Sequence[str] | None = None, model: str | None = None,
               version: str | None = None, subject: str | None = None,
               actor: str | None = None, since: Any = None, until: Any = None,
               after_seq: int | None = None) -> tuple[str, list[Any]]:
        clauses, params = [], []
        if type is not None:
            types = [type] if isinstance(type, str) else list(type)
            if not types or not all(isinstance(t, str) for t in types):
                raise TypeError("type must be an event type or a list of them")
            clauses.append(f"type IN ({', '.join('?' * len(types))})")
            params += types
        for column, value in (("model", model), ("version", version), ("subject", subject),
                              ("actor", actor)):
            if value is not None:
                if not isinstance(value, str):
                    raise TypeError(f"{column} must be a string, got {type_name(value)}")
                clauses.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            clauses.append("time_us >= ?")
            params.append(to_us(since, argument="since"))
        if until is not None:
            clauses.append("time_us < ?")
            params.append(to_us(until, argument="until"))
        if after_seq is not None:
            if isinstance(after_seq, bool) or not isinstance(after_seq, int):
                raise TypeError("after_seq must be an integer")
            clauses.append("seq > ?")
            params.append(after_seq)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def query(self, *, type: str | Sequence[str] | None = None, model: str | None = None,
              version: str | None = None, subject: str | None = None,
              actor: str | None = None, since: Any = None, until: Any = None,
              after_seq: int | None = None, limit: int | None = 1000,
              descending: bool = False) -> list[Event]:
        """Committed events matching every given filter, in seq order.

        ``since`` is inclusive and ``until`` exclusive (datetimes, ISO strings or epoch
        seconds); ``descending=True`` returns the newest first; ``limit=None`` returns all.
        """
        where, params = self._where(type=type, model=model, version=version,
                                    subject=subject, actor=actor, since=since, until=until,
                                    after_seq=after_seq)
        sql = f"SELECT {_COLUMNS} FROM ducklearn_events{where} ORDER BY seq " + (
            "DESC" if descending else "ASC")
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ValueError(f"limit must be an integer >= 1 or None, got {limit!r}")
            sql += f" LIMIT {int(limit)}"
        return [_event_from_row(r) for r in self._db.query(sql, params)]

    def count(self, **filters: Any) -> int:
        """Number of committed events matching the filters of :meth:`query`."""
        where, params = self._where(**filters)
        return int(self._db.query_one(f"SELECT count(*) FROM ducklearn_events{where}",
                                      params)[0])

    def iter_events(self, **filters: Any) -> Iterator[Event]:
        """Stream matching events in seq order, a page at a time (bounded memory)."""
        after = filters.pop("after_seq", None) or 0
        while True:
            page = self.query(**filters, after_seq=after, limit=_PAGE)
            yield from page
            if len(page) < _PAGE:
                return
            after = page[-1].seq

    def verify(self, *, anchor: tuple[int, str] | None = None) -> VerifyReport:
        """Recompute the whole chain and report where it breaks.

        Detects an event whose contents were modified (hash mismatch), deleted (a gap in
        seq, a broken prev_hash link, or a head that points past the last event), reordered
        (hashes include seq) or inserted out of chain. ``anchor=(seq, hash)``, taken earlier
        with :meth:`head` and kept outside the database, also catches a rewrite of the whole
        tail together with the head.
        """
        checker = _ChainChecker()
        after = 0
        last_seq, last_hash = 0, GENESIS_HASH
        anchor_seen = False
        while True:
            rows = self._db.query(
                "SELECT seq, time_us, type, actor, subject, payload, prev_hash, hash "
                f"FROM ducklearn_events WHERE seq > ? ORDER BY seq LIMIT {_PAGE}", (after,))
            for seq, time_us, type_, actor, subject, payload, prev_hash, h in rows:
                checker.feed(int(seq), int(time_us), type_, actor, subject, payload,
                             prev_hash, h)
                if anchor is not None and int(seq) == int(anchor[0]):
                    anchor_seen = True
                    if h != anchor[1]:
                        checker.add(Problem(int(seq), "anchor",
                                            "its hash differs from the saved anchor: the log "
                                            "was rewritten from here on or earlier"))
                last_seq, last_hash = int(seq), h
            if len(rows) < _PAGE:
                break
            after = int(rows[-1][0])
        head_seq, head_hash = self.head()
        if head_seq > last_seq:
            checker.add(Problem(last_seq + 1, "truncated",
                                f"the head records {head_seq} events but the log ends at "
                                f"{last_seq}: the newest events were deleted"))
        elif head_seq != last_seq or head_hash != last_hash:
            checker.add(Problem(head_seq, "head",
                                f"the head (seq {head_seq}) does not match the last event "
                                f"(seq {last_seq})"))
        if anchor is not None and not anchor_seen:
            checker.add(Problem(int(anchor[0]), "anchor",
                                f"the anchored event {anchor[0]} is not in the log"))
        problems = tuple(sorted(checker.problems, key=lambda p: p.seq))
        return VerifyReport(ok=not problems, checked=checker.checked, head_seq=head_seq,
                            head_hash=head_hash, problems=problems)

    def export_jsonl(self, dest: str | os.PathLike | IO[str], **filters: Any) -> int:
        """Write matching events as JSON lines (one :meth:`Event.to_dict` per line, in seq
        order); returns the count. A full export verifies offline with
        :func:`verify_jsonl`."""
        own = not hasattr(dest, "write")
        fh: IO[str] = open(os.fspath(dest), "w", encoding="utf-8") if own else dest  # type: ignore[arg-type]
        n = 0
        try:
            for ev in self.iter_events(**filters):
                fh.write(canonical_json(ev.to_dict()))
                fh.write("\n")
                n += 1
        finally:
            if own:
                fh.close()
        return n

    def __repr__(self) -> str:
        return f"EventStore({self.url!r})"


def type_name(value: Any) -> str:
    return type(value).__name__


def _event_from_row(r: Sequence[Any]) -> Event:
    seq, time_us, type_, actor, subject, model, version, payload, prev_hash, h = r
    return Event(seq=int(seq), time_us=int(time_us), type=type_, actor=actor, subject=subject,
                 payload=json.loads(payload), prev_hash=prev_hash, hash=h, model=model,
                 version=version)


def verify_jsonl(source: str | os.PathLike | IO[str] | Iterable[str]) -> VerifyReport:
    """Verify a full JSON-lines export (from seq 1) without the database."""
    own = isinstance(source, (str, os.PathLike))
    fh = open(os.fspath(source), encoding="utf-8") if own else source
    checker = _ChainChecker()
    last_seq, last_hash = 0, GENESIS_HASH
    try:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                text = canonical_json(d["payload"])
                seq = int(d["seq"])
                checker.feed(seq, int(d["time_us"]), d["type"], d["actor"], d["subject"],
                             text, d["prev_hash"], d["hash"])
            except (ValueError, KeyError, TypeError) as exc:
                checker.add(Problem(last_seq + 1, "malformed",
                                    f"line {lineno} is not an exported event: {exc}"))
                continue
            last_seq, last_hash = seq, d["hash"]
    finally:
        if own:
            fh.close()
    problems = tuple(checker.problems)
    return VerifyReport(ok=not problems, checked=checker.checked, head_seq=last_seq,
                        head_hash=last_hash, problems=problems)

