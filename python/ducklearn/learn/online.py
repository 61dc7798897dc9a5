"""The long-running online learner service.

:class:`OnlineLearner` takes experiences (a record and its outcome) from any number of
threads, learns from them in a supervised background worker, and serves predictions from
immutable snapshots that the worker publishes atomically:

- ``ingest`` / ``ingest_many`` only append to a bounded queue (microseconds); when the queue
  is full they block up to a timeout or reject at once, per ``on_full``, raising
  :class:`QueueFullError` - never a silent drop. Every experience is accounted for:
  ``submitted == learned + rejected + queued`` at all times (see :meth:`stats`).
- The worker drains the queue in micro-batches, extracts features in C++, and runs the
  per-example test-then-train loop in C++ (``_core.AdaptiveLearner``: drift detection,
  challengers, rate adaptation, replay, EWC).
- Every ``publish_every`` updates or ``publish_interval`` seconds it publishes a snapshot:
  a frozen copy of the model and its input statistics. ``predict`` reads the latest
  snapshot without taking any lock, so it never waits for learning and never sees a
  half-updated model.
- Checkpoints (periodic and on demand) are atomic, checksummed files that restore the
  learner exactly; a learner started on a checkpoint directory resumes from the newest
  good one.
- An exception while learning is logged and counted, the batch is rejected with the reason,
  and the worker continues from the last published state; predictions keep working.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ducklearn import _core
from ducklearn._base import OnlineEstimator, _param_from_json, _param_to_json
from ducklearn._validation import check_X, not_fitted_error
from ducklearn.learn.adaptation import Adaptation
from ducklearn.learn.bootstrap import _per_example_loss, _score
from ducklearn.learn.checkpoint import read_latest, write_checkpoint

__all__ = ["OnlineLearner", "Snapshot", "QueueFullError"]

log = logging.getLogger(__name__)


def _is_columnar(records: Any) -> bool:
    return isinstance(records, Mapping) or hasattr(records, "columns") or (
        hasattr(records, "column_names") and hasattr(records, "num_rows"))


def _n_rows(columns: Any) -> int:
    if hasattr(columns, "num_rows"):
        return int(columns.num_rows)
    if hasattr(columns, "columns") and hasattr(columns, "__len__"):
        return len(columns)
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns have different lengths: {sorted(lengths)}")
    return lengths.pop() if lengths else 0


class QueueFullError(RuntimeError):
    """The ingestion queue is at capacity: the experience was rejected (and counted)."""


@dataclass(frozen=True)
class Snapshot:
    """An immutable published model: what every prediction reads."""

    predictor: Any          # _core.Predictor
    version: int            # increases by one per publication
    created_at: float       # time.time() at publication
    examples: int           # experiences learned when it was published


class _Rolling:
    """Fixed-size rings of recent per-example losses and correctness (vectorised)."""

    def __init__(self, size: int):
        self.loss = np.zeros(size)
        self.correct = np.zeros(size)
        self.n = 0
        self.size = size

    def add(self, losses: np.ndarray, correct: np.ndarray | None) -> None:
        k = len(losses)
        if k == 0:
            return
        if k >= self.size:
            losses, k = losses[-self.size:], self.size
            correct = None if correct is None else correct[-self.size:]
        idx = (self.n + np.arange(k)) % self.size
        self.loss[idx] = losses
        if correct is not None:
            self.correct[idx] = correct
        self.n += k

    def means(self) -> tuple[float, float]:
        m = min(self.n, self.size)
        if m == 0:
            return math.nan, math.nan
        return float(self.loss[:m].mean()), float(self.correct[:m].mean())


class OnlineLearner:
    """A model that keeps learning from outcomes while serving predictions.

    Parameters
    ----------
    model : ducklearn estimator
        The model to learn, e.g. ``LogisticRegression(scale=True)`` or
        ``MLPClassifier(hidden_layer_sizes=(64, 64), scale=True)``. A fitted estimator
        (e.g. bootstrapped with :func:`~ducklearn.learn.bootstrap`) continues from its
        state; an unfitted classifier needs ``classes`` (on the estimator or here).
    extractor : ducklearn.features.Extractor, optional
        Turns records into feature rows (in C++). Without one, records are dicts of
        ``feature name -> number`` matched by name to ``feature_names``, or rows of arrays
        given to :meth:`ingest_many`. Online standardization belongs to the model
        (``scale=True``), which snapshots it with the weights; the extractor is used as a
        fixed transform.
    feature_names : sequence of str, optional
        Input columns for dict records without an extractor (default: the fitted model's).
    classes : sequence, optional
        Labels of a classifier that has not been fitted.
    adaptation : Adaptation, optional
        Drift and forgetting policies (default ``Adaptation()``: ADWIN + challengers).
    publish_every, publish_interval : int, float
        Publish a snapshot after this many updates or this many seconds, whichever first.
    queue_capacity : int
        Bound on experiences waiting to be learned.
    on_full : {"reject", "block"}
        What ``ingest`` does when the queue is full; ``"block"`` waits up to
        ``block_timeout`` seconds before rejecting.
    max_batch : int
        Most experiences learned per worker iteration.
    checkpoint_dir : path, optional
        Where checkpoints go; if it holds one, the learner resumes from the newest good one.
    checkpoint_interval : float, optional
        Seconds between automatic checkpoints (needs ``checkpoint_dir``).
    keep_checkpoints : int
        How many checkpoint files to keep.
    metrics_window : int
        Examples in the rolling loss/accuracy shown by :meth:`stats`.
    callbacks : iterable of callables
        Called by the worker with :meth:`stats` after each publication.
    validation : (records or rows, outcomes), optional
        A held-out set scored by the published snapshot every ``validate_every`` learned
        experiences (accuracy and log-loss for classifiers, MAE and RMSE for regressors);
        see :meth:`validation_history`. Unlike the prequential rolling metrics it measures
        the model on fixed data, so it shows forgetting as well as learning.
    seed : int
    start : bool
        Start the worker thread now (else call :meth:`start`).
    """

    def __init__(self, model: OnlineEstimator, *, extractor: Any = None,
                 feature_names: Sequence[str] | None = None, classes: Sequence | None = None,
                 adaptation: Adaptation | None = None, publish_every: int = 1000,
                 publish_interval: float = 0.05, queue_capacity: int = 100_000,
                 on_full: str = "reject", block_timeout: float = 1.0, max_batch: int = 2048,
                 checkpoint_dir: str | None = None, checkpoint_interval: float | None = None,
                 keep_checkpoints: int = 3, metrics_window: int = 1000,
                 callbacks: Iterable[Callable[[dict], None]] = (),
                 validation: tuple[Any, Any] | None = None, validate_every: int = 10_000,
                 seed: int = 0, start: bool = True):
        if not isinstance(model, OnlineEstimator):
            raise TypeError(f"model must be a ducklearn estimator, got {type(model).__name__}")
        for name, value, low in (("publish_every", publish_every, 1),
                                 ("queue_capacity", queue_capacity, 1),
                                 ("max_batch", max_batch, 1),
                                 ("keep_checkpoints", keep_checkpoints, 1),
                                 ("metrics_window", metrics_window, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        for name, value in (("publish_interval", publish_interval),
                            ("block_timeout", block_timeout)):
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
        if on_full not in ("reject", "block"):
            raise ValueError(f"on_full must be 'reject' or 'block', got {on_full!r}")
        if checkpoint_interval is not None and checkpoint_dir is None:
            raise ValueError("checkpoint_interval needs checkpoint_dir")
        self.adaptation = adaptation if adaptation is not None else Adaptation()
        if not isinstance(self.adaptation, Adaptation):
            raise TypeError("adaptation must be a ducklearn.learn.Adaptation")

        self._extractor = extractor
        self.publish_every = publish_every
        self.publish_interval = float(publish_interval)
        self.queue_capacity = queue_capacity
        self.on_full = on_full
        self.block_timeout = float(block_timeout)
        self.max_batch = max_batch
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_interval = checkpoint_interval
        self.keep_checkpoints = keep_checkpoints
        self._callbacks = list(callbacks)
        self._publish_listeners: tuple[Callable[[Snapshot], None], ...] = ()
        if isinstance(validate_every, bool) or not isinstance(validate_every, int) or (
            validate_every < 1
        ):
            raise ValueError(f"validate_every must be an integer >= 1, got {validate_every!r}")
        self.validate_every = validate_every
        self._validation_raw = validation
        self._validation: tuple[np.ndarray, np.ndarray] | None = None
        self._validation_history: list[dict[str, float]] = []
        self._validated_at = 0
        self._seed = int(seed)

        # Queue of chunks: (kind, payload, outcomes, t_ingest, n) with kind "records" (a list
        # of dicts, or columns: a dict of arrays / DataFrame / Arrow table) or "rows" (X).
        self._cond = threading.Condition()
        self._chunks: collections.deque = collections.deque()
        self._queued = 0                 # experiences in the queue or being learned
        self._submitted = 0
        self._learned = 0
        self._rejected: collections.Counter = collections.Counter()
        self._errors = 0
        self._restarts = 0
        self._oldest_unpublished: float | None = None
        self._publish_latency = collections.deque(maxlen=1000)
        self._rolling = _Rolling(metrics_window)
        self._rate = 0.0
        self._last_checkpoint: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._core_lock = threading.Lock()  # worker vs checkpoint/consolidate/restore
        self._snapshot: Snapshot | None = None
        self._version = 0

        restored = read_latest(checkpoint_dir) if checkpoint_dir is not None else None
        self._model = model.clone()
        if restored is not None:
            self._restore(model, restored)
        else:
            self._setup_model(model, feature_names, classes)
        self._last_good = self._core.copy()
        if validation is not None:
            self._validation = self._validation_set(validation)
        self._publish(initial=True)
        self._maybe_validate(force=True)  # the starting point of the history
        if start:
            self.start()

    # -- construction --------------------------------------------------------------------

    def _setup_model(self, model: OnlineEstimator, feature_names: Sequence[str] | None,
                     classes: Sequence | None) -> None:
        est = self._model
        if model.__sklearn_is_fitted__():
            tensors, manifest = model.state()
            est = type(model).from_state(tensors, manifest)
            self._model = est
        else:
            width = self._input_width(feature_names)
            if est._estimator_type == "classifier":
                cls = classes if classes is not None else getattr(est, "classes", None)
                if cls is None:
                    raise ValueError(
                        "an unfitted classifier needs its classes: pass classes=[...] to "
                        "OnlineLearner or to the estimator"
                    )
                est._check_params()
                est._set_classes(np.asarray(cls))
            else:
                est._check_params()
            names = list(feature_names) if feature_names is not None else None
            est._build(width, names)
        self._feature_names = list(est._feature_index)
        self._core = _core.AdaptiveLearner(est._learner, self.adaptation.to_config(), self._seed)
        # From here on the estimator only maps labels and features; the core owns the model.
        est._learner = None
        self._check_width()

    def _input_width(self, feature_names: Sequence[str] | None) -> int:
        if self._extractor is not None:
            return int(self._extractor.n_features)
        if feature_names is None or len(feature_names) == 0:
            raise ValueError(
                "cannot tell the input width: pass an extractor, feature_names=[...], or a "
                "fitted model"
            )
        return len(feature_names)

    def _check_width(self) -> None:
        if self._extractor is not None and int(self._extractor.n_features) != self._core.n_inputs:
            raise ValueError(
                f"the extractor produces {self._extractor.n_features} features but the model "
                f"takes {self._core.n_inputs}"
            )

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> OnlineLearner:
        """Start the background worker (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._supervise, name="ducklearn-learner",
                                        daemon=True)
        self._thread.start()
        return self

    def close(self, *, drain: bool = True, timeout: float | None = 30.0) -> None:
        """Stop the worker. With ``drain`` it first learns everything already queued."""
        if drain and self._thread is not None and self._thread.is_alive():
            self.flush(timeout=timeout)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        self._publish()

    def __enter__(self) -> OnlineLearner:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every queued experience is learned (or rejected) and published."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._queued > 0:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(0.01 if left is None else min(left, 0.01))
        with self._core_lock:
            self._publish()
        self._maybe_validate()
        return True

    # -- ingestion -----------------------------------------------------------------------

    def _enqueue(self, chunk: tuple, n: int, timeout: float | None) -> None:
        with self._cond:
            self._submitted += n
            if self._queued + n > self.queue_capacity:
                if self.on_full == "block":
                    wait = self.block_timeout if timeout is None else timeout
                    deadline = time.monotonic() + wait
                    while self._queued + n > self.queue_capacity:
                        left = deadline - time.monotonic()
                        if left <= 0 or self._stop.is_set():
                            break
                        self._cond.wait(left)
                if self._queued + n > self.queue_capacity:
                    self._rejected["queue_full"] += n
                    raise QueueFullError(
                        f"ingestion queue full ({self.queue_capacity} experiences waiting); "
                        f"{n} experience(s) rejected. Ingest more slowly, raise "
                        "queue_capacity, or use on_full='block'"
                    )
            self._chunks.append(chunk)
            self._queued += n
            if self._oldest_unpublished is None:
                self._oldest_unpublished = chunk[3]
            self._cond.notify()

    def ingest(self, record: Any, outcome: Any, *, timeout: float | None = None) -> None:
        """Queue one experience (returns in microseconds; raises QueueFullError if full)."""
        self._enqueue(("records", [record], [outcome], time.monotonic(), 1), 1, timeout)

    def ingest_many(self, records: Any, outcomes: Any, *, timeout: float | None = None) -> None:
        """Queue many experiences at once. ``records`` is a list of records, columns (a dict
        of equal-length arrays, a pandas DataFrame or a pyarrow Table: the fast path through
        an extractor), or a 2-D array of feature rows; ``outcomes`` has one entry per record.
        All or none are queued."""
        if isinstance(records, np.ndarray):
            X = check_X(records, n_features=self._core.n_inputs, estimator="the learner")
            y = np.asarray(outcomes)
            if y.ndim != 1 or len(y) != len(X):
                raise ValueError(f"outcomes must be 1-D with {len(X)} entries, got shape {y.shape}")
            self._enqueue(("rows", X, y, time.monotonic(), len(X)), len(X), timeout)
            return
        if _is_columnar(records):
            n = _n_rows(records)
            y = np.asarray(outcomes)
            if y.ndim != 1 or len(y) != n:
                raise ValueError(f"outcomes must be 1-D with {n} entries, got shape {y.shape}")
            if n:
                self._enqueue(("records", records, y, time.monotonic(), n), n, timeout)
            return
        records = list(records)
        outcomes = list(outcomes)
        if len(records) != len(outcomes):
            raise ValueError(f"{len(records)} records but {len(outcomes)} outcomes")
        if records:
            self._enqueue(("records", records, outcomes, time.monotonic(), len(records)),
                          len(records), timeout)

    # -- the worker ----------------------------------------------------------------------

    def _supervise(self) -> None:
        while not self._stop.is_set():
            try:
                self._run()
            except BaseException:  # the worker must survive anything short of shutdown
                self._errors += 1
                self._restarts += 1
                log.exception("online learner worker crashed; restarting from the last "
                              "published state")
                with self._core_lock:
                    self._core = self._last_good.copy()
                time.sleep(0.01)

    def _take(self) -> list[tuple]:
        with self._cond:
            if not self._chunks:
                self._cond.wait(self.publish_interval)
            taken, rows = [], 0
            while self._chunks and rows < self.max_batch:
                chunk = self._chunks.popleft()
                taken.append(chunk)
                rows += chunk[4]
            return taken

    def _run(self) -> None:
        last_publish = time.monotonic()
        last_checkpoint = time.monotonic()
        pending = 0
        t0, done0 = time.monotonic(), self._learned
        while not self._stop.is_set():
            chunks = self._take()
            if chunks:
                pending += self._process(chunks)
            now = time.monotonic()
            if pending and (pending >= self.publish_every or
                            now - last_publish >= self.publish_interval):
                with self._core_lock:
                    self._publish()
                pending = 0
                last_publish = now
                if now - t0 >= 0.5:
                    rate = (self._learned - done0) / (now - t0)
                    self._rate = rate if self._rate == 0.0 else 0.7 * self._rate + 0.3 * rate
                    t0, done0 = now, self._learned
                self._maybe_validate()
                self._notify_callbacks()
            if (self.checkpoint_interval is not None and
                    now - last_checkpoint >= self.checkpoint_interval):
                self.checkpoint()
                last_checkpoint = now

    def _process(self, chunks: list[tuple]) -> int:
        n = sum(c[4] for c in chunks)
        learned = 0
        try:
            X, y, rejected = self._assemble(chunks)
            # State and counters change together under the lock, so a checkpoint taken
            # between batches is exact: what it counts as learned is in its weights.
            with self._core_lock:
                if len(X):
                    preds, losses = self._core.learn(X, y)
                    learned = len(X)
                with self._cond:
                    for reason, count in rejected.items():
                        self._rejected[reason] += count
                    self._learned += learned
            if learned:
                self._rolling.add(losses, self._correct(preds, y))
        except Exception as exc:
            self._errors += 1
            with self._cond:
                self._rejected[f"learning_failed:{type(exc).__name__}"] += n - learned
            log.exception("learning a batch of %d experiences failed; they are rejected and "
                          "the learner continues from the last published state", n)
            with self._core_lock:
                self._core = self._last_good.copy()
        finally:
            with self._cond:
                self._queued -= n
                self._cond.notify_all()
        return learned

    def _correct(self, preds: np.ndarray, y: np.ndarray) -> np.ndarray | None:
        task = self._core.task
        if task == "binary":
            return ((preds[:, 0] > 0.5) == (y > 0.5)).astype(np.float64)
        if task == "multiclass":
            return (np.argmax(preds, axis=1) == y).astype(np.float64)
        return None

    def _encode_outcomes(self, outcomes: Sequence | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(targets as float32, mask of valid outcomes)."""
        est = self._model
        if est._estimator_type == "classifier":
            index = est._label_index
            t = np.empty(len(outcomes), dtype=np.float32)
            ok = np.ones(len(outcomes), dtype=bool)
            for i, o in enumerate(outcomes.tolist() if isinstance(outcomes, np.ndarray)
                                  else outcomes):
                try:
                    t[i] = index[o]
                except (KeyError, TypeError):
                    ok[i] = False
                    t[i] = 0.0
            return t, ok
        arr = np.asarray(outcomes)
        if arr.dtype.kind not in "fiub":
            t = np.zeros(len(arr), dtype=np.float32)
            ok = np.zeros(len(arr), dtype=bool)
            for i, o in enumerate(arr):
                if isinstance(o, (int, float, np.number)) and not isinstance(o, bool):
                    t[i], ok[i] = float(o), math.isfinite(float(o))
            return t, ok
        t = arr.astype(np.float32)
        return t, np.isfinite(t)

    def _features(self, records: Any) -> tuple[np.ndarray, np.ndarray]:
        """(rows of the valid records, mask of valid records)."""
        if _is_columnar(records):
            return self._column_features(records)
        n = len(records)
        if self._extractor is not None:
            X, ok = self._extract(records, n)
            return np.ascontiguousarray(X, dtype=np.float32), ok
        pos = self._model._feature_index  # feature name -> column
        X = np.zeros((n, len(pos)), dtype=np.float32)
        ok = np.ones(n, dtype=bool)
        for i, r in enumerate(records):
            if not isinstance(r, Mapping):
                ok[i] = False
                continue
            try:
                for k, v in r.items():
                    X[i, pos[k]] = v
            except (KeyError, TypeError, ValueError):
                ok[i] = False
                continue
            if not np.isfinite(X[i]).all():
                ok[i] = False
        return X, ok

    def _extract(self, data: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The extractor's rows for n records or columns, and the mask of those it did not
        dead-letter."""
        X, dead = self._extractor.transform(data, sparse=False)
        ok = np.ones(n, dtype=bool)
        for d in dead:
            ok[d.index] = False
        return X, ok

    def _column_features(self, columns: Any) -> tuple[np.ndarray, np.ndarray]:
        n = _n_rows(columns)
        if self._extractor is not None:
            X, ok = self._extract(columns, n)
            full = np.zeros((n, X.shape[1]), dtype=np.float32)
            full[ok] = X
            return full, ok
        try:
            X = np.column_stack([np.asarray(columns[name], dtype=np.float32)
                                 for name in self._feature_names])
        except KeyError as exc:
            raise ValueError(f"column {exc.args[0]!r} is missing from the columns") from None
        return np.ascontiguousarray(X), np.isfinite(X).all(axis=1)

    def _assemble(self, chunks: list[tuple]) -> tuple[np.ndarray, np.ndarray, collections.Counter]:
        rejected: collections.Counter = collections.Counter()
        xs, ys = [], []
        for kind, payload, outcomes, _, _ in chunks:
            if kind == "rows":
                X, ok_x = payload, np.isfinite(payload).all(axis=1)
            else:
                X, ok_x = self._features(payload)
            t, ok_y = self._encode_outcomes(outcomes)
            bad_x = int((~ok_x).sum())
            bad_y = int((ok_x & ~ok_y).sum())
            if bad_x:
                rejected["invalid_record"] += bad_x
            if bad_y:
                rejected["invalid_outcome"] += bad_y
            keep = ok_x & ok_y
            if keep.all():
                xs.append(X)
                ys.append(t)
            else:
                xs.append(X[keep])
                ys.append(t[keep])
        X = xs[0] if len(xs) == 1 else np.concatenate(xs)
        y = ys[0] if len(ys) == 1 else np.concatenate(ys)
        return np.ascontiguousarray(X, dtype=np.float32), y, rejected

    def _publish(self, initial: bool = False) -> None:
        predictor = self._core.snapshot()
        self._version += 1
        snap = self._snapshot = Snapshot(predictor, self._version, time.time(), self._learned)
        for listener in self._publish_listeners:
            try:
                listener(snap)
            except Exception:  # a broken listener must not stop learning or publishing
                log.exception("publish listener %r failed", listener)
        if not initial:
            self._last_good = self._core.copy()
        with self._cond:
            oldest = self._oldest_unpublished
            self._oldest_unpublished = None
            if self._chunks:
                self._oldest_unpublished = self._chunks[0][3]
        if oldest is not None and not initial:
            self._publish_latency.append(time.monotonic() - oldest)

    def _validation_set(self, validation: Any) -> tuple[np.ndarray, np.ndarray]:
        if not (isinstance(validation, tuple) and len(validation) == 2):
            raise TypeError("validation must be a (records or rows, outcomes) pair")
        X = self._rows_for(validation[0])
        t, ok = self._encode_outcomes(np.asarray(validation[1]) if not isinstance(
            validation[1], list) else validation[1])
        if len(t) != len(X):
            raise ValueError(f"validation has {len(X)} rows but {len(t)} outcomes")
        if not ok.all():
            raise ValueError("validation outcomes contain labels outside the classes or "
                             "non-finite targets")
        return X, t

    def _maybe_validate(self, force: bool = False) -> None:
        if self._validation is None:
            return
        if not force and self._learned - self._validated_at < self.validate_every:
            return
        X, t = self._validation
        snap = self._snapshot
        out = snap.predictor.predict(X)
        task = self._core.task
        entry: dict[str, float] = {"learned": float(snap.examples),
                                   "snapshot_version": float(snap.version)}
        if task == "regression":
            err = out[:, 0].astype(np.float64) - t
            entry.update(mae=float(np.mean(np.abs(err))), rmse=float(np.sqrt(np.mean(err**2))))
        else:
            entry.update(accuracy=_score(task, out, t),
                         log_loss=float(np.mean(_per_example_loss(task, out, t))))
        self._validation_history.append(entry)
        del self._validation_history[:-10_000]  # bounded like every other buffer
        self._validated_at = self._learned

    def validation_history(self) -> list[dict[str, float]]:
        """Held-out scores of the published snapshots over time (see ``validation``)."""
        return list(self._validation_history)

    def add_publish_listener(self, listener: Callable[[Snapshot], None]) -> None:
        """Call ``listener(snapshot)`` right after each publication, on the publishing thread
        (the worker, or the caller of :meth:`flush` / :meth:`close`). Publications from
        different threads may interleave, so a listener that must not go back in time
        compares ``snapshot.version`` with the last one it saw. Keep it quick (it delays
        learning) and non-blocking; its exceptions are logged and ignored. A prediction
        server uses it to swap each snapshot into its batcher as it is published.
        """
        if not callable(listener):
            raise TypeError(f"listener must be callable, got {type(listener).__name__}")
        # Copy-on-write: publishing iterates the tuple without a lock.
        with self._cond:
            self._publish_listeners = (*self._publish_listeners, listener)

    def remove_publish_listener(self, listener: Callable[[Snapshot], None]) -> None:
        """Stop calling ``listener`` (no error if it was not added)."""
        with self._cond:
            self._publish_listeners = tuple(x for x in self._publish_listeners
                                            if x is not listener)

    def _notify_callbacks(self) -> None:
        if not self._callbacks:
            return
        stats = self.stats()
        for cb in self._callbacks:
            try:
                cb(stats)
            except Exception:  # a broken callback must not stop learning
                log.exception("online learner callback %r failed", cb)

    # -- predictions ---------------------------------------------------------------------

    @property
    def classes_(self) -> np.ndarray | None:
        """The labels of a classifier (None for a regressor)."""
        return getattr(self._model, "classes_", None)

    @property
    def feature_names(self) -> list[str]:
        """Input columns, in order."""
        return list(self._feature_names)

    @property
    def extractor(self) -> Any:
        """The feature extractor records go through (None without one)."""
        return self._extractor

    @property
    def snapshot(self) -> Snapshot:
        """The latest published snapshot (an immutable model)."""
        snap = self._snapshot
        if snap is None:  # pragma: no cover - a snapshot is published at construction
            raise not_fitted_error("no snapshot has been published yet")
        return snap

    def _rows_for(self, records: Any) -> np.ndarray:
        if isinstance(records, np.ndarray):
            return check_X(records, n_features=self._core.n_inputs, estimator="the learner")
        if _is_columnar(records):
            X, ok = self._column_features(records)
            if not ok.all():
                raise ValueError(f"row {int(np.flatnonzero(~ok)[0])} of the columns is invalid "
                                 "(rejected by the extractor or not finite)")
            return X
        records = list(records)
        X, ok = self._features(records)
        if not ok.all():
            bad = int(np.flatnonzero(~ok)[0])
            if self._extractor is not None:
                _, dead = self._extractor.transform([records[bad]], sparse=False)
                detail = dead[0].message if dead else "invalid record"
            else:
                detail = ("not a dict of known numeric features; known features: "
                          f"{self._feature_names[:8]}...")
            raise ValueError(f"record {bad} cannot be predicted: {detail}")
        return X

    def predict_proba_many(self, records: Any) -> np.ndarray:
        """Class probabilities (n, n_classes) or values (n,) from the latest snapshot."""
        out = self.snapshot.predictor.predict(self._rows_for(records))
        task = self._core.task
        if task == "binary":
            p = out[:, 0]
            return np.stack([1.0 - p, p], axis=1)
        if task == "multiclass":
            return out
        return out[:, 0]

    def predict_many(self, records: Any) -> np.ndarray:
        """Predicted labels (classification) or values (regression)."""
        proba = self.predict_proba_many(records)
        if self._core.task == "regression":
            return proba
        return self._model.classes_[np.argmax(proba, axis=1)]

    def predict_proba(self, record: Any) -> dict[Any, float] | float:
        """``{class: probability}`` for one record (the value for a regressor)."""
        row = self.predict_proba_many([record])[0]
        if self._core.task == "regression":
            return float(row)
        return dict(zip(self._model.classes_.tolist(), row.tolist(), strict=True))

    def predict(self, record: Any) -> Any:
        """The predicted label (or value) for one record."""
        return self.predict_many([record])[0]

    # -- checkpoints ---------------------------------------------------------------------

    def checkpoint(self) -> str:
        """Write a checkpoint now; returns its path."""
        if self.checkpoint_dir is None:
            raise ValueError("this learner has no checkpoint_dir")
        with self._core_lock:
            tensors, meta = self._core.state_dict()
            with self._cond:
                counters = {
                    "submitted": self._submitted - self._queued, "learned": self._learned,
                    "rejected": dict(self._rejected), "errors": self._errors,
                }
        manifest = {
            "kind": "online_learner",
            "library_version": _core.__version__,
            "estimator": f"{type(self._model).__module__}.{type(self._model).__name__}",
            "hyperparameters": {k: _param_to_json(v)
                                for k, v in self._model.get_params().items()},
            "classes": (_param_to_json(self._model.classes_)
                        if hasattr(self._model, "classes_") else None),
            "feature_names": self._feature_names,
            "core": meta,
            "counters": counters,
            "snapshot_version": self._version,
            "created_at": time.time(),
        }
        path = write_checkpoint(self.checkpoint_dir, tensors, manifest,
                                keep=self.keep_checkpoints)
        self._last_checkpoint = {"path": path, "time": manifest["created_at"],
                                 "learned": counters["learned"]}
        return path

    def _restore(self, model: OnlineEstimator, ckpt: Any) -> None:
        m = ckpt.manifest
        if m.get("kind") != "online_learner":
            raise ValueError(f"{ckpt.path} is not an online-learner checkpoint")
        expected = f"{type(model).__module__}.{type(model).__name__}"
        if m["estimator"] != expected:
            raise ValueError(f"{ckpt.path} holds a {m['estimator']}, not a {expected}")
        hyper = {k: _param_from_json(v) for k, v in m["hyperparameters"].items()}
        est = type(model)(**hyper)
        if m["classes"] is not None:
            est._set_classes(np.asarray(m["classes"]))
        self._model = est
        self._core = _core.AdaptiveLearner.from_state_dict(ckpt.tensors, m["core"])
        # The estimator only maps labels and features; the core owns the model.
        est._build(self._core.n_inputs, m["feature_names"])
        est._learner = None
        self._feature_names = list(m["feature_names"])
        c = m["counters"]
        self._submitted = int(c["submitted"])
        self._learned = int(c["learned"])
        self._rejected = collections.Counter(c["rejected"])
        self._errors = int(c["errors"])
        self._version = int(m["snapshot_version"])
        self._last_checkpoint = {"path": ckpt.path, "time": m["created_at"],
                                 "learned": self._learned, "skipped": list(ckpt.skipped)}
        self._check_width()

    # -- maintenance ---------------------------------------------------------------------

    def consolidate(self, samples: int = 256) -> None:
        """EWC consolidation now, on a replay sample (needs ``replay_capacity > 0``)."""
        with self._core_lock:
            self._core.consolidate(samples)

    def export_model(self) -> OnlineEstimator:
        """The active model as a fitted estimator (for the registry or offline use)."""
        with self._core_lock:
            tensors, meta = self._core.active_state_dict()
        est = type(self._model)(**self._model.get_params())
        if hasattr(self._model, "classes_"):
            est._set_classes(self._model.classes_)
        est._learner = _core.Learner.from_state_dict(tensors, meta)
        est.n_features_in_ = est._learner.n_inputs
        est._feature_index = dict(self._model._feature_index)
        est.n_iter_ = 0
        est.loss_curve_ = []
        return est

    # -- telemetry -----------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters and health: see the module docstring for the accounting invariant."""
        with self._cond:
            queued = self._queued
            submitted = self._submitted
            learned = self._learned
            rejected = dict(self._rejected)
        loss, acc = self._rolling.means()
        lat = sorted(self._publish_latency)
        snap = self._snapshot
        adapt = self._core.stats
        return {
            "submitted": submitted,
            "learned": learned,
            "rejected": sum(rejected.values()),
            "rejected_by_reason": rejected,
            "queued": queued,
            "errors": self._errors,
            "restarts": self._restarts,
            "updates_per_second": self._rate,
            "rolling_loss": loss,
            "rolling_accuracy": acc if self._core.task != "regression" else math.nan,
            "snapshot_version": snap.version if snap else 0,
            "snapshot_age_seconds": time.time() - snap.created_at if snap else math.nan,
            "publish_latency_p50": lat[len(lat) // 2] if lat else math.nan,
            "publish_latency_p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else
            math.nan,
            "last_checkpoint": self._last_checkpoint,
            "drifts": adapt["drifts"],
            "swaps": adapt["swaps"],
            "lr_scale": adapt["lr_scale"],
            "replay_size": self._core.replay_size,
            "worker_alive": self._thread is not None and self._thread.is_alive(),
            "validation": self._validation_history[-1] if self._validation_history else None,
        }
