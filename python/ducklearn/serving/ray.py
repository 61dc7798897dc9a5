"""Scale-out on Ray Serve (install ``ducklearn[ray]``).

Each replica runs the same :class:`~ducklearn.serving.PredictionServer` (same batching,
deadlines, breaker) over the same registry, and speaks the same JSON as
:mod:`ducklearn.serving.http` on the same routes under the deployment's route prefix::

    POST {prefix}/v1/models/{name}/predict
    POST {prefix}/v1/models/{name}/versions/{version}/predict
    POST {prefix}/v1/models/{name}/aliases/{alias}/predict
    GET  {prefix}/readyz

Hot swap is driven by the registry: every replica watches the aliases it serves and swaps
after warm-up when one moves, so promoting a version reaches all replicas within
``watch_interval`` seconds. Models must come from a registry that every replica can open
(a shared directory or a database URL): an in-memory model cannot travel to a replica.

>>> from ducklearn.serving.ray import build_app                     # doctest: +SKIP
>>> from ray import serve                                           # doctest: +SKIP
>>> serve.run(build_app("models/", models=["churn@prod"], num_replicas=2))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from typing import Any

try:
    from ray import serve
except ModuleNotFoundError as exc:  # pragma: no cover - exercised only without the extra
    raise ModuleNotFoundError(
        f"Ray Serve scale-out needs the 'ray' extra ({exc.name} is missing): "
        "pip install 'ducklearn[ray]'", name=exc.name) from None

__all__ = ["DucklearnDeployment", "build_app"]


class DucklearnDeployment:
    """One replica: a registry-backed PredictionServer behind Ray Serve's HTTP proxy (and
    callable through a deployment handle with :meth:`predict`)."""

    def __init__(self, registry: str, models: list[str], server_options: dict[str, Any],
                 actor: str | None = None, max_body_bytes: int = 1 << 20) -> None:
        from ducklearn import backend
        from ducklearn.registry import Registry
        from ducklearn.serving import PredictionServer

        # One BLAS thread per replica: replicas are the parallelism.
        backend.set_blas_threads(1)
        self._registry = Registry(registry, actor=actor)
        self.server = PredictionServer(self._registry, **server_options)
        self.max_body_bytes = max_body_bytes
        for ref in models:  # warm before the replica reports healthy
            self.server.serve(ref)

    def check_health(self) -> None:
        """Ray Serve restarts a replica whose health check raises."""
        if self.server.closed:
            raise RuntimeError("the prediction server is closed")

    async def predict(self, model: str, inputs: Any, timeout: float | None = None,
                      priority: int = 0) -> dict[str, Any]:
        """Handle-call form: returns the same JSON-able dict as the HTTP answer."""
        from ducklearn.serving.server import _prediction_dict

        if model not in self.server._endpoints and self.server.registry is not None:
            await asyncio.to_thread(self.server.serve, model)
        p = await self.server.apredict(model, inputs, timeout=timeout, priority=priority)
        return _prediction_dict(p)

    def versions(self) -> dict[str, str]:
        """{served ref: version} of this replica (tests and operators use it to watch a
        promotion reach every replica)."""
        return {ref: d["version"] for ref, d in self.server.models().items()}

    async def __call__(self, request: Any) -> Any:
        from starlette.responses import Response

        from ducklearn.serving.http import (
            _dumps,
            _error_response,
            _parse_request,
            _prediction_json,
            _read_body,
        )
        from ducklearn.serving.server import ModelNotFound, ServingError

        parts = [p for p in request.url.path.split("/") if p]
        # Ray passes the full path; the route prefix is whatever precedes "v1".
        if "v1" in parts:
            parts = parts[parts.index("v1"):]
        try:
            if request.method == "GET" and parts[-1:] == ["readyz"]:
                ready = self.server.ready
                return Response(_dumps({"ready": ready, "models": self.versions()}),
                                status_code=200 if ready else 503,
                                media_type="application/json")
            if request.method != "POST" or len(parts) < 4 or parts[:2] != ["v1", "models"] \
                    or parts[-1] != "predict":
                raise ModelNotFound(f"no route {request.method} {request.url.path}")
            name = parts[2]
            if len(parts) == 4:
                ref = name
            elif len(parts) == 6 and parts[3] == "versions":
                ref = f"{name}:{parts[4]}"
            elif len(parts) == 6 and parts[3] == "aliases":
                ref = f"{name}@{parts[4]}"
            else:
                raise ModelNotFound(f"no route POST {request.url.path}")
            body = await _read_body(request, self.max_body_bytes)
            inputs, timeout, priority = _parse_request(body)
            if ref not in self.server._endpoints:
                await asyncio.to_thread(self.server.serve, ref)
            pred = await self.server.apredict(ref, inputs, timeout=timeout, priority=priority)
            return Response(_prediction_json(pred), media_type="application/json")
        except ServingError as exc:
            return _error_response(exc)

    def __del__(self) -> None:  # Ray tears replicas down by dropping them
        server = getattr(self, "server", None)
        if server is not None:
            server.close(drain=True, timeout=5.0)
        registry = getattr(self, "_registry", None)
        if registry is not None:
            registry.close()


def build_app(registry: str | os.PathLike, *, models: Iterable[str] = (),
              num_replicas: int = 1, max_batch_size: int = 64, max_wait_us: float = 200.0,
              queue_capacity: int = 10_000, workers: int = 1,
              default_timeout: float | None = 1.0, watch_interval: float = 1.0,
              actor: str | None = None, max_body_bytes: int = 1 << 20,
              max_ongoing_requests: int = 256, ray_actor_options: dict[str, Any] | None = None,
              name: str = "ducklearn") -> Any:
    """A Ray Serve application of ``num_replicas`` replicas serving ``registry``.

    The batching settings are those of :class:`~ducklearn.serving.PredictionServer` and
    apply per replica. ``registry`` must be reachable from every replica (a shared path or
    a database URL); ``models`` are loaded and warmed up before a replica takes traffic.
    """
    if isinstance(registry, os.PathLike):
        registry = os.fspath(registry)
    if not isinstance(registry, str) or not registry:
        raise ValueError(f"registry must be a path or URL every replica can open, got "
                         f"{registry!r}")
    if "://" not in registry:
        registry = os.path.abspath(registry)  # replicas may start in another directory
    if isinstance(num_replicas, bool) or not isinstance(num_replicas, int) or num_replicas < 1:
        raise ValueError(f"num_replicas must be an integer >= 1, got {num_replicas!r}")
    if isinstance(max_ongoing_requests, bool) or not isinstance(max_ongoing_requests, int) \
            or max_ongoing_requests < 1:
        raise ValueError(f"max_ongoing_requests must be an integer >= 1, got "
                         f"{max_ongoing_requests!r}")
    refs = list(models)
    for ref in refs:
        if not isinstance(ref, str) or not ref:
            raise ValueError(f"models must be non-empty model references, got {ref!r}")
    options = dict(max_batch_size=max_batch_size, max_wait_us=max_wait_us,
                   queue_capacity=queue_capacity, workers=workers,
                   default_timeout=default_timeout, watch_interval=watch_interval)
    # Validate here, in the driver, rather than in a replica that would only log it.
    from ducklearn.serving import PredictionServer

    PredictionServer(**options).close(drain=False)
    deployment = serve.deployment(
        DucklearnDeployment, name=name, num_replicas=num_replicas,
        max_ongoing_requests=max_ongoing_requests,
        ray_actor_options=ray_actor_options or {"num_cpus": 0},
    )
    return deployment.bind(registry, refs, options, actor, max_body_bytes)
