"""Registry, event store and tracking throughput on SQLite and PostgreSQL.

Measures, for each backend: model registration and load (a small logistic regression and a
~1 MB MLP with Adam state), alias resolution, event appends (batched and one durable event
at a time) and chain verification, the storage of two versions that share 90% of their
tensors, and experiment-tracking queries over 100,000 runs.

    python benchmarks/bench_registry.py [--postgres URL] [--runs 100000] [--json FILE]

PostgreSQL comes from ``--postgres``, else ``$DUCKLEARN_TEST_POSTGRES_URL``, else a throwaway
cluster started with ``initdb``/``pg_ctl`` on a free loopback port (as the ``postgres`` user
when run as root); without any of these the PostgreSQL rows say why they did not run. Each
measurement uses a fresh database (PostgreSQL: ``CREATE DATABASE``, dropped afterwards).

Writes its section of ``benchmarks/RESULTS.md`` between ``<!-- BEGIN registry -->`` and
``<!-- END registry -->`` (appended if absent; other sections are left alone).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import glob
import json
import os
import platform
import pwd
import re
import shlex
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from results_md import write_section

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- BEGIN registry -->", "<!-- END registry -->"


# ---------------------------------------------------------------------------------------------
# Workloads (append-only: a changed definition gets a new name)
# ---------------------------------------------------------------------------------------------


def small_model_v1():
    """'small_v1': logistic regression on 20 standardized features (21 parameters)."""
    from ducklearn.linear import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 20)).astype(np.float32)
    return LogisticRegression(scale=True, max_epochs=2).fit(X, (X[:, 0] > 0).astype(int))


def mlp_model_v1():
    """'mlp_v1': MLP 64-256-256-1 with Adam (83,713 parameters; 1.0 MB with its moments)."""
    from ducklearn.nn import MLPClassifier

    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 64)).astype(np.float32)
    return MLPClassifier(hidden_layer_sizes=(256, 256), scale=True, max_epochs=1,
                         seed=1).fit(X, (X[:, 0] * X[:, 1] > 0).astype(int))


# ---------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_server(url: str | None) -> Iterator[tuple[str | None, str]]:
    """(admin URL or None, how it was obtained / why not)."""
    url = url or os.environ.get("DUCKLEARN_TEST_POSTGRES_URL")
    if url:
        yield url, "given server"
        return
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = found[-1] if found else shutil.which("initdb")
    if initdb is None:
        yield None, "no PostgreSQL server (pass --postgres URL or install postgresql)"
        return
    bindir = os.path.dirname(initdb)
    root = tempfile.mkdtemp(prefix="ducklearn-bench-pg-")
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if os.geteuid() == 0:
        pwd.getpwnam("postgres")
        shutil.chown(root, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = os.path.join(root, "data")
    try:
        subprocess.run([*as_user, f"{bindir}/initdb", "-D", data, "-U", "postgres", "-A",
                        "trust", "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
        subprocess.run([*as_user, f"{bindir}/pg_ctl", "-D", data, "-l",
                        os.path.join(root, "log"), "-w", "start", "-o",
                        f"-p {port} -k {root} -c listen_addresses=127.0.0.1"],
                       check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres", "throwaway cluster"
    finally:
        subprocess.run([*as_user, f"{bindir}/pg_ctl", "-D", data, "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def fresh_location(backend: str, admin_url: str | None) -> Iterator[str]:
    if backend == "sqlite":
        root = tempfile.mkdtemp(prefix="ducklearn-bench-")
        try:
            yield os.path.join(root, "store")
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------


def _timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def bench_registry(location: str, n_small: int, n_mlp: int) -> dict[str, Any]:
    from ducklearn.registry import Registry

    res: dict[str, Any] = {}
    reg = Registry(location, actor="bench")
    try:
        for label, make, n in (("small", small_model_v1, n_small), ("mlp", mlp_model_v1, n_mlp)):
            model = make()
            tensor_bytes = sum(a.nbytes for a in model.state()[0].values())
            t0 = time.perf_counter()
            for i in range(n):
                model.params[0] += 1e-3  # new content: a new (minor) version every time
                reg.register(label, model, metrics={"i": float(i)})
            dt = time.perf_counter() - t0
            res[f"register_{label}_per_s"] = n / dt
            res[f"register_{label}_mb_per_s"] = n * tensor_bytes / dt / 2**20
            res[f"{label}_tensor_bytes"] = tensor_bytes
            versions = [v.version for v in reg.versions(label)]
            times = _timed(lambda v=versions, name=label: [reg.load(name, x) for x in v[-10:]],
                           3)
            res[f"load_{label}_per_s"] = 10 / min(times)
        reg.promote("small", "staging", "1.3.0", reason="bench")
        reg.resolve("small", "staging")
        t = _timed(lambda: [reg.resolve("small", "staging") for _ in range(2000)], 3)
        res["resolve_us"] = min(t) / 2000 * 1e6
        t = _timed(lambda: [reg.version_at("small", "staging", time.time())
                            for _ in range(2000)], 3)
        res["version_at_us"] = min(t) / 2000 * 1e6
        t0 = time.perf_counter()
        for i in range(50):
            reg.promote("small", "staging", f"1.{i % 10}.0", reason="bench")
        res["promote_per_s"] = 50 / (time.perf_counter() - t0)
        res["storage_bytes"] = reg.storage()["stored_bytes"]
    finally:
        reg.close()
    return res


def bench_dedupe(location: str) -> dict[str, Any]:
    """Two versions sharing 90% of their tensor bytes: stored size of both over one."""
    from ducklearn.nn import MLPRegressor
    from ducklearn.registry import Registry

    rng = np.random.default_rng(2)
    X = rng.normal(size=(64, 128)).astype(np.float32)
    model = MLPRegressor(hidden_layer_sizes=(256,) * 10, optimizer="sgd", lr=1e-4,
                         max_epochs=1).fit(X, X[:, 0])
    with Registry(location, actor="bench") as reg:
        reg.register("deep", model)
        one = reg.storage()["stored_bytes"]
        layer = model.layers[5]   # one of ten 256×256 hidden layers, ~10% of the bytes
        model.params[layer["w_offset"]:layer["b_offset"] + layer["out"]] *= 1.1
        reg.register("deep", model)
        two = reg.storage()["stored_bytes"]
        raw = sum(a.nbytes for a in model.state()[0].values())
    return {"dedupe_one": one, "dedupe_two": two, "dedupe_ratio": two / one,
            "dedupe_raw": raw}


def bench_events(location: str, n: int) -> dict[str, Any]:
    from ducklearn.events import EventStore

    res: dict[str, Any] = {}
    with EventStore(location) as store:
        payload = {"model": "churn", "version": "1.4.0", "score": 0.73, "latency_us": 812}
        t0 = time.perf_counter()
        for i in range(n):
            store.append("prediction.sampled", actor="server", subject=f"user:{i % 1000}",
                         payload=payload)
        t_append = time.perf_counter() - t0
        store.flush()
        dt = time.perf_counter() - t0
        res["append_call_us"] = t_append / n * 1e6
        res["append_per_s"] = n / dt
        t0 = time.perf_counter()
        for _ in range(300):
            store.append("checkpoint.saved", actor="learner", subject="churn@1.4.0")
            store.flush()
        res["durable_per_s"] = 300 / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        report = store.verify()
        res["verify_per_s"] = report.checked / (time.perf_counter() - t0)
        assert report.ok
        t = _timed(lambda: store.query(model="churn", type="checkpoint.saved", limit=100), 5)
        res["query_ms"] = min(t) * 1e3
    return res


def bench_tracking(location: str, n_runs: int) -> dict[str, Any]:
    from ducklearn.tracking import Tracker

    res: dict[str, Any] = {}
    rng = np.random.default_rng(3)
    with Tracker(location, actor="bench") as tracker:
        records = ({"experiment": "ctr", "params": {"lr": float(rng.random()),
                                                    "optimizer": ["adam", "sgd"][i % 2],
                                                    "l2": float(rng.random() * 0.01)},
                    "tags": {"shard": str(i % 16)},
                    "metrics": {"val_auc": float(rng.random()),
                                "loss": [(s, float(rng.random()), None) for s in range(3)]},
                    "n": int(rng.integers(100, 200_000))} for i in range(n_runs))
        t0 = time.perf_counter()
        tracker.import_runs(records)
        res["import_runs_per_s"] = n_runs / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(200):
            with tracker.start_run("live", params={"i": i}) as run:
                for step in range(5):
                    run.log_metric("loss", 1.0 / (step + 1), step=step)
                run.log_metric("val_auc", 0.5 + i / 1000, n=10_000)
        res["live_runs_per_s"] = 200 / (time.perf_counter() - t0)
        queries = {
            "top 20 by a metric": lambda: tracker.search("ctr", order_by="metrics.val_auc DESC",
                                                         limit=20),
            "filter metric + param, top 20": lambda: tracker.search(
                "ctr", filter="metrics.val_auc > 0.99 and params.optimizer = 'adam'",
                order_by="metrics.val_auc DESC", limit=20),
            "filter on a numeric param": lambda: tracker.search(
                "ctr", filter="params.lr < 0.001", limit=100),
            "best run, min 100k samples": lambda: tracker.best_run("ctr", "val_auc",
                                                                   min_samples=100_000),
            "newest 20 runs": lambda: tracker.search("ctr", limit=20),
            "count matching a filter": lambda: tracker.count(
                "ctr", filter="metrics.val_auc > 0.5"),
        }
        res["queries_ms"] = {}
        for name, q in queries.items():
            q()
            t = _timed(q, 5)
            res["queries_ms"][name] = statistics.median(t) * 1e3
    return res


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def _revision() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(HERE), "status", "--porcelain"],
                               capture_output=True, text=True).stdout.strip()
        return rev + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = re.search(r"model name\s*:\s*(.+)", text)
        return f"{model.group(1).strip() if model else platform.processor()}, " \
               f"{os.cpu_count()} logical CPUs"
    except OSError:
        return f"{platform.processor()}, {os.cpu_count()} logical CPUs"


def _fmt(v: Any, spec: str) -> str:
    return "not run" if v is None else format(v, spec)


def render(res: dict[str, Any]) -> str:
    b = res["backends"]
    s, p = b.get("sqlite", {}), b.get("postgresql", {})

    def row(label: str, key: str, spec: str, unit: str = "", section: str = "registry"):
        sv = s.get(section, {}).get(key)
        pv = p.get(section, {}).get(key)
        return f"| {label} | {_fmt(sv, spec)}{unit if sv is not None else ''} | " \
               f"{_fmt(pv, spec)}{unit if pv is not None else ''} |"

    lines = [
        BEGIN,
        "## Registry, events and tracking (`benchmarks/bench_registry.py`)",
        "",
        "Generated by `benchmarks/bench_registry.py`; every number below comes from one run, "
        "both backends on the same machine in the same process, a fresh database for each "
        "measurement. Reproduce with:",
        "",
        "```",
        res["command"],
        "```",
        "",
        f"- Date (UTC): {res['date']}; wall time {res['wall_s']:.0f} s; load average "
        f"{res['load_start']} at start, {res['load_end']} at end",
        f"- ducklearn revision: {res['revision']}; CPU: {res['cpu']}",
        f"- SQLite {sqlite3.sqlite_version} (WAL, synchronous=FULL, one file per store); "
        f"PostgreSQL: {res['postgres']}",
        f"- Versions: python {platform.python_version()}, ducklearn {res['version']}, numpy "
        f"{np.__version__}, psycopg {res.get('psycopg', 'n/a')}, safetensors "
        f"{res['safetensors']}, zstandard {res['zstandard']}",
        "",
        "### Registry",
        "",
        f"Workloads: `small_v1` (logistic regression, 20 features, "
        f"{s.get('registry', {}).get('small_tensor_bytes', 0):,} bytes of tensors) and "
        f"`mlp_v1` (MLP 64-256-256-1 with its Adam moments and scaler, "
        f"{s.get('registry', {}).get('mlp_tensor_bytes', 0):,} bytes). Every registration "
        "has new content (a new minor version): blobs written, one catalog transaction, its "
        "audit event in the same transaction. Loads verify every chunk's and every tensor's "
        "SHA-256. Alias resolution includes the permission check.",
        "",
        "| operation | SQLite | PostgreSQL |",
        "|---|---|---|",
        row("register `small_v1`, versions/s", "register_small_per_s", ",.0f"),
        row("register `mlp_v1`, versions/s", "register_mlp_per_s", ",.1f"),
        row("register `mlp_v1`, MiB of tensors/s", "register_mlp_mb_per_s", ",.1f"),
        row("load `small_v1` (verified), loads/s", "load_small_per_s", ",.0f"),
        row("load `mlp_v1` (verified), loads/s", "load_mlp_per_s", ",.1f"),
        row("resolve an alias (`resolve`), per call", "resolve_us", ",.0f", " µs"),
        row("alias at a past time (`version_at`), per call", "version_at_us", ",.0f", " µs"),
        row("promote (alias move + history + event), moves/s", "promote_per_s", ",.0f"),
        "",
        "Storage of two versions sharing 90% of their tensors (MLP 128-256×10-1, one hidden "
        "layer changed; chunked content-addressed blobs, zstd over byte-shuffled floats where "
        "it pays):",
        "",
        "| | SQLite | PostgreSQL |",
        "|---|---|---|",
        row("first version, stored bytes", "dedupe_one", ",.0f", section="dedupe"),
        row("both versions, stored bytes", "dedupe_two", ",.0f", section="dedupe"),
        row("ratio (target ≤ 1.2)", "dedupe_ratio", ".3f", section="dedupe"),
        "",
        "### Event store",
        "",
        f"{res['n_events']:,} `prediction.sampled` events appended from one thread "
        "(validated, canonical JSON, hash-chained at commit) and committed in batches by the "
        "background writer; then 300 events each appended and flushed on its own (a durable "
        "commit per event); then the whole chain verified.",
        "",
        "| operation | SQLite | PostgreSQL |",
        "|---|---|---|",
        row("`append` call (returns before the commit)", "append_call_us", ".2f", " µs",
            "events"),
        row("append + batched commit, events/s", "append_per_s", ",.0f", section="events"),
        row("one durable event per commit, events/s", "durable_per_s", ",.0f",
            section="events"),
        row("`verify()`, events/s", "verify_per_s", ",.0f", section="events"),
        row("query by model and type (100 events)", "query_ms", ".2f", " ms", "events"),
        "",
        f"### Experiment tracking at {res['n_runs']:,} runs",
        "",
        f"{res['n_runs']:,} runs bulk-imported (3 params, 1 tag, a validation metric with its "
        "sample count and a 3-step loss each), then 200 runs logged live through "
        "`start_run`/`log_metric`; query times are medians of 5 after one warm-up.",
        "",
        "| operation | SQLite | PostgreSQL |",
        "|---|---|---|",
        row("bulk import, runs/s", "import_runs_per_s", ",.0f", section="tracking"),
        row("live runs (6 metric points each), runs/s", "live_runs_per_s", ",.0f",
            section="tracking"),
    ]
    for name in s.get("tracking", {}).get("queries_ms", {}) or p.get("tracking", {}).get(
            "queries_ms", {}):
        sv = s.get("tracking", {}).get("queries_ms", {}).get(name)
        pv = p.get("tracking", {}).get("queries_ms", {}).get(name)
        lines.append(f"| query: {name} | {_fmt(sv, '.1f')}{' ms' if sv is not None else ''} "
                     f"| {_fmt(pv, '.1f')}{' ms' if pv is not None else ''} |")
    lines += ["", END]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default=None, metavar="URL",
                        help="admin URL of a PostgreSQL server (may CREATE DATABASE)")
    parser.add_argument("--runs", type=int, default=100_000, help="tracked runs (100,000)")
    parser.add_argument("--events", type=int, default=100_000, help="events appended")
    parser.add_argument("--versions", type=int, default=50,
                        help="registrations of the small model (the MLP gets half)")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--json", type=Path, default=None, help="also save raw numbers here")
    args = parser.parse_args(argv)
    for name in ("runs", "events", "versions"):
        if getattr(args, name) < 10:
            parser.error(f"--{name} must be at least 10")
    shown = [a for a in (argv if argv is not None else sys.argv[1:])]
    command = "python benchmarks/bench_registry.py" + "".join(
        f" {shlex.quote(a)}" for a in shown)
    import ducklearn
    import safetensors
    import zstandard

    start = time.perf_counter()
    res: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "load_start": tuple(round(x, 2) for x in os.getloadavg()),
        "revision": _revision(), "cpu": _cpu(), "command": command,
        "version": ducklearn.__version__, "safetensors": safetensors.__version__,
        "zstandard": zstandard.__version__, "n_runs": args.runs, "n_events": args.events,
        "backends": {},
    }
    with postgres_server(args.postgres) as (admin, how):
        backends = ["sqlite"] + (["postgresql"] if admin else [])
        if admin:
            import psycopg

            res["psycopg"] = psycopg.__version__
            with psycopg.connect(admin) as c:
                server = c.execute("SHOW server_version").fetchone()[0]
            res["postgres"] = f"{server} ({how}, loopback TCP)"
        else:
            res["postgres"] = how
        for backend in backends:
            out: dict[str, Any] = {}
            print(f"[{backend}] registry ...", file=sys.stderr)
            with fresh_location(backend, admin) as loc:
                out["registry"] = bench_registry(loc, args.versions, max(10, args.versions // 2))
            with fresh_location(backend, admin) as loc:
                out["dedupe"] = bench_dedupe(loc)
            print(f"[{backend}] events ...", file=sys.stderr)
            with fresh_location(backend, admin) as loc:
                out["events"] = bench_events(loc if backend == "postgresql"
                                             else loc + ".db", args.events)
            print(f"[{backend}] tracking ...", file=sys.stderr)
            with fresh_location(backend, admin) as loc:
                out["tracking"] = bench_tracking(loc, args.runs)
            res["backends"][backend] = out
    res["load_end"] = tuple(round(x, 2) for x in os.getloadavg())
    res["wall_s"] = time.perf_counter() - start
    section = render(res)
    write_section(args.out, section, BEGIN, END)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=str))
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
