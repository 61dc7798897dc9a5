"""The HTTP API against a real uvicorn server on 127.0.0.1 (a free port, a background
thread, every call bounded by a client timeout): status codes, JSON errors naming the
problem, Prometheus metrics, registry routes and graceful drain."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
prom_parser = pytest.importorskip("prometheus_client.parser")

from ducklearn.serving import PredictionServer  # noqa: E402
from ducklearn.serving.http import HTTPServer, create_app  # noqa: E402
from test_serving import D, fit_model, probe_for, row, serve_probe  # noqa: E402

PREDICT = "/v1/models/{}/predict"


@pytest.fixture
def model():
    return fit_model(names=True)


@pytest.fixture
def running(model):
    """A server with one plain model and a gated probe model, over HTTP."""
    probe = probe_for(model, gate=True)
    probe.gate.set()
    # inline_us=0: the gated model blocks inside predict(), which must happen on a batcher
    # thread, never on the event loop (the registry tests cover the inline lane).
    # One batcher thread: the overload test counts on one batch held at the gate.
    server = PredictionServer(max_batch_size=4, max_wait_us=100, queue_capacity=4,
                              default_timeout=2.0, failure_threshold=50, inline_us=0, workers=1)
    server.add_model("m", model, version="1.2.0")
    serve_probe(server, "gated", probe, version="9.0.0", feature_names=model._feature_index)
    http = HTTPServer(server, port=0, max_body_bytes=4096, drain_timeout=5.0).start()
    client = httpx.Client(base_url=http.url, timeout=10.0)
    try:
        yield http, client, probe, server
    finally:
        client.close()
        probe.gate.set()
        http.shutdown(timeout=15)


def error_of(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    return r.json()["error"]


def test_predict_arrays_and_records(running, model):
    http, client, _, _ = running
    X = np.random.default_rng(0).normal(size=(3, D)).astype(np.float32)
    r = client.post(PREDICT.format("m"), json={"inputs": X.tolist()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == "1.2.0" and body["fallback"] is False and body["model"] == "m"
    np.testing.assert_allclose(np.array(body["outputs"])[:, 0], model.predict_proba(X)[:, 1],
                               rtol=1e-5, atol=1e-6)
    assert body["predictions"] == model.predict(X).tolist() and body["classes"] == [0, 1]
    rec = {"f0": 0.5, "f2": -1.0}
    r = client.post(PREDICT.format("m"), json={"inputs": rec, "timeout_ms": 500, "priority": 3})
    assert r.status_code == 200
    assert r.json()["predictions"] == [model.predict_one(rec)]
    listing = client.get("/v1/models").json()["models"]
    assert listing["m"]["version"] == "1.2.0" and listing["m"]["n_inputs"] == D


@pytest.mark.parametrize("body, field, message", [
    (b"{not json", "body", "malformed JSON"),
    (b"", "body", "empty body"),
    (b"[1, 2]", "body", "must be a JSON object"),
    (b'{"inputs": [1, 2, NaN, 4]}', "inputs[2]", "must be finite"),
    (b'{"inputs": [[1, 2, "x", 4]]}', "inputs[0][2]", "must be a number, got str"),
    (b'{"inputs": [1, true, 3, 4]}', "inputs[1]", "must be a number, got bool"),
    (b'{"inputs": [1, 2, 3]}', "inputs", "rows of 4 numbers"),
    (b'{"inputs": {"f1": "x"}}', "inputs[0].f1", "must be a number, got str"),
    (b'{"inputs": {"nope": 1}}', "inputs[0].nope", "unknown feature"),
    (b'{"input": [1, 2, 3, 4]}', "input", "unknown field"),
    (b'{"inputs": [1, 2, 3, 4], "timeout_ms": -5}', "timeout_ms", "timeout_ms"),
    (b'{"inputs": [1, 2, 3, 4], "priority": "high"}', "priority", "priority"),
    (b'\xff\xfe{}', "body", "UTF-8"),
])
def test_bad_input_is_400_naming_the_field_and_serving_goes_on(running, body, field, message):
    _, client, _, _ = running
    err = error_of(client.post(PREDICT.format("m"), content=body,
                               headers={"content-type": "application/json"}), 400)
    assert err["type"] == "bad_input" and err["field"] == field
    assert message in err["message"]
    assert client.post(PREDICT.format("m"), json={"inputs": [0, 0, 0, 0]}).status_code == 200


def test_unknown_model_route_and_method(running):
    _, client, _, _ = running
    assert "unknown model 'zz'" in error_of(
        client.post(PREDICT.format("zz"), json={"inputs": [0, 0, 0, 0]}), 404)["message"]
    assert error_of(client.get("/v2/nothing"), 404)["type"] == "not_found"
    assert error_of(client.get(PREDICT.format("m")), 405)["type"] == "method_not_allowed"
    # No registry: version and alias routes cannot resolve anything.
    assert error_of(client.post("/v1/models/m/versions/1.2.0/predict",
                                json={"inputs": [0, 0, 0, 0]}), 404)


def test_body_limits_are_413(running):
    _, client, _, _ = running
    big = json.dumps({"inputs": [[0.0] * D] * 400}).encode()
    assert len(big) > 4096
    err = error_of(client.post(PREDICT.format("m"), content=big), 413)
    assert err["type"] == "body_too_large" and "4096" in err["message"]

    def chunks():  # no Content-Length: counted while reading
        for i in range(0, len(big), 1000):
            yield big[i:i + 1000]

    assert error_of(client.post(PREDICT.format("m"), content=chunks()), 413)
    assert client.post(PREDICT.format("m"), json={"inputs": [0, 0, 0, 0]}).status_code == 200


def test_overload_is_429_and_deadline_is_504(running):
    http, client, probe, server = running
    probe.gate.clear()
    probe.entered.clear()
    statuses: list[int] = []
    lock = threading.Lock()

    def call():
        with httpx.Client(base_url=http.url, timeout=10.0) as c:
            # 4 rows = max_batch_size = queue_capacity: one request per batch, one queued.
            r = c.post(PREDICT.format("gated"), json={"inputs": [[1, 0, 0, 0]] * 4,
                                                      "timeout_ms": 5000})
        with lock:
            statuses.append(r.status_code)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while statuses.count(429) < 6:  # 1 computing + 1 queued: the other 6 are rejected
        assert time.monotonic() < deadline, statuses
        time.sleep(0.005)
    r = client.post(PREDICT.format("gated"), json={"inputs": [1, 0, 0, 0]})
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    probe.gate.set()
    for t in threads:
        t.join(10)
    assert sorted(statuses) == [200] * 2 + [429] * 6
    # A deadline shorter than the queue ahead of it: 504, and never computed.
    probe.gate.clear()
    probe.entered.clear()
    blocker = threading.Thread(target=call)
    blocker.start()
    assert probe.entered.wait(5)
    computed = len(probe.ids())
    # The batches held at the gate above taught admission control that a batch takes that
    # long, which would refuse this request at once (429); as if batches were quick, it is
    # queued and its deadline passes there.
    server._endpoints["gated"].batch_seconds = 0.0
    err = error_of(client.post(PREDICT.format("gated"),
                               json={"inputs": [[7, 0, 0, 0]], "timeout_ms": 50}), 504)
    assert err["type"] == "deadline"
    probe.gate.set()
    blocker.join(10)
    assert 7.0 not in probe.ids()[computed:]


def test_metrics_parse_as_prometheus_text(running):
    _, client, _, _ = running
    for _ in range(3):
        client.post(PREDICT.format("m"), json={"inputs": [[0, 0, 0, 0]] * 2})
    client.post(PREDICT.format("m"), content=b"{bad")
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in prom_parser.text_string_to_metric_families(r.text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in families.values() for s in f.samples}
    assert samples[("ducklearn_serving_requests_total", (("model", "m"),))] == 3
    assert samples[("ducklearn_serving_rows_total", (("model", "m"),))] == 6
    assert samples[("ducklearn_serving_latency_seconds_count", (("model", "m"),))] == 3
    assert samples[("ducklearn_serving_batch_size_rows_sum", (("model", "m"),))] == 6
    assert samples[("ducklearn_serving_latency_seconds_bucket",
                    (("le", "+Inf"), ("model", "m")))] == 3
    assert samples[("ducklearn_serving_queue_depth_rows", (("model", "m"),))] == 0
    assert samples[("ducklearn_serving_model_version",
                    (("model", "m"), ("version", "1.2.0")))] == 1
    assert samples[("ducklearn_http_responses_total", (("route", "name"), ("status", "400")))] == 1
    assert families["ducklearn_serving_latency_seconds"].type == "histogram"
    assert "ducklearn_serving_fallbacks" in families


def test_health_and_readiness(running):
    _, client, _, _ = running
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["ready"] is True
    assert set(r.json()["models"]) == {"m", "gated"}


def test_graceful_shutdown_drains_in_flight_requests(model):
    probe = probe_for(model, gate=True)
    server = PredictionServer(max_batch_size=1, max_wait_us=0, inline_us=0, workers=1)
    serve_probe(server, "gated", probe)
    http = HTTPServer(server, port=0, drain_timeout=5.0).start()
    results: list[tuple[int, dict]] = []

    def call():
        with httpx.Client(base_url=http.url, timeout=10.0) as c:
            r = c.post(PREDICT.format("gated"), json={"inputs": [1, 0, 0, 0],
                                                      "timeout_ms": 8000})
            results.append((r.status_code, r.json()))

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    assert probe.entered.wait(5)
    deadline = time.monotonic() + 5
    while server.models()["gated"]["queued_rows"] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.002)
    with httpx.Client(base_url=http.url, timeout=10.0) as late:
        late.get("/healthz")  # an open keep-alive connection, used after the drain starts
        stopper = threading.Thread(target=http.shutdown, kwargs={"timeout": 15})
        stopper.start()
        while not http.app.state.serving["draining"]:
            assert time.monotonic() < deadline + 5
            time.sleep(0.002)
        r = late.post(PREDICT.format("gated"), json={"inputs": [1, 0, 0, 0]})
        assert error_of(r, 503)["type"] == "shutting_down"
        assert r.headers["retry-after"] == "1"
    probe.gate.set()
    stopper.join(20)
    for t in threads:
        t.join(10)
    assert [s for s, _ in results] == [200, 200, 200]  # in-flight requests finished
    assert server.closed
    with pytest.raises(httpx.ConnectError):
        httpx.get(http.url + "/healthz", timeout=2.0)


def test_registry_routes_follow_aliases(tmp_path):
    from ducklearn.registry import Registry

    reg = Registry(tmp_path / "models", actor="alice")
    v1 = reg.register("churn", fit_model(seed=1)).version
    v2 = reg.register("churn", fit_model(seed=2)).version
    reg.promote("churn", "prod", v1, reason="first")
    server = PredictionServer(reg, watch_interval=0.05)
    with HTTPServer(server, port=0, models=["churn@prod"]) as http, \
            httpx.Client(base_url=http.url, timeout=10.0) as client:
        deadline = time.monotonic() + 10
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        x = {"inputs": row(0.3).tolist()}
        assert client.post("/v1/models/churn/aliases/prod/predict", json=x).json()["version"] == v1
        assert client.post(f"/v1/models/churn/versions/{v1}/predict",
                           json=x).json()["version"] == v1
        assert client.post("/v1/models/churn/predict", json=x).json()["version"] == v2
        assert error_of(client.post("/v1/models/churn/versions/7.0.0/predict", json=x), 404)
        reg.promote("churn", "prod", v2, reason="better")
        while client.post("/v1/models/churn/aliases/prod/predict",
                          json=x).json()["version"] != v2:
            assert time.monotonic() < deadline, "alias move not picked up"
            time.sleep(0.02)
    reg.close()


def test_readyz_is_503_until_models_load(tmp_path):
    from ducklearn.registry import Registry

    reg = Registry(tmp_path / "models", actor="alice")
    server = PredictionServer(reg)
    with HTTPServer(server, port=0, models=["absent@prod"]) as http:
        r = httpx.get(http.url + "/readyz", timeout=5.0)
        assert r.status_code == 503 and r.json()["ready"] is False
        assert r.json()["missing"] == ["absent@prod"]
    reg.close()


def test_app_and_server_validate_their_settings():
    server = PredictionServer()
    with pytest.raises(TypeError, match="PredictionServer"):
        create_app(object())
    with pytest.raises(ValueError, match="max_body_bytes"):
        create_app(server, max_body_bytes=10)
    with pytest.raises(ValueError, match="port"):
        HTTPServer(server, port=70000)
    taken = HTTPServer(server, port=0)
    with pytest.raises(OSError, match="cannot bind"):
        HTTPServer(server, port=taken.port)
    taken._sock.close()
    server.close()


def test_ducklearn_serve_command_serves_a_registry_and_drains_on_sigterm(tmp_path):
    import os
    import signal
    import socket
    import subprocess
    import sys

    from ducklearn.registry import Registry

    reg = Registry(tmp_path / "models", actor="alice")
    v1 = reg.register("churn", fit_model(seed=1)).version
    reg.promote("churn", "prod", v1, reason="first")
    reg.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from ducklearn.cli import main; raise SystemExit(main())",
         "serve", "--registry", str(tmp_path / "models"), "--host", "127.0.0.1",
         "--port", str(port), "--model", "churn@prod"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "DUCKLEARN_ACTOR": "alice"})
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                if httpx.get(url + "/readyz", timeout=2.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "ducklearn serve did not become ready"
            time.sleep(0.05)
        r = httpx.post(url + "/v1/models/churn/aliases/prod/predict",
                       json={"inputs": row(0.2).tolist()}, timeout=5.0)
        assert r.status_code == 200 and r.json()["version"] == v1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stderr.close()
