"""The audit event store, run identically against SQLite and PostgreSQL: typed appends,
queries, batching, threads and processes, JSONL export, database-enforced append-only, and
tamper detection for every event and every field."""

from __future__ import annotations

import datetime as dt
import io
import json
import multiprocessing
import sqlite3
import threading
import time
import urllib.parse

import numpy as np
import pytest
from ducklearn.events import (
    EventStore,
    define_event_type,
    event_hash,
    verify_jsonl,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "events.db")
    return request.getfixturevalue("postgres_db")


@pytest.fixture
def store(url):
    s = EventStore(url, flush_interval=0.01)
    yield s
    s.close()


def _fill(store: EventStore, n: int = 10) -> None:
    for i in range(n):
        store.append("training.completed", actor=f"worker-{i % 3}",
                     subject=f"churn@1.{i}.0" if i % 2 == 0 else "user:42",
                     payload={"i": i, "loss": 0.5 / (i + 1), "model": "churn"},
                     time=1_700_000_000 + i)
    store.flush()


def _raw(url: str):
    """A connection that bypasses the store's guards, as an attacker with database access
    would (SQLite: triggers dropped; PostgreSQL: triggers off for the session)."""
    if url.startswith("postgresql"):
        import psycopg

        conn = psycopg.connect(url, autocommit=True)
        conn.execute("SET session_replication_role = replica")
        return conn, "%s"
    conn = sqlite3.connect(url, isolation_level=None)
    triggers = conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
    for (name,) in triggers:
        conn.execute(f"DROP TRIGGER {name}")
    return conn, "?"


# ---- writing and reading ------------------------------------------------------------------


def test_append_query_and_filters(store):
    _fill(store)
    assert store.count() == 10
    events = store.query()
    assert [e.seq for e in events] == list(range(1, 11))
    assert events[0].payload == {"i": 0, "loss": 0.5, "model": "churn"}
    assert events[0].model == "churn" and events[0].version == "1.0.0"
    assert events[1].subject == "user:42" and events[1].model == "churn"  # from the payload
    assert [e.payload["i"] for e in store.query(version="1.4.0")] == [4]
    assert store.count(actor="worker-1") == 3
    assert store.count(subject="user:42") == 5
    since = dt.datetime.fromtimestamp(1_700_000_003, dt.timezone.utc)
    assert [e.payload["i"] for e in store.query(since=since, until=1_700_000_006)] == [3, 4, 5]
    assert [e.seq for e in store.query(descending=True, limit=2)] == [10, 9]
    assert [e.seq for e in store.query(after_seq=8)] == [9, 10]
    store.append("alias.moved", actor="alice", subject="churn",
                 payload={"alias": "production", "from": None, "to": "1.2.0"})
    store.flush()
    assert [e.type for e in store.query(type=["alias.moved"])] == ["alias.moved"]
    assert len(list(store.iter_events(model="churn"))) == 11


def test_background_writer_commits_without_flush(store):
    store.append("checkpoint.saved", actor="learner", subject="churn",
                 payload={"step": np.int64(3), "lr": np.float32(0.5), "w": np.arange(2)})
    deadline = time.monotonic() + 5
    while store.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    (e,) = store.query()
    assert e.payload == {"step": 3, "lr": 0.5, "w": [0, 1]}


def test_bad_events_are_refused_at_append(store):
    with pytest.raises(ValueError, match="unknown event type 'no.such'.*define_event_type"):
        store.append("no.such", actor="a", subject="s")
    with pytest.raises(ValueError, match="dotted lower-case"):
        store.append("Bad Type", actor="a", subject="s")
    with pytest.raises(ValueError, match="needs payload field 'alias'"):
        store.append("alias.moved", actor="a", subject="m", payload={"to": "1.0.0"})
    with pytest.raises(TypeError, match="'to' must be str"):
        store.append("alias.moved", actor="a", subject="m",
                     payload={"alias": "x", "from": None, "to": 3})
    with pytest.raises(ValueError, match="finite"):
        store.append("training.completed", actor="a", subject="m", payload={"x": float("nan")})
    with pytest.raises(TypeError, match="payload must be a dict"):
        store.append("training.completed", actor="a", subject="m", payload=[1])
    with pytest.raises(ValueError, match="control characters"):
        store.append("training.completed", actor="a\nb", subject="m")
    with pytest.raises(TypeError, match="actor must be a non-empty string"):
        store.append("training.completed", actor="", subject="m")
    with pytest.raises(ValueError, match="limit"):
        store.append("training.completed", actor="a", subject="m", payload={"x": "y" * 2**21})
    with pytest.raises(ValueError, match="naive datetime"):
        store.append("training.completed", actor="a", subject="m", time=dt.datetime(2024, 1, 1))
    store.flush()
    assert store.count() == 0
    with pytest.raises(ValueError, match="batch_size"):
        EventStore(store.url, batch_size=0)


def test_custom_event_types():
    define_event_type("replay.evicted", {"count": int})
    define_event_type("replay.evicted", {"count": int})  # same definition: fine
    with pytest.raises(ValueError, match="already defined"):
        define_event_type("replay.evicted", {"count": str})
    with pytest.raises(ValueError, match="dotted"):
        define_event_type("nodots")


def test_concurrent_threads(store):
    def work(t):
        for i in range(300):
            store.append("prediction.sampled", actor=f"t{t}", subject="churn@1.0.0",
                         payload={"i": i})

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    store.flush()
    assert store.count() == 2400
    assert store.verify().ok
    for t in range(8):  # each thread's events keep their order
        seen = [e.payload["i"] for e in store.query(actor=f"t{t}", limit=None)]
        assert seen == list(range(300))


def _append_from_process(url: str, worker: int, n: int) -> None:
    store = EventStore(url, batch_size=16)
    for i in range(n):
        store.append("prediction.sampled", actor=f"p{worker}", subject="churn",
                     payload={"i": i})
        if i % 50 == 0:
            store.flush()
    store.close()


def test_concurrent_processes(url):
    EventStore(url).close()  # create the schema once
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_from_process, args=(url, w, 200)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with EventStore(url) as store:
        assert store.count() == 800
        report = store.verify()
        assert report.ok, report.summary()
        assert report.head_seq == 800


def test_forked_child_does_not_repeat_parent_events(url):
    store = EventStore(url, flush_interval=60.0)
    store.append("training.started", actor="parent", subject="m")
    ctx = multiprocessing.get_context("fork")
    p = ctx.Process(target=_child_after_fork, args=(store,))
    p.start()
    p.join(30)
    assert p.exitcode == 0
    store.flush()
    assert sorted(e.actor for e in store.query()) == ["child", "parent"]
    assert store.verify().ok
    store.close()


def _child_after_fork(store: EventStore) -> None:
    store.append("training.started", actor="child", subject="m")
    store.flush()


def test_export_jsonl_and_verify_offline(store, tmp_path):
    _fill(store)
    out = tmp_path / "events.jsonl"
    assert store.export_jsonl(out) == 10
    lines = out.read_text().splitlines()
    assert json.loads(lines[0])["seq"] == 1
    assert verify_jsonl(out).ok
    buf = io.StringIO()
    assert store.export_jsonl(buf, type="training.completed", actor="worker-0") == 4
    edited = lines[:]
    record = json.loads(edited[4])
    record["payload"]["loss"] = 0.0
    edited[4] = json.dumps(record)
    report = verify_jsonl(edited)
    assert not report.ok and report.first_bad_seq == 5


# ---- the database enforces append-only ----------------------------------------------------


def test_database_refuses_updates_deletes_and_forged_inserts(store, url):
    _fill(store, 3)
    if url.startswith("postgresql"):
        import psycopg

        conn = psycopg.connect(url, autocommit=True)
        errors: tuple = (psycopg.Error,)
        mark = "%s"
    else:
        conn = sqlite3.connect(url, isolation_level=None)
        errors = (sqlite3.DatabaseError,)
        mark = "?"
    for sql in ("UPDATE ducklearn_events SET actor = 'mallory' WHERE seq = 2",
                "DELETE FROM ducklearn_events WHERE seq = 3",
                "UPDATE ducklearn_event_head SET seq = 1",
                "DELETE FROM ducklearn_event_head"):
        with pytest.raises(errors, match="append-only|only moves|cannot be deleted"):
            conn.execute(sql)
    forged = (4, 1, "training.completed", "mallory", "churn", None, None, "{}", "0" * 64,
              "f" * 64)
    with pytest.raises(errors, match="extend the chain|prev_hash"):
        conn.execute("INSERT INTO ducklearn_events (seq, time_us, type, actor, subject, model, "
                     "version, payload, prev_hash, hash) VALUES (" + ", ".join([mark] * 10)
                     + ")", forged)
    if url.startswith("postgresql"):
        with pytest.raises(errors, match="append-only"):
            conn.execute("TRUNCATE ducklearn_events")
    conn.close()
    assert store.count() == 3 and store.verify().ok


def test_postgres_writer_role_cannot_tamper(request):
    url = request.getfixturevalue("postgres_db")
    import psycopg

    with EventStore(url) as owner:
        _fill(owner, 2)
        role = "dl_writer_" + url.rsplit("_", 1)[-1][:8]
        with psycopg.connect(url, autocommit=True) as c:
            c.execute(f'CREATE ROLE "{role}" LOGIN')
        try:
            owner.grant_append_only(role)
            parts = urllib.parse.urlsplit(url)
            writer_url = urllib.parse.urlunsplit(
                parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))
            with EventStore(writer_url) as writer:
                writer.append("training.completed", actor="svc", subject="churn")
                writer.flush()
            with psycopg.connect(writer_url, autocommit=True) as c:
                for sql in ("UPDATE ducklearn_events SET actor = 'x'",
                            "DELETE FROM ducklearn_events", "TRUNCATE ducklearn_events",
                            "ALTER TABLE ducklearn_events DISABLE TRIGGER ALL",
                            "UPDATE ducklearn_event_head SET seq = 0"):
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        c.execute(sql)
            assert owner.count() == 3 and owner.verify().ok
        finally:
            with psycopg.connect(url, autocommit=True) as c:
                c.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{role}"')
                c.execute(f'DROP OWNED BY "{role}"')
                c.execute(f'DROP ROLE "{role}"')
    with EventStore(url) as s, pytest.raises(ValueError, match="identifier"):
        s.grant_append_only("x; DROP TABLE y")


def test_sqlite_has_no_roles(tmp_path):
    with EventStore(tmp_path / "e.db") as s, pytest.raises(NotImplementedError):
        s.grant_append_only("writer")


# ---- tamper detection ---------------------------------------------------------------------

FIELDS = {"type": "'model.retired'", "actor": "'mallory'", "subject": "'other@9.9.9'",
          "payload": "'{\"i\":999}'", "time_us": "time_us + 1", "prev_hash": "'" + "a" * 64 + "'"}


def test_any_single_modified_event_is_found(store, url):
    _fill(store, 8)
    conn, _ = _raw(url)
    try:
        for seq in range(1, 9):
            for column, value in FIELDS.items():
                old = conn.execute(f"SELECT {column} FROM ducklearn_events WHERE seq = {seq}"
                                   ).fetchone()[0]
                conn.execute(f"UPDATE ducklearn_events SET {column} = {value} WHERE seq = {seq}")
                report = store.verify()
                assert not report.ok, (seq, column)
                assert report.first_bad_seq == seq, (seq, column, report.summary())
                conn.execute(f"UPDATE ducklearn_events SET {column} = "
                             + ("'" + str(old) + "'" if isinstance(old, str) else str(old))
                             + f" WHERE seq = {seq}")
        assert store.verify().ok
    finally:
        conn.close()


def test_deleted_reordered_and_rehashed_events_are_found(store, url):
    _fill(store, 8)
    conn, mark = _raw(url)
    try:
        rows = conn.execute("SELECT seq, time_us, type, actor, subject, payload, prev_hash, hash "
                            "FROM ducklearn_events ORDER BY seq").fetchall()
        # A middle event deleted.
        conn.execute("DELETE FROM ducklearn_events WHERE seq = 4")
        report = store.verify()
        assert [(p.seq, p.kind) for p in report.problems][:2] == [(4, "missing"),
                                                                 (5, "broken_link")]
        assert "deleted" in report.summary()
        _reinsert(conn, mark, rows[3])
        assert store.verify().ok
        # The newest event deleted: the head still remembers it.
        conn.execute("DELETE FROM ducklearn_events WHERE seq = 8")
        report = store.verify()
        assert [p.kind for p in report.problems] == ["truncated"]
        assert report.problems[0].seq == 8
        _reinsert(conn, mark, rows[7])
        # Two events swapped (contents moved to each other's seq).
        for a, b in ((rows[1], rows[5]), (rows[5], rows[1])):
            conn.execute(f"UPDATE ducklearn_events SET type = {mark}, actor = {mark}, "
                         f"subject = {mark}, payload = {mark}, time_us = {mark} "
                         f"WHERE seq = {mark}", (b[2], b[3], b[4], b[5], b[1], a[0]))
        report = store.verify()
        assert {p.seq for p in report.problems if p.kind == "modified"} == {2, 6}
        for r in (rows[1], rows[5]):
            conn.execute(f"UPDATE ducklearn_events SET type = {mark}, actor = {mark}, "
                         f"subject = {mark}, payload = {mark}, time_us = {mark} "
                         f"WHERE seq = {mark}", (r[2], r[3], r[4], r[5], r[1], r[0]))
        assert store.verify().ok
        # An edit whose hash was recomputed to look consistent: the next link breaks.
        seq, t, typ, actor, subject, payload, prev, _ = rows[2]
        forged = event_hash(seq, t, typ, "mallory", subject, payload, prev)
        conn.execute(f"UPDATE ducklearn_events SET actor = 'mallory', hash = {mark} "
                     f"WHERE seq = 3", (forged,))
        report = store.verify()
        assert [(p.seq, p.kind) for p in report.problems] == [(4, "broken_link")]
    finally:
        conn.close()


def _reinsert(conn, mark, row) -> None:
    seq, t, typ, actor, subject, payload, prev, h = row
    conn.execute("INSERT INTO ducklearn_events (seq, time_us, type, actor, subject, payload, "
                 f"prev_hash, hash) VALUES ({', '.join([mark] * 8)})",
                 (seq, t, typ, actor, subject, payload, prev, h))


def test_a_rewritten_tail_is_caught_by_an_external_anchor(store, url):
    _fill(store, 6)
    anchor = store.head()
    conn, mark = _raw(url)
    try:
        # Delete the newest event and move the head back: the remaining chain is consistent,
        # so only an anchor kept outside the database can tell.
        seq5 = conn.execute("SELECT hash FROM ducklearn_events WHERE seq = 5").fetchone()[0]
        conn.execute("DELETE FROM ducklearn_events WHERE seq = 6")
        conn.execute(f"UPDATE ducklearn_event_head SET seq = 5, hash = {mark} WHERE id = 1",
                     (seq5,))
    finally:
        conn.close()
    assert store.verify().ok
    report = store.verify(anchor=anchor)
    assert not report.ok and report.problems[0].kind == "anchor"


@pytest.mark.parametrize("module", ["ducklearn.events.store"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
