"""``ducklearn serve``: serve a registry's models over HTTP.

    ducklearn serve --registry models/ --host 127.0.0.1 --port 8000 --model churn@prod

Models named with ``--model`` (``name``, ``name@alias``, ``name:version``) are loaded and
warmed up at startup (``/readyz`` says 503 until they are); any other model of the registry
loads on its first request. Alias endpoints follow alias moves (hot swap). SIGTERM or
Ctrl-C drains: new predictions get 503, in-flight ones finish.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from typing import Any

__all__ = ["add_subcommands"]


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _nonneg_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return v


def _positive_float(text: str) -> float:
    v = _nonneg_float(text)
    if v == 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return v


def _port(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"port must be in [0, 65535], got {v}")
    return v


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        from ducklearn.serving.http import HTTPServer
    except ModuleNotFoundError as exc:
        print(f"ducklearn serve: {exc}", file=sys.stderr)
        return 2
    from ducklearn import backend
    from ducklearn.registry import Registry
    from ducklearn.serving import PredictionServer

    logging.basicConfig(level=getattr(logging, args.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    location = args.registry or os.environ.get("DUCKLEARN_REGISTRY")
    if not location:
        print("ducklearn serve: --registry PATH_OR_URL is required (or set "
              "$DUCKLEARN_REGISTRY)", file=sys.stderr)
        return 2
    if "://" not in location and not os.path.exists(location):
        print(f"ducklearn serve: no registry at {location!r}", file=sys.stderr)
        return 2
    # Batches are small: parallelism comes from batcher threads and processes, and BLAS
    # threads of its own would only fight them for the cores.
    backend.set_blas_threads(args.blas_threads)
    # Sub-millisecond requests: a thread waiting for the GIL should not wait 5 ms for it.
    sys.setswitchinterval(args.switch_interval_us * 1e-6)
    registry = Registry(location, actor=args.actor)
    server = PredictionServer(
        registry, max_batch_size=args.max_batch_size, max_wait_us=args.max_wait_us,
        queue_capacity=args.queue_capacity, workers=args.workers,
        default_timeout=args.timeout_ms / 1000.0, watch_interval=args.watch_interval)
    try:
        http = HTTPServer(server, host=args.host, port=args.port, models=args.model or (),
                          max_body_bytes=args.max_body_bytes, drain_timeout=args.drain_timeout,
                          log_level=args.log_level)
    except OSError as exc:
        print(f"ducklearn serve: {exc}", file=sys.stderr)
        server.close(drain=False)
        return 1
    # Everything loaded so far lives as long as the process: keep it out of the cyclic
    # collector's full scans, which otherwise add milliseconds to unlucky requests.
    gc.collect()
    gc.freeze()
    print(f"serving {location} on {http.url} (models: "
          f"{', '.join(args.model) if args.model else 'loaded on first request'})",
          file=sys.stderr, flush=True)
    try:
        http.run()
    finally:
        registry.close()
    return 0


def add_subcommands(subparsers: Any) -> None:
    p = subparsers.add_parser("serve", help="serve a registry's models over HTTP",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--registry", default=None, metavar="PATH_OR_URL",
                   help="registry directory, sqlite:///file.db or postgresql://... "
                        "(default $DUCKLEARN_REGISTRY)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0: any free)")
    p.add_argument("--model", action="append", metavar="NAME[@ALIAS|:VERSION]",
                   help="load and warm up this model at startup (repeatable)")
    p.add_argument("--actor", default=None, help="registry principal (default $DUCKLEARN_ACTOR)")
    p.add_argument("--max-batch-size", type=_positive_int, default=64)
    p.add_argument("--max-wait-us", type=_nonneg_float, default=200.0)
    p.add_argument("--queue-capacity", type=_positive_int, default=10_000,
                   help="rows that may wait per model before 429 (default 10000)")
    p.add_argument("--workers", type=_positive_int, default=1, help="batcher threads per model")
    p.add_argument("--timeout-ms", type=_positive_float, default=1000.0,
                   help="deadline of requests that give none (default 1000)")
    p.add_argument("--watch-interval", type=_positive_float, default=1.0,
                   help="seconds between checks for alias moves (default 1)")
    p.add_argument("--max-body-bytes", type=_positive_int, default=1 << 20)
    p.add_argument("--drain-timeout", type=_nonneg_float, default=10.0,
                   help="seconds to finish in-flight requests on shutdown (default 10)")
    p.add_argument("--blas-threads", type=_positive_int, default=1)
    p.add_argument("--switch-interval-us", type=_positive_float, default=500.0,
                   help="Python's GIL switch interval (default 500 us)")
    p.add_argument("--log-level", default="warning",
                   choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_cmd_serve)
