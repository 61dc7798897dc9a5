#!/usr/bin/env python
"""Entity feature pipeline benchmarks: ducklearn vs River on the same records, same run.

Workload: 100,000 seeded ``CodeFile`` records (20 heavy-tailed numeric fields, 3 categoricals,
an ``owners`` token list, a last-modified timestamp), as Python dicts.

1. Batch extraction to a normalized dense float32 matrix:
   ducklearn ``CodeFile.compile().learn_transform(records)`` (parse, validate, log1p/clip,
   range checks, one-hot, hashed tokens and crosses, cyclical time, online normalization,
   all in C++) against River ``TransformerUnion(Select(numeric) | StandardScaler(),
   Select(categoricals, tokens) | FeatureHasher())`` with ``learn_one`` + ``transform_one`` per
   record (River's own way of doing the same work), then filling the same matrix.
2. Feature store: cached ``get`` of one entity, ``get_many`` of 1,000 (cached and from SQLite),
   and persistence throughput of ``put_many`` and single ``put`` into SQLite (WAL).

Writes its section of ``benchmarks/RESULTS.md`` between ``<!-- BEGIN features -->`` and
``<!-- END features -->`` (created if absent; the rest of the file is left untouched)::

    python benchmarks/bench_features.py                      # full run, about a minute
    python benchmarks/bench_features.py --n 20000 --out /tmp/r.md   # smoke test
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from results_md import write_section

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- BEGIN features -->", "<!-- END features -->"
NOW = 1_800_000_000.0  # fixed "now" so ages (and so the matrices) are reproducible

TARGETS = {"extract_vs_river": 10.0, "extract_us_per_entity": 10.0, "store_get_us": 5.0,
           "store_get_many_ms": 2.0}

# Workload definition (append-only: a changed definition gets a new name).
LANGS = ("python", "java", "cpp", "javascript", "go", "rust", "typescript", "c")
LANG_P = (0.3, 0.2, 0.12, 0.14, 0.1, 0.06, 0.05, 0.03)
KINDS = ("source", "test", "config", "docs", "build", "generated")
KIND_P = (0.62, 0.22, 0.06, 0.05, 0.03, 0.02)
TIERS = ("critical", "standard", "experimental")


def codefile_records_v1(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Seeded CodeFile records with realistic heavy tails (workload 'codefile_v1')."""
    rng = np.random.default_rng([seed, 3])
    size = rng.standard_normal(n)
    hot = rng.standard_normal(n)
    lines = np.floor(np.exp(4.5 + 1.2 * size))
    cols = {
        "size_bytes": np.floor(lines * rng.gamma(6.0, 6.0, n)),
        "lines": lines,
        "lines_added_30d": np.floor(np.exp(2.0 + 1.5 * hot + rng.standard_normal(n))),
        "lines_deleted_30d": np.floor(np.exp(1.5 + 1.5 * hot + rng.standard_normal(n))),
        "churn_90d": rng.poisson(rng.gamma(0.8, 4.0 * np.exp(0.7 * hot))).astype(float),
        "n_authors": 1.0 + rng.poisson(np.exp(0.5 + 0.5 * hot)),
        "author_experience_days": np.floor(rng.gamma(1.3, 650.0, n)),
        "cyclomatic_complexity": np.floor(1 + lines * rng.beta(2, 30, n)),
        "max_function_complexity": np.floor(1 + rng.gamma(1.5, 4.0 * np.exp(0.4 * hot))),
        "test_coverage_pct": 100.0 * rng.beta(2.2, 1.6, n),
        "n_functions": np.floor(1 + lines / rng.uniform(8, 40, n)),
        "n_imports": rng.poisson(6.0 + lines / 100.0).astype(float),
        "n_dependents": np.floor(rng.pareto(1.1, n) * 3.0),
        "past_bug_fixes": rng.poisson(rng.gamma(0.6, 2.0 * np.exp(0.6 * hot))).astype(float),
        "open_issues": rng.poisson(0.4, n).astype(float),
        "comment_ratio": rng.beta(2, 9, n),
        "duplication_ratio": rng.beta(1, 20, n),
        "review_latency_hours": np.exp(1.6 + 1.3 * rng.standard_normal(n)),
        "ci_flaky_rate": rng.beta(1, 60, n),
        "file_age_days": np.floor(rng.gamma(1.2, 500.0, n)),
    }
    lang = np.searchsorted(np.cumsum(LANG_P), rng.random(n) * 0.999999, side="right")
    kind = np.searchsorted(np.cumsum(KIND_P), rng.random(n) * 0.999999, side="right")
    tier = rng.integers(0, 3, n)
    n_owners = 1 + rng.poisson(0.8, n)
    owner_ids = rng.zipf(1.6, int(n_owners.sum())) % 500
    modified = NOW - rng.gamma(0.7, 40.0, n) * 86400.0
    missing_cov = rng.random(n) < 0.08
    names = list(cols)
    matrix = np.column_stack([cols[k] for k in names]).tolist()
    out = []
    pos = 0
    for i in range(n):
        r = dict(zip(names, matrix[i], strict=True))
        if missing_cov[i]:
            del r["test_coverage_pct"]
        r["language"] = LANGS[lang[i]]
        r["file_kind"] = KINDS[kind[i]]
        r["repo_tier"] = TIERS[tier[i]]
        k = int(n_owners[i])
        r["owners"] = [f"team-{o}" for o in owner_ids[pos:pos + k].tolist()]
        pos += k
        r["last_modified"] = float(modified[i])
        out.append(r)
    return out


def best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        finally:
            gc.enable()
    return best


# ---------------------------------------------------------------------------------------------
# 1. extraction
# ---------------------------------------------------------------------------------------------


def bench_extraction(records: list[dict], repeats: int) -> dict[str, Any]:
    from ducklearn.features import CodeFile, Numeric

    n = len(records)
    res: dict[str, Any] = {"n": n}

    def ducklearn_learn_transform():
        ex = CodeFile.compile()
        X, rejected = ex.learn_transform(records, now=NOW)
        assert X.shape[0] + len(rejected) == n
        return ex, X, rejected

    ex, X, rejected = ducklearn_learn_transform()
    res["n_features"] = ex.n_features
    res["rejected"] = len(rejected)
    res["dl_learn_transform_s"] = float("inf")  # timed in the interleaved rounds below
    ex.freeze()
    res["dl_transform_s"] = best_of(lambda: ex.transform(records, now=NOW), repeats)
    res["dl_sparse_s"] = best_of(lambda: ex.transform(records, now=NOW, sparse=True), repeats)
    S, _ = ex.transform(records, now=NOW, sparse=True)
    res["nnz_per_row"] = S.nnz / max(1, S.shape[0])
    one = records[:1]
    k = min(20_000, n)

    def singles():
        for i in range(k):
            ex.transform(records[i:i + 1], now=NOW)

    res["dl_single_us"] = best_of(singles, 3) / k * 1e6
    del one

    # River: the same fields, the same kinds of work, River's per-record API.
    from river import compose, preprocessing

    numeric = [f.name for f in CodeFile.fields if isinstance(f, Numeric)] + ["last_modified"]
    cats = ["language", "file_kind", "repo_tier"]
    river_records = []
    for r in records:  # tokens become one "owners=<token>" key each (River hashes name=value)
        x = {k: v for k, v in r.items() if k != "owners"}
        for t in r["owners"]:
            x[f"owners={t}"] = 1.0
        river_records.append(x)
    hashed = set(cats) | {k for x in river_records for k in x if k.startswith("owners=")}
    token_keys = hashed - set(cats)

    def river_pipeline():
        # Discard (not Select) on both sides: records may lack keys (missing coverage values,
        # different owners), which Select refuses.
        return compose.TransformerUnion(
            compose.Discard(*hashed) | preprocessing.StandardScaler(),
            compose.Discard(*numeric) | preprocessing.FeatureHasher(n_features=2 ** 10, seed=0),
        )

    def river_dicts():
        pipe = river_pipeline()
        out = []
        for x in river_records:
            pipe.learn_one(x)
            out.append(pipe.transform_one(x))
        return out

    def river_matrix():
        pipe = river_pipeline()
        cols: dict[Any, int] = {}
        M = np.zeros((n, len(numeric) + 2 ** 10), dtype=np.float32)
        for j, name in enumerate(numeric):
            cols[name] = j
        for h in range(2 ** 10):
            cols[h] = len(numeric) + h
        for i, x in enumerate(river_records):
            pipe.learn_one(x)
            row = M[i]
            for key, v in pipe.transform_one(x).items():
                row[cols[key]] = v
        return M

    # Rounds interleave the contenders so load from other processes on a shared machine
    # hits them alike; each keeps its best round.
    rounds = {"dl_learn_transform_s": ducklearn_learn_transform, "river_dicts_s": river_dicts,
              "river_matrix_s": river_matrix}
    for key in ("river_dicts_s", "river_matrix_s"):
        res[key] = float("inf")
    for _ in range(max(1, repeats)):
        for key, fn in rounds.items():
            res[key] = min(res[key], best_of(fn, 1))
    res["river_token_keys"] = len(token_keys)
    return res


# ---------------------------------------------------------------------------------------------
# 2. feature store
# ---------------------------------------------------------------------------------------------


def bench_store(records: list[dict], tmp: str) -> dict[str, Any]:
    from ducklearn.features import CodeFile, FeatureStore

    ex = CodeFile.compile()
    X, _ = ex.learn_transform(records, now=NOW)
    n = X.shape[0]
    ids = [f"file-{i}" for i in range(n)]
    res: dict[str, Any] = {"n": n, "vector_floats": int(X.shape[1])}
    url = f"sqlite:///{os.path.join(tmp, 'features.db')}"
    store = FeatureStore(url, cache_size=n + 10)
    batch = 1000
    # Rows must lie in the past for reads at the current time to see them.
    written = time.time() - 60.0
    t0 = time.perf_counter()
    for s in range(0, n, batch):
        store.put_many("code_file", list(zip(ids[s:s + batch], X[s:s + batch], strict=True)),
                       event_time=written, schema_version=CodeFile.version)
    res["put_many_rows_per_s"] = n / (time.perf_counter() - t0)
    k = min(2000, n)
    t0 = time.perf_counter()
    for i in range(k):
        store.put("code_file_single", ids[i], X[i], event_time=written)
    res["put_rows_per_s"] = k / (time.perf_counter() - t0)
    json_recs = records[:k]
    t0 = time.perf_counter()
    store.put_many("code_file_raw", list(zip(ids[:k], json_recs, strict=True)),
                   event_time=written)
    res["put_many_json_rows_per_s"] = k / (time.perf_counter() - t0)

    rng = np.random.default_rng(1)
    probe = [ids[i] for i in rng.integers(0, n, 100_000)]
    get = store.get
    for eid in probe[:1000]:
        get("code_file", eid)

    def cached_gets():
        for eid in probe:
            get("code_file", eid)

    res["get_cached_us"] = best_of(cached_gets, 5) / len(probe) * 1e6
    sets = [[ids[i] for i in rng.integers(0, n, 1000)] for _ in range(50)]
    times = []
    for s in sets:
        t0 = time.perf_counter()
        got = store.get_many("code_file", s)
        times.append(time.perf_counter() - t0)
        assert all(g is not None for g in got)
    res["get_many_cached_ms_median"] = statistics.median(times) * 1e3
    times = []
    for s in sets[:20]:
        t0 = time.perf_counter()
        got = store.get_many("code_file", s, cached=False)
        times.append(time.perf_counter() - t0)
        assert all(g is not None for g in got)
    res["get_many_sqlite_ms_median"] = statistics.median(times) * 1e3
    times = []
    for eid in probe[:2000]:
        t0 = time.perf_counter()
        store.get("code_file", eid, cached=False)
        times.append(time.perf_counter() - t0)
    res["get_sqlite_us_median"] = statistics.median(times) * 1e6
    t0 = time.perf_counter()
    for eid in probe[:2000]:
        store.get("code_file", eid, as_of=written + 1.0)
    res["get_as_of_us"] = (time.perf_counter() - t0) / 2000 * 1e6
    store.close()
    reopened = FeatureStore(url)
    t0 = time.perf_counter()
    got = reopened.get_many("code_file", ids[:1000])
    res["restart_get_many_ms"] = (time.perf_counter() - t0) * 1e3
    assert all(g is not None for g in got)
    reopened.close()
    res["db_bytes"] = sum(os.path.getsize(os.path.join(tmp, f)) for f in os.listdir(tmp))
    return res


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    from importlib import metadata

    import ducklearn.backend

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {}
    for dist in ("ducklearn", "numpy", "river", "scipy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, check=True,
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=HERE, check=True, capture_output=True, text=True).stdout
        rev += " + uncommitted changes" if dirty.strip() else ""
    except (OSError, subprocess.CalledProcessError):
        rev = "unknown"
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "versions": versions, "revision": rev, "backend": ducklearn.backend.info(),
            "sqlite": __import__("sqlite3").sqlite_version,
            "load": os.getloadavg() if hasattr(os, "getloadavg") else None}


def _loads(load: Any) -> str:
    return "n/a" if load is None else " ".join(f"{v:.2f}" for v in load)


def status(ok: bool, detail: str) -> str:
    return "met" if ok else f"missed: {detail}"


def render(res: dict[str, Any], command: str) -> str:
    e, s, m = res["extraction"], res["store"], res["machine"]
    n = e["n"]
    us = e["dl_learn_transform_s"] / n * 1e6
    ratio = e["river_dicts_s"] / e["dl_learn_transform_s"]
    ratio_m = e["river_matrix_s"] / e["dl_learn_transform_s"]
    get_us, many_c, many_s = (s["get_cached_us"], s["get_many_cached_ms_median"],
                              s["get_many_sqlite_ms_median"])
    lines = [
        BEGIN,
        "## Entity features (`benchmarks/bench_features.py`)",
        "",
        "Generated by `benchmarks/bench_features.py`; every number below comes from one run, "
        "ducklearn and River on the same records in the same process. Reproduce with:",
        "",
        "```",
        command,
        "```",
        "",
        f"- Date (UTC): {res['date']}; wall time {res['wall_s']:.0f} s; load average "
        f"{_loads(res['load_start'])} at start, {_loads(m['load'])} at end (a shared "
        "machine: River and ducklearn alternate so load hits both alike)",
        f"- ducklearn revision: {m['revision']}; CPU: {m['cpu']}, {m['cpu_count']} logical "
        f"CPUs; SIMD {m['backend'].get('simd_target')}",
        f"- Versions: python {m['python']}, "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + f", SQLite {m['sqlite']}",
        "",
        "| measurement | reached | target | status |",
        "|---|---|---|---|",
        f"| batch extraction vs River `FeatureHasher` + `StandardScaler` (River producing dicts "
        f"only) | {ratio:.1f}× | ≥ {TARGETS['extract_vs_river']:.0f}× | "
        f"{status(ratio >= TARGETS['extract_vs_river'], f'{ratio:.1f}× of 10×')} |",
        f"| batch extraction per entity (learn + transform, dense) | {us:.2f} µs | < "
        f"{TARGETS['extract_us_per_entity']:.0f} µs | "
        f"{status(us < TARGETS['extract_us_per_entity'], f'{us:.2f} µs')} |",
        f"| feature store cached `get` of one entity, from Python | {get_us:.2f} µs"
        f" | < {TARGETS['store_get_us']:.0f} µs | "
        f"{status(get_us < TARGETS['store_get_us'], f'{get_us:.2f} µs')} |",
        f"| feature store `get_many` of 1,000 entities (cached) | {many_c:.3f} ms | < "
        f"{TARGETS['store_get_many_ms']:.0f} ms | "
        f"{status(many_c < TARGETS['store_get_many_ms'], f'{many_c:.2f} ms')} |",
        f"| feature store `get_many` of 1,000 entities (SQLite, cache bypassed) | "
        f"{many_s:.2f} ms | < {TARGETS['store_get_many_ms']:.0f} ms | "
        f"{status(many_s < TARGETS['store_get_many_ms'], f'{many_s:.2f} ms')} |",
        "",
        f"### Extraction: {n:,} `CodeFile` records → {e['n_features']} columns",
        "",
        "Records are Python dicts: 20 heavy-tailed numeric fields (8% of coverage values "
        "missing), `language`/`file_kind`/`repo_tier`, an `owners` token list (Zipf over 500 "
        "teams, 1-5 per file) and `last_modified`. ducklearn validates every field, applies "
        "log1p and range checks, one-hot encodes with an other bucket, hashes owners and the "
        "language × file-kind cross, encodes hour/day-of-week cyclically and the age, and "
        "normalizes online (standard, min-max, robust KLL and clipped columns). River gets "
        "the same values with each owner as an `owners=<team>` key: `Discard(categoricals, "
        "owner keys) | StandardScaler()` and `Discard(numeric) | FeatureHasher(2**10)` in a "
        "`TransformerUnion`, `learn_one` + `transform_one` per record. ducklearn "
        "`learn_transform` and both River variants run in interleaved rounds (best round "
        f"of {res['repeats']} each, a fresh extractor or pipeline every round); the other "
        "ducklearn calls are the best of as many repeats. GC off while timing.",
        "",
        "| library / call | total | per entity | ducklearn `learn_transform` speed-up |",
        "|---|---|---|---|",
    ]
    rows = [
        ("ducklearn `learn_transform(records)` (dense, learn + normalize)",
         e["dl_learn_transform_s"]),
        ("ducklearn `transform(records)` (dense, frozen normalizers)", e["dl_transform_s"]),
        (f"ducklearn `transform(records, sparse=True)` (CSR, {e['nnz_per_row']:.1f} nnz/row)",
         e["dl_sparse_s"]),
        ("River `learn_one` + `transform_one` per record (dicts out)", e["river_dicts_s"]),
        ("River, same, then filling the dense matrix", e["river_matrix_s"]),
    ]
    for label, t in rows:
        lines.append(f"| {label} | {t:.3f} s | {t / n * 1e6:.2f} µs | "
                     f"{t / e['dl_learn_transform_s']:.2f}× |")
    lines += [
        "",
        f"River with the matrix fill: {ratio_m:.1f}× slower than ducklearn. One record per "
        f"call (`transform([record])`, the serving path): {e['dl_single_us']:.2f} µs per call.",
        f"Rejected records in the workload: {e['rejected']} (the generator only makes valid "
        "ones).",
        "",
        f"### Feature store: {s['n']:,} entities of {s['vector_floats']} float32 features, "
        "SQLite (WAL) file",
        "",
        "| operation | result |",
        "|---|---|",
        f"| `put_many`, batches of 1,000 feature vectors (one transaction each) | "
        f"{s['put_many_rows_per_s']:,.0f} rows/s |",
        f"| `put_many` of 2,000 raw JSON records | {s['put_many_json_rows_per_s']:,.0f} rows/s |",
        f"| `put`, one row per transaction | {s['put_rows_per_s']:,.0f} rows/s |",
        f"| cached `get` (100,000 random ids) | {s['get_cached_us']:.2f} µs per call |",
        f"| `get` from SQLite (cache bypassed), median | {s['get_sqlite_us_median']:.1f} µs |",
        f"| point-in-time `get(as_of=...)`, mean | {s['get_as_of_us']:.1f} µs |",
        f"| `get_many` of 1,000, cached, median of 50 | "
        f"{s['get_many_cached_ms_median']:.3f} ms |",
        f"| `get_many` of 1,000 from SQLite, median of 20 | "
        f"{s['get_many_sqlite_ms_median']:.2f} ms |",
        f"| `get_many` of 1,000 after reopening the store (cold cache) | "
        f"{s['restart_get_many_ms']:.2f} ms |",
        f"| database size on disk | {s['db_bytes'] / 2 ** 20:.1f} MiB |",
        END,
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="records (default 100,000)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds of the River comparison and repeats of the other calls")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--json", type=Path, default=None, help="also save raw numbers here")
    args = parser.parse_args(argv)
    if args.n < 1000:
        parser.error("--n must be at least 1000")
    command = "python benchmarks/bench_features.py" + "".join(
        f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:]))
    start = time.perf_counter()
    res: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "load_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    res["repeats"] = args.repeats
    records = codefile_records_v1(args.n)
    print(f"extraction on {args.n:,} records...", flush=True)
    res["extraction"] = bench_extraction(records, args.repeats)
    print(json.dumps(res["extraction"], indent=1), flush=True)
    print("feature store...", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        res["store"] = bench_store(records, tmp)
    print(json.dumps(res["store"], indent=1), flush=True)
    res["machine"] = machine()
    res["wall_s"] = time.perf_counter() - start
    write_section(args.out, render(res, command), BEGIN, END)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=str), encoding="utf-8")
    print(f"wrote the features section of {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
