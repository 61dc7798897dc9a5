"""The ``ducklearn`` command.

``ducklearn quickstart`` runs the main job on embedded defaults: it generates the entity
stream (code-change suggestions with a concept change half-way), learns it online while
predicting every example before learning it, and prints accuracy over time, the recovery
after the change and the throughput. ``ducklearn info`` describes the native backend.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

import numpy as np

__all__ = ["main"]


def _cmd_info(args: argparse.Namespace) -> int:
    from ducklearn import backend

    print(json.dumps(backend.info(), indent=2))
    return 0


def _progress(total: int, desc: str, quiet: bool):
    """A tqdm bar on stderr (quiet or not a terminal: a no-op with the same interface)."""
    from tqdm import tqdm

    # disable=None lets tqdm switch itself off when stderr is not a terminal (CI logs).
    return tqdm(total=total, desc=desc, unit="ex", unit_scale=True,
                disable=True if quiet else None,
                file=sys.stderr, dynamic_ncols=True, leave=True)


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from ducklearn import backend
    from ducklearn.datasets import make_entity_stream
    from ducklearn.evaluate import prequential
    from ducklearn.linear import LogisticRegression
    from ducklearn.nn import MLPClassifier

    info = backend.info()
    print(f"ducklearn {info['version']}  kernels={info['simd_target']}  blas={info['blas']}")
    stream = make_entity_stream(args.n, seed=args.seed)
    print(f"entity stream: {stream.n:,} suggestions x {stream.n_features} features, "
          f"concept change at example {stream.drift_index:,}, "
          f"Bayes accuracy {stream.bayes_accuracy:.3f}")

    learners = {
        "logistic (online, standardized)": LogisticRegression(scale=True),
        "mlp 64-64 (online, standardized)": MLPClassifier(
            hidden_layer_sizes=(64, 64), scale=True, lr=0.002, seed=args.seed
        ),
    }
    chunk = max(1, min(args.window, stream.n))
    rows = []
    for name, model in learners.items():
        correct = np.empty(stream.n, dtype=bool)
        seconds = 0.0
        with _progress(stream.n, name, args.quiet) as bar:
            for start in range(0, stream.n, chunk):
                stop = min(start + chunk, stream.n)
                t0 = time.perf_counter()
                result = prequential(model, stream.X[start:stop], stream.y[start:stop],
                                     metrics=("accuracy",))
                seconds += time.perf_counter() - t0
                correct[start:stop] = (result.predictions > 0.5) == (stream.y[start:stop] > 0.5)
                bar.update(stop - start)
                bar.set_postfix(acc=f"{correct[:stop].mean():.3f}")
        rows.append((name, correct, seconds))

    d = stream.drift_index
    print()
    print(f"{'learner':34} {'overall':>8} {'before':>8} {'after':>8} "
          f"{'recovered':>10} {'examples/s':>12}")
    window = max(1, min(args.window, stream.n // 20))
    for name, correct, seconds in rows:
        before = correct[:d].mean() if d > 0 else float("nan")
        after = correct[d:].mean() if d < stream.n else float("nan")
        # Examples after the change until the rolling accuracy is back within 2 points of
        # its level just before the change.
        target = correct[max(0, d - window):d].mean() - 0.02 if d >= window else float("nan")
        recovered = "-"
        if np.isfinite(target) and d < stream.n:
            roll = np.convolve(correct[d:].astype(float), np.ones(window) / window, "valid")
            hit = np.nonzero(roll >= target)[0]
            recovered = f"{hit[0] + window:,}" if hit.size else "never"
        print(f"{name:34} {correct.mean():8.3f} {before:8.3f} {after:8.3f} {recovered:>10} "
              f"{stream.n / seconds:12,.0f}")
    print(f"\n(accuracy is prequential: every example is predicted before it is learned; "
          f"Bayes accuracy {stream.bayes_accuracy:.3f} is the ceiling)")
    return 0


# Modules that add their own subcommands: each defines add_subcommands(subparsers), which
# registers parsers whose defaults carry func(args) -> exit code. Missing modules are skipped
# so the CLI never depends on what a given build ships.
_SUBCOMMAND_MODULES: tuple[str, ...] = (
    "ducklearn.registry.cli",
    "ducklearn.events.cli",
    "ducklearn.serving.cli",
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="ducklearn", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    quick = sub.add_parser("quickstart", help="run the main job on embedded defaults")
    quick.add_argument("--n", type=int, default=200_000, help="stream length (default 200000)")
    quick.add_argument("--seed", type=int, default=0, help="stream and model seed")
    quick.add_argument("--window", type=int, default=5_000,
                       help="examples per progress step and rolling window (default 5000)")
    quick.add_argument("--quiet", action="store_true", help="no progress bar")
    quick.set_defaults(func=_cmd_quickstart)

    info = sub.add_parser("info", help="describe the native backend (SIMD, BLAS, CUDA)")
    info.set_defaults(func=_cmd_info)

    for name in _SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue  # that area is not part of this build
            raise
        module.add_subcommands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "n", 1) < 1:
        parser.error("--n must be >= 1")
    if getattr(args, "window", 1) < 1:
        parser.error("--window must be >= 1")
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
