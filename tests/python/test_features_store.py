"""FeatureStore: one suite run against SQLite (WAL file) and a real PostgreSQL server.

Put/get (single and batch), the LRU bound, TTL, schema versions, point-in-time reads,
restart persistence, concurrent writers from several processes, and input validation.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time

import numpy as np
import pytest
from ducklearn.features import FeatureStore, open_store


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'features.db'}"
    return request.getfixturevalue("postgres_db")


@pytest.fixture
def store(store_url):
    s = FeatureStore(store_url, cache_size=100)
    yield s
    s.close()


def test_backend_chosen_by_url(store, store_url):
    assert store.backend == ("postgresql" if store_url.startswith("postgresql") else "sqlite")
    if store.backend == "sqlite":
        import sqlite3

        path = store_url[len("sqlite:///"):]
        mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


def test_put_get_dict_and_vector(store):
    store.put("user", "u1", {"experience_days": 900, "langs": ["py", "go"]}, event_time=10.0)
    store.put("code_file", 7, np.arange(5, dtype=np.float64), event_time=10.0)
    assert dict(store.get("user", "u1")) == {"experience_days": 900, "langs": ["py", "go"]}
    vec = store.get("code_file", 7)
    assert vec.dtype == np.float32 and vec.tolist() == [0, 1, 2, 3, 4]
    assert store.get("code_file", "7") is vec  # ints and their str form are the same id
    assert store.get("user", "nobody") is None
    assert store.get("user", "nobody", default={}) == {}
    with pytest.raises(TypeError):
        store.get("user", "u1")["experience_days"] = 1  # read-only: the cache stays intact
    with pytest.raises(ValueError):
        vec[0] = 5.0


def test_get_many_order_duplicates_and_missing(store):
    store.put_many("user", {f"u{i}": {"i": i} for i in range(50)}, event_time=1.0)
    ids = ["u3", "zz", "u3", "u49", 5]
    out = store.get_many("user", ids)
    assert [None if v is None else v["i"] for v in out] == [3, None, 3, 49, None]
    store.invalidate()
    out = store.get_many("user", ids)  # from the database this time
    assert [None if v is None else v["i"] for v in out] == [3, None, 3, 49, None]
    big = store.get_many("user", [f"u{i % 50}" for i in range(1200)], cached=False)
    assert [v["i"] for v in big] == [i % 50 for i in range(1200)]


def test_lru_bound(store_url):
    with FeatureStore(store_url, cache_size=10) as s:
        s.put_many("e", {i: {"v": i} for i in range(25)}, event_time=1.0)
        assert s.cache_info()["size"] == 10
        s.get("e", 0)  # evicted from the cache but still in the database
        assert s.cache_info()["misses"] == 1
        assert s.get("e", 0)["v"] == 0 and s.cache_info()["hits"] == 1


def test_point_in_time(store):
    for t, v in [(100.0, "a"), (200.0, "b"), (300.0, "c")]:
        store.put("p", 1, {"v": v}, event_time=t)
    store.put("p", 1, {"v": "back-filled"}, event_time=150.0)  # older event, written last
    assert store.get("p", 1)["v"] == "c"  # the latest by event time, not by write order
    expect = {50.0: None, 100.0: "a", 149.9: "a", 150.0: "back-filled", 250.0: "b", 1e12: "c"}
    for at, v in expect.items():
        got = store.get("p", 1, as_of=at)
        assert (None if got is None else got["v"]) == v, at
    many = store.get_many("p", [1, 1], as_of=199.0)
    assert [m["v"] for m in many] == ["back-filled"] * 2
    hist = store.history("p", 1)
    assert [h.event_time for h in hist] == [100.0, 150.0, 200.0, 300.0]
    store.put("p", 1, {"v": "fixed"}, event_time=200.0)  # same key and time: overwrite
    assert store.get("p", 1, as_of=200.0)["v"] == "fixed" and store.count("p") == 4


def test_schema_version_is_stored(store):
    store.put("u", 1, {"a": 1}, event_time=1.0, schema_version=3)
    row = store.get_row("u", 1)
    assert row.schema_version == 3 and row.event_time == 1.0 and row.written_at > 0
    store.invalidate()
    assert store.get_row("u", 1).schema_version == 3


def test_ttl(store_url):
    now = time.time()
    with FeatureStore(store_url, ttl=60.0) as s:
        s.put("u", "old", {"a": 1}, event_time=now - 120)
        s.put("u", "new", {"a": 2}, event_time=now - 10)
        assert s.get("u", "old") is None and s.get("u", "new")["a"] == 2
        assert s.get_many("u", ["old", "new"])[0] is None
        # As of an earlier time the old version was live.
        assert s.get("u", "old", as_of=now - 100)["a"] == 1
        assert s.purge_expired(now=now) == 1
        assert s.history("u", "old") == []


def test_restart_persistence(store_url):
    with FeatureStore(store_url) as s:
        s.put_many("u", {i: {"i": i} for i in range(100)}, event_time=5.0, schema_version=2)
        s.put("u", 1, np.ones(3), event_time=6.0)
    with FeatureStore(store_url) as s:  # a new process would see the same
        assert s.count("u") == 101
        assert s.get("u", 42)["i"] == 42 and s.get("u", 1).tolist() == [1, 1, 1]
        assert s.get("u", 1, as_of=5.5)["i"] == 1 and s.get_row("u", 42).schema_version == 2


def _writer(url: str, worker: int, n: int, barrier) -> None:
    barrier.wait()
    with FeatureStore(url, cache_size=0) as s:
        for i in range(n):
            s.put("w", f"{worker}-{i}", {"worker": worker, "i": i}, event_time=float(i))
            s.put("shared", "hot", {"worker": worker, "i": i}, event_time=float(worker * n + i))
            if i % 10 == 0:
                s.get_many("w", [f"{(worker + 1) % 4}-{j}" for j in range(i)])


def test_concurrent_writers_from_processes(store_url):
    n, workers = 60, 4
    FeatureStore(store_url).close()  # create the schema up front
    ctx = mp.get_context("spawn")  # a clean interpreter per worker, like separate services
    barrier = ctx.Barrier(workers)
    procs = [ctx.Process(target=_writer, args=(store_url, w, n, barrier)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * workers
    with FeatureStore(store_url) as s:
        assert s.count("w") == n * workers
        for w in range(workers):
            vals = s.get_many("w", [f"{w}-{i}" for i in range(n)])
            assert [v["i"] for v in vals] == list(range(n))
        assert len(s.history("shared", "hot")) == n * workers
        assert dict(s.get("shared", "hot")) == {"worker": workers - 1, "i": n - 1}
        if s.backend == "sqlite":
            import sqlite3

            con = sqlite3.connect(store_url[len("sqlite:///"):])
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_fork_safe_connection(store_url):
    if not hasattr(os, "fork"):
        pytest.skip("no fork")
    s = FeatureStore(store_url)
    s.put("f", 1, {"a": 1}, event_time=1.0)
    ctx = mp.get_context("fork")
    p = ctx.Process(target=_fork_child, args=(s,))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    s.invalidate()
    assert s.get("f", 2)["a"] == 2 and s.get("f", 1)["a"] == 1
    s.close()


def _fork_child(s: FeatureStore) -> None:
    s.put("f", 2, {"a": 2}, event_time=1.0)  # reconnects instead of sharing the parent's socket
    assert s.get("f", 1, cached=False)["a"] == 1


def test_bad_input_changes_nothing(store):
    with pytest.raises(TypeError, match="items\\[1\\]"):
        store.put_many("u", [("a", {"x": 1}), ("b", {"x": object()})], event_time=1.0)
    assert store.count() == 0
    with pytest.raises(ValueError, match="finite"):
        store.put("u", "a", np.array([1.0, np.nan]))
    with pytest.raises(TypeError, match="entity_id"):
        store.put("u", 1.5, {"x": 1})
    with pytest.raises(TypeError, match="entity_type"):
        store.get("", "a")
    with pytest.raises(ValueError, match="finite"):
        store.get("u", "a", as_of=float("nan"))
    with pytest.raises(ValueError, match="schema_version"):
        store.put("u", "a", {"x": 1}, schema_version=0)
    with pytest.raises(ValueError, match="entries"):
        store.put_many("u", [("a", {}), ("b", {})], event_time=[1.0])
    assert store.count() == 0


def test_construction_errors(tmp_path):
    with pytest.raises(ValueError, match="unsupported store URL"):
        FeatureStore("mysql://x")
    with pytest.raises(ValueError, match="identifier"):
        FeatureStore(table="x; drop")
    with pytest.raises(ValueError, match="cache_size"):
        FeatureStore(cache_size=-1)
    with pytest.raises(ValueError, match="ttl"):
        FeatureStore(ttl=0)
    s = open_store(str(tmp_path / "plain.db"))  # a plain path is SQLite
    assert s.backend == "sqlite"
    s.close()


def test_current_reads_skip_future_rows_and_follow_deletes(store):
    now = time.time()
    store.put("user", "u1", {"v": 1}, event_time=now - 10)
    store.put("user", "u1", {"v": 2}, event_time=now + 3600)  # scheduled, not yet valid
    store.put("user", "u2", {"v": 3}, event_time=now - 5)
    got = store.get_many("user", ["u1", "u2"], cached=False)
    assert [dict(g) for g in got] == [{"v": 1}, {"v": 3}]
    assert dict(store.get_many("user", ["u1"], as_of=now + 7200)[0]) == {"v": 2}
    store.delete("user", "u2")
    assert store.get_many("user", ["u2"], cached=False) == [None]


def test_store_written_before_the_latest_index_still_reads(tmp_path):
    import sqlite3

    url = f"sqlite:///{tmp_path / 'old.db'}"
    s = FeatureStore(url)
    s.put("user", "u1", {"v": 1}, event_time=100.0)
    s.put("user", "u1", {"v": 2}, event_time=200.0)
    s.close()
    conn = sqlite3.connect(tmp_path / "old.db")  # as an older ducklearn left it
    conn.execute("DROP TABLE ducklearn_features_latest")
    conn.commit()
    conn.close()
    reopened = FeatureStore(url)
    assert dict(reopened.get_many("user", ["u1"], cached=False)[0]) == {"v": 2}
    reopened.close()
