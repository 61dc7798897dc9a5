"""HTTP API over a :class:`~ducklearn.serving.PredictionServer` (Starlette + uvicorn; install
``ducklearn[serve]``).

Routes
------
``POST /v1/models/{name}/predict``                    the model served as ``name``
``POST /v1/models/{name}/versions/{version}/predict`` an exact registry version
``POST /v1/models/{name}/aliases/{alias}/predict``    whatever the alias points to now
``GET  /v1/models``                                   what is served, versions, breakers
``GET  /healthz``                                     the process answers (liveness)
``GET  /readyz``                                      models loaded and warm, not draining
``GET  /metrics``                                     Prometheus text format

A predict request is a JSON object::

    {"inputs": [[0.1, 2.0, ...], ...] | [0.1, 2.0, ...] | {"field": value, ...} | [{...}, ...],
     "timeout_ms": 50, "priority": 0}

and its answer says which version computed it and whether the fallback answered::

    {"model": "churn@prod", "version": "1.3.0", "fallback": false,
     "predictions": [1, 0], "outputs": [[0.93], [0.12]], "classes": [0, 1]}

Errors are JSON too, ``{"error": {"type": ..., "message": ..., "field": ...}}``, with the
status of the failure: 400 bad input (``field`` names it), 404 unknown model, 405, 413 body
too large, 429 overloaded, 503 shutting down or model unavailable, 504 deadline passed.

Shutting down (SIGTERM/SIGINT, or :meth:`HTTPServer.shutdown`) first stops taking new
predictions (503 with ``Retry-After``), lets the in-flight ones finish, then closes the
prediction server with a drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

try:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route
except ModuleNotFoundError as exc:  # pragma: no cover - exercised only without the extra
    raise ModuleNotFoundError(
        f"the HTTP API needs the 'serve' extra ({exc.name} is missing): "
        "pip install 'ducklearn[serve]'", name=exc.name) from None

from ducklearn.serving.server import (
    LATENCY_BUCKETS,
    BadInput,
    Prediction,
    PredictionServer,
    ServingError,
    ShuttingDown,
    _check_priority,
    _first_bad_number,
    _Histogram,
    _prediction_dict,
)

__all__ = ["create_app", "HTTPServer", "ServingCollector", "DEFAULT_MAX_BODY_BYTES"]

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1 << 20
_JSON = "application/json"


class BodyTooLarge(ServingError):
    """The request body exceeds the server's limit (HTTP 413)."""

    status = 413
    kind = "body_too_large"


# -- JSON in and out -------------------------------------------------------------------------

def _dumps(obj: Any) -> bytes:
    # allow_nan=False: a non-finite number in an answer is a bug, never valid JSON to send.
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def _error_response(exc: ServingError) -> Response:
    err: dict[str, Any] = {"type": exc.kind, "message": str(exc)}
    field = getattr(exc, "field", None)
    if field:
        err["field"] = field
    headers = {"Retry-After": "1"} if exc.status in (429, 503) else None
    return Response(_dumps({"error": err}), status_code=exc.status, media_type=_JSON,
                    headers=headers)


def _prediction_json(pred: Prediction) -> bytes:
    return _dumps(_prediction_dict(pred))


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadInput("Content-Length must be an integer", field="Content-Length") from None
        if size > limit:  # refused before reading a byte of it
            raise BodyTooLarge(f"request body of {size} bytes exceeds the limit of {limit} bytes")
    chunks, total = [], 0
    async for chunk in request.stream():  # chunked uploads are counted as they arrive
        total += len(chunk)
        if total > limit:
            raise BodyTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_request(body: bytes) -> tuple[Any, float | None, int]:
    """(inputs, timeout in seconds or None, priority); raises BadInput naming the field."""
    if not body:
        raise BadInput('empty body: send a JSON object like {"inputs": [[...]]}', field="body")
    try:
        payload = json.loads(body.decode("utf-8"))  # JSON is UTF-8 (RFC 8259); no sniffing
    except UnicodeDecodeError:
        raise BadInput("the body is not UTF-8 text", field="body") from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                       field="body") from None
    if not isinstance(payload, dict):
        raise BadInput(f"the body must be a JSON object with an 'inputs' field, got "
                       f"{type(payload).__name__}", field="body")
    unknown = set(payload) - {"inputs", "timeout_ms", "priority"}
    if unknown:
        raise BadInput(f"unknown field(s) {sorted(unknown)}; expected inputs, timeout_ms, "
                       "priority", field=sorted(unknown)[0])
    if "inputs" not in payload:
        raise BadInput("missing field 'inputs'", field="inputs")
    timeout = None
    t = payload.get("timeout_ms")
    if t is not None:
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) \
                or t <= 0:
            raise BadInput(f"timeout_ms must be a finite number > 0, got {t!r}",
                           field="timeout_ms")
        timeout = t / 1000.0
    inputs = payload["inputs"]
    # numpy would take JSON true/false in a row as 1/0; only look when the body has one.
    if (b"true" in body or b"false" in body) and isinstance(inputs, list) and inputs and \
            not isinstance(inputs[0], dict):
        bad = _first_bad_number(inputs)
        if bad is not None:
            raise BadInput(f"{bad[0]} {bad[1]}", field=bad[0])
    return inputs, timeout, _check_priority(payload.get("priority", 0))


# -- metrics ---------------------------------------------------------------------------------

class _HTTPStats:
    """Per-route status counts and an end-to-end latency histogram. Touched only from the
    event loop thread, so it needs no lock."""

    def __init__(self) -> None:
        self.responses: dict[tuple[str, int], int] = {}
        self.latency = _Histogram(LATENCY_BUCKETS)
        self.inflight = 0

    def observe(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        self.responses[key] = self.responses.get(key, 0) + 1
        self.latency.observe(seconds)


def _buckets(bounds: Iterable[float], counts: Iterable[int]) -> list[tuple[str, float]]:
    """Cumulative (le, count) pairs as Prometheus wants them, ending at +Inf."""
    out, acc = [], 0
    for b, c in zip(bounds, counts, strict=True):
        acc += c
        out.append(("+Inf" if math.isinf(b) else repr(float(b)), acc))
    return out


class ServingCollector:
    """A prometheus_client collector over :meth:`PredictionServer.metrics` (and the HTTP
    layer's counters): read at scrape time, so serving never pays for metrics."""

    def __init__(self, server: PredictionServer, http_stats: _HTTPStats | None = None):
        self.server = server
        self.http = http_stats

    def describe(self) -> list:  # no eager collect() at registration
        return []

    def collect(self) -> Iterable[Any]:
        m = self.server.metrics()
        requests = CounterMetricFamily("ducklearn_serving_requests",
                                       "Prediction requests accepted into a model's queue",
                                       labels=["model"])
        rows = CounterMetricFamily("ducklearn_serving_rows", "Rows answered", labels=["model"])
        errors = CounterMetricFamily("ducklearn_serving_errors",
                                     "Failed or rejected requests by type",
                                     labels=["model", "type"])
        fallbacks = CounterMetricFamily("ducklearn_serving_fallbacks",
                                        "Requests answered by the fallback", labels=["model"])
        swaps = CounterMetricFamily("ducklearn_serving_swaps", "Hot swaps of the served version",
                                    labels=["model"])
        opens = CounterMetricFamily("ducklearn_serving_breaker_opens",
                                    "Times the circuit breaker opened", labels=["model"])
        queued = GaugeMetricFamily("ducklearn_serving_queue_depth_rows",
                                   "Rows waiting in the model's queue", labels=["model"])
        inflight = GaugeMetricFamily("ducklearn_serving_in_flight_rows",
                                     "Rows being computed", labels=["model"])
        breaker = GaugeMetricFamily("ducklearn_serving_breaker_open",
                                    "1 when the breaker is open or half-open", labels=["model"])
        info = GaugeMetricFamily("ducklearn_serving_model_version",
                                 "The version each model serves (value 1)",
                                 labels=["model", "version"])
        latency = HistogramMetricFamily("ducklearn_serving_latency_seconds",
                                        "Queue + compute time of answered requests",
                                        labels=["model"])
        batch = HistogramMetricFamily("ducklearn_serving_batch_size_rows",
                                      "Rows per computed batch", labels=["model"])
        for name, s in sorted(m.items()):
            requests.add_metric([name], s["requests"])
            rows.add_metric([name], s["rows"])
            for kind, n in sorted(s["errors"].items()):
                errors.add_metric([name, kind], n)
            fallbacks.add_metric([name], s["fallbacks"])
            swaps.add_metric([name], s["swaps"])
            opens.add_metric([name], s["breaker_opens"])
            queued.add_metric([name], s["queued_rows"])
            inflight.add_metric([name], s["in_flight_rows"])
            breaker.add_metric([name], 0 if s["breaker"] == "closed" else 1)
            info.add_metric([name, s["version"]], 1)
            bounds, counts, total, _ = s["latency"]
            latency.add_metric([name], _buckets(bounds, counts), total)
            bounds, counts, total, _ = s["batch_size"]
            batch.add_metric([name], _buckets(bounds, counts), total)
        yield from (requests, rows, errors, fallbacks, swaps, opens, queued, inflight, breaker,
                    info, latency, batch)
        if self.http is not None:
            responses = CounterMetricFamily("ducklearn_http_responses",
                                            "HTTP responses by route and status",
                                            labels=["route", "status"])
            for (route, status), n in sorted(self.http.responses.items()):
                responses.add_metric([route, str(status)], n)
            hlat = HistogramMetricFamily("ducklearn_http_request_seconds",
                                         "End-to-end handling time of predict requests")
            bounds, counts, total, _ = self.http.latency.snapshot()
            hlat.add_metric([], _buckets(bounds, counts), total)
            active = GaugeMetricFamily("ducklearn_http_in_flight",
                                       "Predict requests being handled")
            active.add_metric([], self.http.inflight)
            yield from (responses, hlat, active)


# -- the app ---------------------------------------------------------------------------------

def create_app(server: PredictionServer, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               models: Iterable[str] = (), drain_timeout: float = 10.0,
               close_server: bool = True) -> Starlette:
    """A Starlette app serving ``server``.

    Parameters
    ----------
    server : PredictionServer
    max_body_bytes : int
        Larger request bodies get 413 (checked against Content-Length before reading, and
        while reading chunked bodies).
    models : iterable of str
        Registry refs (``name``, ``name@alias``, ``name:version``) to load and warm up at
        startup; ``/readyz`` is 503 until they are.
    drain_timeout : float
        Seconds that shutdown waits for in-flight requests.
    close_server : bool
        Close (with a drain) the prediction server when the app shuts down.
    """
    if not isinstance(server, PredictionServer):
        raise TypeError(f"server must be a PredictionServer, got {type(server).__name__}")
    if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or \
            max_body_bytes < 64:
        raise ValueError(f"max_body_bytes must be an integer >= 64, got {max_body_bytes!r}")
    if isinstance(drain_timeout, bool) or not isinstance(drain_timeout, (int, float)) or \
            drain_timeout < 0:
        raise ValueError(f"drain_timeout must be a number >= 0, got {drain_timeout!r}")
    preload = [m for m in models]
    for ref in preload:
        if not isinstance(ref, str) or not ref:
            raise ValueError(f"models must be non-empty model references, got {ref!r}")
    stats = _HTTPStats()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServingCollector(server, stats))
    state: dict[str, Any] = {"draining": False, "loaded": not preload, "load_error": None}

    async def _ensure(ref: str) -> None:
        # Loading from the registry reads files and warms the model up: off the event loop.
        if ref not in server._endpoints and server.registry is not None:
            await asyncio.to_thread(server.serve, ref)

    def _predict_route(kind: str):
        async def handler(request: Request) -> Response:
            t0 = time.perf_counter()
            p = request.path_params
            name = p["name"]
            ref = (name if kind == "name" else
                   f"{name}:{p['version']}" if kind == "version" else f"{name}@{p['alias']}")
            stats.inflight += 1
            try:
                if state["draining"] or server.closed:
                    raise ShuttingDown("the server is shutting down; retry on another replica")
                body = await _read_body(request, max_body_bytes)
                inputs, timeout, priority = _parse_request(body)
                await _ensure(ref)
                pred = await server.apredict(ref, inputs, timeout=timeout, priority=priority)
                response = Response(_prediction_json(pred), media_type=_JSON)
            except ServingError as exc:
                response = _error_response(exc)
            except Exception as exc:  # a bug must cost one request, never the server
                log.exception("predict %s failed", ref)
                response = _error_response(ServingError(f"internal error: {type(exc).__name__}"))
            finally:
                stats.inflight -= 1
            stats.observe(kind, response.status_code, time.perf_counter() - t0)
            return response
        return handler

    async def list_models(request: Request) -> Response:
        return Response(_dumps({"models": server.models()}), media_type=_JSON)

    async def healthz(request: Request) -> Response:
        return Response(_dumps({"status": "ok"}), media_type=_JSON)

    async def readyz(request: Request) -> Response:
        models_ = server.models()
        missing = [r for r in preload if r not in models_]
        cold = sorted(n for n, d in models_.items() if not d["ready"])
        ready = (server.ready and not state["draining"] and state["loaded"] and not missing
                 and not cold and bool(models_))
        body = {"ready": ready, "draining": state["draining"], "models": {
            n: {"version": d["version"], "ready": d["ready"], "breaker": d["breaker"]}
            for n, d in models_.items()}}
        if missing:
            body["missing"] = missing
        if not models_:
            body["reason"] = "no model is loaded"
        if state["load_error"]:
            body["load_error"] = state["load_error"]
        return Response(_dumps(body), status_code=200 if ready else 503, media_type=_JSON)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry),
                        media_type="text/plain; version=0.0.4; charset=utf-8")

    async def http_error(request: Request, exc: HTTPException) -> Response:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        detail = (f"no route {request.method} {request.url.path}" if exc.status_code == 404
                  else str(exc.detail))
        stats.observe("other", exc.status_code, 0.0)
        return Response(_dumps({"error": {"type": kind, "message": detail}}),
                        status_code=exc.status_code, media_type=_JSON, headers=exc.headers)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async def load() -> None:
            try:
                for ref in preload:
                    await asyncio.to_thread(server.serve, ref)
                state["loaded"] = True
            except ServingError as exc:
                state["load_error"] = str(exc)
                log.error("could not load %s", exc)
        loader = asyncio.get_running_loop().create_task(load()) if preload else None
        try:
            yield
        finally:
            state["draining"] = True
            deadline = time.monotonic() + drain_timeout
            while stats.inflight and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            if loader is not None and not loader.done():
                loader.cancel()
            if close_server:
                left = max(0.0, deadline - time.monotonic())
                try:
                    await asyncio.to_thread(server.close, drain=True, timeout=left)
                except RuntimeError:  # the interpreter is exiting: no executor threads left
                    server.close(drain=False)

    routes = [
        Route("/v1/models/{name}/predict", _predict_route("name"), methods=["POST"]),
        Route("/v1/models/{name}/versions/{version}/predict", _predict_route("version"),
              methods=["POST"]),
        Route("/v1/models/{name}/aliases/{alias}/predict", _predict_route("alias"),
              methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: http_error})
    app.state.server = server
    app.state.serving = state
    app.state.stats = stats
    app.state.registry = registry
    return app


# -- running it ------------------------------------------------------------------------------

class HTTPServer:
    """Run :func:`create_app` under uvicorn, in the foreground (:meth:`run`, SIGTERM/SIGINT
    drain) or in a background thread (:meth:`start` / :meth:`shutdown`).

    Parameters
    ----------
    server : PredictionServer
    host : str
        Address to bind; loopback by default. Binding every interface is an explicit choice.
    port : int
        0 picks a free port (see :attr:`port` after :meth:`start`).
    **app_options
        Passed to :func:`create_app` (``max_body_bytes``, ``models``, ``drain_timeout``,
        ``close_server``).
    """

    def __init__(self, server: PredictionServer, host: str = "127.0.0.1", port: int = 8000, *,
                 log_level: str = "warning", access_log: bool = False,
                 backlog: int = 2048, **app_options: Any):
        import uvicorn

        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be an address, got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an integer in [0, 65535], got {port!r}")
        self.app = create_app(server, **app_options)
        self.host = host
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                                   socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise OSError(exc.errno, f"cannot bind {host}:{port}: {exc.strerror}") from None
        self._sock.listen(backlog)
        self.port = self._sock.getsockname()[1]
        drain = float(app_options.get("drain_timeout", 10.0))
        config = uvicorn.Config(self.app, log_level=log_level, access_log=access_log,
                                lifespan="on", timeout_graceful_shutdown=drain + 1.0,
                                backlog=backlog)
        state = self.app.state.serving

        outer = self

        class _Server(uvicorn.Server):
            def handle_exit(self, sig: int, frame: Any) -> None:
                # A second signal means now; the first one drains.
                if state["draining"]:
                    super().handle_exit(sig, frame)
                    return
                threading.Thread(target=outer._drain_then_exit, name="ducklearn-http-drain",
                                 daemon=True).start()

        self._uvicorn = _Server(config)
        self._drain_timeout = drain
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def run(self) -> None:
        """Serve in the foreground until SIGINT/SIGTERM; drains before returning."""
        try:
            self._uvicorn.run(sockets=[self._sock])
        finally:
            self._sock.close()

    def start(self, timeout: float = 30.0) -> HTTPServer:
        """Serve from a background thread; returns once it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("this HTTPServer was already started")
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._uvicorn.serve(sockets=[self._sock])),
            name="ducklearn-http", daemon=True)
        self._thread.start()
        end = time.monotonic() + timeout
        while not self._uvicorn.started:
            if not self._thread.is_alive():
                raise RuntimeError("the HTTP server failed to start (see the log)")
            if time.monotonic() > end:
                raise TimeoutError(f"the HTTP server did not start within {timeout}s")
            time.sleep(0.01)
        return self

    def _drain_then_exit(self) -> None:
        """Phase 1: answer new predictions 503 (and /readyz 503, so load balancers move
        on) while connections stay open and in-flight predictions finish; phase 2: let
        uvicorn close the listeners and connections and run the app's shutdown."""
        self.app.state.serving["draining"] = True
        stats = self.app.state.stats
        deadline = time.monotonic() + self._drain_timeout
        while stats.inflight and time.monotonic() < deadline:
            time.sleep(0.005)
        self._uvicorn.should_exit = True

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop taking predictions (503), finish in-flight ones, close, join."""
        self._drain_then_exit()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._uvicorn.force_exit = True
                self._thread.join(5.0)
        self._sock.close()

    def __enter__(self) -> HTTPServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

