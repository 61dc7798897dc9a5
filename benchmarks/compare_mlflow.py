"""ducklearn's registry and tracker against MLflow's, side by side, on the same models and runs.

Both sides use SQLite for metadata and the local disk for model bytes, in one process:

- **register**: a new version of a model with its weights and one metric. ducklearn:
  ``Registry.register`` (safetensors blobs, content-addressed). MLflow: a run that logs the
  metric and the same model file as an artifact, then ``create_model_version`` from it.
- **load**: a version's model back in memory. ducklearn: ``Registry.load``. MLflow:
  ``download_artifacts`` of the version's source, then the same ``load_model`` of the file.
- **resolve an alias**: ``Registry.resolve`` against ``get_model_version_by_alias``.
- **live runs**: start a run, log a parameter, 5 steps of a loss and a final metric, end it.
- **search**: the same three queries over the same ``--runs`` runs (bulk-imported on each side:
  ``Tracker.import_runs``; MLflow ``log_batch`` per run).

    pip install "mlflow==3.6.*" "sqlalchemy<2.1"   # not a ducklearn dependency
    python benchmarks/compare_mlflow.py [--runs 5000]

MLflow's pins (protobuf < 7, packaging < 26) clash with Ray Serve's, so it lives in its own
environment (ducklearn installed there too), not in the ``bench`` extra.

Writes its section of ``benchmarks/RESULTS.md`` between ``<!-- BEGIN mlflow -->`` and
``<!-- END mlflow -->`` (appended if absent; other sections are left alone).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_registry import mlp_model_v1, small_model_v1  # noqa: E402
from results_md import write_section  # noqa: E402

BEGIN, END = "<!-- BEGIN mlflow -->", "<!-- END mlflow -->"


def _per_s(fn: Callable[[int], Any], n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - t0)


def _median_ms(fn: Callable[[], Any], repeat: int = 5) -> float:
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def _run_records(n: int):
    rng = np.random.default_rng(3)
    for i in range(n):
        yield {"experiment": "ctr",
               "params": {"lr": float(rng.random()), "optimizer": ["adam", "sgd"][i % 2]},
               "metrics": {"val_auc": float(rng.random())}}


QUERIES = {
    "top 20 by a metric": ("", "metrics.val_auc DESC", 20),
    "filter metric + param, top 20": ("metrics.val_auc > 0.99 and params.optimizer = 'adam'",
                                      "metrics.val_auc DESC", 20),
    "newest 20 runs": ("", None, 20),
}


def bench_ducklearn(d: str, n_small: int, n_mlp: int, n_runs: int) -> dict[str, Any]:
    from ducklearn.registry import Registry
    from ducklearn.tracking import Tracker

    res: dict[str, Any] = {}
    with Registry(os.path.join(d, "registry"), actor="bench") as reg:
        for label, make, n in (("small", small_model_v1, n_small), ("mlp", mlp_model_v1, n_mlp)):
            model = make()

            def register(i, model=model, label=label):
                model.params[0] += 1e-3  # new content every time
                reg.register(label, model, metrics={"i": float(i)})

            res[f"register_{label}"] = _per_s(register, n)
            versions = [v.version for v in reg.versions(label)][-10:]
            res[f"load_{label}"] = _per_s(
                lambda i, v=versions, name=label: reg.load(name, v[i % len(v)]), 50)
        reg.promote("small", "staging", reg.versions("small")[-1].version, reason="bench")
        res["resolve_us"] = 1e6 / _per_s(lambda i: reg.resolve("small", "staging"), 2000)
    with Tracker(os.path.join(d, "tracking"), actor="bench") as tracker:
        def live(i):
            with tracker.start_run("live", params={"i": i}) as run:
                for step in range(5):
                    run.log_metric("loss", 1.0 / (step + 1), step=step)
                run.log_metric("val_auc", 0.5 + i / 1000)

        res["live_runs"] = _per_s(live, 200)
        t0 = time.perf_counter()
        tracker.import_runs(_run_records(n_runs))
        res["import_runs"] = n_runs / (time.perf_counter() - t0)
        res["queries_ms"] = {
            name: _median_ms(lambda f=f, o=o, k=k: tracker.search(
                "ctr", filter=f or None, order_by=o, limit=k))
            for name, (f, o, k) in QUERIES.items()}
    return res


def bench_mlflow(d: str, n_small: int, n_mlp: int, n_runs: int) -> dict[str, Any]:
    import mlflow
    from ducklearn.modelfile import load_model, save_model
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    mlflow.set_tracking_uri(f"sqlite:///{os.path.join(d, 'mlflow.db')}")
    client = MlflowClient()
    exp = client.create_experiment("models", artifact_location=Path(d, "artifacts").as_uri())
    res: dict[str, Any] = {}
    for label, make, n in (("small", small_model_v1, n_small), ("mlp", mlp_model_v1, n_mlp)):
        model = make()
        client.create_registered_model(label)
        path = os.path.join(d, f"{label}.safetensors")

        def register(i, model=model, label=label, path=path):
            model.params[0] += 1e-3
            save_model(model, path)
            run = client.create_run(exp)
            rid = run.info.run_id
            client.log_metric(rid, "i", float(i))
            client.log_artifact(rid, path, "model")
            client.set_terminated(rid)
            client.create_model_version(label, f"{run.info.artifact_uri}/model", run_id=rid)

        res[f"register_{label}"] = _per_s(register, n)
        versions = client.search_model_versions(f"name = '{label}'", max_results=10,
                                                order_by=["version_number DESC"])
        sources = [v.source for v in versions]

        def load(i, sources=sources, label=label):
            local = mlflow.artifacts.download_artifacts(sources[i % len(sources)],
                                                        dst_path=tempfile.mkdtemp(dir=d))
            return load_model(os.path.join(local, f"{label}.safetensors"))

        res[f"load_{label}"] = _per_s(load, 50)
    newest = client.search_model_versions("name = 'small'", max_results=1,
                                          order_by=["version_number DESC"])[0]
    client.set_registered_model_alias("small", "staging", newest.version)
    res["resolve_us"] = 1e6 / _per_s(
        lambda i: client.get_model_version_by_alias("small", "staging"), 2000)

    live_exp = client.create_experiment("live")

    def live(i):
        run = client.create_run(live_exp)
        rid = run.info.run_id
        client.log_param(rid, "i", i)
        for step in range(5):
            client.log_metric(rid, "loss", 1.0 / (step + 1), step=step)
        client.log_metric(rid, "val_auc", 0.5 + i / 1000)
        client.set_terminated(rid)

    res["live_runs"] = _per_s(live, 200)
    ctr = client.create_experiment("ctr")
    t0 = time.perf_counter()
    now = int(time.time() * 1000)
    for rec in _run_records(n_runs):
        rid = client.create_run(ctr).info.run_id
        client.log_batch(rid, metrics=[Metric(k, v, now, 0) for k, v in rec["metrics"].items()],
                         params=[Param(k, str(v)) for k, v in rec["params"].items()])
        client.set_terminated(rid)
    res["import_runs"] = n_runs / (time.perf_counter() - t0)
    res["queries_ms"] = {
        name: _median_ms(lambda f=f, o=o, k=k: client.search_runs(
            [ctr], filter_string=f, order_by=[o] if o else None, max_results=k))
        for name, (f, o, k) in QUERIES.items()}
    return res


def render(ours: dict[str, Any], theirs: dict[str, Any], n_small: int, n_mlp: int,
           n_runs: int, version: str, seconds: float) -> str:
    def row(label, key, unit, higher=True, fmt="{:,.0f}"):
        a, b = ours[key], theirs[key]
        ratio = a / b if higher else b / a
        return f"| {label} | {fmt.format(a)} {unit} | {fmt.format(b)} {unit} | {ratio:.1f}× |"

    lines = [
        BEGIN,
        "## Registry and tracking: ducklearn vs MLflow",
        "",
        f"Command: `python benchmarks/compare_mlflow.py --runs {n_runs}`; "
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {seconds / 60:.1f} min; MLflow "
        f"{version}. Both on SQLite plus local files, in one process (2 shared cores). "
        "Registration: a new version with its weights (the same safetensors bytes on both "
        "sides) and one metric; MLflow's path is a run that logs the metric and the file, then "
        "`create_model_version`. Loading ends in the same `load_model` on both sides.",
        "",
        "| operation | ducklearn | MLflow | ducklearn advantage |",
        "|---|---|---|---|",
        row(f"register `small_v1` ({n_small} versions)", "register_small", "/s"),
        row(f"register `mlp_v1`, 1.0 MB ({n_mlp} versions)", "register_mlp", "/s"),
        row("load a `small_v1` version", "load_small", "/s"),
        row("load an `mlp_v1` version", "load_mlp", "/s"),
        row("resolve an alias", "resolve_us", "µs", higher=False, fmt="{:,.1f}"),
        row("live runs (1 param, 5 loss steps, 1 metric)", "live_runs", "/s"),
        row(f"bulk-import {n_runs:,} runs", "import_runs", "runs/s"),
    ]
    for name in QUERIES:
        a, b = ours["queries_ms"][name], theirs["queries_ms"][name]
        lines.append(f"| search over {n_runs:,} runs: {name} | {a:,.2f} ms | {b:,.2f} ms | "
                     f"{b / a:.1f}× |")
    lines += ["", "ducklearn checks the sha256 of every blob it reads (and of every tensor "
              "assembled from several) before loading; MLflow copies the artifact and trusts "
              "it. MLflow has no bulk "
              "import, so its runs are created one at a time with `log_batch`.", "", END, ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5000)
    ap.add_argument("--small", type=int, default=100)
    ap.add_argument("--mlp", type=int, default=30)
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = ap.parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        import mlflow
    except ImportError:
        print("MLflow is not installed: pip install mlflow", file=sys.stderr)
        return 2
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        ours = bench_ducklearn(os.path.join(d, "ducklearn"), args.small, args.mlp, args.runs)
        print("ducklearn:", ours, flush=True)
        os.makedirs(os.path.join(d, "mlflow"))
        theirs = bench_mlflow(os.path.join(d, "mlflow"), args.small, args.mlp, args.runs)
        print("mlflow:", theirs, flush=True)
    section = render(ours, theirs, args.small, args.mlp, args.runs, mlflow.__version__,
                     time.time() - t0)
    write_section(args.out, section, BEGIN, END)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
