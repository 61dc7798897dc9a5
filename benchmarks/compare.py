#!/usr/bin/env python
"""Run ducklearn and the established libraries on the same data in one run; write RESULTS.md.

Contenders: River (``StandardScaler | LogisticRegression``), Vowpal Wabbit (its in-process
file driver), scikit-learn (``SGDClassifier`` / ``MLPClassifier`` ``partial_fit``) and ONNX
Runtime (1 thread, the same MLP weights). Workload: the seeded 200,000-example entity stream
(``ducklearn.datasets.make_entity_stream``; definitions in ``benchmarks/workloads.py``).

Usage (from anywhere, with ducklearn installed)::

    python benchmarks/compare.py                     # full run, writes benchmarks/RESULTS.md
    python benchmarks/compare.py --n 20000 --out /tmp/r.md --quick    # smoke test

It writes its section of ``benchmarks/RESULTS.md``, between ``<!-- BEGIN core -->`` and
``<!-- END core -->`` (appended if absent); the sections the other ``bench_*.py`` scripts write
are left untouched. Memory figures come from child processes (``--probe ...``), so each
starts from a clean peak-RSS high-water mark.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from results_md import write_section

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: Set in the environment of a re-executed run to the OPENBLAS_CORETYPE value it removed.
_REMOVED_CORETYPE = "DUCKLEARN_BENCH_REMOVED_OPENBLAS_CORETYPE"


def _reexec_without_forced_blas_kernels() -> None:
    """Measure what a default install does: OpenBLAS (ducklearn's and numpy's) reads
    OPENBLAS_CORETYPE once, when loaded, and an inherited value (some shared machines set
    one) overrides both OpenBLAS's CPU detection and ducklearn's own choice. So restart
    this script without it, before anything loads OpenBLAS, and record what was removed.
    ``--keep-openblas-coretype`` keeps it."""
    argv = sys.argv[1:]
    if (
        "OPENBLAS_CORETYPE" not in os.environ
        or "--keep-openblas-coretype" in argv
        or (argv[:1] == ["--probe"])
    ):
        return
    env = dict(os.environ)
    env[_REMOVED_CORETYPE] = env.pop("OPENBLAS_CORETYPE")
    os.execve(sys.executable, [sys.executable, str(Path(__file__).resolve()), *argv], env)


if __name__ == "__main__":
    _reexec_without_forced_blas_kernels()

import workloads as W  # noqa: E402  (needs the path above, and the BLAS choice before it)

# Learning-rate grids, each centred on the library's own default (x1/9 ... x9 in steps of ~3),
# searched on the same prefix of the stream so that no contender is judged on a bad default.
LR_GRIDS = {
    "ducklearn": (0.01, 0.03, 0.1, 0.3, 1.0),
    "vw": (0.05, 0.15, 0.5, 1.5, 5.0),
    "river": (0.001, 0.003, 0.01, 0.03, 0.1),
}
DUCKLEARN_DEFAULT_LR = 0.1  # AdaGrad's default in ducklearn.linear.LogisticRegression

#: This script's section of RESULTS.md; other benchmark scripts write their own sections.
BEGIN, END = "<!-- BEGIN core -->", "<!-- END core -->"

TARGETS = {
    "prequential_vs_vw": 10.0,
    "prequential_vs_river": 100.0,
    "dict_vs_river": 10.0,
    "mlp_b1_vs_ort": 0.6,
    "mlp_b256_vs_ort": 1.0,
    "mlp_update_us": 10.0,
}


# ---------------------------------------------------------------------------------------------
# Timing helpers
# ---------------------------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def best_of(repeats: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """Fastest of ``repeats`` calls and the result of the last one. On a shared machine the
    minimum is the least disturbed estimate of what the code costs (as timeit does)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        seconds, result = timed(fn)
        best = min(best, seconds)
    return best, result


def latencies(
    fns: dict[str, Callable[[], Any]], reps: int, rounds: int = 5
) -> dict[str, np.ndarray]:
    """Per-call latencies in µs of each function, interleaved in ``rounds`` blocks so that a
    burst of load on the machine hits every contender alike. GC is off while timing."""
    per_round = max(1, reps // rounds)
    samples: dict[str, list[np.ndarray]] = {name: [] for name in fns}
    clock = time.perf_counter_ns
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            for name, fn in fns.items():
                for _ in range(min(200, per_round)):  # warm caches and branch predictors
                    fn()
                out = np.empty(per_round, dtype=np.int64)
                for i in range(per_round):
                    t0 = clock()
                    fn()
                    out[i] = clock() - t0
                samples[name].append(out)
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: np.concatenate(parts) / 1e3 for name, parts in samples.items()}


def loop_rate(fn: Callable[[], int], repeats: int) -> float:
    """Best calls/s of a loop ``fn`` that returns how many calls it made (GC off)."""
    best = 0.0
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            seconds, calls = timed(fn)
            best = max(best, calls / seconds)
    finally:
        if gc_was_enabled:
            gc.enable()
    return best


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# Machine and versions
# ---------------------------------------------------------------------------------------------


def cpu_model() -> str:
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if ":" in line:
                    key, value = (part.strip() for part in line.split(":", 1))
                    fields.setdefault(key, value)
    except OSError:
        return platform.processor() or platform.machine()
    name = fields.get("model name", platform.processor() or "unknown")
    fam, mod = fields.get("cpu family"), fields.get("model")
    flags = set(fields.get("flags", "").split())
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16") if f in flags]
    extra = f" (family {fam}, model {mod})" if fam and mod else ""
    return f"{name}{extra}; {', '.join(simd)}"


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in (
        "ducklearn",
        "numpy",
        "river",
        "vowpalwabbit",
        "scikit-learn",
        "onnx",
        "onnxruntime",
        "scipy-openblas32",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=HERE,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=HERE,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return rev + (" + uncommitted changes" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def limit_threads() -> dict[str, Any]:
    """One BLAS thread everywhere (ducklearn's OpenBLAS and numpy's, which scikit-learn
    uses), so single-thread libraries are compared like for like."""
    import ducklearn.backend

    ducklearn.backend.set_blas_threads(1)
    info: dict[str, Any] = {"ducklearn_blas_threads": 1}
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        info["numpy_blas_threads"] = 1
    except ImportError:
        info["numpy_blas_threads"] = "unchanged (threadpoolctl missing)"
    return info


# ---------------------------------------------------------------------------------------------
# a. Prequential online logistic regression
# ---------------------------------------------------------------------------------------------


def section_prequential(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from ducklearn.evaluate import prequential

    s = W.entity_stream(args.n, args.seed)
    X, y = s.X, s.y
    tune = min(args.tune_n, s.n)
    res: dict[str, Any] = {"n": s.n, "tune_n": tune, "bayes_accuracy": s.bayes_accuracy, "rows": {}}
    rows = res["rows"]

    def dl_run(lr: float | None = None, Xs=X, ys=y):
        return prequential(W.ducklearn_logreg(lr=lr), Xs, ys, metrics=("accuracy",))

    # The C++ loop alone, on a model already built (shows the cost of the Python checks).
    def dl_core() -> float:
        model = W.build(W.ducklearn_logreg(), X, y)
        return timed(lambda: W.core_prequential(model, X, y))[0]

    # The VW text file is written before any timing; only VW's pass is timed.
    data = W.write_vw_file(s, tmp / "entity.vw")
    prefix = W.write_vw_file(s, tmp / "entity_prefix.vw", n=tune)
    preds = tmp / "vw_preds.txt"

    # ducklearn (public API: validation + C++ loop; and the loop alone) and VW take turns,
    # round after round, so that a burst of load on a shared machine hits both alike; each
    # keeps its fastest round. A fresh model every time.
    log("a: ducklearn LogisticRegression(scale=True) and Vowpal Wabbit, interleaved rounds")
    best = {"ducklearn": float("inf"), "ducklearn_core": float("inf"), "vw": float("inf")}
    result = None
    for r in range(max(args.repeats, args.vw_repeats)):
        if r < args.repeats:
            seconds, result = timed(dl_run)
            best["ducklearn"] = min(best["ducklearn"], seconds)
            best["ducklearn_core"] = min(best["ducklearn_core"], dl_core())
        if r < args.vw_repeats:
            best["vw"] = min(best["vw"], timed(lambda: W.vw_learn(data, preds))[0])
    rows["ducklearn"] = {
        "seconds": best["ducklearn"],
        "accuracy": result.metrics["accuracy"],
        "lr": DUCKLEARN_DEFAULT_LR,
        "repeats": args.repeats,
    }
    rows["ducklearn_core"] = {"seconds": best["ducklearn_core"]}
    rows["vw"] = {
        "seconds": best["vw"],
        "accuracy": W.prequential_accuracy(W.vw_predictions(preds), y),
        "lr": W.VW_DEFAULT_LR,
        "repeats": args.vw_repeats,
        "file_mb": data.stat().st_size / 1e6,
    }

    grid = {
        lr: prequential(
            W.ducklearn_logreg(lr=lr), X[:tune], y[:tune], metrics=("accuracy",)
        ).metrics["accuracy"]
        for lr in LR_GRIDS["ducklearn"]
    }
    lr_best = max(grid, key=grid.get)
    tuned = dl_run(lr_best) if lr_best != DUCKLEARN_DEFAULT_LR else result
    rows["ducklearn_tuned"] = {"accuracy": tuned.metrics["accuracy"], "lr": lr_best, "grid": grid}

    grid = {}
    for lr in LR_GRIDS["vw"]:
        W.vw_learn(prefix, preds, lr)
        grid[lr] = W.prequential_accuracy(W.vw_predictions(preds), y[:tune])
    lr_best = max(grid, key=grid.get)
    W.vw_learn(data, preds, lr_best)
    rows["vw_tuned"] = {
        "accuracy": W.prequential_accuracy(W.vw_predictions(preds), y),
        "lr": lr_best,
        "grid": grid,
    }

    # River: dicts in, one example at a time, over the whole stream; each pass is a few
    # seconds, so ducklearn runs again between River's passes (same load, same moments).
    log("a: River StandardScaler | LogisticRegression (slow: pure Python per example)")
    river_n = min(args.river_n or s.n, s.n)
    records, labels = W.entity_records(river_n, args.seed)
    W.warm_up_river()
    river_best = float("inf")
    for _ in range(args.river_repeats):
        seconds, p = timed(lambda: W.river_prequential(W.river_logreg(), records, labels))
        river_best = min(river_best, seconds)
        rows["ducklearn"]["seconds"] = min(rows["ducklearn"]["seconds"], timed(dl_run)[0])
        rows["ducklearn"]["repeats"] += 1
    rows["river"] = {
        "seconds": river_best,
        "repeats": args.river_repeats,
        "n": river_n,
        "lr": W.RIVER_DEFAULT_LR,
        "accuracy": W.prequential_accuracy(p, labels),
    }
    grid = {
        lr: W.prequential_accuracy(
            W.river_prequential(W.river_logreg(lr), records[:tune], labels[:tune]), labels[:tune]
        )
        for lr in LR_GRIDS["river"]
    }
    lr_best = max(grid, key=grid.get)
    acc = rows["river"]["accuracy"]
    if lr_best != W.RIVER_DEFAULT_LR:
        acc = W.prequential_accuracy(
            W.river_prequential(W.river_logreg(lr_best), records, labels), labels
        )
    rows["river_tuned"] = {"accuracy": acc, "lr": lr_best, "grid": grid, "n": river_n}
    if river_n < s.n:  # ducklearn's accuracy on the same prefix, for a like-for-like reading
        rows["ducklearn_on_river_prefix"] = {
            "accuracy": dl_run(None, X[:river_n], y[:river_n]).metrics["accuracy"],
            "n": river_n,
        }

    # scikit-learn: per example on a prefix (its per-call overhead makes the full stream
    # minutes long), per mini-batch on the whole stream.
    log("a: scikit-learn SGDClassifier / MLPClassifier partial_fit")
    sk_n = min(args.sklearn_n, s.n)
    W.warm_up_sklearn()
    seconds, p = timed(lambda: W.sklearn_sgd_prequential(X[:sk_n], y[:sk_n], 1))
    rows["sklearn_sgd_1"] = {
        "seconds": seconds,
        "n": sk_n,
        "accuracy": W.prequential_accuracy(p, y[:sk_n]),
    }
    seconds, p = timed(lambda: W.sklearn_sgd_prequential(X, y, 256))
    rows["sklearn_sgd_256"] = {"seconds": seconds, "accuracy": W.prequential_accuracy(p, y)}
    seconds, p = timed(lambda: W.sklearn_mlp_prequential(X, y, 256))
    rows["sklearn_mlp_256"] = {"seconds": seconds, "accuracy": W.prequential_accuracy(p, y)}

    log("a: ducklearn MLPClassifier((128, 128), scale=True) prequential (reference)")
    seconds, result = timed(lambda: prequential(W.ducklearn_mlp(), X, y, metrics=("accuracy",)))
    rows["ducklearn_mlp"] = {"seconds": seconds, "accuracy": result.metrics["accuracy"]}
    return res


# ---------------------------------------------------------------------------------------------
# b. learn_one / predict_one from dicts
# ---------------------------------------------------------------------------------------------


def section_dicts(args: argparse.Namespace) -> dict[str, Any]:
    n = min(args.dict_n, args.n)
    records, labels = W.entity_records(n, args.seed)
    out: dict[str, Any] = {"n": n, "repeats": args.repeats}

    def loops(make: Callable[[], Any], ys: list) -> dict[str, Callable[[], int]]:
        """The timed loops of one library; each returns how many calls it made."""
        holder: dict[str, Any] = {}

        def learn() -> int:
            model = make()  # fresh each repeat: every repeat learns the same stream
            learn_one = model.learn_one
            for x, label in zip(records, ys, strict=True):
                learn_one(x, label)
            holder["model"] = model
            return n

        def predict() -> int:
            predict_one = holder["model"].predict_one
            for x in records:
                predict_one(x)
            return n

        def proba() -> int:
            predict_proba_one = holder["model"].predict_proba_one
            for x in records:
                predict_proba_one(x)
            return n

        # The test-then-train pattern an application runs on live events. An unfitted
        # ducklearn model cannot predict and River answers {} before it has learned: both
        # learn one record first, then predict-then-learn the rest.
        def prequential_dicts() -> int:
            model = make()
            model.learn_one(records[0], ys[0])
            predict_proba_one, learn_one = model.predict_proba_one, model.learn_one
            for x, label in zip(records[1:], ys[1:], strict=False):
                predict_proba_one(x)
                learn_one(x, label)
            return n - 1

        return {
            "learn_one": learn,
            "predict_one": predict,
            "predict_proba_one": proba,
            "predict_proba_one + learn_one": prequential_dicts,
        }

    # The binding alone (dict decoding in C++ + the model), without the estimator's Python
    # wrapper: how much of a call is the wrapper and how much the binding.
    fitted = W.ducklearn_logreg()
    for x, label in zip(records, labels.tolist(), strict=True):
        fitted.learn_one(x, label)
    learner, index = fitted._learner, fitted._feature_index
    targets = labels.astype(np.float32).tolist()

    def core_learn() -> int:
        learn_dict = learner.learn_dict
        for x, label in zip(records, targets, strict=True):
            learn_dict(x, label, index)
        return n

    def core_predict() -> int:
        predict_dict = learner.predict_dict
        for x in records:
            predict_dict(x, index)
        return n

    libs = {
        "ducklearn": loops(W.ducklearn_logreg, labels.tolist()),
        "ducklearn_core": {"learn_one": core_learn, "predict_one": core_predict},
        "river": loops(W.river_logreg, (labels > 0).tolist()),
    }
    # The libraries alternate repeat by repeat, so load from other processes hits them alike;
    # each keeps its best rate per call. GC is off inside each timed loop.
    log("b: dict API, ducklearn and River alternating")
    W.warm_up_river()
    for lib, fns in libs.items():
        out[lib] = {op: 0.0 for op in fns}
    for _ in range(args.repeats):
        for lib, fns in libs.items():
            for op, fn in fns.items():
                out[lib][op] = max(out[lib][op], loop_rate(fn, 1))
    return out


# ---------------------------------------------------------------------------------------------
# c. MLP 64-128-128-1 inference vs ONNX Runtime
# ---------------------------------------------------------------------------------------------


def probe_inference(seed: int, reps: int) -> dict[str, Any]:
    """Section c's batch-256 latencies in a child process (run with another OpenBLAS core)."""
    import ducklearn.backend

    limit_threads()
    model = W.trained_inference_mlp(seed)
    sess = W.ort_session(W.onnx_mlp(model), threads=1)
    s = W.wide_entity_stream(W.MLP_WARMUP_ROWS + 256, seed)
    batch = np.ascontiguousarray(s.X[-256:])
    lat = latencies(
        {
            "ducklearn": lambda: model.predict_proba(batch),
            "ort": lambda: sess.run(None, {"x": batch}),
        },
        reps,
    )
    out = {name: float(np.percentile(v, 50)) for name, v in lat.items()}
    out["blas_core"] = ducklearn.backend.info()["blas_core"]
    return out


# OpenBLAS cores whose SGEMM kernels use AVX-512.
_AVX512_BLAS_CORES = {"skylakex", "cooperlake", "sapphirerapids"}


def section_inference(args: argparse.Namespace) -> dict[str, Any]:
    log("c: MLP 64-128-128-1 inference, ducklearn vs ONNX Runtime (1 thread)")
    model = W.trained_inference_mlp(args.seed)
    sess = W.ort_session(W.onnx_mlp(model), threads=1)
    s = W.wide_entity_stream(W.MLP_WARMUP_ROWS + 256, args.seed)
    batch = np.ascontiguousarray(s.X[-256:])
    one = np.ascontiguousarray(s.X[-1:])
    ours = model.predict_proba(batch)[:, 1]
    theirs = sess.run(None, {"x": batch})[0][:, 0]
    out: dict[str, Any] = {
        "max_abs_diff": float(np.max(np.abs(ours - theirs))),
        "n_params": int(model.params.size),
    }
    learner = model._learner
    for label, x, reps in (
        ("b1", one, args.latency_reps),
        ("b256", batch, max(200, args.latency_reps // 10)),
    ):
        lat = latencies(
            {
                "ducklearn": lambda x=x: model.predict_proba(x),
                "ducklearn_core": lambda x=x: learner.predict(x),
                "ort": lambda x=x: sess.run(None, {"x": x}),
            },
            reps,
        )
        out[label] = {
            name: {
                "p50": float(np.percentile(v, 50)),
                "p99": float(np.percentile(v, 99)),
                "reps": int(v.size),
            }
            for name, v in lat.items()
        }
    # The batch-256 time is mostly OpenBLAS SGEMM, whose kernel family is fixed when the
    # library loads. Show the other choice in a child process: the OPENBLAS_CORETYPE this
    # machine's environment set (and the run removed), or AVX-512 kernels where OpenBLAS runs
    # AVX2 ones on an AVX-512 CPU.
    import ducklearn.backend

    info = ducklearn.backend.info()
    alt = os.environ.get(_REMOVED_CORETYPE)
    if (
        alt is None
        and info["simd_best"] == "avx512"
        and (str(info["blas_core"]).lower() not in _AVX512_BLAS_CORES)
    ):
        alt = "SkylakeX"
    if alt is not None:
        log(f"c: batch 256 again with OPENBLAS_CORETYPE={alt} (child process)")
        env = dict(os.environ, OPENBLAS_CORETYPE=alt)
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--probe",
            "inference",
            str(args.seed),
            str(max(200, args.latency_reps // 10)),
        ]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
        out["b256_other_blas"] = json.loads(done.stdout.strip().splitlines()[-1])
        out["b256_other_blas"]["coretype"] = alt
    return out


# ---------------------------------------------------------------------------------------------
# d. One online MLP update in the C++ stream loop
# ---------------------------------------------------------------------------------------------


def section_update(args: argparse.Namespace) -> dict[str, Any]:
    from ducklearn.evaluate import prequential

    log("d: MLP 64-128-128-1 prequential (forward + backward + Adam per example)")
    s = W.wide_entity_stream(args.n, args.seed)
    seconds, result = best_of(
        args.mlp_repeats, lambda: prequential(W.ducklearn_mlp(), s.X, s.y, metrics=("accuracy",))
    )
    out: dict[str, Any] = {
        "n": s.n,
        "seconds": seconds,
        "repeats": args.mlp_repeats,
        "accuracy": result.metrics["accuracy"],
        "bayes_accuracy": s.bayes_accuracy,
    }
    # Updates only (no prediction pass): one epoch of batch-size-1 steps on a built model.
    m = min(s.n, 50_000)
    model = W.build(W.ducklearn_mlp(), s.X, s.y)
    learner = model._learner
    secs, _ = best_of(args.mlp_repeats, lambda: learner.fit_epoch(s.X[:m], s.y[:m], 1, 0))
    out["fit_epoch_b1_us"] = secs / m * 1e6
    out["fit_epoch_rows"] = m
    return out


# ---------------------------------------------------------------------------------------------
# e. Memory (child processes)
# ---------------------------------------------------------------------------------------------

MODEL_CONFIGS = {
    "logreg-34 (AdaGrad)": ("logreg", W.ENTITY_WIDTH, None),
    "mlp-64-128-128-1 (Adam)": ("mlp", 64, (128, 128)),
    "mlp-64-1024-1024-1 (Adam)": ("mlp", 64, (1024, 1024)),
}


def _make(kind: str, hidden: tuple[int, ...] | None):
    return W.ducklearn_logreg() if kind == "logreg" else W.ducklearn_mlp(hidden_layer_sizes=hidden)


def probe_model_size(name: str) -> dict[str, Any]:
    import tracemalloc

    kind, width, hidden = MODEL_CONFIGS[name]
    s = W.wide_entity_stream(64, 0, width) if width != W.ENTITY_WIDTH else W.entity_stream(64)
    X, y = s.X, s.y
    # One-time, per-process costs (imports, type caches, OpenBLAS's work buffers on the first
    # GEMM) happen on a throwaway model of the same shape before anything is measured.
    W.build(_make(kind, hidden), X, y)
    flat_guess = 4 * 4 * (W.build(_make(kind, hidden), X, y).params.size + 1)
    # Small models are below RSS's 4 KiB page granularity: build enough copies that their
    # total spans megabytes, and divide.
    copies = int(min(500, max(1, -(-(16 << 20) // flat_guess))))
    W.release_free_memory()
    before = W.rss_bytes()
    models = [W.build(_make(kind, hidden), X, y) for _ in range(copies)]
    W.release_free_memory()
    per_model = (W.rss_bytes() - before) / copies
    model = models[0]
    n_params = int(model.params.size)
    _, _, _, slots = model._learner.optimizer_state()
    scaler = model._learner.scaler_state() or {}
    scaler_bytes = sum(int(a.nbytes) for a in scaler.values())
    del models, model
    W.release_free_memory()
    tracemalloc.start()
    twin = W.build(_make(kind, hidden), X, y)
    python_heap = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del twin
    flat = n_params * 4 * (2 + len(slots))  # params + grads + one buffer per optimizer slot
    return {
        "n_params": n_params,
        "rss_delta": per_model,
        "copies": copies,
        "raw_float32": 4 * n_params,
        "flat_buffers": flat,
        "optimizer_slots": list(slots),
        "scaler_bytes": scaler_bytes,
        "python_heap": python_heap,
    }


def probe_river_size() -> dict[str, Any]:
    import tracemalloc

    records, labels = W.entity_records(1000)
    ys = (labels > 0).tolist()
    W.river_prequential(W.river_logreg(), records[:10], labels[:10])  # warm imports
    W.release_free_memory()
    tracemalloc.start()
    model = W.river_logreg()
    for x, label in zip(records, ys, strict=True):
        model.learn_one(x, label)
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    n_params = W.ENTITY_WIDTH + 1
    return {"n_params": n_params, "python_heap": traced, "raw_float32": 4 * n_params}


def probe_stream_peak(kind: str, n: int) -> dict[str, Any]:
    from ducklearn.evaluate import prequential

    s = W.entity_stream(n)
    X, y = s.X, s.y
    model = W.build(_make(kind, W.MLP_HIDDEN), X, y)
    W.core_prequential(model, X[:100], y[:100])  # buffers sized on first use: one-time
    out: dict[str, Any] = {"n": n, "reset_supported": W.reset_peak_rss()}

    # One call over all n rows: the loop's output (n × 4 bytes) is allocated up front; the
    # calibration is what allocating that output alone costs in peak RSS. Background memory
    # management (THP collapse, DAMON reclaim on VMs) can add a couple of MiB to any single
    # reading, never take away from real allocations: keep the smallest of a few.
    reps = 3 if kind == "logreg" or n <= 100_000 else 2
    out["core_single"] = min(
        W.peak_delta(lambda: W.core_prequential(model, X, y)) for _ in range(reps)
    )
    out["output_bytes"] = n * 4
    out["output_calibration"] = min(W.output_calibration((n, 1)) for _ in range(reps))
    out["repeats"] = reps
    if kind == "logreg":
        # Chunks of CHUNK_ROWS, as an application feeding a stream would: flat iff the model
        # keeps no per-example state.
        def chunked() -> None:
            for a, b in W.chunks(n):
                W.core_prequential(model, X[a:b], y[a:b])  # each chunk's output is dropped

        out["core_chunked"] = W.peak_delta(chunked)
        out["public_single"] = W.peak_delta(lambda: prequential(model, X, y))
    return out


def run_probe(argv: list[str]) -> Any:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--probe", *argv]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def section_memory(args: argparse.Namespace) -> dict[str, Any]:
    log("e: memory probes (child processes)")
    out: dict[str, Any] = {"models": {}, "stream": {}}
    for name in MODEL_CONFIGS:
        out["models"][name] = run_probe(["model-size", name])
    out["river"] = run_probe(["river-size"])
    sizes = [10_000, 100_000, 1_000_000] if not args.quick else [10_000, 30_000]
    for kind in ("logreg", "mlp"):
        for n in sizes:
            log(f"e: stream peak, {kind}, n={n:,}")
            out["stream"][f"{kind}:{n}"] = run_probe(["stream-peak", kind, str(n)])
    return out


# ---------------------------------------------------------------------------------------------
# RESULTS.md
# ---------------------------------------------------------------------------------------------


def _status_at_least(ratio: float, target: float) -> str:
    if ratio >= target:
        return "met"
    return f"missed: {ratio:.2f}× of {target:g}× (needs {target / ratio:.2f}× more)"


def _status_at_most(ratio: float, target: float) -> str:
    if ratio <= target:
        return "met"
    return f"missed: {ratio:.2f}× vs ≤ {target:g}× ({ratio / target:.2f}× too slow)"


def _acc_status(ours: float, theirs: float) -> str:
    diff = 100 * (ours - theirs)
    return ("met" if diff >= 0 else "missed") + f" ({diff:+.2f} points)"


def _mib(b: float) -> str:
    return f"{b / 2**20:,.2f} MiB"


def _kib(b: float) -> str:
    if abs(b) < 10 * 1024:  # small buffers: KiB would round them to nothing
        return f"{b:,.0f} B"
    return f"{b / 1024:,.0f} KiB"


def render(res: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    meta = res["meta"]
    add(BEGIN)
    add("## Core: ducklearn vs River, Vowpal Wabbit, scikit-learn and ONNX Runtime\n")
    add(
        "Written by `benchmarks/compare.py` (this section only; the others come from the other "
        "`benchmarks/bench_*.py` scripts). Every number below comes from one run of it, on one "
        "machine, with every library on the same data in the same process. Reproduce with:\n"
    )
    add("```\n" + meta["command"] + "\n```\n")
    add(f"- Date (UTC): {meta['date']}; wall time of the run: {meta['wall_s'] / 60:.1f} min")
    add(f"- ducklearn revision: {meta['revision']}")
    add(
        f"- CPU: {meta['cpu']}; {meta['cpu_count']} logical CPUs; load average "
        f"{meta['load_start']} at start, {meta['load_end']} at end (a shared machine: "
        "timings are the best of several repeats where noted)"
    )
    add(f"- `ducklearn.backend.info()`: `{json.dumps(meta['backend'])}`")
    add(
        f"- Threads: {json.dumps(meta['threads'])}; ONNX Runtime "
        "`intra_op_num_threads=1, inter_op_num_threads=1`; Vowpal Wabbit runs its own parser "
        "thread beside the learner (its default driver)."
    )
    add("- Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    blas_env = meta["blas_env"]
    if blas_env.get("removed"):
        add(
            f"- BLAS kernels: the environment set `OPENBLAS_CORETYPE={blas_env['removed']}`; "
            "compare.py re-ran itself without it so that OpenBLAS (ducklearn's and numpy's) "
            "chooses its kernels as on a default install (`--keep-openblas-coretype` keeps it)"
        )
    elif blas_env.get("kept"):
        add(f"- BLAS kernels: `OPENBLAS_CORETYPE={blas_env['kept']}` from the environment, kept")
    add(f"- Platform: {meta['platform']}\n")

    summary: list[tuple[str, str, str, str]] = []
    a, b, c, d, e = (res.get(k) for k in ("a", "b", "c", "d", "e"))
    if a:
        r = a["rows"]
        n = a["n"]
        eps = {k: (r[k].get("n", n)) / r[k]["seconds"] for k in r if "seconds" in r[k]}
        vs_vw = eps["ducklearn"] / eps["vw"]
        vs_river = eps["ducklearn"] / eps["river"]
        summary += [
            (
                "a. prequential LR, examples/s vs Vowpal Wabbit",
                f"{vs_vw:.1f}×",
                f"≥ {TARGETS['prequential_vs_vw']:g}×",
                _status_at_least(vs_vw, TARGETS["prequential_vs_vw"]),
            ),
            (
                "a. prequential LR, examples/s vs River",
                f"{vs_river:.0f}×",
                f"≥ {TARGETS['prequential_vs_river']:g}×",
                _status_at_least(vs_river, TARGETS["prequential_vs_river"]),
            ),
            (
                "a. prequential accuracy vs VW (defaults)",
                f"{r['ducklearn']['accuracy']:.4f} vs {r['vw']['accuracy']:.4f}",
                "≥",
                _acc_status(r["ducklearn"]["accuracy"], r["vw"]["accuracy"]),
            ),
            (
                "a. prequential accuracy vs River (defaults)",
                f"{r['ducklearn']['accuracy']:.4f} vs {r['river']['accuracy']:.4f}",
                "≥",
                _acc_status(
                    r["ducklearn"]["accuracy"]
                    if r["river"]["n"] == n
                    else r["ducklearn_on_river_prefix"]["accuracy"],
                    r["river"]["accuracy"],
                ),
            ),
            (
                "a. accuracy, each library's lr tuned on the prefix",
                f"{r['ducklearn_tuned']['accuracy']:.4f} vs VW {r['vw_tuned']['accuracy']:.4f}, "
                f"River {r['river_tuned']['accuracy']:.4f}",
                "≥",
                _acc_status(
                    r["ducklearn_tuned"]["accuracy"],
                    max(r["vw_tuned"]["accuracy"], r["river_tuned"]["accuracy"]),
                ),
            ),
        ]
    if b:
        for op in ("learn_one", "predict_one"):
            ratio = b["ducklearn"][op] / b["river"][op]
            summary.append(
                (
                    f"b. `{op}` from dicts, calls/s vs River",
                    f"{ratio:.1f}×",
                    f"≥ {TARGETS['dict_vs_river']:g}×",
                    _status_at_least(ratio, TARGETS["dict_vs_river"]),
                )
            )
    if c:
        for label, key in (("b1", "mlp_b1_vs_ort"), ("b256", "mlp_b256_vs_ort")):
            ratio = c[label]["ducklearn"]["p50"] / c[label]["ort"]["p50"]
            summary.append(
                (
                    f"c. MLP 64-128-128-1 batch {label[1:]} median latency vs ONNX Runtime",
                    f"{ratio:.2f}×",
                    f"≤ {TARGETS[key]:g}×",
                    _status_at_most(ratio, TARGETS[key]),
                )
            )
    if d:
        us = d["seconds"] / d["n"] * 1e6
        summary.append(
            (
                "d. online MLP update in the stream loop",
                f"{us:.2f} µs",
                f"≤ {TARGETS['mlp_update_us']:g} µs",
                "met"
                if us <= TARGETS["mlp_update_us"]
                else f"missed by {us - TARGETS['mlp_update_us']:.2f} µs "
                f"({us / TARGETS['mlp_update_us']:.2f}×)",
            )
        )
    if e:
        big = e["models"]["mlp-64-1024-1024-1 (Adam)"]
        bpp = big["rss_delta"] / big["n_params"]
        summary.append(
            (
                "e. resident bytes per parameter (1.1M-param MLP, Adam)",
                f"{bpp:.2f} B",
                "flat buffers + small overhead",
                f"{bpp / 4:.2f}× raw float32; flat buffers are "
                f"{big['flat_buffers'] / big['n_params']:.0f} B/param",
            )
        )
        lr_rows = [v for k, v in e["stream"].items() if k.startswith("logreg:")]
        extras = [v["core_single"] - v["output_calibration"] for v in lr_rows]
        chunked = [v["core_chunked"] for v in lr_rows]
        summary.append(
            (
                "e. stream-loop peak memory, n = " + " → ".join(f"{v['n']:,}" for v in lr_rows),
                " → ".join(_kib(x) for x in extras) + " of loop working memory",
                "flat",
                "met" if max(extras) - min(extras) < 1 << 20 else "grows with n",
            )
        )
        summary.append(
            (
                "e. same, fed in 10⁴-row chunks (whole process peak delta)",
                " → ".join(_kib(x) for x in chunked),
                "flat",
                "met" if max(chunked) - min(chunked) < 1 << 20 else "grows with n",
            )
        )

    add("### Targets\n")
    add("| measurement | reached | target | status |")
    add("|---|---|---|---|")
    for row in summary:
        add("| " + " | ".join(row) + " |")
    add("")

    if a:
        r = a["rows"]
        n = a["n"]
        add(f"### a. Prequential online logistic regression ({n:,} examples)\n")
        add(
            f"The entity stream (seed {meta['seed']}, 34 columns in raw units, concept change at "
            f"row {n // 2:,}; Bayes accuracy {a['bayes_accuracy']:.4f}). Test-then-train: each "
            "example is predicted, then learned. Every model standardizes its inputs online. "
            "Throughput counts everything a user waits for in that call (ducklearn: input "
            "validation + C++ loop; VW: parsing its text file + learning; River and "
            "scikit-learn: their Python loops).\n"
        )
        add(
            "| library / model | examples | examples/s | ducklearn LR's speed-up over it | "
            "prequential accuracy |"
        )
        add("|---|---|---|---|---|")
        dl_eps = n / r["ducklearn"]["seconds"]

        def row(name: str, key: str, note: str = "") -> None:
            v = r[key]
            m = v.get("n", n)
            e_s = m / v["seconds"]
            acc = f"{v['accuracy']:.4f}" if "accuracy" in v else "–"
            add(f"| {name}{note} | {m:,} | {e_s:,.0f} | {dl_eps / e_s:,.2f}× | {acc} |")

        row(
            "ducklearn `LogisticRegression(scale=True)` + `evaluate.prequential`",
            "ducklearn",
            f" (AdaGrad lr {r['ducklearn']['lr']:g}; best of {r['ducklearn']['repeats']})",
        )
        core_eps = n / r["ducklearn_core"]["seconds"]
        add(
            f"| ducklearn, C++ loop alone (`_learner.prequential`, no input checks) | {n:,} | "
            f"{core_eps:,.0f} | {dl_eps / core_eps:,.2f}× | – |"
        )
        row(
            "Vowpal Wabbit `--loss_function logistic --link logistic`",
            "vw",
            f" (-l {r['vw']['lr']:g}, adaptive/normalized/invariant; best of {r['vw']['repeats']})",
        )
        row(
            "River `StandardScaler() \\| LogisticRegression()`",
            "river",
            f" (SGD lr {r['river']['lr']:g}; best of {r['river']['repeats']})",
        )
        row(
            "scikit-learn `SGDClassifier(log_loss).partial_fit`, per example",
            "sklearn_sgd_1",
            " (prefix)",
        )
        row(
            "scikit-learn `SGDClassifier(log_loss).partial_fit`, batches of 256",
            "sklearn_sgd_256",
            " (predict batch, then learn it)",
        )
        row(
            "scikit-learn `MLPClassifier((128, 128)).partial_fit`, batches of 256",
            "sklearn_mlp_256",
            " (non-linear reference)",
        )
        row(
            "ducklearn `MLPClassifier((128, 128), scale=True)`, per example",
            "ducklearn_mlp",
            " (non-linear reference)",
        )
        add("")
        add(
            f"Learning rates tuned on the first {a['tune_n']:,} examples (prequential accuracy), "
            "then run on the whole stream:\n"
        )
        add("| library | grid (prefix accuracy) | chosen | full-stream accuracy |")
        add("|---|---|---|---|")
        for name, key in (
            ("ducklearn", "ducklearn_tuned"),
            ("Vowpal Wabbit", "vw_tuned"),
            ("River", "river_tuned"),
        ):
            v = r[key]
            grid = ", ".join(f"{lr:g}: {acc:.4f}" for lr, acc in v["grid"].items())
            add(f"| {name} | {grid} | {v['lr']:g} | {v['accuracy']:.4f} |")
        add("")
        if "ducklearn_on_river_prefix" in r:
            add(
                f"River ran on the first {r['river']['n']:,} examples only (`--river-n`); "
                f"ducklearn's accuracy on that prefix is "
                f"{r['ducklearn_on_river_prefix']['accuracy']:.4f}.\n"
            )
        add(f"VW's input file is {r['vw']['file_mb']:.0f} MB of text, written before timing.\n")

    if b:
        add(f"### b. River-style calls from Python dicts ({b['n']:,} records, 34 keys each)\n")
        add(
            "Fresh model, then `learn_one` over every record, then `predict_one` and "
            f"`predict_proba_one` over every record; best of {b['repeats']} passes, GC off. "
            "ducklearn: `LogisticRegression(scale=True)`; River: "
            "`StandardScaler() | LogisticRegression()`.\n"
        )
        add("| call | ducklearn calls/s | River calls/s | ratio |")
        add("|---|---|---|---|")
        for op in (
            "learn_one",
            "predict_one",
            "predict_proba_one",
            "predict_proba_one + learn_one",
        ):
            dl, rv = b["ducklearn"][op], b["river"][op]
            add(
                f"| `{op}` | {dl:,.0f} ({1e6 / dl:.2f} µs) | {rv:,.0f} ({1e6 / rv:.2f} µs) | "
                f"{dl / rv:.1f}× |"
            )
        core = b["ducklearn_core"]
        add("")
        add(
            "Where ducklearn's time goes: the binding alone (`_learner.learn_dict(x, y, index)`, "
            "`_learner.predict_dict(x, index)`: decode the 34-key dict in C++, run the model) "
            f"does {core['learn_one']:,.0f} learns/s ({1e6 / core['learn_one']:.2f} µs) and "
            f"{core['predict_one']:,.0f} predictions/s ({1e6 / core['predict_one']:.2f} µs); "
            "the rest of each public call is the estimator's Python wrapper.\n"
        )

    if c:
        add("### c. MLP 64-128-128-1 inference called from Python\n")
        add(
            f"The same weights ({c['n_params']:,} parameters, trained prequentially on "
            f"{W.MLP_WARMUP_ROWS:,} rows of the 64-column stream) in ducklearn and in an ONNX "
            "graph built with `onnx.helper` (Gemm+Relu, Gemm+Relu, Gemm+Sigmoid) from the flat "
            "parameter buffer, with ducklearn's online standardization folded into the first "
            "Gemm (so ONNX Runtime does slightly less arithmetic than ducklearn). Largest "
            f"difference between the two outputs: {c['max_abs_diff']:.2e}. "
            "`ducklearn.backend.set_blas_threads(1)`, ONNX Runtime 1 intra-op and 1 inter-op "
            "thread; calls interleaved in 5 rounds, GC off.\n"
        )
        add("| batch | call | p50 µs | p99 µs | p50 vs ONNX Runtime | calls timed |")
        add("|---|---|---|---|---|---|")
        names = {
            "ducklearn": "ducklearn `model.predict_proba(X)`",
            "ducklearn_core": "ducklearn internal `_learner.predict(X)` (no checks)",
            "ort": "ONNX Runtime `session.run(None, {'x': X})`",
        }
        for label in ("b1", "b256"):
            ort50 = c[label]["ort"]["p50"]
            for key in ("ducklearn", "ducklearn_core", "ort"):
                v = c[label][key]
                add(
                    f"| {label[1:]} | {names[key]} | {v['p50']:.2f} | {v['p99']:.2f} | "
                    f"{v['p50'] / ort50:.2f}× | {v['reps']:,} |"
                )
        add("")
        alt = c.get("b256_other_blas")
        if alt:
            removed = meta["blas_env"].get("removed")
            why = (
                f"This machine's environment sets `OPENBLAS_CORETYPE={removed}`; the run removed "
                "it (see the header), so the figures above use the kernels OpenBLAS and "
                f"ducklearn pick by themselves (`{meta['backend']['blas_core']}`)."
                if removed
                else f"OpenBLAS is running its `{meta['backend']['blas_core']}` kernels on this "
                "AVX-512 CPU."
            )
            add(
                f"{why} With `OPENBLAS_CORETYPE={alt['coretype']}` instead (child process, "
                f"OpenBLAS reports `{alt['blas_core']}`): batch 256 p50 ducklearn "
                f"{alt['ducklearn']:.2f} µs vs ONNX Runtime {alt['ort']:.2f} µs "
                f"({alt['ducklearn'] / alt['ort']:.2f}×).\n"
            )

    if d:
        us = d["seconds"] / d["n"] * 1e6
        add("### d. Online MLP update in the C++ stream loop\n")
        add(
            f"`evaluate.prequential(MLPClassifier((128, 128), scale=True), X, y)` over "
            f"{d['n']:,} examples of the 64-column stream (34 entity columns + 30 distractors): "
            "per example, standardize, forward, record the prediction, loss, backward, Adam "
            f"step. Best of {d['repeats']}.\n"
        )
        add("| measurement | value |")
        add("|---|---|")
        add(f"| µs per example (predict + update) | {us:.2f} |")
        add(f"| examples/s | {d['n'] / d['seconds']:,.0f} |")
        add(
            f"| µs per update alone (`fit_epoch`, batch size 1, {d['fit_epoch_rows']:,} rows) | "
            f"{d['fit_epoch_b1_us']:.2f} |"
        )
        add(f"| prequential accuracy (Bayes {d['bayes_accuracy']:.4f}) | {d['accuracy']:.4f} |")
        add("")

    if e:
        add("### e. Memory\n")
        add(
            "Resident size of a model: in a child process, the RSS growth from building "
            "`copies` models (each after one `partial_fit` on 32 rows, so every buffer, optimizer "
            "state included, exists), divided by `copies`; per-process one-time costs (imports, "
            "OpenBLAS work buffers) are paid by a throwaway model first. Flat buffers = "
            "parameters + gradients + one buffer per optimizer slot, float32; overhead = "
            "resident − flat (scaler statistics, workspace, learner object, allocator slack). "
            "Python heap = what `tracemalloc` sees while building one more.\n"
        )
        add(
            "| model | parameters | raw float32 | flat buffers | resident (copies) | overhead | "
            "bytes/param | vs raw float32 | Python heap |"
        )
        add("|---|---|---|---|---|---|---|---|---|")
        for name, v in e["models"].items():
            add(
                f"| ducklearn {name} | {v['n_params']:,} | {_kib(v['raw_float32'])} | "
                f"{_kib(v['flat_buffers'])} | {_kib(v['rss_delta'])} ({v['copies']}) | "
                f"{_kib(v['rss_delta'] - v['flat_buffers'])} | "
                f"{v['rss_delta'] / v['n_params']:.1f} | "
                f"{v['rss_delta'] / v['raw_float32']:.2f}× | {v['python_heap']:,} B |"
            )
        rv = e["river"]
        add(
            "| River `StandardScaler \\| LogisticRegression` after 1,000 records "
            f"| {rv['n_params']} | {rv['raw_float32']} B | – | – | – | "
            f"{rv['python_heap'] / rv['n_params']:.0f} "
            f"(Python heap) | {rv['python_heap'] / rv['raw_float32']:.0f}× | "
            f"{rv['python_heap']:,} B |"
        )
        add("")
        add(
            "Peak memory of the stream loop: in a child process per n, free heap is returned "
            "to the OS (`malloc_trim`), the peak-RSS high-water mark is reset "
            "(`/proc/self/clear_refs`), the loop runs, and the new peak minus the RSS before the "
            "call is reported. A single call allocates its n × 4-byte output up front; "
            '"allocating the output alone" measures just that allocation the same way, so the '
            "difference is the loop's own working memory. The model ran once on 100 rows "
            "before, so buffers sized on first use are not counted. Each figure is the smallest of "
            "2-3 readings (background THP/DAMON activity on a VM can add a couple of MiB to one "
            "reading), with glibc's mmap threshold fixed so that allocations are repeatable. "
            "Differences of a few tens of KiB are page accounting, not per-example allocation, "
            "which would show as megabytes at n = 10⁶.\n"
        )
        add(
            "| model | n | output array | allocating the output alone | single call: peak − "
            "before | loop's working memory | fed in 10⁴-row chunks | public `prequential()` "
            "(with input checks) |"
        )
        add("|---|---|---|---|---|---|---|---|")
        for key, v in e["stream"].items():
            kind = key.split(":")[0]
            chunk = _kib(v["core_chunked"]) if "core_chunked" in v else "–"
            public = _mib(v["public_single"]) if "public_single" in v else "–"
            add(
                f"| {kind} | {v['n']:,} | {_kib(v['output_bytes'])} | "
                f"{_kib(v['output_calibration'])} | {_kib(v['core_single'])} | "
                f"{_kib(v['core_single'] - v['output_calibration'])} | {chunk} | {public} |"
            )
        add("")
        if not all(v.get("reset_supported", True) for v in e["stream"].values()):
            add("The kernel refused the peak reset: peaks include data generation.\n")

    add("### Method notes\n")
    add(
        "- Throughputs are the fastest of the stated repeats (a fresh model each repeat). The "
        "contenders take turns round after round (ducklearn and VW alternate; ducklearn runs "
        "again between River's passes; in section b ducklearn and River alternate per repeat), "
        "so that load from other processes on a shared machine hits them alike. The "
        "scikit-learn loops are timed once."
    )
    add(
        "- Prequential accuracy: the prediction made before learning each example, "
        "thresholded at 0.5, against its label, over the whole stream (drift included)."
    )
    add(
        "- The learning-rate grids are centred on each library's default and searched on the "
        "same prefix; the headline accuracy rows use each library's defaults."
    )
    add(
        "- Nothing here is asserted by the test suite; `pytest benchmarks/pytest` and the asv "
        "suites in `benchmarks/benchmarks/` time the same workloads (`benchmarks/workloads.py`)."
    )
    add("")
    add(END)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--probe"]:
        what, rest = argv[1], argv[2:]
        W.fix_allocator_thresholds()  # repeatable RSS figures in the child processes
        if what == "model-size":
            out = probe_model_size(rest[0])
        elif what == "river-size":
            out = probe_river_size()
        elif what == "inference":
            out = probe_inference(int(rest[0]), int(rest[1]))
        elif what == "stream-peak":
            out = probe_stream_peak(rest[0], int(rest[1]))
        else:
            raise SystemExit(f"unknown probe {what!r}")
        print(json.dumps(out))
        return 0

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=W.ENTITY_N, help="stream length")
    parser.add_argument("--seed", type=int, default=W.ENTITY_SEED)
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of the fast timings")
    parser.add_argument("--vw-repeats", type=int, default=5)
    parser.add_argument("--mlp-repeats", type=int, default=2)
    parser.add_argument("--river-repeats", type=int, default=2)
    parser.add_argument(
        "--river-n", type=int, default=0, help="run River on this prefix only (0: the whole stream)"
    )
    parser.add_argument("--tune-n", type=int, default=20_000, help="prefix for lr tuning")
    parser.add_argument(
        "--sklearn-n",
        type=int,
        default=10_000,
        help="prefix for scikit-learn's per-example partial_fit",
    )
    parser.add_argument("--dict-n", type=int, default=50_000, help="records for section b")
    parser.add_argument(
        "--latency-reps",
        type=int,
        default=20_000,
        help="batch-1 calls timed per library (batch 256: a tenth)",
    )
    parser.add_argument("--sections", default="abcde", help="subset of a, b, c, d, e")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (smoke test)")
    parser.add_argument(
        "--keep-openblas-coretype",
        action="store_true",
        help="keep an inherited OPENBLAS_CORETYPE (by default the run restarts without it)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = args.vw_repeats = args.mlp_repeats = args.river_repeats = 1
        args.latency_reps = min(args.latency_reps, 2_000)

    import ducklearn.backend

    start = time.perf_counter()
    meta: dict[str, Any] = {
        "command": "python benchmarks/compare.py" + "".join(" " + shlex.quote(a) for a in argv),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "revision": git_revision(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "versions": versions(),
        "platform": platform.platform(),
        "seed": args.seed,
        "blas_env": {
            "removed": os.environ.get(_REMOVED_CORETYPE),
            "kept": os.environ.get("OPENBLAS_CORETYPE"),
        },
    }
    meta["threads"] = limit_threads()
    meta["backend"] = ducklearn.backend.info()
    res: dict[str, Any] = {"meta": meta}
    log(f"machine: {meta['cpu']}; load {meta['load_start']}")
    with tempfile.TemporaryDirectory(prefix="ducklearn-bench-") as tmp:
        if "a" in args.sections:
            res["a"] = section_prequential(args, Path(tmp))
        if "b" in args.sections:
            res["b"] = section_dicts(args)
        if "c" in args.sections:
            res["c"] = section_inference(args)
        if "d" in args.sections:
            res["d"] = section_update(args)
        if "e" in args.sections:
            res["e"] = section_memory(args)
    meta["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    meta["wall_s"] = time.perf_counter() - start
    write_section(args.out, render(res), BEGIN, END)
    log(f"wrote {args.out}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=float), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
