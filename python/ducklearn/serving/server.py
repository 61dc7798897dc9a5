"""In-process prediction server: dynamic batching, deadlines, backpressure, hot swap and a
circuit breaker with fallback.

Every served model is an *endpoint*. A request's rows (a feature matrix, or records turned
into rows in the caller's thread, so bad input fails there and never reaches the queue) go
to the endpoint's batcher, which is C++ (``_core.Batcher``): they wait in a bounded priority
queue until the batch is full (``max_batch_size`` rows) or the oldest request has waited
``max_wait_us``; a worker thread then computes the batch with one model call and writes each
caller's rows straight back. A calling thread releases the GIL for its whole wait, and the
workers never need it for a ``_core.Predictor``, so callers do not compete with the batcher
for the interpreter. A request whose deadline passes while queued fails fast (the caller gets
:class:`DeadlineExceeded` at its deadline) and is never computed; a full queue rejects at
once (:class:`Overloaded`), so the queue can never grow without bound.

Asyncio callers of a model whose whole batch costs microseconds are batched on their own
event loop instead (see :class:`_AsyncLane`): there, a hand-off to another thread would cost
more than the batch. Those of a slower model queue in the same C++ batcher without blocking
the loop (tickets, answered on the loop).

An endpoint reads its model from a *source*: a fixed version (hot-swapped atomically after
warm-up when a registry alias moves) or a live :class:`~ducklearn.learn.OnlineLearner`,
whose every published snapshot is swapped in as it is published. A batch holds the version
it started with, so in-flight requests finish on the old version while new ones go to the
new; every response says which version computed it.

Errors never take the server down: a batch that fails (or is slower than its requests' whole
time budget) counts against the endpoint's circuit breaker; the breaker opens after
``failure_threshold`` consecutive failures, sends requests to the fallback (responses marked
``fallback=True``) and closes again after a successful probe once ``reset_timeout`` has
passed.

Examples
--------
>>> import numpy as np
>>> from ducklearn.linear import LogisticRegression
>>> from ducklearn.serving import PredictionServer
>>> X = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)
>>> model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
>>> with PredictionServer(max_wait_us=100) as server:
...     server.add_model("churn", model, version="1.0.0")
...     p = server.predict("churn", X[:2], timeout=1.0)
>>> p.values.shape, p.version, p.fallback
((2, 1), '1.0.0', False)
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ducklearn import _core

__all__ = [
    "PredictionServer", "Prediction", "ServingError", "Overloaded", "DeadlineExceeded",
    "ModelNotFound", "BadInput", "ShuttingDown", "ModelUnavailable", "CircuitBreaker",
    "labels_for",
]

log = logging.getLogger(__name__)



class ServingError(RuntimeError):
    """Base class of the errors a caller of the server can get (HTTP 500 unless a subclass
    says otherwise)."""

    status = 500
    kind = "internal"


class Overloaded(ServingError):
    """The endpoint's queue is full; retry later (HTTP 429)."""

    status = 429
    kind = "overloaded"


class ShuttingDown(ServingError):
    """The server (or this model's endpoint) is draining or closed (HTTP 503)."""

    status = 503
    kind = "shutting_down"


class ModelUnavailable(ServingError):
    """The model is failing and no fallback could answer (HTTP 503)."""

    status = 503
    kind = "unavailable"


class DeadlineExceeded(ServingError, TimeoutError):
    """The request's deadline passed before it was computed (HTTP 504)."""

    status = 504
    kind = "deadline"


class ModelNotFound(ServingError, KeyError):
    """No such model, version or alias (HTTP 404)."""

    status = 404
    kind = "not_found"

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class BadInput(ServingError, ValueError):
    """The inputs cannot be predicted (HTTP 400); the message names the problem and
    ``field`` (when known) the offending field or position."""

    status = 400
    kind = "bad_input"

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Prediction:
    """One request's answer.

    ``values`` is (n, k): for a binary classifier P(classes[1]) in one column, class
    probabilities for more classes, predicted values for a regressor. ``version`` is the
    model version the request was served by (the version whose batch computed it);
    ``fallback`` says the fallback predictor computed ``values`` because the model failed
    or its breaker was open.
    """

    values: np.ndarray
    model: str
    version: str
    fallback: bool = False
    classes: tuple | None = None

    def labels(self) -> list[Any]:
        """Predicted labels (classification) or values (regression), one per row."""
        return labels_for(self, self.classes)


class CircuitBreaker:
    """closed -> (failure_threshold consecutive failures) -> open -> (reset_timeout) ->
    half-open: one probe; success closes, failure reopens."""

    def __init__(self, failure_threshold: int = 5, reset_timeout: float = 5.0):
        if isinstance(failure_threshold, bool) or not isinstance(failure_threshold, int) or (
            failure_threshold < 1
        ):
            raise ValueError(
                f"failure_threshold must be an integer >= 1, got {failure_threshold!r}")
        if isinstance(reset_timeout, bool) or not (
            isinstance(reset_timeout, (int, float)) and reset_timeout > 0
        ) or not math.isfinite(reset_timeout):
            raise ValueError(f"reset_timeout must be a finite number > 0, got {reset_timeout!r}")
        self.failure_threshold = failure_threshold
        self.reset_timeout = float(reset_timeout)
        self._lock = threading.Lock()
        self.state = "closed"
        self.failures = 0
        self.opened_at = 0.0
        self._probing = False
        self.opens = 0

    def allow(self) -> bool:
        """Whether the next request may use the model (in half-open state: only one probe)."""
        return self.admit() is not None

    def admit(self) -> str | None:
        """``"closed"`` (use the model), ``"probe"`` (use it as the half-open probe: report
        its outcome, or :meth:`release` it if it never reached the model) or None (do not)."""
        if self.state == "closed":  # the common case, without the lock: one attribute read
            return "closed"
        with self._lock:
            if self.state == "closed":
                return "closed"
            if self.state == "open" and time.monotonic() - self.opened_at >= self.reset_timeout:
                self.state = "half_open"
            if self.state == "half_open" and not self._probing:
                self._probing = True
                return "probe"
            return None

    def release(self) -> None:
        """The probe never reached the model (refused, expired): let another one try."""
        with self._lock:
            self._probing = False

    def success(self) -> None:
        if self.state == "closed" and not self.failures:  # nothing to reset: no lock
            return
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


# Batcher statuses (see _core.Batcher.predict).
_OK = _core.Batcher.OK
_DEADLINE = _core.Batcher.DEADLINE
_OVERLOADED = _core.Batcher.OVERLOADED
_SHUTTING_DOWN = _core.Batcher.SHUTTING_DOWN
_ERROR = _core.Batcher.ERROR

# Admission control: a request is queued only if the work ahead of it is expected to take at
# most this share of its timeout. The estimate is an average and service times vary with
# load (other processes, the GIL for asyncio callers), so the rest of the budget absorbs the
# variance.
_ADMIT_SHARE = 0.75

# Latency histogram buckets (seconds), shared by every endpoint, its C++ batcher and the
# HTTP exporter.
LATENCY_BUCKETS = (5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25,
                   0.5, 1.0, math.inf)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, math.inf)


class _Request:
    """One asyncio caller's rows waiting in its event loop's lane (see :class:`_AsyncLane`)."""

    __slots__ = ("rows", "records", "n", "deadline", "key", "enqueued", "result", "error",
                 "afut", "cancelled")

    def __init__(self, rows: np.ndarray, records: Any, deadline: float, key: tuple,
                 afut: asyncio.Future) -> None:
        self.rows, self.records, self.n = rows, records, len(rows)
        self.deadline, self.key = deadline, key
        self.enqueued = time.monotonic()
        self.result: Prediction | None = None
        self.error: BaseException | None = None
        self.afut = afut
        self.cancelled = False

    def finish(self, result: Prediction | None, error: BaseException | None) -> None:
        self.result, self.error = result, error


class _Pending:
    """What answering an asyncio request queued in the C++ batcher needs: the batcher hands
    it back, with the outcome, to :func:`_ticket_resolver` on the request's event loop."""

    __slots__ = ("fut", "rows", "records", "timeout", "started", "probe")

    def __init__(self, fut: asyncio.Future, rows: np.ndarray, records: Any,
                 timeout: float | None, started: float, probe: bool) -> None:
        self.fut, self.rows, self.records = fut, rows, records
        self.timeout, self.started, self.probe = timeout, started, probe


def _resolve_futures(items: list[tuple[asyncio.Future, Any, BaseException | None]]) -> None:
    for fut, result, error in items:
        if fut.done():  # the caller stopped waiting (its deadline passed or it was cancelled)
            continue
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)


def _ticket_resolver(ref: weakref.ReferenceType) -> Callable[[list], None]:
    """The batcher's callback on an event loop, with [(pending, outcome), ...] of one batch.
    It holds its endpoint weakly: the batcher (C++) must not keep the endpoint alive."""

    def resolve(items: list) -> None:
        ep = ref()
        for pending, outcome in items:
            fut = pending.fut
            if ep is None:
                if not fut.done():
                    fut.set_exception(ShuttingDown("the model was removed"))
                continue
            waiting = not fut.done()
            try:
                result = ep._settle(outcome, pending.rows, pending.records, pending.timeout,
                                    pending.started, pending.probe, answer=waiting)
            except ServingError as exc:
                if waiting:
                    fut.set_exception(exc)
                continue
            except Exception as exc:  # a bug must cost one request, never the event loop
                log.exception("answering a request of model %r failed", ep.name)
                ep._count_error("internal")
                if waiting:
                    fut.set_exception(ServingError(f"internal error: {exc}"))
                continue
            if waiting:
                fut.set_result(result)
            elif outcome[1] == _OK and not fut.cancelled():
                # Computed in time, but its caller's timer fired first: it saw a deadline.
                ep._count_error("deadline")

    return resolve


class _Histogram:
    """Fixed buckets (non-cumulative counts), so memory does not grow with traffic. Not
    thread-safe on its own: callers serialize access (an endpoint's stats lock, the HTTP
    layer's event loop)."""

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

    def snapshot(self) -> tuple[tuple[float, ...], list[int], float, int]:
        return self.bounds, list(self.counts), self.total, self.count


def _merge(a: tuple, b: tuple) -> tuple[tuple[float, ...], list[int], float, int]:
    """Sum of two histogram snapshots over the same buckets."""
    return a[0], [x + y for x, y in zip(a[1], b[1], strict=True)], a[2] + b[2], a[3] + b[3]


class _Source:
    """A fixed model: () -> (predictor, version label), replaced by a hot swap. The batcher
    labels answers with integer ids; ``label`` turns them back into version labels."""

    def __init__(self, predictor: Any, version: str) -> None:
        self.current = (predictor, version)
        self.vid = 1
        self.labels: dict[int, str] = {1: version}

    def get(self) -> tuple[Any, str]:
        return self.current

    def label(self, vid: int) -> str:
        return self.labels.get(vid, "unknown")

    def add(self, predictor: Any, version: str) -> int:
        """A new current version; returns its id. Old labels are kept for a while: a batch
        that started before a swap reports the id it computed with."""
        self.vid += 1
        self.labels[self.vid] = version
        if len(self.labels) > 1024:
            del self.labels[min(self.labels)]
        self.current = (predictor, version)  # one reference assignment: atomic
        return self.vid


class _LearnerSource:
    """A learner's latest snapshot; its ids are the snapshot versions."""

    def __init__(self, learner: Any) -> None:
        self.learner = learner

    def get(self) -> tuple[Any, str]:
        snap = self.learner.snapshot
        return snap.predictor, self.label(snap.version)

    @staticmethod
    def label(vid: int) -> str:
        return f"live-{vid}"


def _predictor_of(model: Any) -> Any:
    """A thread-safe, immutable ``_core.Predictor`` for an estimator or a snapshot."""
    if hasattr(model, "predictor") and hasattr(model, "version") and hasattr(model, "examples"):
        return model.predictor  # an OnlineLearner Snapshot
    if hasattr(model, "predict") and hasattr(model, "n_inputs") and hasattr(model, "task") and (
        not hasattr(model, "fit")
    ):
        return model  # already a Predictor
    learner = getattr(model, "_learner", None)
    if learner is None:
        raise TypeError(
            f"cannot serve {type(model).__name__}: pass a fitted ducklearn estimator, an "
            "OnlineLearner snapshot or a snapshot predictor"
        )
    return learner.snapshot()


def _check_timeout(timeout: Any) -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or math.isnan(timeout):
        raise BadInput(f"timeout must be a number of seconds or None, got {timeout!r}",
                       field="timeout")


def _first_bad_number(inputs: Any, path: str = "inputs") -> tuple[str, str] | None:
    """(position, problem) of the first element of nested lists that is not a finite
    number (bools count as bad: ``true`` is not a feature value), else None."""
    if isinstance(inputs, (list, tuple)):
        for i, v in enumerate(inputs):
            bad = _first_bad_number(v, f"{path}[{i}]")
            if bad is not None:
                return bad
        return None
    if isinstance(inputs, bool) or not isinstance(inputs, (int, float, np.number)):
        return path, f"must be a number, got {type(inputs).__name__}"
    if not math.isfinite(float(inputs)):
        return path, f"must be finite, got {inputs}"
    return None


class _AsyncLane:
    """The asyncio callers of one endpoint on one event loop, batched *on that loop*.

    For a model whose full batch costs microseconds, handing it to a batcher thread costs
    more than computing it: each batch would take two cross-thread wake-ups and fight the
    event loop for the GIL, which is what makes tail latency under load. So an endpoint
    whose warm-up batch took at most ``inline_us`` batches its asyncio requests here.

    The batch is what arrived during one turn of the loop: the first request schedules a
    flush with ``call_soon``, which runs after every callback already ready (the other
    callers woken by the previous batch, the requests read from the sockets in this turn).
    Under load turns get longer and batches bigger, with no timer: event-loop timers have
    millisecond resolution, far coarser than ``max_wait_us``, which governs the batcher.
    The flush computes on the loop thread and resolves the futures directly. Deadlines,
    capacity, priorities (within the lane), the breaker and the fallback are the endpoint's
    own.
    """

    __slots__ = ("ep", "loop", "pending", "rows", "handle", "__weakref__")

    def __init__(self, ep: _Endpoint, loop: asyncio.AbstractEventLoop) -> None:
        self.ep, self.loop = ep, loop
        self.pending: list[_Request] = []
        self.rows = 0
        self.handle: Any = None

    def add(self, req: _Request) -> None:
        """Called with the endpoint's cond held, on the loop's thread."""
        self.pending.append(req)
        self.rows += req.n
        if self.handle is None:
            self.handle = self.loop.call_soon(self.flush)

    def flush(self) -> None:
        ep = self.ep
        max_rows = ep.server.max_batch_size
        with ep.cond:
            self.handle = None
            if not self.pending:
                return
            self.pending.sort(key=_request_key)
            batch, rows = [], 0
            for req in self.pending:
                if rows and rows + req.n > max_rows:
                    break
                batch.append(req)
                rows += req.n
            del self.pending[:len(batch)]
            self.rows -= rows
            ep.lane_rows -= rows
            ep.lane_in_flight += rows
            if self.pending:  # the rest has waited already: next turn of the loop
                self.handle = self.loop.call_soon(self.flush)
        t0 = time.perf_counter()
        try:
            ep._serve_inline(batch)
            spent = time.perf_counter() - t0
            if spent * 1e6 > 10 * ep.server.inline_us and ep.inline:
                # Far slower than at warm-up: stop computing on the event loop, which must
                # not stall; later requests queue in the batcher.
                ep.inline = False
                log.warning("model %r took %.1f ms for a batch on the event loop; batching it "
                            "on threads from now on", ep.name, spent * 1e3)
        except BaseException as exc:  # never let one batch break the loop
            log.exception("serving a batch of model %r failed", ep.name)
            ep._count_error("internal")
            for req in batch:
                req.finish(None, ServingError(f"internal error: {exc}"))
        finally:
            _resolve_futures([(r.afut, r.result, r.error) for r in batch])
            with ep.cond:
                ep.lane_in_flight -= rows
                if ep.stop:
                    ep.cond.notify_all()

    def abort(self) -> None:
        """Fail what is still waiting (the endpoint closed without a full drain)."""
        def _abort() -> None:
            with self.ep.cond:
                left, self.pending = self.pending, []
                self.ep.lane_rows -= self.rows
                self.rows = 0
                if self.handle is not None:
                    self.handle.cancel()
                    self.handle = None
            err = ShuttingDown(f"model {self.ep.name!r} shut down before serving this")
            _resolve_futures([(r.afut, None, err) for r in left])
        try:
            self.loop.call_soon_threadsafe(_abort)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass


def _request_key(req: _Request) -> tuple:
    return req.key


class _Endpoint:
    def __init__(self, server: PredictionServer, name: str, source: _Source | _LearnerSource,
                 *, classes: Sequence | None, feature_names: Sequence[str] | None,
                 extractor: Any, fallback: Any) -> None:
        self.server = server
        self.name = name
        self.source = source
        self.classes = None if classes is None else np.asarray(classes)
        self.classes_tuple = None if classes is None else tuple(self.classes.tolist())
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.feature_pos = ({n: i for i, n in enumerate(self.feature_names)}
                            if self.feature_names is not None else None)
        self.extractor = extractor
        self.fallback = fallback
        self.breaker = CircuitBreaker(server.failure_threshold, server.reset_timeout)
        self.cond = threading.Condition()  # the asyncio lanes and `stop`
        self.stats_lock = threading.Lock()
        self.lane_rows = 0        # rows waiting in asyncio lanes
        self.lane_in_flight = 0   # lane rows being computed
        self.lanes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.seq = itertools.count()
        self.stop = False
        # What the C++ batcher does not see: asyncio lanes, fallback answers, errors by kind.
        self.requests = 0
        self.rows_served = 0
        self.errors: dict[str, int] = {}
        self.fallbacks = 0
        self.latency = _Histogram(LATENCY_BUCKETS)
        self.batch_sizes = _Histogram(BATCH_BUCKETS)
        # Failed batches already counted: each of their requests reports the failure.
        self._reported: collections.deque = collections.deque(maxlen=64)
        # The batcher starts on the version warmed up here; a learner's later snapshot is
        # picked up by _follow_learner.
        if isinstance(source, _LearnerSource):
            snap = source.learner.snapshot
            predictor, vid = snap.predictor, snap.version
        else:
            predictor, vid = source.current[0], source.vid
        self.n_inputs = int(predictor.n_inputs)
        self.n_outputs = int(predictor.n_outputs)
        self.task = str(predictor.task)
        best = self.warm_up(predictor)
        self.lane_seconds = best  # EWMA of an inline batch's compute time (lane admission)
        self.inline = best * 1e6 <= server.inline_us
        self._swap_lock = threading.Lock()
        self._live_vid = vid
        self.batcher = _core.Batcher(
            predictor, vid, server.max_batch_size, server.max_wait_us, server.queue_capacity,
            server.workers, admit_share=_ADMIT_SHARE, service_seconds=best,
            latency_buckets=list(LATENCY_BUCKETS), batch_buckets=list(BATCH_BUCKETS),
            resolver=_ticket_resolver(weakref.ref(self)))
        self._listener: Callable | None = None
        if isinstance(source, _LearnerSource):
            self._follow_learner(source.learner)

    # -- inputs --------------------------------------------------------------------------

    def rows_for(self, inputs: Any) -> tuple[np.ndarray, Any]:
        """(feature rows, the records they came from or None); raises BadInput."""
        if isinstance(inputs, np.ndarray) or (
            isinstance(inputs, (list, tuple)) and len(inputs) > 0
            and not isinstance(inputs[0], Mapping)
        ):
            return self._array_rows(inputs), None
        if isinstance(inputs, (list, tuple)) and len(inputs) == 0:
            raise BadInput("no inputs: send at least one row or record", field="inputs")
        if isinstance(inputs, Mapping) and _is_columns(inputs):
            if self.extractor is None:
                raise BadInput(f"model {self.name!r} takes columns only through a feature "
                               "schema; send rows or records", field="inputs")
            try:
                X, dead = self.extractor.transform(inputs, sparse=False)
            except (TypeError, ValueError) as exc:
                raise BadInput(f"columns cannot be turned into features: {exc}") from None
            if dead:
                d = dead[0]
                raise BadInput(f"row {d.index}: {d.message}", field=f"inputs[{d.index}]")
            return np.ascontiguousarray(X, dtype=np.float32), inputs
        if isinstance(inputs, Mapping):
            records = [inputs]
        elif isinstance(inputs, (list, tuple)):
            records = list(inputs)
        else:
            raise BadInput("inputs must be rows of numbers, a record (an object of feature "
                           f"values) or a list of records, got {type(inputs).__name__}",
                           field="inputs")
        if self.extractor is not None:
            for i, r in enumerate(records):
                if not isinstance(r, Mapping):
                    raise BadInput(f"record {i} must be an object of feature values, got "
                                   f"{type(r).__name__}", field=f"inputs[{i}]")
            try:
                X, dead = self.extractor.transform(records, sparse=False)
            except (TypeError, ValueError) as exc:
                raise BadInput(f"records cannot be turned into features: {exc}") from None
            if dead:
                d = dead[0]
                field = getattr(d, "field", None)
                raise BadInput(f"record {d.index}: {d.message}",
                               field=f"inputs[{d.index}].{field}" if field else
                               f"inputs[{d.index}]")
            return np.ascontiguousarray(X, dtype=np.float32), records
        if self.feature_pos is None:
            raise BadInput(f"model {self.name!r} takes rows of {self.n_inputs} numbers, not "
                           "records (it has no feature names or schema)", field="inputs")
        # Features a record leaves out are 0, as for the estimators' learn_one/predict_one.
        X = np.zeros((len(records), self.n_inputs), dtype=np.float32)
        for i, r in enumerate(records):
            if not isinstance(r, Mapping):
                raise BadInput(f"record {i} must be an object of feature values, got "
                               f"{type(r).__name__}", field=f"inputs[{i}]")
            for k, v in r.items():
                j = self.feature_pos.get(k)
                if j is None:
                    known = ", ".join(self.feature_names[:8])
                    raise BadInput(f"record {i}: unknown feature {k!r} (known: {known}"
                                   f"{', ...' if len(self.feature_names) > 8 else ''})",
                                   field=f"inputs[{i}].{k}")
                if isinstance(v, bool) or not isinstance(v, (int, float, np.number)):
                    raise BadInput(f"record {i}: feature {k!r} must be a number, got "
                                   f"{type(v).__name__}", field=f"inputs[{i}].{k}")
                if not math.isfinite(v):
                    raise BadInput(f"record {i}: feature {k!r} must be finite, got {v}",
                                   field=f"inputs[{i}].{k}")
                X[i, j] = v
        return X, records

    def _array_rows(self, inputs: Any) -> np.ndarray:
        if isinstance(inputs, np.ndarray):
            arr = inputs
            if arr.dtype.kind not in "fiu":
                raise BadInput(f"inputs must be numbers, got dtype {arr.dtype}", field="inputs")
        else:
            try:
                arr = np.asarray(inputs, dtype=np.float32)
            except (TypeError, ValueError):
                bad = _first_bad_number(inputs)
                if bad is not None:
                    raise BadInput(f"{bad[0]} {bad[1]}", field=bad[0]) from None
                raise BadInput("inputs must be rows of equal length", field="inputs") from None
        one_row = arr.ndim == 1
        if one_row:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.n_inputs or arr.shape[0] == 0:
            raise BadInput(f"inputs must be rows of {self.n_inputs} numbers (shape (n, "
                           f"{self.n_inputs})), got shape {arr.shape}", field="inputs")
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if not _core.all_finite(arr):  # numpy's isfinite().all() costs a microsecond more
            if not isinstance(inputs, np.ndarray):  # None became NaN: say what was sent
                bad = _first_bad_number(inputs)
                if bad is not None:
                    raise BadInput(f"{bad[0]} {bad[1]}", field=bad[0])
            i, j = np.argwhere(~np.isfinite(arr))[0]
            where = f"inputs[{j}]" if one_row else f"inputs[{i}][{j}]"
            raise BadInput(f"{where} must be finite, got {arr[i, j]}", field=where)
        return arr

    # -- predicting ----------------------------------------------------------------------

    def _intake(self, n: int, timeout: float | None) -> float | None:
        """The request's timeout (the server default when None); raises what refuses it
        before it reaches a queue."""
        timeout = self.server.default_timeout if timeout is None else timeout
        if n > self.server.queue_capacity:
            raise BadInput(f"{n} rows in one request exceed the queue capacity of model "
                           f"{self.name!r} ({self.server.queue_capacity} rows); split it",
                           field="inputs")
        if timeout is not None and timeout <= 0:
            self._count_error("deadline")
            raise DeadlineExceeded(f"timeout {timeout}s leaves no time to compute; not queued")
        if self.stop:
            raise self._shutting_down()
        return timeout

    def predict(self, rows: np.ndarray, records: Any, timeout: float | None,
                priority: int) -> Prediction:
        """A calling thread's request: queued in the C++ batcher, which answers it without
        the GIL (released for the whole wait)."""
        started = time.perf_counter()
        timeout = self._intake(len(rows), timeout)
        mode = self.breaker.admit()
        if mode is None:  # open: the fallback answers, the model is not called
            return self._without_model(rows, records, started, counted=False)
        outcome = self.batcher.predict(rows, timeout, priority)
        if outcome[1] == _OK:  # the hot path
            self.breaker.success()
            return Prediction(outcome[0], self.name, self.source.label(outcome[2]), False,
                              self.classes_tuple)
        return self._settle(outcome, rows, records, timeout, started, mode == "probe")

    async def apredict(self, rows: np.ndarray, records: Any, timeout: float | None,
                       priority: int) -> Prediction:
        """An asyncio caller's request: batched on its event loop (a small model) or queued
        in the C++ batcher without blocking the loop."""
        started = time.perf_counter()
        timeout = self._intake(len(rows), timeout)
        loop = asyncio.get_running_loop()
        afut = loop.create_future()
        if self.inline:
            req = self._lane_submit(rows, records, timeout, priority, loop, afut)
            return await self._wait(afut, timeout, started, lambda: setattr(req, "cancelled",
                                                                            True))
        mode = self.breaker.admit()
        if mode is None:
            return self._without_model(rows, records, started, counted=False)
        pending = _Pending(afut, rows, records, timeout, started, mode == "probe")
        ticket, refused = self.batcher.submit(rows, timeout, priority, loop,
                                              pending)
        if ticket is None:
            return self._settle(refused, rows, records, timeout, started, mode == "probe")
        # A caller that gives up withdraws a request still queued: it is never computed.
        return await self._wait(afut, timeout, started, lambda: self.batcher.cancel(ticket))

    @staticmethod
    async def _wait(afut: asyncio.Future, timeout: float | None, started: float,
                    give_up: Callable[[], Any]) -> Prediction:
        if timeout is None:
            try:
                return await afut
            except asyncio.CancelledError:
                give_up()
                raise
        # A timer rather than asyncio.wait_for: no extra task per request.
        loop = asyncio.get_running_loop()
        handle = loop.call_later(max(0.0, started + timeout - time.perf_counter()), _expire,
                                 afut, timeout)
        try:
            return await afut
        except (DeadlineExceeded, asyncio.CancelledError):
            give_up()
            raise
        finally:
            handle.cancel()

    def _settle(self, outcome: tuple, rows: np.ndarray, records: Any, timeout: float | None,
                started: float, probe: bool, answer: bool = True) -> Prediction | None:
        """The answer for a batcher outcome other than a prompt OK (or for any outcome of an
        asyncio request), after the breaker and the error counts have seen it: a
        Prediction (the model's or the fallback's), or the ServingError to raise. Without
        ``answer`` (nobody waits for it any more) only the accounting is done."""
        values, status, vid, info = outcome
        if status == _OK:
            self.breaker.success()
            return Prediction(values, self.name, self.source.label(vid), False,
                              self.classes_tuple) if answer else None
        if status == _ERROR:
            exc = info["error"]
            if self._first_report(info["batch"]):
                self._count_error(f"model:{type(exc).__name__}")
                log.warning("model %r version %s failed on a batch: %s", self.name,
                            self.source.label(vid), info["message"])
                self.breaker.failure()
            return self._without_model(rows, records, started, counted=True) if answer else None
        if status == _DEADLINE and info["computed"]:
            if timeout is not None and info["compute_seconds"] > timeout:
                # Slower than the whole time budget of the request: the model alone cannot
                # meet its callers' deadlines, which counts against it like an error. (Time
                # spent queueing does not: that is load, answered by backpressure.)
                if self._first_report(info["batch"]):
                    self._count_error("model:too_slow")
                    self.breaker.failure()
            else:
                self.breaker.success()
            raise DeadlineExceeded("deadline passed while computing")
        if probe:  # the half-open probe never reached the model: another request may try
            self.breaker.release()
        if status == _DEADLINE:
            raise DeadlineExceeded(f"no answer within the deadline ({timeout}s); not computed")
        if status == _OVERLOADED:
            raise self._overloaded(info["expected_wait_seconds"], timeout, info["queued_rows"])
        raise self._shutting_down()

    def _first_report(self, batch: int) -> bool:
        """Whether this failed batch is news: every request in it reports the failure, and
        the breaker and the error counts take it once."""
        with self.stats_lock:
            if batch in self._reported:
                return False
            self._reported.append(batch)
            return True

    def _without_model(self, rows: np.ndarray, records: Any, started: float, *,
                       counted: bool) -> Prediction:
        """The fallback's answer (the model failed or its breaker is open), or
        ModelUnavailable. ``counted``: the batcher already counted the request."""
        values = self._fallback(rows, records)
        with self.stats_lock:
            if not counted:
                self.requests += 1
            if values is None:
                self.errors["unavailable"] = self.errors.get("unavailable", 0) + 1
            else:
                self.fallbacks += 1
                self.rows_served += len(rows)
                self.latency.observe(time.perf_counter() - started)
        if values is None:
            raise self._unavailable()
        return Prediction(values, self.name, self.source.get()[1], True, self.classes_tuple)

    def _fallback(self, X: np.ndarray, records: Any) -> np.ndarray | None:
        fb = self.fallback
        if fb is None:
            return None
        try:
            if hasattr(fb, "predict_proba_many"):
                if records is None:
                    return None  # a record-based fallback needs records
                p = np.asarray(fb.predict_proba_many(_as_records(records)), dtype=np.float32)
            elif hasattr(fb, "predict") and hasattr(fb, "n_inputs"):
                p = np.asarray(fb.predict(X), dtype=np.float32)
            else:
                p = np.asarray(fb(X), dtype=np.float32)
            if p.ndim == 2 and p.shape[1] == 2 and self.n_outputs == 1:
                p = p[:, 1:]  # (P(0), P(1)) from a binary fallback: keep P(1) like the model
            p = p.reshape(len(X), -1)
            if p.shape[1] != self.n_outputs:
                raise ValueError(f"fallback returned {p.shape[1]} columns, the model has "
                                 f"{self.n_outputs}")
            return p
        except Exception:  # the fallback failing is logged; callers get ModelUnavailable
            log.exception("fallback of model %r failed", self.name)
            self._count_error("fallback_failed")
            return None

    def _count_error(self, kind: str) -> None:
        with self.stats_lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1

    # The refusals, one message each whichever path (batcher or asyncio lane) refuses.

    def _overloaded(self, wait: float, timeout: float | None, queued: int) -> Overloaded:
        """``wait``: the expected wait when admission control refused (else 0: queue full)."""
        if wait:
            return Overloaded(f"model {self.name!r} is overloaded: about {wait * 1e3:.1f} ms "
                              f"of work is ahead of this request, more than its timeout of "
                              f"{timeout * 1e3:.1f} ms; retry later")
        return Overloaded(f"model {self.name!r} is overloaded ({queued} rows queued, "
                          f"capacity {self.server.queue_capacity}); retry later")

    def _unavailable(self) -> ModelUnavailable:
        why = "its fallback failed" if self.fallback is not None else "has no fallback"
        return ModelUnavailable(f"model {self.name!r} is failing (breaker "
                                f"{self.breaker.state}) and {why}; retry later")

    def _shutting_down(self) -> ShuttingDown:
        return ShuttingDown(f"model {self.name!r} is shutting down; retry elsewhere")

    # -- the asyncio lanes ---------------------------------------------------------------

    def _lane_submit(self, rows: np.ndarray, records: Any, timeout: float | None,
                     priority: int, loop: asyncio.AbstractEventLoop,
                     afut: asyncio.Future) -> _Request:
        n = len(rows)
        deadline = time.monotonic() + timeout if timeout is not None else math.inf
        req = _Request(rows, records, deadline, (-int(priority), next(self.seq)), afut)
        wait = 0.0
        with self.cond:
            if self.stop:
                raise self._shutting_down()
            ahead = self.lane_rows
            if ahead + n > self.server.queue_capacity:
                overloaded = True
            elif timeout is not None and (ahead or self.lane_in_flight) and (wait := (
                -(-(ahead + n) // self.server.max_batch_size) + (1 if self.lane_in_flight else 0)
            ) * self.lane_seconds) > _ADMIT_SHARE * timeout:
                overloaded = True  # as in the batcher: it would likely only time out
            else:
                overloaded = False
                self.lane_rows += n
                lane = self.lanes.get(loop)
                if lane is None:
                    lane = self.lanes[loop] = _AsyncLane(self, loop)
                lane.add(req)
        with self.stats_lock:
            if overloaded:
                self.errors["overloaded"] = self.errors.get("overloaded", 0) + 1
            else:
                self.requests += 1
        if overloaded:
            raise self._overloaded(wait, timeout, ahead)
        return req

    def _serve_inline(self, batch: list[_Request]) -> None:
        """One lane batch, on its event loop's thread."""
        now = time.monotonic()
        live = []
        for req in batch:
            if req.deadline <= now or req.cancelled:
                # Counted here, once per request that misses its deadline (the caller has
                # already been told, or is told now); never computed.
                self._count_error("deadline")
                req.finish(None, DeadlineExceeded(
                    f"deadline passed after {now - req.enqueued:.4f}s in the queue; not computed"))
            else:
                live.append(req)
        if not live:
            return
        X = live[0].rows if len(live) == 1 else np.concatenate([r.rows for r in live])
        predictor, version = self.source.get()  # the version this batch computes with
        values, used_fallback = None, False
        mode = self.breaker.admit()
        if mode is not None:
            try:
                values = predictor.predict(X)
                if values.shape != (len(X), self.n_outputs):
                    raise ValueError(f"version {version} returned shape {values.shape}")
                if not np.isfinite(values).all():
                    # A diverged model: serving NaN would be a silent wrong answer.
                    raise FloatingPointError(f"version {version} returned non-finite values")
            except Exception as exc:
                values = None
                self._count_error(f"model:{type(exc).__name__}")
                log.warning("model %r version %s failed on a batch: %s", self.name, version, exc)
                self.breaker.failure()
            else:
                spent = time.monotonic() - now
                self.lane_seconds += 0.2 * (spent - self.lane_seconds)  # EWMA
                # Slower than the whole time budget of a request in it (see _settle).
                if spent > min(r.deadline - r.enqueued for r in live):
                    self._count_error("model:too_slow")
                    self.breaker.failure()
                else:
                    self.breaker.success()
        if values is None:
            records = None
            if all(r.records is not None for r in live):
                records = [rec for r in live for rec in _as_records(r.records)]
            values = self._fallback(X, records)
            used_fallback = True
            if values is None:
                for req in live:
                    req.finish(None, self._unavailable())
                with self.stats_lock:
                    self.errors["unavailable"] = self.errors.get("unavailable", 0) + len(live)
                return
        done = time.monotonic()
        start = 0
        late = 0
        answered: list[_Request] = []
        for req in live:
            out = values[start:start + req.n]
            start += req.n
            if done > req.deadline:
                late += 1
                req.finish(None, DeadlineExceeded("deadline passed while computing"))
                continue
            req.finish(Prediction(out, self.name, version, used_fallback, self.classes_tuple),
                       None)
            answered.append(req)
        with self.stats_lock:
            self.batch_sizes.observe(len(X))
            if late:
                self.errors["deadline"] = self.errors.get("deadline", 0) + late
            if used_fallback:
                self.fallbacks += len(answered)
            for req in answered:
                self.latency.observe(done - req.enqueued)
                self.rows_served += req.n

    # -- versions ------------------------------------------------------------------------

    def warm_up(self, predictor: Any) -> float:
        """Run the model on zero batches of the sizes it will see before it takes traffic
        (first-touch of its pages and the thread's workspace), and refuse a version whose
        outputs are not finite. Returns the best time of a full batch, in seconds: the
        batcher's first service-time estimate, and whether asyncio callers can be batched
        on their event loop (at most ``inline_us``)."""
        X = np.zeros((self.server.max_batch_size, int(predictor.n_inputs)), dtype=np.float32)
        for n in sorted({1, len(X)}):
            out = predictor.predict(X[:n])
            if not np.isfinite(out).all():
                raise ValueError(f"model {self.name!r}: the version being loaded returns "
                                 "non-finite outputs on zero inputs; not serving it")
        best = math.inf
        for _ in range(3):
            t = time.perf_counter()
            predictor.predict(X)
            best = min(best, time.perf_counter() - t)
        return best

    def swap(self, predictor: Any, version: str) -> None:
        if int(predictor.n_inputs) != self.n_inputs or int(predictor.n_outputs) != self.n_outputs:
            raise ValueError(f"version {version} takes {predictor.n_inputs} inputs and gives "
                             f"{predictor.n_outputs} outputs, the served one {self.n_inputs} "
                             f"and {self.n_outputs}: that is a new contract, serve it by name")
        inline = self.warm_up(predictor) * 1e6 <= self.server.inline_us
        with self._swap_lock:
            self.batcher.swap(predictor, self.source.add(predictor, version))
        self.inline = inline

    def _follow_learner(self, learner: Any) -> None:
        """Swap the batcher to each snapshot the learner publishes, as it is published."""
        ref = weakref.ref(self)

        def on_publish(snap: Any) -> None:
            ep = ref()
            if ep is None:
                learner.remove_publish_listener(on_publish)
            else:
                ep._to_snapshot(snap)

        self._listener = on_publish
        learner.add_publish_listener(on_publish)
        # A snapshot published before the listener was in place is picked up here.
        self._to_snapshot(learner.snapshot)

    def _to_snapshot(self, snap: Any) -> None:
        with self._swap_lock:  # publications from two threads must not go back in time
            if snap.version > self._live_vid:
                self.batcher.swap(snap.predictor, snap.version)
                self._live_vid = snap.version

    @property
    def batch_seconds(self) -> float:
        """Admission control's estimate of one batch's service time (the batcher's)."""
        return float(self.batcher.stats()["service_seconds"])

    @batch_seconds.setter
    def batch_seconds(self, seconds: float) -> None:
        self.batcher.set_service_seconds(seconds)
        self.lane_seconds = seconds

    @property
    def in_flight(self) -> int:
        """Rows being computed."""
        return int(self.batcher.stats()["in_flight_rows"]) + self.lane_in_flight

    def close(self, drain: bool, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            self.stop = True  # no new requests from here on
        if self._listener is not None:
            self.source.learner.remove_publish_listener(self._listener)
            self._listener = None
        self.batcher.close(drain, max(0.0, timeout))
        with self.cond:
            if drain:
                while (self.lane_rows or self.lane_in_flight) and time.monotonic() < deadline:
                    self.cond.wait(min(0.01, max(0.0, deadline - time.monotonic())))
            lanes = list(self.lanes.values())
            self.cond.notify_all()
        for lane in lanes:
            lane.abort()

    def stats(self) -> dict[str, Any]:
        """This endpoint's counters: the batcher's merged with the asyncio lanes' and the
        fallback's, plus the queue state."""
        c = self.batcher.stats()
        with self.stats_lock:
            errors = dict(self.errors)
            out = {
                "requests": self.requests + c["requests"], "rows": self.rows_served + c["rows"],
                "errors": errors, "fallbacks": self.fallbacks, "swaps": c["swaps"],
                "latency": _merge(self.latency.snapshot(), c["latency"]),
                "batch_size": _merge(self.batch_sizes.snapshot(), c["batch_size"]),
            }
        for kind, n in (("overloaded", c["rejected"]), ("deadline", c["deadline_misses"])):
            if n:
                errors[kind] = errors.get(kind, 0) + n
        out["queued_rows"] = c["queued_rows"] + self.lane_rows
        out["in_flight_rows"] = c["in_flight_rows"] + self.lane_in_flight
        return out


def _check_ref(ref: Any) -> str:
    if not isinstance(ref, str) or not ref:
        raise ModelNotFound(f"model must be a non-empty name, 'name@alias' or 'name:version', "
                            f"got {ref!r}")
    return ref


class PredictionServer:
    """Serve models in process with dynamic batching.

    Parameters
    ----------
    registry : ducklearn.registry.Registry, optional
        Lets :meth:`predict` address ``name``, ``name@alias`` or ``name:version`` directly
        (loaded and warmed up on first use); ``name@alias`` follows alias moves and a bare
        ``name`` follows its latest version (hot swap, checked every ``watch_interval``).
    max_batch_size : int
        Rows per batch.
    max_wait_us : float
        How long the oldest request may wait for the batch to fill, in microseconds.
    queue_capacity : int
        Rows that may wait per model before requests are rejected with :class:`Overloaded`.
    workers : int, default 2
        Batcher threads per model (C++; they compute without the GIL). While one computes a
        batch, the next collects the following one.
    default_timeout : float, optional
        Deadline in seconds for requests that do not give one.
    failure_threshold, reset_timeout
        Circuit-breaker settings (see :class:`CircuitBreaker`).
    watch_interval : float
        Seconds between checks of the registry for alias moves.
    inline_us : float
        A model whose full batch computes within this many microseconds (measured at
        warm-up) batches asyncio callers on their own event loop instead of a batcher
        thread: no cross-thread hand-offs, the lowest tail latency for small models. 0
        sends every request through the batcher threads.
    """

    def __init__(self, registry: Any = None, *, max_batch_size: int = 64,
                 max_wait_us: float = 200.0, queue_capacity: int = 10_000, workers: int = 2,
                 default_timeout: float | None = 1.0, failure_threshold: int = 5,
                 reset_timeout: float = 5.0, watch_interval: float = 1.0,
                 inline_us: float = 1000.0):
        for name, value in (("max_batch_size", max_batch_size), ("queue_capacity", queue_capacity),
                            ("workers", workers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if isinstance(max_wait_us, bool) or not (
            isinstance(max_wait_us, (int, float)) and 0 <= max_wait_us <= 1e7
        ):
            raise ValueError(f"max_wait_us must be in [0, 1e7] microseconds, got {max_wait_us!r}")
        if default_timeout is not None and (isinstance(default_timeout, bool) or not (
            isinstance(default_timeout, (int, float)) and default_timeout > 0
        )):
            raise ValueError(f"default_timeout must be > 0 or None, got {default_timeout!r}")
        if isinstance(watch_interval, bool) or not (
            isinstance(watch_interval, (int, float)) and watch_interval > 0
        ):
            raise ValueError(f"watch_interval must be > 0 seconds, got {watch_interval!r}")
        if registry is not None and not all(
            callable(getattr(registry, m, None)) for m in ("resolve", "load", "get")
        ):
            raise TypeError("registry must be a ducklearn.registry.Registry (resolve, load, "
                            f"get), got {type(registry).__name__}")
        if isinstance(inline_us, bool) or not (
            isinstance(inline_us, (int, float)) and inline_us >= 0
        ):
            raise ValueError(f"inline_us must be a number >= 0, got {inline_us!r}")
        CircuitBreaker(failure_threshold, reset_timeout)  # validate now, not per endpoint
        self.inline_us = float(inline_us)
        self.registry = registry
        self.max_batch_size = max_batch_size
        self.max_wait_us = float(max_wait_us)
        self.queue_capacity = queue_capacity
        self.workers = workers
        self.default_timeout = default_timeout
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.watch_interval = float(watch_interval)
        self._endpoints: dict[str, _Endpoint] = {}
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self._watched: dict[str, tuple[str, str]] = {}  # endpoint -> (name, alias)
        self._closed = False
        self._watcher: threading.Thread | None = None
        self._stop_watch = threading.Event()

    # -- adding models -------------------------------------------------------------------

    def add_model(self, name: str, model: Any, *, version: str = "1", fallback: Any = None,
                  feature_names: Sequence[str] | None = None, extractor: Any = None) -> None:
        """Serve a fitted estimator (or a snapshot predictor) under ``name``; an existing
        endpoint of a fixed model is hot-swapped (warmed up first; in-flight batches finish
        on the old version)."""
        predictor = _predictor_of(model)
        classes = getattr(model, "classes_", None)
        if feature_names is None and hasattr(model, "_feature_index"):
            feature_names = list(model._feature_index)
        _check_extractor(extractor, int(predictor.n_inputs))
        self._add(name, _Source(predictor, str(version)), classes, feature_names, extractor,
                  fallback)

    def add_learner(self, name: str, learner: Any, *, fallback: Any = None) -> None:
        """Serve an OnlineLearner's latest snapshot: each batch uses the newest one (labelled
        ``live-<snapshot version>``)."""
        from ducklearn.learn import OnlineLearner

        if not isinstance(learner, OnlineLearner):
            raise TypeError(f"learner must be a ducklearn.learn.OnlineLearner, got "
                            f"{type(learner).__name__}")
        self._add(name, _LearnerSource(learner), learner.classes_, learner.feature_names,
                  learner.extractor, fallback)

    def _add(self, name: str, source: _Source, classes: Any, feature_names: Any,
             extractor: Any, fallback: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        if fallback is not None and not (
            callable(fallback) or hasattr(fallback, "predict_proba_many")
            or (hasattr(fallback, "predict") and hasattr(fallback, "n_inputs"))
        ):
            raise TypeError("fallback must have predict_proba_many(records) (e.g. "
                            "ducklearn.legacy.NaiveLearner), be a snapshot predictor, or be a "
                            f"callable X -> values; got {type(fallback).__name__}")
        with self._lock:
            if self._closed:
                raise ShuttingDown("the server is closed")
            existing = self._endpoints.get(name)
            if existing is not None and type(source) is _Source and \
                    type(existing.source) is _Source:
                existing.swap(*source.current)
                if fallback is not None:
                    existing.fallback = fallback
                return
            # Build (and warm up) the new endpoint before it takes traffic; the old one is
            # drained after the switch, so no request sees a missing or closed model.
            self._endpoints[name] = _Endpoint(self, name, source, classes=classes,
                                              feature_names=feature_names, extractor=extractor,
                                              fallback=fallback)
        if existing is not None:
            existing.close(drain=True, timeout=5.0)

    def remove(self, name: str, *, drain: bool = True, timeout: float = 5.0) -> None:
        """Stop serving ``name`` (its queued requests are answered first with ``drain``)."""
        with self._lock:
            ep = self._endpoints.pop(name, None)
            self._watched.pop(name, None)
        if ep is None:
            raise ModelNotFound(f"model {name!r} is not served; served: {sorted(self._endpoints)}")
        ep.close(drain, timeout)

    def _endpoint(self, model: str) -> _Endpoint:
        ep = self._endpoints.get(model)
        if ep is not None:
            return ep
        _check_ref(model)
        if self._closed:
            raise ShuttingDown("the server is closed")
        if self.registry is None:
            raise ModelNotFound(f"unknown model {model!r}; served: {sorted(self._endpoints)}")
        return self._load_from_registry(model)

    @staticmethod
    def parse_ref(ref: str) -> tuple[str, str | None, str | None]:
        """``name`` / ``name@alias`` / ``name:version`` -> (name, alias, version)."""
        if "@" in ref:
            name, alias = ref.split("@", 1)
            if not name or not alias:
                raise ModelNotFound(f"bad model reference {ref!r}: expected name@alias")
            return name, alias, None
        name, sep, version = ref.partition(":")
        if not name or (sep and not version):
            raise ModelNotFound(f"bad model reference {ref!r}: expected name:version")
        return name, None, version or None

    def _load_from_registry(self, ref: str) -> _Endpoint:
        # One loader per ref: concurrent first requests wait for it instead of each loading.
        with self._lock:
            lock = self._loading.setdefault(ref, threading.Lock())
        with lock:
            ep = self._endpoints.get(ref)
            if ep is not None:
                return ep
            name, alias, version = self.parse_ref(ref)
            try:
                resolved = self.registry.get(name, alias or version or "latest")
                model = self.registry.load(name, resolved.version)
            except (LookupError, ValueError, TypeError) as exc:  # NotFoundError: a LookupError
                raise ModelNotFound(f"cannot load {ref!r} from the registry: "
                                    f"{_message(exc)}") from None
            except Exception as exc:  # the registry is there but failing: retry later
                log.exception("loading %s from the registry failed", ref)
                raise ModelUnavailable(f"cannot load {ref!r} from the registry now: "
                                       f"{type(exc).__name__}: {_message(exc)}") from None
            extractor = _extractor_from_manifest(resolved.manifest)
            predictor = _predictor_of(model)
            feature_names = (list(model._feature_index)
                             if getattr(model, "_feature_index", None) else None)
            # Build outside the server lock: warm-up must not stall other models' lookups.
            ep = _Endpoint(self, ref, _Source(predictor, str(resolved.version)),
                           classes=getattr(model, "classes_", None), feature_names=feature_names,
                           extractor=extractor, fallback=None)
            with self._lock:
                if self._closed:
                    ep.close(drain=False, timeout=1.0)
                    raise ShuttingDown("the server is closed")
                self._endpoints[ref] = ep
                if version is None:  # name@alias, or a bare name (its latest version)
                    self._watched[ref] = (name, alias or "latest")
                    self._ensure_watcher()
            return ep

    def serve(self, ref: str, *, fallback: Any = None) -> dict[str, Any]:
        """Load ``name``, ``name@alias`` or ``name:version`` from the registry now (rather
        than on the first request), warmed up; returns its description."""
        ep = self._endpoint(_check_ref(ref))
        if fallback is not None:
            ep.fallback = fallback
        return self.models()[ref]

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
                    log.info("%s now serves %s", ref, version)
            except Exception:  # a registry hiccup must not stop serving the current version
                log.exception("checking alias %s of %s failed", alias, name)
        return swapped

    # -- predicting ----------------------------------------------------------------------

    def predict(self, model: str, inputs: Any, *, timeout: float | None = None,
                priority: int = 0) -> Prediction:
        """Predict synchronously.

        Parameters
        ----------
        model : str
            A served name, or (with a registry) ``name``, ``name@alias``, ``name:version``.
        inputs : array (n, d) or (d,), list of rows, a record (dict), a list of records, or
            columns (a dict of equal-length 1-D arrays; through the feature schema)
        timeout : float, optional
            Seconds until the deadline (default ``default_timeout``); past it the call
            raises :class:`DeadlineExceeded` and the rows are never computed.
        priority : int
            Higher is served first among queued requests.

        Raises
        ------
        BadInput, ModelNotFound, Overloaded, DeadlineExceeded, ShuttingDown, ModelUnavailable
        """
        _check_timeout(timeout)
        ep = self._endpoint(model)
        rows, records = ep.rows_for(inputs)
        return ep.predict(rows, records, timeout, _check_priority(priority))

    async def apredict(self, model: str, inputs: Any, *, timeout: float | None = None,
                       priority: int = 0) -> Prediction:
        """The asyncio form of :meth:`predict` (never blocks the event loop on the model)."""
        _check_timeout(timeout)
        ep = self._endpoint(model)
        rows, records = ep.rows_for(inputs)
        return await ep.apredict(rows, records, timeout, _check_priority(priority))

    # -- introspection -------------------------------------------------------------------

    def models(self) -> dict[str, dict[str, Any]]:
        """Per served model: version, readiness, breaker state, queue depth, input width,
        classes and task."""
        out = {}
        for name, ep in list(self._endpoints.items()):
            _, version = ep.source.get()
            out[name] = {"version": version, "ready": not ep.stop,
                         "breaker": ep.breaker.state,
                         "queued_rows": int(ep.batcher.stats()["queued_rows"]) + ep.lane_rows,
                         "n_inputs": ep.n_inputs, "n_outputs": ep.n_outputs, "task": ep.task,
                         "classes": None if ep.classes is None else ep.classes.tolist(),
                         "feature_names": ep.feature_names if ep.extractor is None else None,
                         "schema": getattr(getattr(ep.extractor, "schema", None), "name", None),
                         "records": ep.extractor is not None or ep.feature_pos is not None,
                         "fallback": ep.fallback is not None}
        return out

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def ready(self) -> bool:
        """Open, and every endpoint loaded and warmed up (an endpoint is served only once
        it is) and not draining."""
        return not self._closed and not any(ep.stop for ep in self._endpoints.values())

    def metrics(self) -> dict[str, dict[str, Any]]:
        """Per model: requests, rows, errors by kind, fallbacks, swaps, queue depth, latency
        and batch-size histograms (bucket bounds, non-cumulative counts, sum, count), breaker
        state and openings."""
        out = {}
        for name, ep in list(self._endpoints.items()):
            s = ep.stats()
            s.update(breaker=ep.breaker.state, breaker_opens=ep.breaker.opens,
                     version=ep.source.get()[1])
            out[name] = s
        return out

    def close(self, *, drain: bool = True, timeout: float = 10.0) -> None:
        """Stop accepting requests (new ones get :class:`ShuttingDown`); with ``drain``,
        answer the queued and in-flight ones first (up to ``timeout`` seconds)."""
        self._stop_watch.set()
        with self._lock:
            self._closed = True
            endpoints = list(self._endpoints.values())
        deadline = time.monotonic() + timeout
        for ep in endpoints:  # stop intake everywhere first, then drain each
            with ep.cond:
                ep.stop = True
        for ep in endpoints:
            ep.close(drain, max(0.0, deadline - time.monotonic()))
        if self._watcher is not None:
            self._watcher.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> PredictionServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _expire(fut: asyncio.Future, timeout: float | None) -> None:
    if not fut.done():
        fut.set_exception(DeadlineExceeded(
            f"no answer within the deadline ({timeout}s); not computed"))


def _is_columns(inputs: Mapping) -> bool:
    """A dict of equal-length 1-D numpy arrays is a batch in columns (what the extractor and
    the online learner take); anything else shaped like a dict is one record."""
    lengths = set()
    for v in inputs.values():
        if not isinstance(v, np.ndarray) or v.ndim != 1:
            return False
        lengths.add(len(v))
    return len(lengths) == 1


def _as_records(records: Any) -> list:
    if isinstance(records, Mapping):  # columns: one dict per row, for record fallbacks
        names = list(records)
        cols = [records[n].tolist() for n in names]
        return [dict(zip(names, vals, strict=True)) for vals in zip(*cols, strict=True)]
    return list(records)


def _message(exc: BaseException) -> str:
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def _check_priority(priority: Any) -> int:
    if isinstance(priority, bool) or not isinstance(priority, (int, np.integer)):
        raise BadInput(f"priority must be an integer, got {priority!r}", field="priority")
    return int(priority)


def _check_extractor(extractor: Any, n_inputs: int) -> None:
    if extractor is None:
        return
    if not callable(getattr(extractor, "transform", None)):
        raise TypeError("extractor must be a ducklearn.features.Extractor (transform(records))")
    width = getattr(extractor, "n_features", None)
    if width is not None and int(width) != n_inputs:
        raise ValueError(f"the extractor produces {width} features but the model takes "
                         f"{n_inputs}")


def _extractor_from_manifest(manifest: Mapping[str, Any]) -> Any:
    """An extractor for a registry version's ``feature_schema`` when its columns can be
    rebuilt from the schema alone (no learned normalizer state, which the registry does not
    store); otherwise None and the version takes feature rows."""
    schema = manifest.get("feature_schema") if isinstance(manifest, Mapping) else None
    if not isinstance(schema, Mapping) or "fields" not in schema:
        return None
    try:
        from ducklearn.features import FeatureSchema

        fs = FeatureSchema.from_dict(schema)
        if any(getattr(f, "normalize", None) is not None for f in fs.fields):
            return None
        return fs.compile()
    except Exception:  # a schema this build cannot read: serve rows only
        log.warning("cannot rebuild the feature schema of a registry version; it will take "
                    "feature rows only", exc_info=True)
        return None


def _prediction_dict(pred: Prediction) -> dict[str, Any]:
    """A Prediction as the JSON object the HTTP API and the Ray deployment answer with."""
    return {"model": pred.model, "version": pred.version, "fallback": pred.fallback,
            "predictions": pred.labels(), "outputs": pred.values.tolist(),
            "classes": list(pred.classes) if pred.classes is not None else None}


def labels_for(prediction: Prediction, classes: Sequence | None) -> list[Any]:
    """Predicted labels for classification outputs (values for regression)."""
    v = prediction.values
    if classes is None:
        return v[:, 0].tolist() if v.shape[1] == 1 else v.tolist()
    classes = list(classes)
    if v.shape[1] == 1:
        return [classes[int(p > 0.5)] for p in v[:, 0]]
    return [classes[int(i)] for i in np.argmax(v, axis=1)]
