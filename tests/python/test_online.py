"""The online learner service: accounting, backpressure, snapshots, supervision,
checkpoints and crash recovery."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from ducklearn.learn import Adaptation, OnlineLearner, QueueFullError
from ducklearn.learn.checkpoint import CheckpointError, read_checkpoint, read_latest
from ducklearn.linear import LogisticRegression
from ducklearn.nn import MLPClassifier

NAMES = ["a", "b", "c", "d"]


def _stream(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = (X[:, 0] - X[:, 1] + 0.5 * X[:, 2] > 0).astype(np.int64)
    return X, y


def _learner(**kw) -> OnlineLearner:
    kw.setdefault("feature_names", NAMES)
    kw.setdefault("classes", [0, 1])
    return OnlineLearner(LogisticRegression(scale=True), **kw)


def test_learns_and_accounts_for_every_experience():
    X, y = _stream(5000)
    with _learner() as ol:
        ol.ingest_many(X, y)
        for row, label in zip(X[:200], y[:200], strict=True):
            ol.ingest(dict(zip(NAMES, row.tolist(), strict=True)), int(label))
        assert ol.flush(timeout=30)
        s = ol.stats()
        assert s["submitted"] == 5200
        assert s["learned"] == 5200 and s["rejected"] == 0 and s["queued"] == 0
        assert s["rolling_accuracy"] > 0.95
        Xt, yt = _stream(500, seed=1)
        assert np.mean(ol.predict_many(Xt) == yt) > 0.95


def test_bad_records_and_outcomes_are_rejected_with_reasons_not_lost():
    with _learner() as ol:
        ol.ingest({"a": 1.0, "b": 2.0}, 1)                 # absent features are 0: fine
        ol.ingest({"a": 1.0, "zzz": 2.0}, 1)               # unknown feature
        ol.ingest({"a": float("nan")}, 0)                   # NaN
        ol.ingest({"a": "high"}, 0)                         # wrong type
        ol.ingest("not a record", 1)                        # not a dict
        ol.ingest({"a": 1.0}, 7)                            # label outside classes
        ol.ingest_many([{"a": 0.5}, {"a": -0.5}], [1, 0])
        ol.flush()
        s = ol.stats()
        assert s["submitted"] == 8
        assert s["learned"] == 3
        assert s["rejected_by_reason"] == {"invalid_record": 4, "invalid_outcome": 1}
        assert s["learned"] + s["rejected"] + s["queued"] == s["submitted"]


def test_backpressure_rejects_clearly_and_blocks_with_timeout():
    X, y = _stream(50)
    ol = _learner(queue_capacity=10, start=False)
    ol.ingest_many(X[:10], y[:10])
    with pytest.raises(QueueFullError, match="queue full"):
        ol.ingest_many(X[:1], y[:1])
    s = ol.stats()
    assert s["rejected_by_reason"] == {"queue_full": 1} and s["queued"] == 10

    blocking = _learner(queue_capacity=10, on_full="block", block_timeout=0.05, start=False)
    blocking.ingest_many(X[:10], y[:10])
    t0 = time.monotonic()
    with pytest.raises(QueueFullError):
        blocking.ingest(dict(zip(NAMES, X[0].tolist(), strict=True)), 1)
    assert time.monotonic() - t0 >= 0.04
    # Once a worker drains the queue, blocked producers get through.
    blocking.start()
    for row, label in zip(X[10:40], y[10:40], strict=True):
        blocking.ingest(dict(zip(NAMES, row.tolist(), strict=True)), int(label), timeout=5.0)
    blocking.close()
    s = blocking.stats()
    assert s["learned"] == 40 and s["rejected"] == 1
    ol.close(drain=False)


def test_concurrent_ingest_and_predict_no_torn_snapshots():
    X, y = _stream(40_000)
    ol = OnlineLearner(MLPClassifier(hidden_layer_sizes=(8,), lr=0.01), feature_names=NAMES,
                       classes=[0, 1], on_full="block", block_timeout=30.0,
                       publish_interval=0.005, publish_every=200)
    errors: list[BaseException] = []
    stop = threading.Event()

    def produce(part: int) -> None:
        try:
            sl = slice(part * 10_000, (part + 1) * 10_000)
            for start in range(sl.start, sl.stop, 250):
                ol.ingest_many(X[start:start + 250], y[start:start + 250])
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised by the test
            errors.append(exc)

    checked = [0]

    def consume() -> None:
        try:
            probe = X[:64]
            while not stop.is_set():
                snap = ol.snapshot
                got = snap.predictor.predict(probe)
                # Recompute from the snapshot's own parameters: a torn read would disagree.
                again = snap.predictor.predict(probe)
                assert np.array_equal(got, again)
                assert snap.examples <= ol.stats()["learned"]
                checked[0] += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    producers = [threading.Thread(target=produce, args=(i,)) for i in range(4)]
    consumers = [threading.Thread(target=consume) for _ in range(4)]
    for t in producers + consumers:
        t.start()
    for t in producers:
        t.join()
    assert ol.flush(timeout=60)
    stop.set()
    for t in consumers:
        t.join()
    ol.close()
    assert not errors, errors[0]
    s = ol.stats()
    assert s["submitted"] == 40_000 == s["learned"] + s["rejected"] + s["queued"]
    assert s["learned"] == 40_000 and s["errors"] == 0
    assert checked[0] > 0


def test_snapshot_versions_only_grow_and_include_learning():
    X, y = _stream(2000)
    with _learner(publish_interval=0.01) as ol:
        v0 = ol.snapshot.version
        before = ol.snapshot.predictor.params
        ol.ingest_many(X, y)
        ol.flush()
        assert ol.snapshot.version > v0
        assert ol.snapshot.examples == 2000
        assert not np.array_equal(before, ol.snapshot.predictor.params)
        assert before is not ol.snapshot.predictor.params


def test_worker_failure_is_counted_rejected_and_recovered(monkeypatch):
    X, y = _stream(3000)
    ol = _learner(start=False)
    ol.ingest_many(X[:1000], y[:1000])
    ol.start()
    ol.flush()
    good = ol.snapshot.predictor.predict(X[:10])

    real = ol._core

    class Exploding:
        def __getattr__(self, name):
            return getattr(real, name)

        def learn(self, *a, **k):
            raise RuntimeError("simulated failure inside learning")

    ol._core = Exploding()
    ol.ingest_many(X[1000:1500], y[1000:1500])
    assert ol.flush(timeout=10)
    s = ol.stats()
    assert s["errors"] == 1
    assert s["rejected_by_reason"] == {"learning_failed:RuntimeError": 500}
    np.testing.assert_array_equal(ol.snapshot.predictor.predict(X[:10]), good)
    # The worker restored the last published state and keeps learning.
    ol.ingest_many(X[1500:], y[1500:])
    ol.flush()
    s = ol.stats()
    assert s["learned"] == 2500 and s["submitted"] == 3000 and s["worker_alive"]
    ol.close()


def test_checkpoint_restores_exactly(tmp_path):
    X, y = _stream(6000)
    adapt = Adaptation(replay_capacity=200, replay_batch=4)
    a = _learner(checkpoint_dir=str(tmp_path / "a"), adaptation=adapt)
    a.ingest_many(X[:3000], y[:3000])
    a.flush()
    path = a.checkpoint()
    assert os.path.basename(path) == "ckpt-0000000001.safetensors"
    a.ingest_many(X[3000:], y[3000:])
    a.close()

    b = _learner(checkpoint_dir=str(tmp_path / "a"), adaptation=adapt)
    assert b.stats()["learned"] == 3000  # resumed from the checkpoint, not from scratch
    b.ingest_many(X[3000:], y[3000:])
    b.close()
    np.testing.assert_array_equal(b.snapshot.predictor.params, a.snapshot.predictor.params)
    assert b.stats()["learned"] == a.stats()["learned"] == 6000


def test_corrupt_or_partial_checkpoint_falls_back_to_previous(tmp_path):
    X, y = _stream(2000)
    d = str(tmp_path)
    ol = _learner(checkpoint_dir=d)
    ol.ingest_many(X[:1000], y[:1000])
    ol.flush()
    first = ol.checkpoint()
    ol.ingest_many(X[1000:], y[1000:])
    ol.flush()
    second = ol.checkpoint()
    ol.close()
    with open(second, "r+b") as f:  # flip one byte in the tensor data
        f.seek(-3, os.SEEK_END)
        byte = f.read(1)
        f.seek(-3, os.SEEK_END)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(CheckpointError, match="checksum"):
        read_checkpoint(second)
    with open(os.path.join(d, "ckpt-0000000003.safetensors"), "wb") as f:
        f.write(b"\x10\x00\x00")  # a truncated write
    latest = read_latest(d)
    assert latest.path == first and len(latest.skipped) == 2
    restored = _learner(checkpoint_dir=d)
    assert restored.stats()["learned"] == 1000
    restored.close()


_KILL_SCRIPT = textwrap.dedent("""
    import sys, numpy as np
    from ducklearn.learn import OnlineLearner
    from ducklearn.linear import LogisticRegression
    d = sys.argv[1]
    ol = OnlineLearner(LogisticRegression(scale=True), feature_names=["a", "b", "c", "d"],
                       classes=[0, 1], checkpoint_dir=d, keep_checkpoints=2)
    rng = np.random.default_rng(0)
    print("ready", flush=True)
    while True:
        X = rng.normal(size=(500, 4)).astype(np.float32)
        ol.ingest_many(X, (X[:, 0] > 0).astype(int))
        ol.flush()
        ol.checkpoint()
""")


@pytest.mark.parametrize("delay", [0.3, 0.7, 1.1])
def test_sigkill_during_checkpointing_restarts_from_last_good(tmp_path, delay):
    d = str(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, d], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    latest = read_latest(d)
    assert latest is not None, "no checkpoint survived"
    ol = _learner(checkpoint_dir=d)
    learned = ol.stats()["learned"]
    assert learned == latest.manifest["counters"]["learned"] > 0
    assert learned % 500 == 0  # checkpoints hold whole flushed batches: nothing half-learned
    ol.close()


def test_bad_constructor_arguments():
    with pytest.raises(TypeError, match="ducklearn estimator"):
        OnlineLearner(object(), feature_names=NAMES)
    with pytest.raises(ValueError, match="classes"):
        OnlineLearner(LogisticRegression(), feature_names=NAMES)
    with pytest.raises(ValueError, match="input width"):
        OnlineLearner(LogisticRegression(), classes=[0, 1])
    with pytest.raises(ValueError, match="on_full"):
        _learner(on_full="drop")
    with pytest.raises(ValueError, match="checkpoint_interval needs checkpoint_dir"):
        _learner(checkpoint_interval=1.0)


def test_validation_tracker_scores_snapshots_on_held_out_data():
    X, y = _stream(6000)
    Xv, yv = _stream(1000, seed=9)
    with _learner(validation=(Xv, yv), validate_every=1000, publish_interval=0.005) as ol:
        first = ol.snapshot.predictor.predict(Xv)
        ol.ingest_many(X, y)
        ol.flush()
        history = ol.validation_history()
        assert len(history) >= 2
        assert history[-1]["learned"] == 6000
        assert history[-1]["accuracy"] > 0.95
        assert history[0]["log_loss"] > history[-1]["log_loss"]
        expected = np.mean((ol.snapshot.predictor.predict(Xv)[:, 0] > 0.5) == (yv == 1))
        assert history[-1]["accuracy"] == pytest.approx(expected)
        assert ol.stats()["validation"] == history[-1]
        assert first.shape == (1000, 1)
    with pytest.raises(ValueError, match="outside the classes"):
        _learner(validation=(Xv, np.full(len(yv), 7)))
    with pytest.raises(ValueError, match="validate_every"):
        _learner(validate_every=0)
