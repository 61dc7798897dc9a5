"""The registry under concurrent writers from several processes and under faults: a
registration or alias move that crashes part-way leaves no trace, loses nothing committed,
and the registry keeps working (SQLite and PostgreSQL alike)."""

from __future__ import annotations

import multiprocessing
import os
import threading

import numpy as np
import pytest
from ducklearn.linear import LogisticRegression
from ducklearn.registry import Registry
from ducklearn.registry import registry as registry_module

CTX = multiprocessing.get_context("fork")


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path):
    if request.param == "sqlite":
        loc = str(tmp_path / "registry")
    else:
        loc = request.getfixturevalue("postgres_db")
    Registry(loc, actor="alice").close()  # created (and owned) by alice
    return loc


def _data(seed: int):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(200, 4)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(int)


def _model(seed: int, l2: float = 0.0):
    X, y = _data(seed)
    return LogisticRegression(l2=l2, max_epochs=2).fit(X, y)


def _run(target, *args) -> int:
    p = CTX.Process(target=target, args=args)
    p.start()
    p.join(120)
    return p.exitcode


# ---- concurrent writers -------------------------------------------------------------------


def _register_many(location: str, worker: int, n: int) -> None:
    with Registry(location, actor="alice") as reg:
        for i in range(n):
            reg.register("churn", _model(100 * worker + i), metrics={"w": worker, "i": i})


def test_concurrent_registrations_from_several_processes(location):
    procs = [CTX.Process(target=_register_many, args=(location, w, 3)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with Registry(location, actor="alice") as reg:
        versions = reg.versions("churn")
        assert [v.seq for v in versions] == list(range(1, 13))
        assert sorted(v.version for v in versions) == sorted(
            ["1.0.0"] + [f"1.{k}.0" for k in range(1, 12)])
        assert {(v.metrics["w"], v.metrics["i"]) for v in versions} == {
            (w, i) for w in range(4) for i in range(3)}
        for v in versions:
            reg.load("churn", v.version)
        assert reg.events.count(type="model.registered") == 12
        assert reg.events.verify().ok


def _move_aliases(location: str, worker: int, n: int) -> None:
    rng = np.random.default_rng(worker)
    with Registry(location, actor=f"dev{worker}") as reg:
        for _ in range(n):
            version = f"1.{int(rng.integers(0, 4))}.0"
            reg.promote("churn", "staging", version, reason=f"worker {worker}")


def test_concurrent_alias_moves_keep_a_consistent_history(location):
    with Registry(location, actor="alice") as reg:
        for i in range(4):
            reg.register("churn", _model(i))
        for w in range(4):
            reg.grant(f"dev{w}", "developer")
    procs = [CTX.Process(target=_move_aliases, args=(location, w, 10)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with Registry(location, actor="alice") as reg:
        hist = reg.history("churn", "staging")
        assert len(hist) == 40
        # Moves were serialized: each starts where the previous one ended.
        assert hist[0].from_version is None
        for before, after in zip(hist, hist[1:], strict=False):
            assert after.from_version == before.to_version
            assert after.at >= before.at
        assert reg.aliases("churn")["staging"] == hist[-1].to_version
        assert reg.events.count(type="alias.moved") == 40
        assert reg.events.verify().ok


# ---- crashes ------------------------------------------------------------------------------


def test_failure_inside_the_catalog_transaction_leaves_no_version(location, monkeypatch):
    reg = Registry(location, actor="alice")
    reg.register("churn", _model(0))
    blobs_before = reg.storage()["blobs"]
    real_emit = registry_module._Write.emit

    def failing_emit(self, type_, subject, payload):
        if type_ == "model.registered":
            raise RuntimeError("injected: catalog write failed after the version row")
        return real_emit(self, type_, subject, payload)

    monkeypatch.setattr(registry_module._Write, "emit", failing_emit)
    with pytest.raises(RuntimeError, match="injected"):
        reg.register("churn", _model(1, l2=0.3))
    with pytest.raises(RuntimeError, match="injected"):
        reg.register("fresh", _model(2))
    monkeypatch.undo()
    assert [v.version for v in reg.versions("churn")] == ["1.0.0"]
    assert [m.name for m in reg.models()] == ["churn"]
    orphans = reg.storage()["blobs"] - blobs_before     # written first, never referenced
    assert orphans > 0
    assert reg.gc(dry_run=True).deleted == orphans
    assert reg.gc().deleted == orphans
    assert reg.storage()["blobs"] == blobs_before
    # Nothing committed was lost and the next registration gets the next version.
    assert reg.register("churn", _model(1, l2=0.3)).version == "1.1.0"
    assert reg.load("churn", "1.0.0").predict(_data(0)[0][:2]).shape == (2,)
    assert reg.events.verify().ok
    assert reg.events.count(type="model.registered") == 2
    reg.close()


def _die_inside_transaction(location: str) -> None:
    def emit(self, type_, subject, payload):
        os._exit(17)  # the process is killed with the transaction open

    registry_module._Write.emit = emit
    with Registry(location, actor="alice") as reg:
        reg.register("churn", _model(5, l2=0.7))


def _die_between_blob_writes(location: str) -> None:
    calls = {"n": 0}
    real_replace = os.replace

    def replace(src, dst):
        calls["n"] += 1
        if calls["n"] == 3:
            os._exit(18)  # killed with a blob written to a temporary file, not renamed
        return real_replace(src, dst)

    os.replace = replace
    real_put = registry_module.DatabaseBlobStore.put

    def put(self, digest, data, itemsize=1):
        calls["n"] += 1
        if calls["n"] == 3:
            os._exit(18)
        return real_put(self, digest, data, itemsize)

    registry_module.DatabaseBlobStore.put = put

    def put_many(self, items):
        for digest, data, itemsize in items:  # some blobs committed, then the crash
            self.put(digest, data, itemsize)

    registry_module.DatabaseBlobStore.put_many = put_many
    with Registry(location, actor="alice") as reg:
        reg.register("churn", _model(6, l2=0.9))


def _die_during_alias_move(location: str) -> None:
    real = registry_module.Registry._move

    def move(self, w, *args, **kwargs):
        w.tx.execute("UPDATE registry_aliases SET version = '1.0.0' WHERE name = 'churn'")
        os._exit(19)

    registry_module.Registry._move = move
    with Registry(location, actor="alice") as reg:
        reg.promote("churn", "staging", "1.0.0", reason="never lands")
    registry_module.Registry._move = real


def test_a_killed_process_leaves_the_registry_consistent(location):
    with Registry(location, actor="alice") as reg:
        reg.register("churn", _model(0))
        reg.register("churn", _model(1, l2=0.1))
        reg.promote("churn", "staging", "1.1.0", reason="baseline")
        committed = [v.version for v in reg.versions("churn")]
        events_before = reg.events.count()
    assert _run(_die_inside_transaction, location) == 17
    assert _run(_die_between_blob_writes, location) == 18
    assert _run(_die_during_alias_move, location) == 19
    with Registry(location, actor="alice") as reg:
        assert [v.version for v in reg.versions("churn")] == committed
        assert reg.aliases("churn") == {"staging": "1.1.0"}
        assert len(reg.history("churn")) == 1
        assert reg.events.count() == events_before
        assert reg.events.verify().ok
        # The locks of the dead processes are gone: collection runs (and reclaims what they
        # wrote before dying), registration and alias moves work.
        done = threading.Event()
        result = {}

        def collect():
            result["gc"] = reg.gc()
            done.set()

        t = threading.Thread(target=collect, daemon=True)
        t.start()
        assert done.wait(60), "gc blocked on a lock held by a dead process"
        assert result["gc"].deleted + result["gc"].freed_bytes > 0
        for v in committed:
            reg.load("churn", v)
        assert reg.register("churn", _model(7, l2=0.2)).version == "1.2.0"
        assert reg.promote("churn", "staging", "1.2.0", reason="x").from_version == "1.1.0"
        if not location.startswith("postgresql"):
            leftovers = [f for _, _, files in os.walk(os.path.join(location, "blobs"))
                         for f in files if f.startswith(".tmp-")]
            assert leftovers == []
