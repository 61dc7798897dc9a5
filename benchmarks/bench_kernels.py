"""Inference latency per SIMD kernel table: what a snapshot of the core MLP costs on a CPU
with AVX-512, with AVX2 only, or with neither.

Each table runs in its own process (``DUCKLEARN_SIMD`` caps the table). OpenBLAS is pinned to
the kernels such a CPU would get: its default choice for the AVX-512 table, ``Haswell`` (AVX2)
for the others. The packed-weight GEMM serves snapshots at every batch size where the table
has it (AVX2, AVX-512); the generic table runs gemv / BLAS.

Writes its section of ``benchmarks/RESULTS.md`` between ``<!-- BEGIN kernels -->`` and
``<!-- END kernels -->``::

    python benchmarks/bench_kernels.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from results_md import write_section

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- BEGIN kernels -->", "<!-- END kernels -->"

CHILD = r"""
import json, time
import numpy as np
from ducklearn import backend
from ducklearn.nn import MLPClassifier

rng = np.random.default_rng(0)
X = rng.normal(size=(4096, 64)).astype(np.float32)
model = MLPClassifier(hidden_layer_sizes=(128, 128), max_epochs=1).fit(X, (X[:, 0] > 0).astype(int))
snap = model._learner.snapshot()
out = {"info": backend.info()}
for batch, reps in ((1, 20000), (16, 5000), (256, 1000)):
    xb = np.ascontiguousarray(X[:batch])
    for _ in range(200):
        snap.predict(xb)
    ts = np.empty(reps)
    for i in range(reps):
        t = time.perf_counter_ns(); snap.predict(xb); ts[i] = time.perf_counter_ns() - t
    out[str(batch)] = float(np.median(ts)) / 1e3
print(json.dumps(out))
"""


def run(target: str) -> dict:
    env = dict(os.environ, DUCKLEARN_SIMD=target, OPENBLAS_NUM_THREADS="1")
    if target == "avx512":
        env.pop("OPENBLAS_CORETYPE", None)
    else:
        env["OPENBLAS_CORETYPE"] = "Haswell"
    res = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    from ducklearn import backend

    best = backend.info()["simd_best"]
    order = ["generic", "avx2", "avx512"]
    targets = [t for t in reversed(order) if order.index(t) <= order.index(best)]
    t0 = time.time()
    rows = []
    for target in targets:
        r = run(target)
        info = r["info"]
        rows.append(f"| {info['simd_target']} | {'yes' if target != 'generic' else 'no'} | "
                    f"{info['blas_core']} | {r['1']:.2f} | {r['16']:.2f} | {r['256']:.1f} |")
        print(rows[-1], flush=True)
    lines = [
        "## Kernel tables: snapshot inference latency",
        "",
        "Command: `python benchmarks/bench_kernels.py`; "
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(t0))} UTC, on this machine (best "
        f"table: {best}). MLP 64-128-128-1 (ReLU), "
        "`snapshot().predict`, 1 thread, median µs per call. Each table runs in its own process "
        "(`DUCKLEARN_SIMD`), with OpenBLAS pinned to the kernels a CPU of that kind would use.",
        "",
        "| kernel table | packed GEMM | OpenBLAS kernels | batch 1 | batch 16 | batch 256 |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    write_section(HERE / "RESULTS.md", "\n".join([BEGIN, *lines, END]) + "\n", BEGIN, END)
    print("wrote the kernels section of", HERE / "RESULTS.md")


if __name__ == "__main__":
    main()
