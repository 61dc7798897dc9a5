"""The in-process PredictionServer: batching, priorities, deadlines, backpressure, hot swap,
circuit breaker with fallback, registry aliases, learner snapshots and bad input; threads go
through the C++ batcher, asyncio callers through their event loop's lane or (a slow model)
the same batcher.

Load tests are bounded in count and time; models are tiny so the suite stays fast on two
shared cores. ``Probe`` wraps a real snapshot predictor to count, gate, slow down or fail
the batches it computes, so tests can see what the server actually computed.
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from ducklearn.learn import OnlineLearner
from ducklearn.legacy import NaiveLearner
from ducklearn.linear import LogisticRegression
from ducklearn.serving import (
    BadInput,
    DeadlineExceeded,
    ModelNotFound,
    ModelUnavailable,
    Overloaded,
    PredictionServer,
    ShuttingDown,
)
from ducklearn.serving.server import CircuitBreaker

D = 4


def fit_model(seed: int = 0, names: bool = False) -> LogisticRegression:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, D)).astype(np.float32)
    y = (X[:, 0] + 0.1 * seed * X[:, 1] > 0).astype(int)
    if names:
        import pandas as pd

        return LogisticRegression(seed=seed).fit(
            pd.DataFrame(X, columns=[f"f{i}" for i in range(D)]), y)
    return LogisticRegression(seed=seed).fit(X, y)


class Probe:
    """A predictor that records every batch (rows of column 0 are request ids), and can be
    gated (blocks until opened), slowed down or made to fail."""

    def __init__(self, inner, *, gate: bool = False, delay: float = 0.0):
        self.inner = inner
        self.n_inputs = inner.n_inputs
        self.n_outputs = inner.n_outputs
        self.task = inner.task
        self.batches: list[np.ndarray] = []
        self.lock = threading.Lock()
        self.gate = threading.Event()
        if not gate:
            self.gate.set()
        self.entered = threading.Event()
        self.delay = delay
        self.fail = False
        self.calls = 0
        self.warming = True  # warm-up batches (zeros) are not traffic

    def predict(self, X):
        if self.warming:
            return self.inner.predict(X)
        with self.lock:
            self.calls += 1
            self.batches.append(X[:, 0].copy())
        self.entered.set()
        self.gate.wait(10)
        if self.delay:
            time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("injected model failure")
        return self.inner.predict(X)

    def ids(self) -> list[float]:
        with self.lock:
            return [float(v) for b in self.batches for v in b]


def probe_for(model, **kw) -> Probe:
    probe = Probe(model._learner.snapshot(), **kw)
    probe.classes_ = model.classes_  # so answers carry labels, as for the model itself
    return probe


def serve_probe(server: PredictionServer, name: str, probe: Probe, **kw) -> None:
    server.add_model(name, probe, **kw)
    probe.warming = False


def row(i: float) -> np.ndarray:
    return np.array([[i, 0.5, -0.5, 1.0]], dtype=np.float32)


@pytest.fixture
def model():
    return fit_model()


# -- batching and priorities -----------------------------------------------------------------

def test_concurrent_callers_are_batched_and_answered_correctly(model):
    with PredictionServer(max_batch_size=32, max_wait_us=2000, inline_us=0) as server:
        server.add_model("m", model, version="1.0.0")
        X = np.random.default_rng(1).normal(size=(16 * 20, D)).astype(np.float32)
        expected = model.predict_proba(X)[:, 1:]
        out = np.zeros_like(expected)
        errors = []

        def caller(k: int) -> None:
            try:
                for i in range(k, len(X), 16):
                    p = server.predict("m", X[i], timeout=5.0)
                    assert p.version == "1.0.0" and not p.fallback
                    out[i] = p.values[0]
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=caller, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
        m = server.metrics()["m"]
        bounds, counts, total, n_batches = m["batch_size"]
        assert total == len(X) and m["rows"] == len(X) and m["requests"] == len(X)
        # Batching happened: fewer batches than requests, and some batches of >= 3 rows.
        assert n_batches < len(X)
        assert sum(c for b, c in zip(bounds, counts, strict=True) if b >= 4) > 0
        assert m["latency"][3] == len(X)


def test_async_callers_are_batched_on_the_event_loop(model):
    server = PredictionServer(max_batch_size=64)
    server.add_model("m", model, version="7")
    X = np.random.default_rng(2).normal(size=(64, D)).astype(np.float32)

    async def main():
        return await asyncio.gather(*(server.apredict("m", X[i], timeout=5.0)
                                      for i in range(len(X))))

    preds = asyncio.run(main())
    np.testing.assert_allclose(np.concatenate([p.values for p in preds]),
                               model.predict_proba(X)[:, 1:], rtol=1e-5, atol=1e-6)
    assert {p.version for p in preds} == {"7"}
    _, _, total, n_batches = server.metrics()["m"]["batch_size"]
    assert total == 64 and n_batches < 8  # gathered in the same loop turns
    server.close()


def test_priorities_order_the_queue(model):
    probe = probe_for(model, gate=True)
    # One batcher thread: the order of one queue, with a single batch held at the gate.
    with PredictionServer(max_batch_size=1, max_wait_us=0, inline_us=0, workers=1) as server:
        serve_probe(server, "m", probe)
        results: dict[float, float] = {}

        def call(i: float, prio: int) -> None:
            server.predict("m", row(i), timeout=10.0, priority=prio)
            results[i] = time.monotonic()

        blocker = threading.Thread(target=call, args=(0.0, 0))
        blocker.start()
        assert probe.entered.wait(5)  # the batcher is busy with request 0
        threads = []
        for i, prio in [(1, 0), (2, 0), (3, 5), (4, 0), (5, 9), (6, 5)]:
            t = threading.Thread(target=call, args=(float(i), prio))
            t.start()
            threads.append(t)
            deadline = time.monotonic() + 5  # queue them in this order
            while server.models()["m"]["queued_rows"] < len(threads):
                assert time.monotonic() < deadline
                time.sleep(0.001)
        probe.gate.set()
        for t in [blocker, *threads]:
            t.join(10)
        # Highest priority first; equal priorities in arrival order.
        assert probe.ids() == [0.0, 5.0, 3.0, 6.0, 1.0, 2.0, 4.0]


# -- deadlines and backpressure ----------------------------------------------------------------

def test_deadline_fails_fast_and_is_never_computed(model):
    probe = probe_for(model, gate=True)
    with PredictionServer(max_batch_size=1, max_wait_us=0, inline_us=0, workers=1) as server:
        serve_probe(server, "m", probe)
        blocker = threading.Thread(target=server.predict, args=("m", row(1.0)),
                                   kwargs={"timeout": 10.0})
        blocker.start()
        assert probe.entered.wait(5)
        t0 = time.monotonic()
        with pytest.raises(DeadlineExceeded, match="not computed"):
            server.predict("m", row(2.0), timeout=0.05)
        elapsed = time.monotonic() - t0
        assert 0.04 <= elapsed < 0.5  # failed at its deadline, not when the queue moved

        async def late():
            return await server.apredict("m", row(3.0), timeout=0.05)

        with pytest.raises(DeadlineExceeded):
            asyncio.run(late())
        with pytest.raises(DeadlineExceeded, match="no time"):
            server.predict("m", row(4.0), timeout=0)
        probe.gate.set()
        blocker.join(10)
        assert server.predict("m", row(5.0), timeout=5.0).values.shape == (1, 1)
        assert probe.ids() == [1.0, 5.0]  # 2, 3 and 4 were never computed
        assert server.metrics()["m"]["errors"]["deadline"] == 3


def test_overload_rejects_and_accepted_requests_meet_their_deadlines(model):
    probe = probe_for(model, gate=True)
    with PredictionServer(max_batch_size=4, max_wait_us=0, queue_capacity=8,
                          inline_us=0, workers=1) as server:
        serve_probe(server, "m", probe)
        outcomes: list[str] = []
        lock = threading.Lock()

        def call(i: int) -> None:
            try:
                p = server.predict("m", row(float(i)), timeout=2.0)
                res = f"ok:{p.version}"
            except Overloaded:
                res = "overloaded"
            except Exception as exc:  # pragma: no cover - would fail the assertions
                res = type(exc).__name__
            with lock:
                outcomes.append(res)

        first = threading.Thread(target=call, args=(0,))
        first.start()
        assert probe.entered.wait(5)
        # 3x what the queue can hold, while the batcher is stuck.
        threads = [threading.Thread(target=call, args=(i,)) for i in range(1, 25)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 5
        while outcomes.count("overloaded") < 16:
            assert time.monotonic() < deadline
            time.sleep(0.002)
        probe.gate.set()
        for t in [first, *threads]:
            t.join(10)
        assert outcomes.count("overloaded") == 16
        assert outcomes.count("ok:1") == 9  # the one computing + a full queue of 8
        m = server.metrics()["m"]
        assert m["errors"]["overloaded"] == 16 and "deadline" not in m["errors"]
        with pytest.raises(BadInput, match="exceed the queue capacity"):
            server.predict("m", np.zeros((9, D), np.float32))


def test_requests_that_cannot_meet_their_deadline_are_refused_at_once(model):
    probe = probe_for(model, gate=True)
    with PredictionServer(max_batch_size=1, max_wait_us=0, inline_us=0, workers=1) as server:
        serve_probe(server, "m", probe)
        server._endpoints["m"].batch_seconds = 0.05  # as if each batch took 50 ms
        threads = [threading.Thread(target=server.predict, args=("m", row(float(i))),
                                    kwargs={"timeout": 10.0}) for i in range(3)]
        for t in threads:
            t.start()
            time.sleep(0.02)
        assert probe.entered.wait(5)
        deadline = time.monotonic() + 5
        while server.models()["m"]["queued_rows"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.001)
        # Refused at once (Overloaded, not DeadlineExceeded at 80 ms): the batch in flight,
        # the 2 queued and its own make 4 x 50 ms of work ahead.
        with pytest.raises(Overloaded, match="work is ahead"):
            server.predict("m", row(8.0), timeout=0.08)
        accepted = threading.Thread(target=server.predict, args=("m", row(9.0)),
                                    kwargs={"timeout": 5.0})
        accepted.start()
        probe.gate.set()
        for t in [*threads, accepted]:
            t.join(10)
        assert 8.0 not in probe.ids() and 9.0 in probe.ids()


def test_a_caller_whose_request_is_being_computed_returns_only_after_its_batch(model):
    probe = probe_for(model, gate=True)
    with PredictionServer(max_batch_size=1, max_wait_us=0, inline_us=0, workers=1) as server:
        serve_probe(server, "m", probe)
        outcome: list = []

        def call() -> None:
            try:
                server.predict("m", row(1.0), timeout=0.05)
            except DeadlineExceeded as exc:
                outcome.append(str(exc))

        caller = threading.Thread(target=call)
        caller.start()
        assert probe.entered.wait(5)  # taken in time, now held mid-batch
        caller.join(0.2)  # well past its deadline: the worker still writes into its buffer
        assert caller.is_alive() and not outcome
        probe.gate.set()
        caller.join(10)
        assert outcome == ["deadline passed while computing"]


def test_a_failing_batch_counts_once_against_the_breaker(model):
    probe = probe_for(model, gate=True)
    fallback = lambda X: np.full((len(X), 1), 0.5, np.float32)  # noqa: E731
    with PredictionServer(max_batch_size=8, max_wait_us=0, inline_us=0, workers=1,
                          failure_threshold=3) as server:
        serve_probe(server, "m", probe, fallback=fallback)
        probe.fail = True
        answers: list = []
        threads = [threading.Thread(target=lambda i=i: answers.append(
            server.predict("m", row(float(i)), timeout=5.0))) for i in range(5)]
        threads[0].start()
        assert probe.entered.wait(5)
        for t in threads[1:]:
            t.start()
        deadline = time.monotonic() + 5
        while server.models()["m"]["queued_rows"] < 4:
            assert time.monotonic() < deadline
            time.sleep(0.001)
        probe.gate.set()
        for t in threads:
            t.join(10)
        # Two failed batches (1 request, then 4): two failures, not five; the breaker stays
        # closed and every caller got the marked fallback.
        assert probe.calls == 2
        assert server.metrics()["m"]["errors"]["model:RuntimeError"] == 2
        assert server.models()["m"]["breaker"] == "closed"
        assert len(answers) == 5 and all(p.fallback for p in answers)


def test_asyncio_callers_of_a_slow_model_are_batched_in_the_batcher(model):
    # inline_us=0: as for a model too slow to compute on the event loop.
    with PredictionServer(max_batch_size=64, max_wait_us=2000, inline_us=0) as server:
        server.add_model("m", model, version="3")
        X = np.random.default_rng(6).normal(size=(48, D)).astype(np.float32)

        async def main():
            return await asyncio.gather(*(server.apredict("m", X[i], timeout=5.0)
                                          for i in range(len(X))))

        preds = asyncio.run(main())
        np.testing.assert_allclose(np.concatenate([p.values for p in preds]),
                                   model.predict_proba(X)[:, 1:], rtol=1e-5, atol=1e-6)
        assert {p.version for p in preds} == {"3"}
        m = server.metrics()["m"]
        _, _, total, n_batches = m["batch_size"]
        assert total == 48 and n_batches < 48 and m["requests"] == 48


def test_closing_without_drain_refuses_queued_asyncio_requests(model):
    probe = probe_for(model, gate=True)
    server = PredictionServer(max_batch_size=1, max_wait_us=0, inline_us=0, workers=1)
    serve_probe(server, "m", probe)

    async def main():
        tasks = [asyncio.ensure_future(server.apredict("m", row(float(i)), timeout=10.0))
                 for i in range(3)]
        deadline = time.monotonic() + 5
        while not (probe.entered.is_set() and server.models()["m"]["queued_rows"] == 2):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.001)
        # The batch being computed is held: close gives up waiting for it after 0.1 s ...
        await asyncio.to_thread(server.close, drain=False, timeout=0.1)
        probe.gate.set()  # ... and it still completes
        return await asyncio.gather(*tasks, return_exceptions=True)

    first, *rest = asyncio.run(main())
    assert not isinstance(first, BaseException) and first.version == "1"
    assert [type(r) for r in rest] == [ShuttingDown, ShuttingDown]


def test_threads_and_asyncio_callers_add_up_in_the_metrics(model):
    with PredictionServer(max_batch_size=16, max_wait_us=100) as server:
        server.add_model("m", model)
        X = np.random.default_rng(7).normal(size=(20, D)).astype(np.float32)
        for i in range(10):  # threads: the C++ batcher
            server.predict("m", X[i:i + 1])

        async def main():  # asyncio: the event loop's lane (a fast model)
            return await asyncio.gather(*(server.apredict("m", X[i:i + 1]) for i in range(10)))

        asyncio.run(main())
        m = server.metrics()["m"]
        assert m["requests"] == 20 and m["rows"] == 20
        assert m["latency"][3] == 20 and m["batch_size"][2] == 20
        assert m["queued_rows"] == 0 and m["in_flight_rows"] == 0


# -- hot swap ----------------------------------------------------------------------------------

def test_hot_swap_under_load_has_no_failures_and_labels_every_answer():
    models = {f"{k}.0.0": fit_model(seed=k) for k in range(1, 6)}
    X = np.random.default_rng(3).normal(size=(64, D)).astype(np.float32)
    expected = {v: m.predict_proba(X)[:, 1:] for v, m in models.items()}
    with PredictionServer(max_batch_size=16, max_wait_us=200) as server:
        server.add_model("m", models["1.0.0"], version="1.0.0")
        stop = threading.Event()
        failures, answers = [], []

        def load(k: int) -> None:
            i = k
            while not stop.is_set() and len(answers) < 20_000:
                try:
                    p = server.predict("m", X[i % 64], timeout=2.0)
                    answers.append((i % 64, p.version, float(p.values[0, 0])))
                except Exception as exc:  # counted: must stay zero
                    failures.append(exc)
                i += 4

        threads = [threading.Thread(target=load, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        seen_before = 0
        for v in list(models)[1:] * 3:  # 12 swaps, each once traffic has moved on
            deadline = time.monotonic() + 5
            while len(answers) < seen_before + 50:  # traffic keeps flowing through swaps
                assert time.monotonic() < deadline
                time.sleep(0.005)
            seen_before = len(answers)
            server.add_model("m", models[v], version=v)
        stop.set()
        for t in threads:
            t.join(10)
        assert not failures
        assert len({v for _, v, _ in answers}) == 5
        # Every answer was computed by the version it is labelled with.
        for i, v, value in answers:
            assert value == pytest.approx(expected[v][i, 0], rel=1e-5, abs=1e-6)
        assert server.metrics()["m"]["swaps"] == 12


def test_swap_to_another_contract_is_refused(model):
    with PredictionServer() as server:
        server.add_model("m", model, version="1")
        rng = np.random.default_rng(0)
        wider = LogisticRegression().fit(rng.normal(size=(50, D + 1)).astype(np.float32),
                                         rng.integers(0, 2, 50))
        with pytest.raises(ValueError, match="new contract"):
            server.add_model("m", wider, version="2")
        assert server.predict("m", row(0.0)).version == "1"


# -- circuit breaker and fallback -------------------------------------------------------------

def test_breaker_opens_serves_the_marked_fallback_and_closes_after_a_probe(model):
    probe = probe_for(model)
    fallback_calls = []

    def fallback(X):
        fallback_calls.append(len(X))
        return np.full((len(X), 1), 0.25, dtype=np.float32)

    with PredictionServer(max_batch_size=1, max_wait_us=0, failure_threshold=3,
                          reset_timeout=0.3, inline_us=0) as server:
        serve_probe(server, "m", probe, version="2.0.0", fallback=fallback)
        probe.fail = True
        for i in range(5):
            p = server.predict("m", row(float(i)), timeout=2.0)
            assert p.fallback and p.values[0, 0] == 0.25 and p.version == "2.0.0"
        assert probe.calls == 3  # open after 3 failures: the model is no longer called
        assert server.models()["m"]["breaker"] == "open"
        m = server.metrics()["m"]
        assert m["breaker_opens"] == 1 and m["fallbacks"] == 5
        assert m["errors"]["model:RuntimeError"] == 3
        probe.fail = False
        time.sleep(0.35)
        p = server.predict("m", row(9.0), timeout=2.0)  # the half-open probe succeeds
        assert not p.fallback and probe.calls == 4
        assert server.models()["m"]["breaker"] == "closed"
        assert not server.predict("m", row(10.0), timeout=2.0).fallback


def test_breaker_counts_timeouts_and_without_fallback_answers_503(model):
    probe = probe_for(model, delay=0.03)
    with PredictionServer(max_batch_size=1, max_wait_us=0, failure_threshold=2,
                          reset_timeout=10, inline_us=0) as server:
        serve_probe(server, "m", probe)
        ep = server._endpoints["m"]
        for i in range(2):  # computed, but past the 10 ms deadline: too slow
            with pytest.raises(DeadlineExceeded):
                server.predict("m", row(float(i)), timeout=0.01)
            deadline = time.monotonic() + 5  # let the slow batch finish before the next
            while ep.in_flight:
                assert time.monotonic() < deadline
                time.sleep(0.005)
        assert server.models()["m"]["breaker"] == "open"
        with pytest.raises(ModelUnavailable, match="no fallback") as info:
            server.predict("m", row(5.0), timeout=1.0)
        assert info.value.status == 503
        assert server.metrics()["m"]["errors"]["model:too_slow"] == 2


def test_record_fallback_is_the_legacy_baseline():
    model = fit_model(names=True)
    naive = NaiveLearner(key=("f0",))
    naive.learn_many([{"f0": 1.0}] * 4 + [{"f0": 2.0}] * 4, [1, 1, 1, 0, 0, 0, 0, 1])
    probe = probe_for(model)
    with PredictionServer(failure_threshold=1, reset_timeout=10, inline_us=0) as server:
        serve_probe(server, "m", probe, fallback=naive,
                    feature_names=[f"f{i}" for i in range(D)])
        probe.fail = True
        records = [{"f0": 1.0, "f1": 0.0}, {"f0": 2.0}]
        p = server.predict("m", records, timeout=2.0)
        assert p.fallback
        np.testing.assert_allclose(p.values[:, 0], naive.predict_proba_many(records), rtol=1e-6)
        assert p.labels() == [int(v > 0.5) for v in naive.predict_proba_many(records)]
        # Rows cannot go to a record-based fallback: 503 rather than a wrong answer.
        with pytest.raises(ModelUnavailable):
            server.predict("m", row(0.0), timeout=2.0)


def test_circuit_breaker_validates_its_settings():
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(0)
    with pytest.raises(ValueError, match="reset_timeout"):
        CircuitBreaker(1, float("nan"))


# -- registry and learners ---------------------------------------------------------------------

@pytest.fixture
def registry(tmp_path):
    from ducklearn.registry import Registry

    reg = Registry(tmp_path / "models", actor="alice")
    yield reg
    reg.close()


def test_registry_refs_and_alias_moves_are_followed(registry):
    X = np.random.default_rng(4).normal(size=(8, D)).astype(np.float32)
    v1 = registry.register("churn", fit_model(seed=1)).version
    v2 = registry.register("churn", fit_model(seed=2)).version
    registry.promote("churn", "prod", v1, reason="first")
    with PredictionServer(registry, watch_interval=0.05) as server:
        assert server.predict("churn@prod", X).version == v1
        assert server.predict(f"churn:{v1}", X).version == v1
        assert server.predict("churn", X).version == v2  # the latest
        registry.promote("churn", "prod", v2, reason="better")
        deadline = time.monotonic() + 5
        while server.predict("churn@prod", X).version != v2:
            assert time.monotonic() < deadline, "the alias move was not picked up"
            time.sleep(0.02)
        np.testing.assert_allclose(server.predict("churn@prod", X).values,
                                   registry.load("churn", v2).predict_proba(X)[:, 1:],
                                   rtol=1e-5, atol=1e-6)
        assert server.metrics()["churn@prod"]["swaps"] == 1
        for bad in ("nope", "churn@missing", "churn:9.9.9", "churn@", ":1"):
            with pytest.raises(ModelNotFound):
                server.predict(bad, X)


def test_learner_snapshots_are_served_as_they_are_published():
    model = fit_model(names=True)
    learner = OnlineLearner(model, publish_every=10, publish_interval=0.01)
    try:
        with PredictionServer() as server:
            server.add_learner("live", learner)
            rec = {"f0": 0.3, "f1": -1.0, "f2": 0.0, "f3": 2.0}
            first = server.predict("live", rec)
            assert first.version == f"live-{learner.snapshot.version}"
            rng = np.random.default_rng(5)
            X = rng.normal(size=(500, D))
            learner.ingest_many([{f"f{j}": float(v) for j, v in enumerate(r)} for r in X],
                                (X[:, 1] > 0).astype(int).tolist())
            assert learner.flush(10)
            later = server.predict("live", rec)
            assert later.version != first.version
            assert later.version == f"live-{learner.snapshot.version}"
            np.testing.assert_allclose(later.values, learner.predict_proba_many([rec])[:, 1:],
                                       rtol=1e-6)
    finally:
        learner.close()


def test_learner_endpoints_swap_each_published_snapshot_into_the_batcher():
    model = fit_model(names=True)
    learner = OnlineLearner(model, publish_every=50, publish_interval=10.0)
    try:
        server = PredictionServer()
        server.add_learner("live", learner)
        ep = server._endpoints["live"]
        assert ep.batcher.version == learner.snapshot.version
        rng = np.random.default_rng(8)
        X = rng.normal(size=(300, D))
        learner.ingest_many([{f"f{j}": float(v) for j, v in enumerate(r)} for r in X],
                            (X[:, 0] > 0).astype(int).tolist())
        assert learner.flush(10)
        # Swapped at publication, not at the next request.
        assert ep.batcher.version == learner.snapshot.version > 1
        before = learner.snapshot.version
        server.close()
        assert not learner._publish_listeners  # closing unhooks the endpoint
        learner.ingest_many([{"f0": 1.0}], [1])
        assert learner.flush(10) and learner.snapshot.version > before
        assert ep.batcher.version == before
    finally:
        learner.close()


def test_publish_listeners_see_every_snapshot_and_cannot_break_publishing():
    model = fit_model(names=True)
    learner = OnlineLearner(model, publish_every=10, publish_interval=10.0, start=False)
    seen: list[int] = []

    def broken(snap):
        raise RuntimeError("listener bug")

    learner.add_publish_listener(broken)
    learner.add_publish_listener(lambda snap: seen.append(snap.version))
    with pytest.raises(TypeError, match="callable"):
        learner.add_publish_listener(42)
    learner.start()
    try:
        for k in range(3):
            learner.ingest_many([{"f0": float(k)}] * 10, [k % 2] * 10)
            assert learner.flush(10)
        assert seen and seen == sorted(seen) and seen[-1] == learner.snapshot.version
        learner.remove_publish_listener(broken)
        learner.remove_publish_listener(broken)  # not an error
        assert len(learner._publish_listeners) == 1
    finally:
        learner.close()


# -- bad input, lifecycle ----------------------------------------------------------------------

@pytest.mark.parametrize("inputs, field, message", [
    (np.zeros((2, D + 1), np.float32), "inputs", "rows of 4 numbers"),
    ([[1, 2, "x", 4]], "inputs[0][2]", "must be a number, got str"),
    ([[1, 2, None, 4]], "inputs[0][2]", "must be a number, got NoneType"),
    ([1.0, float("nan"), 0, 0], "inputs[1]", "must be finite"),
    (np.array([[0, 0, 0, 0], [0, np.nan, 0, 0]], np.float32), "inputs[1][1]", "must be finite"),
    ([[0, 0, 0, 0], [0, float("inf"), 0, 0]], "inputs[1][1]", "must be finite"),
    ([], "inputs", "no inputs"),
    ([[1, 2], [1, 2, 3]], "inputs", "equal length"),
    ({"f0": 1.0, "zzz": 2.0}, "inputs[0].zzz", "unknown feature 'zzz'"),
    ({"f0": "high"}, "inputs[0].f0", "must be a number, got str"),
    ([{"f0": 1.0}, {"f1": float("nan")}], "inputs[1].f1", "must be finite"),
    ([{"f0": 1.0}, 3], "inputs[1]", "must be an object"),
    ("text", "inputs", "got str"),
])
def test_bad_input_names_the_problem_and_the_server_keeps_serving(inputs, field, message):
    model = fit_model(names=True)
    with PredictionServer() as server:
        server.add_model("m", model)
        with pytest.raises(BadInput, match=message) as info:
            server.predict("m", inputs)
        assert info.value.field == field and info.value.status == 400
        assert server.predict("m", {"f0": 1.0}).values.shape == (1, 1)
        with pytest.raises(BadInput, match="timeout"):
            server.predict("m", [0, 0, 0, 0], timeout="soon")
        with pytest.raises(BadInput, match="priority"):
            server.predict("m", [0, 0, 0, 0], priority=1.5)
        # Beyond the batcher's int: ranks like the largest, still answered.
        assert server.predict("m", [0, 0, 0, 0], priority=10**30).values.shape == (1, 1)


def test_close_drains_queued_requests_then_refuses(model):
    probe = probe_for(model, gate=True)
    server = PredictionServer(max_batch_size=1, max_wait_us=0, inline_us=0, workers=1)
    serve_probe(server, "m", probe)
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(
        server.predict("m", row(float(i)), timeout=5.0).version)) for i in range(4)]
    for t in threads:
        t.start()
    assert probe.entered.wait(5)
    closer = threading.Thread(target=server.close, kwargs={"drain": True, "timeout": 5.0})
    deadline = time.monotonic() + 5
    while server.models()["m"]["queued_rows"] < 3:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    closer.start()
    time.sleep(0.05)
    with pytest.raises(ShuttingDown) as info:
        server.predict("m", row(9.0))
    assert info.value.status == 503
    probe.gate.set()
    closer.join(10)
    for t in threads:
        t.join(10)
    assert results == ["1"] * 4  # everything accepted before the close was answered
    assert not server.ready


def test_server_validates_its_settings(model):
    for kwargs, match in [({"max_batch_size": 0}, "max_batch_size"),
                          ({"queue_capacity": 1.5}, "queue_capacity"),
                          ({"max_wait_us": -1}, "max_wait_us"),
                          ({"default_timeout": 0}, "default_timeout"),
                          ({"watch_interval": 0}, "watch_interval"),
                          ({"inline_us": -1}, "inline_us")]:
        with pytest.raises(ValueError, match=match):
            PredictionServer(**kwargs)
    with pytest.raises(TypeError, match="registry"):
        PredictionServer(object())
    with PredictionServer() as server:
        with pytest.raises(TypeError, match="cannot serve"):
            server.add_model("m", object())
        with pytest.raises(ValueError, match="name"):
            server.add_model("", model)
        with pytest.raises(TypeError, match="fallback"):
            server.add_model("m", model, fallback=42)
        with pytest.raises(ModelNotFound, match="unknown model"):
            server.predict("absent", [0, 0, 0, 0])


def test_quickstart_serves_its_live_model_through_the_server(tmp_path):
    import io

    from ducklearn.quickstart import run

    out = io.StringIO()
    summary = run(n=10_000, seed=2, workdir=str(tmp_path), quiet=True, out=out)
    # One request per live batch of 1,000, answered by several published snapshots.
    assert summary["served_requests"] == 9
    assert summary["served_versions"] > 1
    assert summary["served_fallbacks"] == 0
    assert "through the PredictionServer" in out.getvalue()
