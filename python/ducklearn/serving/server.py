"""In-process prediction server: dynamic batching, deadlines, backpressure, hot swap and a
circuit breaker with fallback.

Every served model is an *endpoint* with its own bounded priority queue and batcher
threads. A request's rows (a feature matrix, or records turned into rows in the caller's
thread, so bad input fails there and never reaches the queue) wait until the batch is full
(``max_batch_size`` rows) or the oldest request has waited ``max_wait_us``; the batch is then
computed with one call into C++ (GIL released) and the results split back. A request whose
deadline passes while queued fails fast and is never computed; a full queue rejects at once
(:class:`Overloaded`), so the queue can never grow without bound.

An endpoint reads its model from a *source*: a fixed version (hot-swapped atomically after
warm-up when a registry alias moves) or a live :class:`~ducklearn.learn.OnlineLearner`,
whose latest snapshot each batch picks up. A batch holds the version it started with, so
in-flight requests finish on the old version while new ones go to the new; every response
says which version computed it.

Errors never take the server down: a batch that fails (or runs past its requests'
deadlines) counts against the endpoint's circuit breaker; the breaker opens after
``failure_threshold`` consecutive failures, sends requests to the fallback (responses
marked ``fallback=True``) and closes again after a successful probe once ``reset_timeout``
has passed.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "PredictionServer", "Prediction", "ServingError", "Overloaded", "DeadlineExceeded",
    "ModelNotFound", "BadInput", "CircuitBreaker",
]

log = logging.getLogger(__name__)


class ServingError(RuntimeError):
    """Base class of the errors a caller of the server can get."""

    status = 500


class Overloaded(ServingError):
    """The endpoint's queue is full; retry later (HTTP 429)."""

    status = 429


class DeadlineExceeded(ServingError, TimeoutError):
    """The request's deadline passed before it was computed (HTTP 504)."""

    status = 504


class ModelNotFound(ServingError, KeyError):
    """No such model, version or alias (HTTP 404)."""

    status = 404

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class BadInput(ServingError, ValueError):
    """The inputs cannot be predicted (HTTP 400); the message names the problem."""

    status = 400


@dataclass(frozen=True)
class Prediction:
    values: np.ndarray      # (n, k): class probabilities (binary: P(classes[1])) or values
    model: str
    version: str
    fallback: bool = False


class CircuitBreaker:
    """closed -> (failure_threshold consecutive failures) -> open -> (reset_timeout) ->
    half-open: one probe batch; success closes, failure reopens."""

    def __init__(self, failure_threshold: int = 5, reset_timeout: float = 5.0):
        if isinstance(failure_threshold, bool) or not isinstance(failure_threshold, int) or (
            failure_threshold < 1
        ):
            raise ValueError(f"failure_threshold must be an integer >= 1, got {failure_threshold!r}")
        if not (isinstance(reset_timeout, (int, float)) and reset_timeout > 0):
            raise ValueError(f"reset_timeout must be > 0, got {reset_timeout!r}")
        self.failure_threshold = failure_threshold
        self.reset_timeout = float(reset_timeout)
        self._lock = threading.Lock()
        self.state = "closed"
        self.failures = 0
        self.opened_at = 0.0
        self._probing = False
        self.opens = 0

    def allow(self) -> bool:
        with self._lock:
            if self.state == "closed":
                return True
            if self.state == "open" and time.monotonic() - self.opened_at >= self.reset_timeout:
                self.state = "half_open"
            if self.state == "half_open" and not self._probing:
                self._probing = True
                return True
            return False

    def success(self) -> None:
        with self._lock:
            self.state, self.failures, self._probing = "closed", 0, False

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            self._probing = False
            if self.state == "half_open" or self.failures >= self.failure_threshold:
                if self.state != "open":
                    self.opens += 1
                self.state, self.opened_at = "open", time.monotonic()


class _Request:
    __slots__ = ("rows", "records", "n", "deadline", "key", "enqueued", "done", "result",
                 "error", "loop", "afut", "cancelled")

    def __init__(self, rows: np.ndarray, records: Any, deadline: float, key: tuple) -> None:
        self.rows, self.records, self.n = rows, records, len(rows)
        self.deadline, self.key = deadline, key
        self.enqueued = time.monotonic()
        self.done = threading.Event()
        self.result: Prediction | None = None
        self.error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.afut: asyncio.Future | None = None
        self.cancelled = False

    def __lt__(self, other: _Request) -> bool:
        return self.key < other.key

    def finish(self, result: Prediction | None, error: BaseException | None) -> None:
        self.result, self.error = result, error
        self.done.set()
        if self.afut is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(_resolve_future, self.afut, result, error)


def _resolve_future(fut: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


# Latency histogram buckets (seconds), shared by every endpoint and the HTTP exporter.
LATENCY_BUCKETS = (5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25,
                   0.5, 1.0, math.inf)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, math.inf)


class _Histogram:
    __slots__ = ("bounds", "counts", "total", "count")

    def __init__(self, bounds: Sequence[float]):
        self.bounds = tuple(bounds)
        self.counts = [0] * len(self.bounds)
        self.total = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        for i, b in enumerate(self.bounds):
            if v <= b:
                self.counts[i] += 1
                break
        self.total += v
        self.count += 1


class _Source:
    """Where an endpoint's model comes from: () -> (predictor, version)."""

    def __init__(self, predictor: Any, version: str) -> None:
        self.current = (predictor, version)

    def get(self) -> tuple[Any, str]:
        return self.current


class _LearnerSource(_Source):
    def __init__(self, learner: Any) -> None:
        self.learner = learner

    def get(self) -> tuple[Any, str]:
        snap = self.learner.snapshot
        return snap.predictor, f"live-{snap.version}"


def _predictor_of(model: Any) -> Any:
    """A thread-safe, immutable ``_core.Predictor`` for an estimator or a snapshot."""
    if hasattr(model, "predict") and hasattr(model, "n_inputs") and hasattr(model, "task") and (
        not hasattr(model, "fit")
    ):
        return model  # already a Predictor
    learner = getattr(model, "_learner", None)
    if learner is None:
        raise TypeError(
            f"cannot serve {type(model).__name__}: pass a fitted ducklearn estimator, an "
            "OnlineLearner or a snapshot predictor"
        )
    return learner.snapshot()


class _Endpoint:
    def __init__(self, server: PredictionServer, name: str, source: _Source, *,
                 classes: Sequence | None, feature_names: Sequence[str] | None,
                 extractor: Any, fallback: Any) -> None:
        self.server = server
        self.name = name
        self.source = source
        self.classes = None if classes is None else np.asarray(classes)
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.feature_pos = ({n: i for i, n in enumerate(self.feature_names)}
                            if self.feature_names is not None else None)
        self.extractor = extractor
        self.fallback = fallback
        self.breaker = CircuitBreaker(server.failure_threshold, server.reset_timeout)
        self.cond = threading.Condition()
        self.heap: list[_Request] = []
        self.queued = 0
        self.seq = itertools.count()
        self.stop = False
        self.ready = False
        self.requests = 0
        self.errors: dict[str, int] = {}
        self.fallbacks = 0
        self.latency = _Histogram(LATENCY_BUCKETS)
        self.batch_sizes = _Histogram(BATCH_BUCKETS)
        self.threads = [threading.Thread(target=self._loop, name=f"ducklearn-serve-{name}-{i}",
                                         daemon=True) for i in range(server.workers)]
        predictor, version = source.get()
        self.n_inputs = int(predictor.n_inputs)
        self.warm_up(predictor)
        self.ready = True
        for t in self.threads:
            t.start()

    # -- inputs --------------------------------------------------------------------------

    def rows_for(self, inputs: Any) -> tuple[np.ndarray, Any]:
        """(feature rows, the records they came from or None); raises BadInput."""
        if isinstance(inputs, np.ndarray) or (
            isinstance(inputs, (list, tuple)) and inputs and not isinstance(inputs[0], Mapping)
        ):
            arr = np.asarray(inputs, dtype=np.float32) if not isinstance(inputs, np.ndarray) \
                else inputs
            if arr.dtype.kind not in "fiub":
                raise BadInput(f"inputs must be numbers, got dtype {arr.dtype}")
            if arr.ndim == 1:
                arr = arr[None, :]
            if arr.ndim != 2 or arr.shape[1] != self.n_inputs:
                raise BadInput(f"inputs must have shape (n, {self.n_inputs}), got {arr.shape}")
            arr = np.ascontiguousarray(arr, dtype=np.float32)
            if not np.isfinite(arr).all():
                raise BadInput("inputs contain NaN or infinity")
            return arr, None
        records = [inputs] if isinstance(inputs, Mapping) else list(inputs)
        if not records:
            raise BadInput("no inputs")
        if self.extractor is not None:
            X, dead = self.extractor.transform(records, sparse=False)
            if dead:
                raise BadInput(dead[0].message)
            return np.ascontiguousarray(X, dtype=np.float32), records
        if self.feature_pos is None:
            raise BadInput(f"model {self.name!r} takes arrays of {self.n_inputs} features, "
                           "not records (it has no feature schema)")
        X = np.zeros((len(records), self.n_inputs), dtype=np.float32)
        for i, r in enumerate(records):
            if not isinstance(r, Mapping):
                raise BadInput(f"record {i} must be an object of feature values")
            for k, v in r.items():
                j = self.feature_pos.get(k)
                if j is None:
                    raise BadInput(f"record {i}: unknown feature {k!r}")
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise BadInput(f"record {i}: feature {k!r} must be a number, got "
                                   f"{type(v).__name__}")
                if not math.isfinite(v):
                    raise BadInput(f"record {i}: feature {k!r} is {v}")
                X[i, j] = v
        return X, records

    # -- queueing ------------------------------------------------------------------------

    def submit(self, rows: np.ndarray, records: Any, timeout: float | None,
               priority: int) -> _Request:
        timeout = self.server.default_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout if timeout is not None else math.inf
        req = _Request(rows, records, deadline, (-int(priority), next(self.seq)))
        with self.cond:
            if self.stop:
                raise ServingError(f"model {self.name!r} is shutting down")
            if self.queued + req.n > self.server.queue_capacity:
                self._count_error("overloaded")
                raise Overloaded(
                    f"model {self.name!r} is overloaded ({self.queued} rows queued, capacity "
                    f"{self.server.queue_capacity}); retry later"
                )
            heapq.heappush(self.heap, req)
            self.queued += req.n
            self.requests += 1
            self.cond.notify()
        return req

    def _take(self) -> list[_Request]:
        max_rows = self.server.max_batch_size
        wait = self.server.max_wait
        with self.cond:
            while not self.heap and not self.stop:
                self.cond.wait()
            if not self.heap:
                return []
            # Let the batch fill until it is full or its oldest request has waited max_wait.
            if wait > 0 and self.queued < max_rows:
                oldest = min(r.enqueued for r in self.heap)
                while self.queued < max_rows and not self.stop:
                    left = oldest + wait - time.monotonic()
                    if left <= 0:
                        break
                    self.cond.wait(left)
            batch, rows = [], 0
            while self.heap and (rows == 0 or rows + self.heap[0].n <= max_rows):
                req = heapq.heappop(self.heap)
                batch.append(req)
                rows += req.n
            self.queued -= rows
            self.cond.notify_all()
            return batch

    def _count_error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                return
            try:
                self._serve(batch)
            except BaseException as exc:  # never let one batch kill the batcher
                log.exception("serving a batch of model %r failed", self.name)
                for req in batch:
                    if not req.done.is_set():
                        req.finish(None, ServingError(f"internal error: {exc}"))

    def _serve(self, batch: list[_Request]) -> None:
        now = time.monotonic()
        live = []
        for req in batch:
            if req.cancelled:
                continue
            if req.deadline <= now:
                self._count_error("deadline")
                req.finish(None, DeadlineExceeded(
                    f"deadline passed after {now - req.enqueued:.4f}s in the queue; not computed"))
            else:
                live.append(req)
        if not live:
            return
        X = live[0].rows if len(live) == 1 else np.concatenate([r.rows for r in live])
        self.batch_sizes.observe(len(X))
        predictor, version = self.source.get()  # the version this batch computes with
        values, used_fallback = None, False
        if self.breaker.allow():
            try:
                values = predictor.predict(X)
            except Exception as exc:
                self._count_error(f"model:{type(exc).__name__}")
                log.warning("model %r version %s failed on a batch: %s", self.name, version, exc)
                self.breaker.failure()
            else:
                late = time.monotonic() > min(r.deadline for r in live)
                if late:
                    self.breaker.failure()  # too slow for its callers: counts as a failure
                else:
                    self.breaker.success()
        if values is None:
            values = self._fallback(live, X)
            used_fallback = True
            if values is None:
                for req in live:
                    req.finish(None, ServingError(
                        f"model {self.name!r} is failing and has no fallback"))
                return
            self.fallbacks += len(live)
        done = time.monotonic()
        start = 0
        for req in live:
            out = values[start:start + req.n]
            start += req.n
            if done > req.deadline:
                self._count_error("deadline")
                req.finish(None, DeadlineExceeded("deadline passed while computing"))
                continue
            self.latency.observe(done - req.enqueued)
            req.finish(Prediction(out, self.name, version, used_fallback), None)

    def _fallback(self, live: list[_Request], X: np.ndarray) -> np.ndarray | None:
        fb = self.fallback
        if fb is None:
            return None
        try:
            if hasattr(fb, "predict_proba_many"):
                recs = []
                for req in live:
                    if req.records is None:
                        return None  # a record-based fallback needs records
                    recs.extend(req.records)
                p = np.asarray(fb.predict_proba_many(recs), dtype=np.float32)
            elif hasattr(fb, "predict") and hasattr(fb, "n_inputs"):
                p = fb.predict(X)
            else:
                p = np.asarray(fb(X), dtype=np.float32)
            return p.reshape(len(X), -1)
        except Exception:  # the fallback failing is logged; callers get an error
            log.exception("fallback of model %r failed", self.name)
            return None

    # -- versions ------------------------------------------------------------------------

    def warm_up(self, predictor: Any) -> None:
        """Run the model on zero batches of the sizes it will see before it takes traffic."""
        for n in sorted({1, self.server.max_batch_size}):
            predictor.predict(np.zeros((n, int(predictor.n_inputs)), dtype=np.float32))

    def swap(self, predictor: Any, version: str) -> None:
        if int(predictor.n_inputs) != self.n_inputs:
            raise ValueError(f"version {version} takes {predictor.n_inputs} inputs, the served "
                             f"one {self.n_inputs}: that is a new contract, serve it by name")
        self.warm_up(predictor)
        self.source.current = (predictor, version)  # one reference assignment: atomic

    def close(self, drain: bool, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        if drain:
            with self.cond:
                while self.heap and time.monotonic() < deadline:
                    self.cond.wait(0.01)
        with self.cond:
            self.stop = True
            leftover, self.heap = self.heap, []
            self.cond.notify_all()
        for req in leftover:
            req.finish(None, ServingError(f"model {self.name!r} shut down before serving this"))
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))


class PredictionServer:
    """Serve models in process with dynamic batching.

    Parameters
    ----------
    registry : ducklearn.registry.Registry, optional
        Lets :meth:`predict` address ``name``, ``name@alias`` or ``name:version`` directly
        (loaded and warmed up on first use); alias endpoints follow alias moves.
    max_batch_size : int
        Rows per batch.
    max_wait_us : float
        How long the oldest request may wait for the batch to fill, in microseconds.
    queue_capacity : int
        Rows that may wait per model before requests are rejected with :class:`Overloaded`.
    workers : int
        Batcher threads per model (computation releases the GIL, so several run in parallel).
    default_timeout : float, optional
        Deadline in seconds for requests that do not give one.
    failure_threshold, reset_timeout
        Circuit-breaker settings (see :class:`CircuitBreaker`).
    watch_interval : float
        Seconds between checks of the registry for alias moves.
    """

    def __init__(self, registry: Any = None, *, max_batch_size: int = 64,
                 max_wait_us: float = 200.0, queue_capacity: int = 10_000, workers: int = 1,
                 default_timeout: float | None = 1.0, failure_threshold: int = 5,
                 reset_timeout: float = 5.0, watch_interval: float = 1.0):
        for name, value in (("max_batch_size", max_batch_size), ("queue_capacity", queue_capacity),
                            ("workers", workers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not (isinstance(max_wait_us, (int, float)) and max_wait_us >= 0):
            raise ValueError(f"max_wait_us must be >= 0, got {max_wait_us!r}")
        if default_timeout is not None and not (
            isinstance(default_timeout, (int, float)) and default_timeout > 0
        ):
            raise ValueError(f"default_timeout must be > 0 or None, got {default_timeout!r}")
        self.registry = registry
        self.max_batch_size = max_batch_size
        self.max_wait = float(max_wait_us) * 1e-6
        self.queue_capacity = queue_capacity
        self.workers = workers
        self.default_timeout = default_timeout
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.watch_interval = float(watch_interval)
        CircuitBreaker(failure_threshold, reset_timeout)  # validate now
        self._endpoints: dict[str, _Endpoint] = {}
        self._lock = threading.Lock()
        self._watched: dict[str, tuple[str, str]] = {}  # endpoint -> (name, alias)
        self._closed = False
        self._watcher: threading.Thread | None = None
        self._stop_watch = threading.Event()

    # -- adding models -------------------------------------------------------------------

    def add_model(self, name: str, model: Any, *, version: str = "1", fallback: Any = None,
                  feature_names: Sequence[str] | None = None, extractor: Any = None) -> None:
        """Serve a fitted estimator (or a snapshot predictor) under ``name``; replaces an
        existing endpoint's model by hot swap."""
        predictor = _predictor_of(model)
        classes = getattr(model, "classes_", None)
        if feature_names is None and hasattr(model, "_feature_index"):
            feature_names = list(model._feature_index)
        self._add(name, _Source(predictor, str(version)), classes, feature_names, extractor,
                  fallback)

    def add_learner(self, name: str, learner: Any, *, fallback: Any = None) -> None:
        """Serve an OnlineLearner's latest snapshot: each batch uses the newest one."""
        model = learner._model
        self._add(name, _LearnerSource(learner), getattr(model, "classes_", None),
                  learner._feature_names, learner._extractor, fallback)

    def _add(self, name: str, source: _Source, classes: Any, feature_names: Any,
             extractor: Any, fallback: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("name must be a non-empty string")
        with self._lock:
            if self._closed:
                raise ServingError("the server is closed")
            existing = self._endpoints.get(name)
            if existing is not None and type(source) is _Source and \
                    type(existing.source) is _Source:
                existing.swap(*source.current)
                if fallback is not None:
                    existing.fallback = fallback
                return
            if existing is not None:
                existing.close(drain=True, timeout=5.0)
            self._endpoints[name] = _Endpoint(self, name, source, classes=classes,
                                              feature_names=feature_names, extractor=extractor,
                                              fallback=fallback)

    def _endpoint(self, model: str) -> _Endpoint:
        ep = self._endpoints.get(model)
        if ep is not None:
            return ep
        if self.registry is None:
            raise ModelNotFound(f"unknown model {model!r}; served: {sorted(self._endpoints)}")
        return self._load_from_registry(model)

    def _load_from_registry(self, ref: str) -> _Endpoint:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            try:
                version = self.registry.resolve(name, alias)
            except Exception as exc:
                raise ModelNotFound(f"no alias {alias!r} for model {name!r}: {exc}") from None
        else:
            name, _, version = ref.partition(":")
            alias = None
            version = version or "latest"
        try:
            model = self.registry.load(name, version)
            resolved = self.registry.get(name, version).version
        except Exception as exc:
            raise ModelNotFound(f"cannot load {ref!r} from the registry: {exc}") from None
        with self._lock:
            if ref not in self._endpoints:
                self._add_unlocked(ref, model, resolved)
                if alias is not None:
                    self._watched[ref] = (name, alias)
                    self._ensure_watcher()
            return self._endpoints[ref]

    def _add_unlocked(self, ref: str, model: Any, version: str) -> None:
        feature_names = list(model._feature_index) if hasattr(model, "_feature_index") else None
        self._endpoints[ref] = _Endpoint(
            self, ref, _Source(_predictor_of(model), str(version)),
            classes=getattr(model, "classes_", None), feature_names=feature_names,
            extractor=None, fallback=None)

    def serve(self, ref: str) -> None:
        """Load ``name``, ``name@alias`` or ``name:version`` from the registry now (rather
        than on the first request), warmed up."""
        self._endpoint(ref)

    def _ensure_watcher(self) -> None:
        if self._watcher is None or not self._watcher.is_alive():
            self._watcher = threading.Thread(target=self._watch, name="ducklearn-alias-watch",
                                             daemon=True)
            self._watcher.start()

    def _watch(self) -> None:
        while not self._stop_watch.wait(self.watch_interval):
            self.check_aliases()

    def check_aliases(self) -> list[str]:
        """Hot-swap every alias endpoint whose alias moved; returns the refs swapped."""
        swapped = []
        for ref, (name, alias) in list(self._watched.items()):
            ep = self._endpoints.get(ref)
            if ep is None:
                continue
            try:
                version = self.registry.resolve(name, alias)
                if version != ep.source.get()[1]:
                    model = self.registry.load(name, version)
                    ep.swap(_predictor_of(model), str(version))
                    swapped.append(ref)
            except Exception:  # a registry hiccup must not stop serving the current version
                log.exception("checking alias %s of %s failed", alias, name)
        return swapped

    # -- predicting ----------------------------------------------------------------------

    def _post(self, ep: _Endpoint, req: _Request) -> Prediction:
        if req.error is not None:
            raise req.error
        assert req.result is not None
        return req.result

    def predict(self, model: str, inputs: Any, *, timeout: float | None = None,
                priority: int = 0) -> Prediction:
        """Predict synchronously; raises a :class:`ServingError` subclass on failure."""
        ep = self._endpoint(model)
        rows, records = ep.rows_for(inputs)
        req = ep.submit(rows, records, timeout, priority)
        wait = None if req.deadline == math.inf else max(0.0, req.deadline - time.monotonic())
        if not req.done.wait(wait):
            req.cancelled = True
            ep._count_error("deadline")
            raise DeadlineExceeded(f"no answer within {timeout if timeout else wait}s")
        return self._post(ep, req)

    async def apredict(self, model: str, inputs: Any, *, timeout: float | None = None,
                       priority: int = 0) -> Prediction:
        """The asyncio form of :meth:`predict` (never blocks the event loop on the model)."""
        ep = self._endpoint(model)
        rows, records = ep.rows_for(inputs)
        loop = asyncio.get_running_loop()
        afut = loop.create_future()
        req = ep.submit(rows, records, timeout, priority)
        req.loop, req.afut = loop, afut
        if req.done.is_set():  # finished before the future was attached
            return self._post(ep, req)
        wait = None if req.deadline == math.inf else max(0.0, req.deadline - time.monotonic())
        try:
            return await asyncio.wait_for(afut, wait)
        except asyncio.TimeoutError:
            req.cancelled = True
            ep._count_error("deadline")
            raise DeadlineExceeded(f"no answer within {wait:.3f}s") from None

    # -- introspection -------------------------------------------------------------------

    def models(self) -> dict[str, dict[str, Any]]:
        out = {}
        for name, ep in list(self._endpoints.items()):
            _, version = ep.source.get()
            out[name] = {"version": version, "ready": ep.ready, "breaker": ep.breaker.state,
                         "queued_rows": ep.queued, "n_inputs": ep.n_inputs,
                         "classes": None if ep.classes is None else ep.classes.tolist()}
        return out

    @property
    def ready(self) -> bool:
        return not self._closed and all(ep.ready for ep in self._endpoints.values())

    def metrics(self) -> dict[str, dict[str, Any]]:
        """Per model: requests, errors by kind, fallbacks, queue depth, latency and batch-size
        histograms (bucket bounds, counts, sum, count), breaker state and openings."""
        out = {}
        for name, ep in list(self._endpoints.items()):
            out[name] = {
                "requests": ep.requests, "errors": dict(ep.errors), "fallbacks": ep.fallbacks,
                "queued_rows": ep.queued, "breaker": ep.breaker.state,
                "breaker_opens": ep.breaker.opens, "version": ep.source.get()[1],
                "latency": (ep.latency.bounds, list(ep.latency.counts), ep.latency.total,
                            ep.latency.count),
                "batch_size": (ep.batch_sizes.bounds, list(ep.batch_sizes.counts),
                               ep.batch_sizes.total, ep.batch_sizes.count),
            }
        return out

    def close(self, *, drain: bool = True, timeout: float = 10.0) -> None:
        """Stop accepting requests; with ``drain``, finish the queued ones first."""
        self._stop_watch.set()
        with self._lock:
            self._closed = True
            endpoints = list(self._endpoints.values())
        for ep in endpoints:
            ep.close(drain, timeout)

    def __enter__(self) -> PredictionServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def labels_for(prediction: Prediction, classes: Sequence | None) -> list[Any]:
    """Predicted labels for classification outputs (values for regression)."""
    v = prediction.values
    if classes is None:
        return v[:, 0].tolist()
    classes = list(classes)
    if v.shape[1] == 1:
        return [classes[int(p > 0.5)] for p in v[:, 0]]
    return [classes[int(i)] for i in np.argmax(v, axis=1)]

