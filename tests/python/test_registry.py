"""The model registry, run identically against SQLite and PostgreSQL: computed semantic
versions, bit-exact loads, aliases and their history, approvals and roles, lineage,
lifecycle and garbage collection, deduplicated storage, bad names and damaged blobs."""

from __future__ import annotations

import datetime as dt
import os
import time

import numpy as np
import pytest
from ducklearn.events import EventStore
from ducklearn.linear import LogisticRegression
from ducklearn.modelfile import ModelFileError, read_manifest, save_model
from ducklearn.nn import MLPRegressor
from ducklearn.registry import (
    ApprovalRequired,
    ConflictError,
    IntegrityError,
    NotFoundError,
    PermissionDenied,
    Registry,
    SelfApprovalError,
    data_fingerprint,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "registry")
    return request.getfixturevalue("postgres_db")


@pytest.fixture
def reg(location):
    r = Registry(location, actor="alice")
    yield r
    r.close()


@pytest.fixture
def data(rng):
    X = rng.normal(size=(300, 4)).astype(np.float32)
    y = (X[:, 0] - X[:, 1] > 0).astype(int)
    return X, y


def _model(X, y, **kw):
    return LogisticRegression(max_epochs=3, **kw).fit(X, y)


def _as(location, actor):
    return Registry(location, actor=actor)


def _refused_by_database(db_url: str, sql: str) -> None:
    if db_url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(db_url, autocommit=True) as conn, pytest.raises(
            psycopg.errors.InsufficientPrivilege, match="append-only"
        ):
            conn.execute(sql)
    else:
        import sqlite3

        conn = sqlite3.connect(db_url, isolation_level=None)
        try:
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                conn.execute(sql)
        finally:
            conn.close()


# ---- versions -----------------------------------------------------------------------------


def test_versions_are_computed_from_what_changed(reg, data):
    X, y = data
    v1 = reg.register("churn", _model(X, y), metrics={"auc": 0.9})
    assert (v1.version, v1.bump) == ("1.0.0", "initial")
    # The same model and metadata again: the same version (a retried call is harmless).
    assert reg.register("churn", _model(X, y), metrics={"auc": 0.9}).version == "1.0.0"
    v2 = reg.register("churn", _model(X, y, l2=0.01))
    assert (v2.version, v2.bump, v2.base_version) == ("1.1.0", "minor", "1.0.0")
    v3 = reg.register("churn", _model(X, y, l2=0.01), metrics={"auc": 0.95})
    assert (v3.version, v3.bump) == ("1.1.1", "patch")
    v4 = reg.annotate("churn", "1.1.1", tags={"reviewed": "yes"})
    assert (v4.version, v4.bump, v4.parent) == ("1.1.2", "patch", "churn@1.1.1")
    assert v4.tags == {"reviewed": "yes"} and v4.metrics == {"auc": 0.95}
    # A different input width, classes or feature schema breaks callers: major.
    v5 = reg.register("churn", _model(X[:, :3], y))
    assert (v5.version, v5.bump) == ("2.0.0", "major")
    v6 = reg.register("churn", _model(X[:, :3], y), feature_schema={"columns": ["a", "b", "c"]})
    assert (v6.version, v6.bump) == ("3.0.0", "major")
    v7 = reg.register("churn", _model(X[:, :3], np.where(y == 1, 2, 0)),
                      feature_schema={"columns": ["a", "b", "c"]})
    assert v7.bump == "major"
    # A retrain of an older line continues that line.
    v8 = reg.register("churn", _model(X, y, l2=0.5), parent="1.0.0")
    assert (v8.version, v8.bump, v8.parent) == ("1.2.0", "minor", "churn@1.0.0")
    # Overrides need a reason and are recorded beside the computed bump.
    with pytest.raises(ValueError, match="reason"):
        reg.register("churn", _model(X, y, l2=0.6), bump="major")
    v9 = reg.register("churn", _model(X, y, l2=0.6), parent="1.2.0", bump="patch",
                      reason="same weights family, hotfix rollout")
    assert (v9.version, v9.bump, v9.computed_bump) == ("1.2.1", "patch", "minor")
    assert v9.bump_reason == "same weights family, hotfix rollout"
    assert [v.version for v in reg.versions("churn")] == [
        "1.0.0", "1.1.0", "1.1.1", "1.1.2", "2.0.0", "3.0.0", "4.0.0", "1.2.0", "1.2.1"]
    assert reg.get("churn", "1").version == "1.2.1"      # newest of major 1
    assert reg.get("churn", "1.1").version == "1.1.2"
    assert reg.get("churn").version == "1.2.1"           # latest registered


def test_the_feature_pipeline_is_part_of_the_contract(reg, rng):
    from ducklearn.features import FeatureSchema, Numeric

    def fitted(fields):
        schema = FeatureSchema("churn", [Numeric(f) for f in fields])
        extractor = schema.compile()
        records = [{f: float(v) for f, v in zip(fields, row, strict=True)}
                   for row in rng.normal(size=(200, len(fields)))]
        X, _ = extractor.learn_transform(records)
        model = LogisticRegression(max_epochs=2).fit(X, (X[:, 0] > 0).astype(int))
        return extractor, model, records

    extractor, model, records = fitted(["a", "b", "c"])
    v1 = reg.register("churn", model, feature_schema=extractor)
    assert v1.schema_hash == extractor.schema_hash
    mf = reg.load_file("churn")
    np.testing.assert_array_equal(mf.features().transform(records)[0],
                                  extractor.transform(records)[0])
    # Same width, different fields: the contract changed, so the major version moves.
    other, model2, _ = fitted(["a", "b", "d"])
    assert reg.register("churn", model2, feature_schema=other).bump == "major"


def test_load_and_export_are_bit_exact(reg, data, tmp_path):
    X, y = data
    model = MLPRegressor(hidden_layer_sizes=(8, 4), scale=True, max_epochs=2).fit(X, X[:, 0])
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    v = reg.register("value", path)
    loaded = reg.load("value", v.version)
    for name, arr in model.state()[0].items():
        assert loaded.state()[0][name].tobytes() == arr.tobytes(), name
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    out = tmp_path / "exported.safetensors"
    reg.export("value", "latest", out)
    assert out.read_bytes() == path.read_bytes()
    assert reg.to_bytes("value") == path.read_bytes()


def test_registration_records_lineage(reg, data, location):
    X, y = data
    fp = data_fingerprint(X, y)
    assert fp == data_fingerprint(X.copy(), y.copy()) != data_fingerprint(X[1:], y[1:])
    a = reg.register("base", _model(X, y), run_id="run-1", data_fingerprint=fp)
    b = reg.register("distilled", _model(X, y, l2=0.1), parent="base@1.0.0", run_id="run-2",
                     lineage={"teacher_temperature": 2.0})
    c = reg.register("distilled", _model(X, y, l2=0.2), parent="1.0.0", run_id="run-3")
    chain = reg.lineage("distilled", c.version)
    assert [v.ref for v in chain] == ["distilled@1.1.0", "distilled@1.0.0", "base@1.0.0"]
    assert [v.run_id for v in chain] == ["run-3", "run-2", "run-1"]
    assert chain[-1].data_fingerprint == fp
    assert all(v.library_version for v in chain)
    assert b.lineage_info["teacher_temperature"] == 2.0
    assert [v.ref for v in reg.derived("base", "1.0.0")] == ["distilled@1.0.0"]
    assert a.created_by == "alice"
    with pytest.raises(NotFoundError, match="parent"):
        reg.register("distilled", _model(X, y, l2=0.3), parent="base@9.0.0")


# ---- aliases ------------------------------------------------------------------------------


def test_alias_moves_have_full_history_and_point_in_time_lookup(reg, data):
    X, y = data
    for l2 in (0.0, 0.1, 0.2):
        reg.register("churn", _model(X, y, l2=l2))
    t0 = dt.datetime.now(dt.timezone.utc)
    time.sleep(0.01)
    m1 = reg.promote("churn", "staging", "1.0.0", reason="first candidate")
    time.sleep(0.01)
    t1 = dt.datetime.now(dt.timezone.utc)
    time.sleep(0.01)
    m2 = reg.promote("churn", "staging", "1.1.0", reason="better offline auc")
    time.sleep(0.01)
    t2 = dt.datetime.now(dt.timezone.utc)
    time.sleep(0.01)
    m3 = reg.rollback("churn", "staging", reason="latency regression")
    assert (m3.from_version, m3.to_version, m3.kind) == ("1.1.0", "1.0.0", "rollback")
    hist = reg.history("churn", "staging")
    assert [(h.from_version, h.to_version, h.kind, h.actor, h.reason) for h in hist] == [
        (None, "1.0.0", "promote", "alice", "first candidate"),
        ("1.0.0", "1.1.0", "promote", "alice", "better offline auc"),
        ("1.1.0", "1.0.0", "rollback", "alice", "latency regression")]
    assert reg.version_at("churn", "staging", t0) is None
    assert reg.version_at("churn", "staging", t1) == "1.0.0"
    assert reg.version_at("churn", "staging", t2.isoformat()) == "1.1.0"
    assert reg.version_at("churn", "staging", time.time()) == "1.0.0"
    assert reg.version_at("churn", "staging", m2.at) == "1.1.0"
    assert m1.at < m2.at < m3.at
    with pytest.raises(ValueError, match="naive"):
        reg.version_at("churn", "staging", dt.datetime(2024, 1, 1))
    # Conditional moves catch a concurrent change.
    with pytest.raises(ConflictError, match="someone moved it"):
        reg.promote("churn", "staging", "1.2.0", reason="x", expected="1.1.0")
    reg.promote("churn", "staging", "1.2.0", reason="x", expected="1.0.0")
    reg.rollback("churn", "staging", to="1.1.0", reason="pin")
    assert reg.aliases("churn") == {"staging": "1.1.0"}
    assert reg.resolve("churn", "staging") == "1.1.0"
    assert reg.load("churn", "staging").predict(X[:2]).shape == (2,)
    # The history itself cannot be rewritten, not even with direct database access.
    catalog = reg._db.path or reg._db.url
    _refused_by_database(catalog, "UPDATE registry_alias_history SET to_version = '9.9.9'")
    _refused_by_database(catalog, "DELETE FROM registry_alias_history")
    reg.delete_alias("churn", "staging", reason="retired stage")
    with pytest.raises(NotFoundError, match="no alias 'staging'"):
        reg.get("churn", "staging")
    assert reg.history("churn", "staging")[-1].kind == "delete"
    assert reg.version_at("churn", "staging", time.time()) is None


def test_protected_alias_needs_approval_from_someone_else(reg, data, location):
    X, y = data
    reg.register("churn", _model(X, y))
    reg.register("churn", _model(X, y, l2=0.1))
    with pytest.raises(ApprovalRequired, match="protected"):
        reg.promote("churn", "production", "1.0.0", reason="ship it")
    req = reg.request_promotion("churn", "production", "1.0.0", reason="ship it")
    assert req.status == "pending" and reg.requests("churn") == [req]
    with pytest.raises(SelfApprovalError, match="different principal"):
        reg.approve(req.id)
    reg.grant("bob", "approver")
    with _as(location, "bob") as bob:
        move = bob.approve(req.id, reason="looks good")
        assert (move.to_version, move.actor, move.approved_by, move.request_id) == (
            "1.0.0", "alice", "bob", req.id)
        with pytest.raises(ConflictError, match="already approved"):
            bob.approve(req.id)
        with pytest.raises(PermissionDenied, match="register"):
            bob.register("churn", _model(X, y, l2=0.3))
    assert reg.aliases("churn")["production"] == "1.0.0"
    assert reg.request(req.id).status == "approved"
    # A second request, rejected.
    req2 = reg.request_promotion("churn", "production", "1.1.0", reason="newer")
    with _as(location, "bob") as bob:
        assert bob.reject(req2.id, reason="wait for the A/B test").status == "rejected"
    assert reg.aliases("churn")["production"] == "1.0.0"
    # Rolling a protected alias back is allowed only to versions it held (already approved).
    req3 = reg.request_promotion("churn", "production", "1.1.0", reason="A/B passed")
    with _as(location, "bob") as bob:
        bob.approve(req3.id)
    reg.register("churn", _model(X, y, l2=0.2))
    with pytest.raises(ApprovalRequired, match="never held 1.2.0"):
        reg.rollback("churn", "production", to="1.2.0", reason="sneak")
    assert reg.rollback("churn", "production", reason="incident").to_version == "1.0.0"
    # Protection is configurable per model.
    assert reg.protect("churn", ["production", "canary"]) == ["canary", "production"]
    with pytest.raises(ApprovalRequired):
        reg.promote("churn", "canary", "1.2.0", reason="x")


def test_roles_are_checked_and_every_denial_is_recorded(reg, data, location):
    X, y = data
    reg.register("churn", _model(X, y))
    reg.grant("carol", "developer", model="churn")
    with _as(location, "carol") as carol:
        carol.register("churn", _model(X, y, l2=0.1))         # her model: allowed
        with pytest.raises(PermissionDenied, match="developer or admin role") as info:
            carol.register("fraud", _model(X, y))             # another model: denied
        assert (info.value.principal, info.value.operation, info.value.model) == (
            "carol", "register", "fraud")
        assert "ducklearn registry grant carol developer --model fraud" in str(info.value)
        with pytest.raises(PermissionDenied, match="archive"):
            carol.archive("churn", "1.0.0", reason="cleanup")
        with pytest.raises(PermissionDenied, match="gc"):
            carol.gc()
        with pytest.raises(PermissionDenied):
            carol.grant("carol", "admin")
        assert carol.load("churn").predict(X[:1]).shape == (1,)   # everyone reads
    with _as(location, "mallory") as mallory:
        with pytest.raises(PermissionDenied, match="'mallory' may not register"):
            mallory.register("churn", _model(X, y, l2=0.9))
    denied = reg.events.query(type="access.denied")
    assert [(e.actor, e.payload["operation"]) for e in denied] == [
        ("carol", "register"), ("carol", "archive"), ("carol", "gc"), ("carol", "grant"),
        ("mallory", "register")]
    reg.revoke("*", "viewer")
    with _as(location, "mallory") as mallory, pytest.raises(PermissionDenied, match="read"):
        mallory.load("churn")
    with pytest.raises(ConflictError, match="last admin"):
        reg.revoke("alice", "admin")
    assert {(r["principal"], r["role"], r["scope"]) for r in reg.roles()} == {
        ("alice", "admin", "*"), ("carol", "developer", "churn")}
    assert reg.events.verify().ok


# ---- lifecycle, storage -------------------------------------------------------------------


def test_retire_archive_retention_and_gc(reg, data):
    X, y = data
    for i in range(6):
        reg.register("churn", _model(X, y, l2=0.1 * i))
    reg.promote("churn", "staging", "1.1.0", reason="x")
    with pytest.raises(ConflictError, match="move those aliases first"):
        reg.retire("churn", "1.1.0", reason="old")
    assert reg.retire("churn", "1.0.0", reason="superseded").status == "retired"
    with pytest.raises(ConflictError, match="only active versions"):
        reg.promote("churn", "canary", "1.0.0", reason="x")
    assert reg.load("churn", "1.0.0").predict(X[:1]).shape == (1,)   # still loadable
    before = reg.storage()
    archived = reg.archive("churn", "1.0.0", reason="storage")
    assert archived.status == "archived" and archived.status_reason == "storage"
    with pytest.raises(ConflictError, match="archived"):
        reg.load("churn", "1.0.0")
    assert reg.get("churn", "1.0.0").manifest["model_type"]   # the record stays
    assert reg.gc(dry_run=True).deleted > 0
    report = reg.gc()
    assert report.deleted > 0 and report.freed_bytes > 0
    assert reg.storage()["stored_bytes"] < before["stored_bytes"]
    assert reg.gc().deleted == 0
    assert [v.version for v in reg.apply_retention(keep_last=2, min_age_days=0, dry_run=True)
            ] == ["1.2.0", "1.3.0"]          # 1.1.0 is aliased, 1.4.0/1.5.0 are the newest
    assert reg.apply_retention(keep_last=2, min_age_days=1) == []   # too young
    assert len(reg.apply_retention(keep_last=2, min_age_days=0)) == 2
    assert reg.versions("churn", status="archived")[-1].version == "1.3.0"
    for v in ("1.1.0", "1.4.0", "1.5.0"):
        assert reg.load("churn", v).predict(X[:1]).shape == (1,)
    assert reg.gc().deleted > 0
    assert reg.events.verify().ok


def test_versions_sharing_most_tensors_share_storage(reg, rng):
    X = rng.normal(size=(64, 32)).astype(np.float32)
    model = MLPRegressor(hidden_layer_sizes=(128,) * 9, max_epochs=1, batch_size=64,
                         optimizer="sgd", lr=1e-4).fit(X, X[:, 0])
    reg.register("deep", model)
    one = reg.storage()["stored_bytes"]
    # Retrain one of the nine hidden layers and the output layer: ~12% of the bytes change,
    # the other tensors are shared with the first version.
    for index in (4, len(model.layers) - 1):
        layer = model.layers[index]
        model.params[layer["w_offset"]:layer["b_offset"] + layer["out"]] *= 1.5
    v2 = reg.register("deep", model)
    assert v2.bump == "minor"
    two = reg.storage()["stored_bytes"]
    assert two <= 1.2 * one, (one, two)
    # The same model under another name costs no storage at all.
    reg.register("deep-copy", model)
    assert reg.storage()["stored_bytes"] == two
    # Partial sharing inside one large tensor dedupes through chunks: change 5% of the rows
    # of a 4 MiB weight matrix.
    wide = MLPRegressor(hidden_layer_sizes=(1024, 1024), max_epochs=1, optimizer="sgd",
                        lr=1e-4).fit(X, X[:, 0])
    reg.register("wide", wide)
    three = reg.storage()["stored_bytes"]
    mid = wide.layers[1]
    start = mid["w_offset"] + 500 * 1024
    wide.params[start:start + 51 * 1024] += 1.0
    reg.register("wide", wide)
    grown = reg.storage()["stored_bytes"] - three
    assert grown <= 0.2 * (three - two), (grown, three - two)
    assert reg.load("wide").params.tobytes() == wide.params.tobytes()


@pytest.mark.parametrize("name", ["../etc", "a/b", "a\\b", "..", ".", "", " x", "x ", "a..b",
                                  ".hidden", "x\x00", "a" * 200, "ünïcode", "name;drop",
                                  "-lead"])
def test_bad_names_are_refused(tmp_path, name, data):
    X, y = data
    with Registry(tmp_path / "r", actor="alice") as reg:
        with pytest.raises((ValueError, TypeError), match="invalid name|must be a string"):
            reg.register(name, _model(X, y))
        assert reg.models() == []
    assert sorted(os.listdir(tmp_path)) == ["r"]


def test_bad_references_and_arguments(reg, data):
    X, y = data
    reg.register("churn", _model(X, y))
    for bad in ("latest", "Production", "1.x", "a b", "../x"):
        with pytest.raises(ValueError):
            reg.promote("churn", bad, "1.0.0", reason="x")
    with pytest.raises(NotFoundError, match="no version '9.9.9'"):
        reg.get("churn", "9.9.9")
    with pytest.raises(NotFoundError, match="no model named 'nope'"):
        reg.get("nope")
    with pytest.raises(ValueError, match="reason"):
        reg.promote("churn", "staging", "1.0.0", reason="  ")
    with pytest.raises(TypeError, match="model must be"):
        reg.register("churn", [1, 2, 3])
    with pytest.raises(ValueError, match="bump must be"):
        reg.register("churn", _model(X, y), bump="huge", reason="x")
    with pytest.raises(ValueError, match="first version"):
        reg.register("other", _model(X, y), bump="major", reason="x")
    with pytest.raises(ValueError, match="chunk_size"):
        Registry(reg.location, chunk_size=10)
    with Registry(reg.location, actor="alice") as again:   # the same registry, reopened
        assert again.load("churn").predict(X[:1]).shape == (1,)


def test_corrupt_model_files_are_refused_before_anything_is_written(reg, data, tmp_path):
    X, y = data
    path = tmp_path / "m.safetensors"
    save_model(_model(X, y), path)
    damaged = bytearray(path.read_bytes())
    damaged[-3] ^= 0x01
    (tmp_path / "flipped.safetensors").write_bytes(bytes(damaged))
    (tmp_path / "short.safetensors").write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        reg.register("churn", tmp_path / "flipped.safetensors")
    with pytest.raises(ModelFileError, match="truncated"):
        reg.register("churn", tmp_path / "short.safetensors")
    with pytest.raises(ModelFileError):
        reg.register("churn", b"not a model file at all")
    assert reg.models() == [] and reg.storage()["blobs"] == 0
    assert reg.register("churn", path).version == "1.0.0"


def test_damaged_or_missing_blobs_are_reported(reg, data, location):
    X, y = data
    reg.register("churn", _model(X, y, scale=True))
    digests = list(d.digest for d in reg.blobs.iter_blobs())
    victim = digests[0]
    if location.startswith("postgresql"):
        import psycopg

        with psycopg.connect(location, autocommit=True) as c:
            c.execute("UPDATE registry_blobs SET data = %s WHERE digest = %s",
                      (b"DLB\x01\x00\x00garbage", victim))
    else:
        path = reg.blobs._path(victim)
        blob = bytearray(open(path, "rb").read())
        blob[-1] ^= 0xFF
        open(path, "wb").write(bytes(blob))
    with pytest.raises(IntegrityError, match="damaged|checksum|decoded"):
        reg.load("churn")
    reg.blobs.delete(victim)
    with pytest.raises(IntegrityError, match="missing from the blob store"):
        reg.load("churn")


def test_chunks_assembled_in_the_wrong_order_fail_the_tensor_checksum(tmp_path, data):
    # Every chunk is intact (each passes its own digest), but the version's chunk list was
    # tampered with: only the whole-tensor digest can tell.
    import json
    import sqlite3

    X, _ = data
    model = MLPRegressor(hidden_layer_sizes=(64, 64), max_epochs=1).fit(X, X[:, 0])
    with Registry(tmp_path / "reg", actor="alice", chunk_size=4096) as reg:
        v = reg.register("deep", model)
        db = sqlite3.connect(str(tmp_path / "reg" / "catalog.db"))
        (raw,) = db.execute("SELECT chunks FROM registry_versions WHERE version = ?",
                            (v.version,)).fetchone()
        chunks = json.loads(raw)
        name = next(t for t, ds in chunks.items() if len(set(ds)) > 1)
        chunks[name] = chunks[name][::-1]
        db.execute("UPDATE registry_versions SET chunks = ? WHERE version = ?",
                   (json.dumps(chunks), v.version))
        db.commit()
        db.close()
        with pytest.raises(IntegrityError, match=f"tensor '{name}' fails its checksum"):
            reg.load("deep", v.version)


def test_external_event_store_gets_the_audit_trail(tmp_path, data):
    X, y = data
    with EventStore(tmp_path / "audit.db") as events:
        with Registry(tmp_path / "r", actor="alice", events=events) as reg:
            reg.register("churn", _model(X, y))
            reg.promote("churn", "staging", "1.0.0", reason="x")
        assert [e.type for e in events.query()] == ["model.registered", "alias.moved"]
        assert events.verify().ok


def test_every_change_is_an_event_in_one_verified_chain(reg, data):
    X, y = data
    reg.register("churn", _model(X, y))
    reg.promote("churn", "staging", "1.0.0", reason="x")
    req = reg.request_promotion("churn", "production", "1.0.0", reason="y")
    with pytest.raises(SelfApprovalError):
        reg.approve(req.id)
    reg.grant("bob", "approver")
    types = [e.type for e in reg.events.query()]
    assert types == ["model.registered", "alias.moved", "promotion.requested",
                     "access.denied", "role.granted"]
    assert reg.events.query(model="churn", version="1.0.0")[0].payload["bump"] == "initial"
    report = reg.events.verify()
    assert report.ok and report.checked == 5


def test_cli_end_to_end(tmp_path, data, capsys, monkeypatch):
    from ducklearn.cli import main

    X, y = data
    monkeypatch.setenv("DUCKLEARN_REGISTRY", str(tmp_path / "reg"))
    monkeypatch.setenv("DUCKLEARN_ACTOR", "alice")
    path = tmp_path / "m.safetensors"
    save_model(_model(X, y), path, metrics={"auc": 0.9})
    assert main(["registry", "register", "churn", str(path), "--metric", "auc=0.91",
                 "--tag", "team=ranking"]) == 0
    assert "registered churn@1.0.0" in capsys.readouterr().out
    assert main(["registry", "list"]) == 0
    assert "churn" in capsys.readouterr().out
    assert main(["registry", "show", "churn@1.0.0", "--json"]) == 0
    assert '"metrics": {\n    "auc": 0.91' in capsys.readouterr().out
    assert main(["registry", "promote", "churn", "production", "1.0.0", "--reason", "go"]) == 0
    assert "created promotion request 1" in capsys.readouterr().out
    assert main(["registry", "approve", "1"]) == 3                       # own request
    assert "different principal" in capsys.readouterr().err
    assert main(["registry", "grant", "bob", "approver"]) == 0
    assert main(["registry", "approve", "1", "--actor", "bob"]) == 0
    assert "-> 1.0.0" in capsys.readouterr().out
    assert main(["registry", "history", "churn"]) == 0
    assert "approved by bob" in capsys.readouterr().out
    assert main(["registry", "history", "churn", "--alias", "production", "--at",
                 dt.datetime.now(dt.timezone.utc).isoformat()]) == 0
    assert "1.0.0" in capsys.readouterr().out
    assert main(["registry", "lineage", "churn"]) == 0
    assert main(["registry", "export", "churn@production", str(tmp_path / "e.safetensors")]) == 0
    assert read_manifest(tmp_path / "e.safetensors")["metrics"]["auc"] == 0.91
    assert main(["registry", "show", "nope"]) == 4
    assert main(["registry", "gc"]) == 0
    assert main(["registry", "rollback", "churn", "production", "--reason", "x"]) == 1
    capsys.readouterr()
    assert main(["events", "verify"]) == 0
    assert "chain intact" in capsys.readouterr().out
    assert main(["events", "list", "--type", "alias.moved"]) == 0
    assert "alias.moved" in capsys.readouterr().out
    assert main(["events", "export", str(tmp_path / "ev.jsonl")]) == 0
    assert main(["events", "head"]) == 0
    head = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["events", "verify", "--anchor", head]) == 0
    import sqlite3

    conn = sqlite3.connect(tmp_path / "reg" / "catalog.db")
    conn.execute("DROP TRIGGER ducklearn_events_no_update")
    conn.execute("UPDATE ducklearn_events SET actor = 'mallory' WHERE seq = 2")
    conn.commit()
    conn.close()
    capsys.readouterr()
    assert main(["events", "verify"]) == 2
    assert "seq 2: modified" in capsys.readouterr().out


@pytest.mark.parametrize("module", ["ducklearn.registry.registry"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("itemsize", [1, 2, 4, 8])
def test_blob_codec_round_trips_and_stores_byte_planes(itemsize):
    import hashlib

    from ducklearn.registry import blobs

    rng = np.random.default_rng(itemsize)
    # Smooth values compress once their byte planes are grouped: the shuffled codec.
    dtype = {1: np.uint8, 2: np.float16, 4: np.float32, 8: np.float64}[itemsize]
    data = np.cumsum(rng.normal(size=4096) * 1e-3).astype(dtype).tobytes()
    digest = hashlib.sha256(data).hexdigest()
    blob = blobs.encode(data, itemsize)
    assert blobs.decode(blob, digest) == data
    if itemsize > 1:
        assert blob[4] == blobs._SHUFFLE_ZSTD
        import zstandard

        planes = zstandard.ZstdDecompressor().decompress(blob[6:])
        want = np.frombuffer(data, dtype=np.uint8).reshape(-1, itemsize).T.tobytes()
        assert planes == want  # byte i of every item together, plane after plane
    damaged = bytearray(blob)
    damaged[-1] ^= 0xFF
    with pytest.raises(blobs.BlobCorruptError):
        blobs.decode(bytes(damaged), digest)
