"""Experiment tracking: runs with parameters, metrics over steps, tags, artifacts and the
model version they produced (see :class:`Tracker`)."""

from __future__ import annotations

import datetime as _dt
import getpass
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ducklearn._db import (
    Database,
    check_name,
    from_us,
    now_us,
    parse_url,
    sha256_hex,
    to_us,
)

__all__ = ["Tracker", "Run", "RunInfo", "BestRun", "Comparison", "InsufficientDataError"]

SCHEMA_VERSION = 1
_KEY_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}")
_RUN_ID_RE = re.compile(r"[0-9a-f]{32}")
_STATUSES = ("running", "finished", "failed", "killed")

_SCHEMA = [
    """CREATE TABLE tracking_runs (
        id TEXT PRIMARY KEY,
        experiment TEXT NOT NULL,
        name TEXT,
        status TEXT NOT NULL,
        actor TEXT NOT NULL,
        started_us {bigint} NOT NULL,
        ended_us {bigint},
        parent_run TEXT,
        model_name TEXT,
        model_version TEXT)""",
    "CREATE INDEX tracking_runs_experiment ON tracking_runs (experiment, started_us)",
    "CREATE INDEX tracking_runs_started ON tracking_runs (started_us)",
    "CREATE INDEX tracking_runs_model ON tracking_runs (model_name, model_version)",
    """CREATE TABLE tracking_params (
        run_id TEXT NOT NULL,
        experiment TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        num {real},
        PRIMARY KEY (run_id, key))""",
    "CREATE INDEX tracking_params_num ON tracking_params (key, num)",
    "CREATE INDEX tracking_params_value ON tracking_params (key, value)",
    """CREATE TABLE tracking_metrics (
        run_id TEXT NOT NULL,
        key TEXT NOT NULL,
        step {bigint} NOT NULL,
        value {real} NOT NULL,
        n {bigint},
        time_us {bigint} NOT NULL,
        PRIMARY KEY (run_id, key, step))""",
    """CREATE TABLE tracking_latest (
        run_id TEXT NOT NULL,
        experiment TEXT NOT NULL,
        key TEXT NOT NULL,
        step {bigint} NOT NULL,
        value {real} NOT NULL,
        n {bigint},
        PRIMARY KEY (run_id, key))""",
    # Serves "best runs of an experiment by a metric" straight from the index, in order.
    # n rides along so counting qualified runs never touches the table.
    "CREATE INDEX tracking_latest_rank ON tracking_latest (experiment, key, value, n)",
    "CREATE INDEX tracking_latest_key ON tracking_latest (key, value)",
    """CREATE TABLE tracking_tags (
        run_id TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (run_id, key))""",
    "CREATE INDEX tracking_tags_value ON tracking_tags (key, value)",
    """CREATE TABLE tracking_artifacts (
        run_id TEXT NOT NULL,
        name TEXT NOT NULL,
        digest TEXT NOT NULL,
        size {bigint} NOT NULL,
        PRIMARY KEY (run_id, name))""",
]


class InsufficientDataError(ValueError):
    """Best-run selection refused: too few evaluation samples, or no clear winner when a
    clear winner was required."""


def _check_key(key: Any, what: str) -> str:
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise ValueError(f"{what} {key!r} must be 1-128 characters of letters, digits and "
                         "_ . : / - (starting with a letter, digit or _)")
    return key


def _check_value(value: Any, what: str) -> float:
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value}")
    return value


def _param_text(value: Any) -> tuple[str, float | None]:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return ("true" if value else "false"), None
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return repr(value), None
        return repr(value), float(value)
    if value is None:
        return "None", None
    if isinstance(value, str):
        if len(value) > 4000:
            raise ValueError("parameter values are limited to 4000 characters")
        return value, None
    return _param_text(repr(value))[0], None


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunInfo:
    id: str
    experiment: str
    name: str | None
    status: str
    actor: str
    started_at: _dt.datetime
    ended_at: _dt.datetime | None
    parent_run: str | None
    model_name: str | None
    model_version: str | None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    metric_samples: dict[str, int | None] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def model_ref(self) -> str | None:
        return f"{self.model_name}@{self.model_version}" if self.model_name else None

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["started_at"] = self.started_at.isoformat()
        out["ended_at"] = self.ended_at.isoformat() if self.ended_at else None
        return out


@dataclass(frozen=True)
class BestRun:
    """The selected run and how sure the selection is."""

    run: RunInfo
    metric: str
    value: float
    samples: int
    runner_up: RunInfo | None
    margin: float | None
    std_error: float | None  # of the difference, for proportion metrics (values in [0, 1])
    significant: bool | None  # margin > z * std_error; None when it cannot be judged
    considered: int
    excluded_low_samples: int


@dataclass(frozen=True)
class Comparison:
    """Runs side by side: ``rows`` (one dict per run), the params that differ between them,
    and the best value of each metric."""

    rows: list[dict[str, Any]]
    differing_params: list[str]
    metrics: list[str]

    def to_pandas(self):  # pragma: no cover - exercised where pandas is installed
        import pandas as pd

        return pd.DataFrame(self.rows).set_index("run_id")


# ---------------------------------------------------------------------------------------------
# Filter language: "metrics.auc > 0.8 and params.lr = 0.01 and tags.team = 'ranking'"
# ---------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"""
    \s*(?:
      (?P<ident>(?:metrics|params|tags)\.(?:`[^`]+`|[A-Za-z0-9_][A-Za-z0-9_.:/-]*)
               |status|name|actor|experiment|model_name|model_version)
    | (?P<op><=|>=|!=|=|<|>)
    | (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
    | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<and>(?i:and))\b
    )""", re.VERBOSE)
_ATTRS = {"status", "name", "actor", "experiment", "model_name", "model_version"}


def _parse_filter(text: str) -> list[tuple[str, str, str, Any]]:
    """[(kind, key, op, value)] for a conjunction of comparisons."""
    if not isinstance(text, str):
        raise TypeError("filter must be a string such as \"metrics.auc > 0.8 and "
                        "params.lr = 0.01\"")
    pos, out = 0, []
    tokens = []
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN_RE.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"filter: cannot parse near {text[pos:pos + 20]!r}; write "
                             "comparisons like metrics.auc > 0.8 joined by 'and'")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    i = 0
    while i < len(tokens):
        if len(tokens) - i < 3:
            raise ValueError("filter: incomplete comparison at the end")
        (k1, ident), (k2, op), (k3, lit) = tokens[i:i + 3]
        if k1 != "ident" or k2 != "op" or k3 not in ("num", "str"):
            raise ValueError(f"filter: expected IDENT OP VALUE, got {ident!r} {op!r} {lit!r}")
        value: Any = float(lit) if k3 == "num" else re.sub(r"\\(.)", r"\1", lit[1:-1])
        if "." in ident and ident.split(".", 1)[0] in ("metrics", "params", "tags"):
            kind, key = ident.split(".", 1)
            key = key.strip("`")
        else:
            kind, key = "attr", ident
        if kind == "metrics" and k3 != "num":
            raise ValueError(f"filter: metrics.{key} compares with a number")
        if kind in ("tags", "attr") and op not in ("=", "!="):
            raise ValueError(f"filter: {ident} supports = and != only")
        out.append((kind, key, op, value))
        i += 3
        if i < len(tokens):
            if tokens[i][0] != "and":
                raise ValueError("filter: join comparisons with 'and'")
            i += 1
            if i == len(tokens):
                raise ValueError("filter: nothing after 'and'")
    return out


# A filter clause matching at most this many runs pins the query to their ids.
_PROBE_LIMIT = 10_000


def _clause_subquery(kind: str, key: str, op: str, value: Any
                     ) -> tuple[str, str, list[Any]] | None:
    """(table, condition, params) for a clause that selects runs by their own rows
    (metrics, params, tag equality); None for the others."""
    sql_op = "<>" if op == "!=" else op
    if kind == "metrics":
        return "tracking_latest", f"key = ? AND value {sql_op} ?", [key, value]
    if kind == "params":
        column = "num" if isinstance(value, float) else "value"
        return "tracking_params", f"key = ? AND {column} {sql_op} ?", [key, value]
    if kind == "tags" and op == "=":
        return "tracking_tags", "key = ? AND value = ?", [key, value]
    return None


def _filter_sql(db: Database, clauses: list[tuple[str, str, str, Any]]
                ) -> tuple[list[str], list[Any]]:
    """WHERE conditions (on ``r``, the runs) and their parameters for a parsed filter.

    Planners estimate ``key = 'lr' AND num < x`` from one histogram over every key's values
    and can be off by orders of magnitude; under a LIMIT, PostgreSQL then walks every run in
    start order probing the subquery (0.5 s instead of 3 ms at 100,000 runs). So each clause
    is first counted, up to a cap; when the most selective matches at most _PROBE_LIMIT runs
    the query is pinned to exactly those ids, which every planner drives from. Clauses that
    all match many runs stay subqueries, whose plans are good in that regime.
    """
    where: list[str] = []
    params: list[Any] = []
    subqueries = []
    for kind, key, op, value in clauses:
        sub = _clause_subquery(kind, key, op, value)
        if sub is not None:
            subqueries.append(sub)
        elif kind == "tags":
            # Runs without the tag match "!=" as well.
            where.append("r.id NOT IN (SELECT run_id FROM tracking_tags WHERE key = ? AND "
                         "value = ?)")
            params += [key, value]
        else:
            if key not in _ATTRS:
                raise ValueError(f"filter: unknown attribute {key!r}")
            where.append(f"r.{key} {'<>' if op == '!=' else op} ?")
            params.append(value if isinstance(value, str) else str(value))
    if not subqueries:
        return where, params
    counts = [int(db.query_one(f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {cond} "
                               f"LIMIT {_PROBE_LIMIT + 1}) t", p)[0])
              for table, cond, p in subqueries]
    best = min(range(len(counts)), key=counts.__getitem__)
    pinned: list[str] | None = None
    if counts[best] <= _PROBE_LIMIT:
        table, cond, p = subqueries[best]
        pinned = [r[0] for r in db.query(f"SELECT run_id FROM {table} WHERE {cond}", p)]
    # With pinned candidates, PostgreSQL must not turn the other clauses into hash
    # semi-joins over everything they match (50,000 rows hashed to check 1,000 runs):
    # OFFSET 0 keeps each a per-candidate probe of the (run_id, key) primary key.
    fence = " OFFSET 0" if pinned is not None and db.dialect == "postgresql" else ""
    for i, (table, cond, p) in enumerate(subqueries):
        if i == best and pinned is not None:
            continue
        # Checked per candidate run: the cost follows the candidates, not the size of a
        # clause that matches half of all runs.
        where.append(f"EXISTS (SELECT 1 FROM {table} x WHERE x.run_id = r.id AND {cond}"
                     f"{fence})")
        params += p
    if pinned is not None:
        if not pinned:
            where.append("1 = 0")
        elif db.dialect == "postgresql":
            where.append("r.id = ANY(?)")
            params.append(pinned)
        else:
            # Literal placeholders, so SQLite knows the list is short and probes the primary
            # key (through json_each it would scan every run of the experiment).
            where.append(f"r.id IN ({', '.join('?' * len(pinned))})")
            params += pinned
    return where, params


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------


class Run:
    """An open run. Logging is buffered and committed in batches (at most every second,
    every 1000 records, and at :meth:`end`); use it as a context manager so a failure marks
    the run ``failed``."""

    _FLUSH_RECORDS = 1000
    _FLUSH_SECONDS = 1.0

    def __init__(self, tracker: Tracker, run_id: str, experiment: str):
        self._tracker = tracker
        self.id = run_id
        self.experiment = experiment
        self._lock = threading.Lock()
        self._params: dict[str, str] = {}
        self._pending_params: list[tuple] = []
        self._pending_tags: dict[str, str] = {}
        self._pending_metrics: list[tuple] = []
        self._steps: dict[str, int] = {}
        self._last_flush = time.monotonic()
        self._ended = False

    def __repr__(self) -> str:
        return f"Run({self.id!r}, experiment={self.experiment!r})"

    def _check_open(self) -> None:
        if self._ended:
            raise RuntimeError(f"run {self.id} has ended; start a new run to log more")

    def log_param(self, key: str, value: Any) -> None:
        """A hyperparameter (immutable: logging another value for the key raises)."""
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        if not isinstance(params, Mapping):
            raise TypeError("params must be a dict")
        self._check_open()
        rows = []
        with self._lock:
            for key, value in params.items():
                _check_key(key, "param name")
                text, num = _param_text(value)
                old = self._params.get(key)
                if old is not None and old != text:
                    raise ValueError(f"param {key!r} is already {old!r}; parameters are "
                                     "immutable within a run (log a metric or a tag instead)")
                if old is None:
                    self._params[key] = text
                    rows.append((self.id, self.experiment, key, text, num))
            self._pending_params += rows
        self._maybe_flush()

    def set_tag(self, key: str, value: str) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, str]) -> None:
        if not isinstance(tags, Mapping):
            raise TypeError("tags must be a dict")
        self._check_open()
        with self._lock:
            for key, value in tags.items():
                _check_key(key, "tag name")
                if not isinstance(value, str) or len(value) > 4000:
                    raise TypeError(f"tag {key!r} must be a string of at most 4000 characters")
                self._pending_tags[key] = value
        self._maybe_flush()

    def log_metric(self, key: str, value: float, *, step: int | None = None,
                   n: int | None = None) -> None:
        """A metric value at ``step`` (default: one past this key's last step).

        ``n`` is the number of examples the value was computed on; best-run selection uses
        it to refuse winners measured on too little data.
        """
        self.log_metrics({key: value}, step=step, n=n)

    def log_metrics(self, metrics: Mapping[str, float], *, step: int | None = None,
                    n: int | None = None) -> None:
        if not isinstance(metrics, Mapping):
            raise TypeError("metrics must be a dict of name -> number")
        if step is not None and (isinstance(step, bool) or not isinstance(step, (int,
                                                                                np.integer))
                                 or step < 0):
            raise ValueError(f"step must be an integer >= 0, got {step!r}")
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer))
                              or n < 0):
            raise ValueError(f"n must be an integer >= 0 (examples evaluated), got {n!r}")
        self._check_open()
        now = now_us()
        with self._lock:
            for key, value in metrics.items():
                _check_key(key, "metric name")
                v = _check_value(value, f"metric {key!r}")
                s = int(step) if step is not None else self._steps.get(key, -1) + 1
                self._steps[key] = max(self._steps.get(key, -1), s)
                self._pending_metrics.append((self.id, key, s, v,
                                              None if n is None else int(n), now))
        self._maybe_flush()

    def log_artifact(self, name: str, data: bytes | str | os.PathLike) -> str:
        """Store bytes (or a file's contents) under ``name``; returns its SHA-256. Identical
        artifacts are stored once."""
        _check_key(name, "artifact name")
        self._check_open()
        if isinstance(data, (str, os.PathLike)):
            with open(os.fspath(data), "rb") as fh:
                data = fh.read()
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("data must be bytes or a file path")
        data = bytes(data)
        digest = sha256_hex(data)
        self._tracker._artifacts.put(digest, data)
        with self._tracker._db.transaction() as tx:
            tx.execute("INSERT INTO tracking_artifacts (run_id, name, digest, size) VALUES "
                       "(?, ?, ?, ?) ON CONFLICT (run_id, name) DO UPDATE SET digest = "
                       "excluded.digest, size = excluded.size", (self.id, name, digest,
                                                                  len(data)))
        return digest

    def set_model_version(self, name: str, version: str) -> None:
        """Record the registry version this run produced."""
        check_name(name, "name")
        if not isinstance(version, str) or not version:
            raise ValueError("version must be a version string such as '1.2.0'")
        with self._tracker._db.transaction() as tx:
            tx.execute("UPDATE tracking_runs SET model_name = ?, model_version = ? WHERE id = ?",
                       (name, version, self.id))

    def register_model(self, registry: Any, name: str, model: Any, **kwargs: Any) -> Any:
        """Register ``model`` with this run as its lineage and link the version here."""
        self.flush()
        v = registry.register(name, model, run_id=self.id, **kwargs)
        self.set_model_version(v.name, v.version)
        return v

    def _maybe_flush(self) -> None:
        pending = len(self._pending_metrics) + len(self._pending_params) + len(
            self._pending_tags)
        if pending >= self._FLUSH_RECORDS or (
            time.monotonic() - self._last_flush > self._FLUSH_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        """Commit everything logged so far."""
        with self._lock:
            params, self._pending_params = self._pending_params, []
            tags, self._pending_tags = self._pending_tags, {}
            metrics, self._pending_metrics = self._pending_metrics, []
            self._last_flush = time.monotonic()
        if not (params or tags or metrics):
            return
        try:
            self._tracker._write_records(self.experiment, params,
                                         [(self.id, k, v) for k, v in tags.items()], metrics)
        except BaseException:
            with self._lock:  # keep them for the next attempt
                self._pending_params = params + self._pending_params
                self._pending_tags = {**tags, **self._pending_tags}
                self._pending_metrics = metrics + self._pending_metrics
            raise

    def end(self, status: str = "finished") -> None:
        """Commit and close the run with ``status`` ("finished", "failed" or "killed")."""
        if status not in _STATUSES[1:]:
            raise ValueError(f"status must be one of {_STATUSES[1:]}, got {status!r}")
        if self._ended:
            return
        self.flush()
        with self._tracker._db.transaction() as tx:
            tx.execute("UPDATE tracking_runs SET status = ?, ended_us = ? WHERE id = ?",
                       (status, now_us(), self.id))
        self._ended = True

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.end("finished")
        else:
            self.end("killed" if exc_type is KeyboardInterrupt else "failed")


# ---------------------------------------------------------------------------------------------
# Tracker
# ---------------------------------------------------------------------------------------------


class Tracker:
    """Runs, their parameters, metrics, tags, artifacts and model versions, in SQLite or
    PostgreSQL.

    Parameters
    ----------
    location : str or path
        A directory (``tracking.db`` + ``artifacts/``), ``sqlite:///runs.db`` or
        ``postgresql://...`` (artifacts in a table of the same database).
    actor : str, optional
        Who starts runs (default ``$DUCKLEARN_ACTOR`` or the OS user).

    Examples
    --------
    >>> import tempfile
    >>> from ducklearn.tracking import Tracker
    >>> tracker = Tracker(tempfile.mkdtemp())
    >>> for lr in (0.1, 0.01):
    ...     with tracker.start_run("churn", params={"lr": lr}) as run:
    ...         run.log_metric("val_accuracy", 0.80 if lr == 0.1 else 0.86, n=20_000)
    >>> best = tracker.best_run("churn", "val_accuracy", min_samples=1_000)
    >>> best.run.params["lr"], best.significant
    ('0.01', True)
    >>> [r.params["lr"] for r in tracker.search("churn", filter="metrics.val_accuracy > 0.85")]
    ['0.01']
    >>> tracker.close()
    """

    def __init__(self, location: Any, *, actor: str | None = None):
        from ducklearn.registry.blobs import DatabaseBlobStore, LocalBlobStore

        if isinstance(location, os.PathLike):
            location = os.fspath(location)
        dialect, target = parse_url(location, argument="location")
        artifacts_dir = None
        if dialect == "sqlite":
            if "://" in location or location.endswith((".db", ".sqlite", ".sqlite3")) or (
                os.path.isfile(location)
            ):
                db_url = os.path.abspath(target)
                artifacts_dir = db_url + ".artifacts"
            else:
                os.makedirs(location, exist_ok=True)
                db_url = os.path.join(os.path.abspath(location), "tracking.db")
                artifacts_dir = os.path.join(os.path.abspath(location), "artifacts")
        else:
            db_url = location
        self.actor = actor or os.environ.get("DUCKLEARN_ACTOR") or getpass.getuser()
        if not isinstance(self.actor, str) or not self.actor or len(self.actor) > 128:
            raise ValueError(f"actor must be a non-empty name, got {self.actor!r}")
        self._db = Database(db_url, argument="location")
        self.location = location  # as given: Tracker(t.location) reopens this store
        self._db.ensure_schema("tracking", SCHEMA_VERSION, _SCHEMA)
        self._artifacts = (LocalBlobStore(artifacts_dir) if artifacts_dir else
                           DatabaseBlobStore(self._db, table="tracking_blobs"))
        if self._db.dialect == "sqlite" and self._db.query_one(
            "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'"
        ) is None and int(self._db.query_one("SELECT count(*) FROM tracking_runs")[0]) >= 1000:
            self._analyze()  # a store filled run by run, never analyzed yet

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------------

    def start_run(self, experiment: str, *, name: str | None = None,
                  params: Mapping[str, Any] | None = None,
                  tags: Mapping[str, str] | None = None,
                  parent_run: str | None = None) -> Run:
        """Open a run in ``experiment`` (created implicitly)."""
        check_name(experiment, "experiment")
        if name is not None and (not isinstance(name, str) or len(name) > 256):
            raise ValueError("name must be a string of at most 256 characters")
        if parent_run is not None and not (isinstance(parent_run, str)
                                           and _RUN_ID_RE.fullmatch(parent_run)):
            raise ValueError(f"parent_run must be a run id, got {parent_run!r}")
        run_id = uuid.uuid4().hex
        with self._db.transaction() as tx:
            tx.execute("INSERT INTO tracking_runs (id, experiment, name, status, actor, "
                       "started_us, parent_run) VALUES (?, ?, ?, 'running', ?, ?, ?)",
                       (run_id, experiment, name, self.actor, now_us(), parent_run))
        run = Run(self, run_id, experiment)
        if params:
            run.log_params(params)
        if tags:
            run.set_tags(tags)
        run.flush()
        return run

    def _write_records(self, experiment: str, params: list[tuple], tags: list[tuple],
                       metrics: list[tuple]) -> None:
        with self._db.transaction() as tx:
            for run_id, exp, key, text, num in params:
                row = tx.one("INSERT INTO tracking_params (run_id, experiment, key, value, num) "
                             "VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, key) DO UPDATE SET "
                             "value = tracking_params.value RETURNING value",
                             (run_id, exp, key, text, num))
                if row[0] != text:
                    raise ValueError(f"param {key!r} of run {run_id} is already {row[0]!r}")
            for run_id, key, value in tags:
                tx.execute("INSERT INTO tracking_tags (run_id, key, value) VALUES (?, ?, ?) "
                           "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
                           (run_id, key, value))
            if metrics:
                tx.many("INSERT INTO tracking_metrics (run_id, key, step, value, n, time_us) "
                        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, key, step) DO UPDATE "
                        "SET value = excluded.value, n = excluded.n, time_us = excluded.time_us",
                        metrics)
                latest: dict[tuple[str, str], tuple] = {}
                for run_id, key, step, value, n, _ in metrics:
                    cur = latest.get((run_id, key))
                    if cur is None or step >= cur[0]:
                        latest[(run_id, key)] = (step, value, n)
                tx.many("INSERT INTO tracking_latest (run_id, experiment, key, step, value, n) "
                        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, key) DO UPDATE SET "
                        "step = excluded.step, value = excluded.value, n = excluded.n "
                        "WHERE excluded.step >= tracking_latest.step",
                        [(r, experiment, k, s, v, n) for (r, k), (s, v, n) in latest.items()])

    def import_runs(self, records: Iterable[Mapping[str, Any]], *, batch: int = 2000) -> int:
        """Bulk-load finished runs (from another tracker, a migration or a benchmark).

        Each record: ``experiment`` and optionally ``name``, ``status``, ``params``,
        ``tags``, ``metrics`` ({key: value} or {key: [(step, value, n), ...]}), ``n``
        (samples for scalar metrics), ``started``/``ended`` (times), ``model``
        (("name", "version")). Returns the number of runs written.
        """
        total = 0
        buf: list[Mapping[str, Any]] = []
        for rec in records:
            buf.append(rec)
            if len(buf) >= batch:
                total += self._import_batch(buf)
                buf = []
        if buf:
            total += self._import_batch(buf)
        if total:
            self._analyze()
        return total

    _TABLES = ("tracking_runs", "tracking_params", "tracking_latest", "tracking_tags",
               "tracking_metrics")

    def _analyze(self) -> None:
        """Refresh planner statistics. Without them PostgreSQL takes just-filled tables for
        empty and SQLite takes every index for selective; both then pick plans ~50x slower
        (e.g. walking all runs of an experiment instead of probing 100 ids)."""
        if self._db.dialect == "postgresql":
            with self._db.transaction() as tx:
                tx.execute("ANALYZE " + ", ".join(self._TABLES))
            return
        conn = self._db.conn()
        conn.execute("PRAGMA analysis_limit = 1000")  # sampled: milliseconds, not seconds
        for table in self._TABLES:
            conn.execute(f"ANALYZE {table}")

    def _import_batch(self, records: list[Mapping[str, Any]]) -> int:
        runs, params, tags, metrics, latest = [], [], [], [], []
        now = now_us()
        for rec in records:
            if not isinstance(rec, Mapping):
                raise TypeError("each record must be a dict")
            exp = check_name(rec.get("experiment"), "experiment")
            run_id = uuid.uuid4().hex
            status = rec.get("status", "finished")
            if status not in _STATUSES:
                raise ValueError(f"status must be one of {_STATUSES}, got {status!r}")
            started = to_us(rec["started"], argument="started") if "started" in rec else now
            ended = to_us(rec["ended"], argument="ended") if "ended" in rec else (
                None if status == "running" else started)
            model = rec.get("model")
            runs.append((run_id, exp, rec.get("name"), status, self.actor, started, ended,
                         None, model[0] if model else None, model[1] if model else None))
            for key, value in (rec.get("params") or {}).items():
                text, num = _param_text(value)
                params.append((run_id, exp, _check_key(key, "param name"), text, num))
            for key, value in (rec.get("tags") or {}).items():
                tags.append((run_id, _check_key(key, "tag name"), str(value)))
            default_n = rec.get("n")
            for key, value in (rec.get("metrics") or {}).items():
                _check_key(key, "metric name")
                series = value if isinstance(value, (list, tuple)) else [(0, value, default_n)]
                best = None
                for item in series:
                    step, v, n = (tuple(item) + (default_n,))[:3]
                    v = _check_value(v, f"metric {key!r}")
                    metrics.append((run_id, key, int(step), v, n, started))
                    if best is None or int(step) >= best[0]:
                        best = (int(step), v, n)
                latest.append((run_id, exp, key, best[0], best[1], best[2]))
        with self._db.transaction() as tx:
            tx.insert_rows("tracking_runs", "id, experiment, name, status, actor, started_us, "
                           "ended_us, parent_run, model_name, model_version", runs)
            tx.insert_rows("tracking_params", "run_id, experiment, key, value, num", params)
            tx.insert_rows("tracking_tags", "run_id, key, value", tags)
            tx.insert_rows("tracking_metrics", "run_id, key, step, value, n, time_us", metrics)
            tx.insert_rows("tracking_latest", "run_id, experiment, key, step, value, n", latest)
        return len(runs)

    # -- reading ------------------------------------------------------------------------------

    def _hydrate(self, rows: Sequence[Sequence[Any]]) -> list[RunInfo]:
        if not rows:
            return []
        ids = [r[0] for r in rows]
        params: dict[str, dict[str, str]] = {i: {} for i in ids}
        metrics: dict[str, dict[str, float]] = {i: {} for i in ids}
        samples: dict[str, dict[str, int | None]] = {i: {} for i in ids}
        tags: dict[str, dict[str, str]] = {i: {} for i in ids}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ", ".join("?" * len(chunk))
            for run_id, key, value in self._db.query(
                f"SELECT run_id, key, value FROM tracking_params WHERE run_id IN ({marks})",
                chunk
            ):
                params[run_id][key] = value
            for run_id, key, value, n in self._db.query(
                f"SELECT run_id, key, value, n FROM tracking_latest WHERE run_id IN ({marks})",
                chunk
            ):
                metrics[run_id][key] = float(value)
                samples[run_id][key] = None if n is None else int(n)
            for run_id, key, value in self._db.query(
                f"SELECT run_id, key, value FROM tracking_tags WHERE run_id IN ({marks})",
                chunk
            ):
                tags[run_id][key] = value
        return [RunInfo(id=r[0], experiment=r[1], name=r[2], status=r[3], actor=r[4],
                        started_at=from_us(int(r[5])),
                        ended_at=None if r[6] is None else from_us(int(r[6])),
                        parent_run=r[7], model_name=r[8], model_version=r[9],
                        params=dict(sorted(params[r[0]].items())),
                        metrics=dict(sorted(metrics[r[0]].items())),
                        metric_samples=dict(sorted(samples[r[0]].items())),
                        tags=dict(sorted(tags[r[0]].items())))
                for r in rows]

    _RUN_COLS = ("r.id, r.experiment, r.name, r.status, r.actor, r.started_us, r.ended_us, "
                 "r.parent_run, r.model_name, r.model_version")

    def get_run(self, run_id: str) -> RunInfo:
        if not isinstance(run_id, str) or not _RUN_ID_RE.fullmatch(run_id):
            raise ValueError(f"run_id must be a 32-character hex id, got {run_id!r}")
        rows = self._db.query(f"SELECT {self._RUN_COLS} FROM tracking_runs r WHERE r.id = ?",
                              (run_id,))
        if not rows:
            raise KeyError(f"no run {run_id}")
        return self._hydrate(rows)[0]

    def _query(self, experiment: str | None, filter: str | None, order_by: str | None,
               limit: int | None, offset: int, extra_where: Sequence[str] = (),
               extra_params: Sequence[Any] = (), count: bool = False):
        where: list[str] = list(extra_where)
        params: list[Any] = list(extra_params)
        if experiment is not None:
            check_name(experiment, "experiment")
            where.append("r.experiment = ?")
            params.append(experiment)
        if filter:
            w, p = _filter_sql(self._db, _parse_filter(filter))
            where += w
            params += p
        order_sql, join, join_params = "r.started_us DESC, r.id", "", []
        if order_by:
            m = re.fullmatch(r"\s*(metrics\.|params\.)?([A-Za-z0-9_][A-Za-z0-9_.:/-]*|`[^`]+`)"
                             r"(?:\s+(asc|desc))?\s*", order_by, re.IGNORECASE)
            if m is None:
                raise ValueError(f"order_by {order_by!r}: use 'metrics.NAME [DESC]', "
                                 "'params.NAME', 'started' or 'name'")
            prefix, key, direction = m.group(1), m.group(2).strip("`"), (m.group(3) or "asc")
            direction = direction.upper()
            if prefix == "metrics.":
                # Runs without the metric drop out: ranking by it says nothing about them.
                join = " JOIN tracking_latest o ON o.run_id = r.id AND o.key = ?"
                join_params = [key]
                if experiment is not None:
                    # Bound to the literal so the (experiment, key, value) index yields the
                    # runs already in order and LIMIT stops the scan early.
                    join += " AND o.experiment = ?"
                    join_params.append(experiment)
                order_sql = f"o.value {direction}, r.id"
            elif prefix == "params.":
                join = " JOIN tracking_params o ON o.run_id = r.id AND o.key = ?"
                join_params = [key]
                order_sql = f"o.num {direction}, o.value {direction}, r.id"
            elif key in ("started", "name", "status", "experiment"):
                col = "started_us" if key == "started" else key
                order_sql = f"r.{col} {direction}, r.id"
            else:
                raise ValueError(f"order_by {order_by!r}: unknown column {key!r}")
        where_sql = (" WHERE " + " AND ".join(where)) if where else ""
        source = f"tracking_runs r{join}{where_sql}"
        all_params = join_params + params
        if count:
            return int(self._db.query_one(f"SELECT count(*) FROM {source}", all_params)[0])
        sql = f"SELECT {self._RUN_COLS} FROM {source} ORDER BY {order_sql}"
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ValueError(f"limit must be an integer >= 1 or None, got {limit!r}")
            sql += f" LIMIT {int(limit)}"
        if offset:
            if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
                raise ValueError(f"offset must be an integer >= 0, got {offset!r}")
            if limit is None and self._db.dialect == "sqlite":
                sql += " LIMIT -1"  # SQLite accepts OFFSET only after a LIMIT
            sql += f" OFFSET {int(offset)}"
        return self._hydrate(self._db.query(sql, all_params))

    def search(self, experiment: str | None = None, *, filter: str | None = None,
               order_by: str | None = None, limit: int | None = 100, offset: int = 0
               ) -> list[RunInfo]:
        """Runs matching a filter, e.g. ``"metrics.auc > 0.8 and params.optimizer =
        'adam' and tags.team = 'ranking' and status = 'finished'"`` (comparisons joined
        by ``and``; metrics compare their latest value; params compare as numbers when the
        literal is a number). ``order_by``: ``"metrics.auc DESC"``, ``"params.lr"``,
        ``"started"`` (default: newest first) or ``"name"``."""
        return self._query(experiment, filter, order_by, limit, offset)

    def count(self, experiment: str | None = None, *, filter: str | None = None) -> int:
        return self._query(experiment, filter, None, None, 0, count=True)

    def experiments(self) -> list[dict[str, Any]]:
        """[{name, runs, last_started}] for every experiment."""
        return [{"name": e, "runs": int(n), "last_started": from_us(int(t)).isoformat()}
                for e, n, t in self._db.query(
                    "SELECT experiment, count(*), max(started_us) FROM tracking_runs "
                    "GROUP BY experiment ORDER BY experiment")]

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float, int | None]]:
        """[(step, value, n)] of one metric of a run, by step."""
        _check_key(key, "metric name")
        return [(int(s), float(v), None if n is None else int(n)) for s, v, n in
                self._db.query("SELECT step, value, n FROM tracking_metrics WHERE run_id = ? "
                               "AND key = ? ORDER BY step", (run_id, key))]

    def artifact(self, run_id: str, name: str) -> bytes:
        row = self._db.query_one("SELECT digest FROM tracking_artifacts WHERE run_id = ? AND "
                                 "name = ?", (run_id, name))
        if row is None:
            raise KeyError(f"run {run_id} has no artifact {name!r}")
        return self._artifacts.get(row[0])

    def artifacts(self, run_id: str) -> dict[str, int]:
        return {n: int(s) for n, s in self._db.query(
            "SELECT name, size FROM tracking_artifacts WHERE run_id = ? ORDER BY name",
            (run_id,))}

    def compare(self, run_ids: Sequence[str], *, metrics: Sequence[str] | None = None,
                params: Sequence[str] | None = None) -> Comparison:
        """Runs side by side (metrics: latest values)."""
        if isinstance(run_ids, str) or not run_ids:
            raise ValueError("run_ids must be a non-empty list of run ids")
        runs = [self.get_run(r) for r in run_ids]
        metric_keys = list(metrics) if metrics is not None else sorted(
            {k for r in runs for k in r.metrics})
        all_params = sorted({k for r in runs for k in r.params})
        differing = [k for k in all_params if len({r.params.get(k) for r in runs}) > 1]
        param_keys = list(params) if params is not None else all_params
        rows = []
        for r in runs:
            row: dict[str, Any] = {"run_id": r.id, "name": r.name, "status": r.status,
                                   "model": r.model_ref}
            row.update({f"params.{k}": r.params.get(k) for k in param_keys})
            row.update({f"metrics.{k}": r.metrics.get(k) for k in metric_keys})
            rows.append(row)
        return Comparison(rows=rows, differing_params=differing, metrics=metric_keys)

    def best_run(self, experiment: str, metric: str, *, mode: str = "max",
                 min_samples: int = 1000, filter: str | None = None, z: float = 1.96,
                 require_significant: bool = False) -> BestRun:
        """The run with the best latest value of a validation ``metric``.

        Only runs whose metric was computed on at least ``min_samples`` examples (``n`` in
        :meth:`Run.log_metric`) compete: a 0.99 measured on 40 examples does not beat 0.95
        measured on 50,000. For proportion metrics (values in [0, 1]: accuracy, AUC,
        precision...) the margin over the runner-up is compared with its standard error;
        ``significant`` says whether it exceeds ``z`` standard errors, and
        ``require_significant=True`` refuses a winner that does not.
        Raises :class:`InsufficientDataError` when no run qualifies.
        """
        check_name(experiment, "experiment")
        _check_key(metric, "metric")
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
            raise ValueError(f"min_samples must be an integer >= 1, got {min_samples!r}")
        direction = "DESC" if mode == "max" else "ASC"
        conds, params = ["o.experiment = ?", "o.key = ?"], [experiment, metric]
        if filter:
            w, p = _filter_sql(self._db, _parse_filter(filter))
            conds += w
            params += p
        where = " AND ".join(conds)
        counted = (f" FROM tracking_latest o JOIN tracking_runs r ON r.id = o.run_id WHERE "
                   f"{where}" if filter else f" FROM tracking_latest o WHERE {where}")
        total, qualified = self._db.query_one(
            "SELECT count(*), COALESCE(sum(CASE WHEN o.n >= ? THEN 1 ELSE 0 END), 0)" + counted,
            [min_samples, *params])
        total, qualified = int(total), int(qualified)
        # The (experiment, key, value) index hands rows over in rank order; the scan stops
        # at the first two that were measured on enough data.
        ranked = self._hydrate(self._db.query(
            f"SELECT {self._RUN_COLS} FROM tracking_latest o JOIN tracking_runs r ON "
            f"r.id = o.run_id WHERE {where} AND o.n >= ? ORDER BY o.value {direction}, r.id "
            "LIMIT 2", [*params, min_samples]))
        if not ranked:
            raise InsufficientDataError(
                f"no run of {experiment!r} has {metric!r} computed on >= {min_samples} "
                f"examples ({total} run(s) report it; log it with n=...); lower min_samples "
                "only if that little data is really enough")
        best, runner = ranked[0], (ranked[1] if len(ranked) > 1 else None)
        value, n = best.metrics[metric], int(best.metric_samples[metric])
        margin = std_error = significant = None
        if runner is not None:
            v2, n2 = runner.metrics[metric], int(runner.metric_samples[metric])
            margin = abs(value - v2)
            if 0.0 <= value <= 1.0 and 0.0 <= v2 <= 1.0:
                std_error = math.sqrt(value * (1 - value) / n + v2 * (1 - v2) / n2)
                significant = margin > z * std_error if std_error > 0 else margin > 0
        if require_significant and significant is not True:
            raise InsufficientDataError(
                f"the best run {best.id} ({metric}={value:.6g}, n={n}) does not beat the "
                f"runner-up" + (f" ({runner.metrics[metric]:.6g}) by {z} standard errors "
                                f"({std_error:.3g})" if std_error is not None and runner
                                else " in a way that can be judged")
                + "; evaluate on more data before choosing")
        return BestRun(run=best, metric=metric, value=value, samples=n, runner_up=runner,
                       margin=margin, std_error=std_error, significant=significant,
                       considered=qualified, excluded_low_samples=total - qualified)

    def __repr__(self) -> str:
        return f"Tracker({self.location!r})"
