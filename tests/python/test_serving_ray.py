"""The Ray Serve deployment against a local Ray started by the test, inside a private
network namespace (``unshare --net --pid --fork --mount-proc``, as root, with only ``lo``
up), so nothing Ray opens can reach or be reached from outside. Ray always shuts down: the
body stops it in ``finally``, and the PID namespace ends every Ray process with it.

Run with ``-m ray`` to select these tests or ``-m "not ray"`` to skip them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

import pytest

pytestmark = pytest.mark.ray

BODY = textwrap.dedent('''
    import json, socket, sys, time
    import httpx, ray
    from ray import serve
    from ducklearn.registry import Registry
    from ducklearn.serving.ray import build_app

    location, v1, v2 = sys.argv[1:4]
    out = {}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(location, models=["churn@prod"], num_replicas=2,
                            max_batch_size=16, watch_interval=0.2), route_prefix="/")
        url = f"http://127.0.0.1:{port}/v1/models/churn"
        with httpx.Client(timeout=10.0) as c:
            x = {"inputs": [0.3, 0.5, -0.5, 1.0]}
            out["before"] = [c.post(url + "/aliases/prod/predict", json=x).json()["version"]
                             for _ in range(8)]
            r = c.post(url + "/aliases/prod/predict", json={"inputs": [1, "x", 0, 0]})
            out["bad"] = [r.status_code, r.json()["error"]["field"]]
            out["exact"] = c.post(url + f"/versions/{v1}/predict", json=x).json()["version"]
            out["missing"] = c.post(url + "/versions/9.9.9/predict", json=x).status_code
            Registry(location, actor="alice").promote("churn", "prod", v2, reason="better")
            deadline = time.monotonic() + 20
            after = []
            while time.monotonic() < deadline:  # both replicas must have swapped
                after = [c.post(url + "/aliases/prod/predict", json=x).json()["version"]
                         for _ in range(8)]
                if set(after) == {v2}:
                    break
                time.sleep(0.1)
            out["after"] = after
            handle = serve.get_deployment_handle("ducklearn", app_name="default")
            out["handle"] = handle.predict.remote("churn@prod", [0.3, 0.5, -0.5, 1.0]).result(
                timeout_s=10)["version"]
    finally:
        serve.shutdown()
        ray.shutdown()
    print("RESULT " + json.dumps(out))
''')


def _ray_usable() -> str | None:
    # find_spec, not import: importing Ray in the pytest process costs seconds and warnings.
    for module in ("ray", "ray.serve", "httpx"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return f"{module} is not installed (pip install 'ducklearn[ray]' httpx)"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs unshare and ip (util-linux, iproute2) for a private network namespace"
    if os.geteuid() != 0:
        return "needs root for unshare --net"
    return None


def test_ray_serve_replicas_serve_the_registry_and_follow_alias_moves(tmp_path):
    why = _ray_usable()
    if why:
        pytest.skip(why)
    from ducklearn.registry import Registry
    from test_serving import fit_model

    location = str(tmp_path / "models")
    reg = Registry(location, actor="alice")
    v1 = reg.register("churn", fit_model(seed=1)).version
    v2 = reg.register("churn", fit_model(seed=2)).version
    reg.promote("churn", "prod", v1, reason="first")
    reg.close()
    script = tmp_path / "body.py"
    script.write_text(BODY)
    # Ray's Unix sockets live under RAY_TMPDIR, and socket paths must stay under 108 bytes:
    # pytest's tmp_path is too deep.
    ray_tmp = tempfile.mkdtemp(prefix="dlray-", dir="/tmp")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1",
           "RAY_TMPDIR": ray_tmp}
    cmd = ["unshare", "--net", "--pid", "--fork", "--mount-proc", "sh", "-c",
           'ip link set lo up && exec "$0" "$@"', sys.executable, str(script), location, v1, v2]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env,
                              cwd=tmp_path)
    except subprocess.TimeoutExpired as exc:  # the namespace's processes die with it
        pytest.fail(f"the Ray test body did not finish in {exc.timeout}s")
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (proc.stdout[-3000:], proc.stderr[-5000:])
    out = json.loads(lines[-1][len("RESULT "):])
    assert set(out["before"]) == {v1}
    assert out["bad"] == [400, "inputs[1]"]
    assert out["exact"] == v1 and out["missing"] == 404
    assert set(out["after"]) == {v2}, out
    assert out["handle"] == v2
