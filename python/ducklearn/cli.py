"""The ``ducklearn`` command.

``ducklearn quickstart`` runs the main job on embedded defaults (see
:mod:`ducklearn.quickstart`); ``ducklearn info`` describes the native backend; other areas
(registry, events, serving) add their own subcommands.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _cmd_info(args: argparse.Namespace) -> int:
    from ducklearn import backend

    print(json.dumps(backend.info(), indent=2))
    return 0


def _at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from ducklearn.quickstart import run

    run(n=args.n, seed=args.seed, workdir=args.workdir, quiet=args.quiet)
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
    quick.add_argument("--n", type=_at_least(1000), default=200_000,
                       help="stream length (default 200000, at least 1000)")
    quick.add_argument("--seed", type=int, default=0, help="stream and model seed")
    quick.add_argument("--workdir", default="ducklearn-quickstart",
                       help="where checkpoints (and later the registry) go")
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
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
