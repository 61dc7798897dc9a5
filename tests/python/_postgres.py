"""A real PostgreSQL server for the store test suites, on loopback only.

``postgres_url`` (session scope) is, in order of preference:

1. ``$DUCKLEARN_TEST_POSTGRES_URL`` (``.ci/run`` starts a server and sets it);
2. a throwaway cluster this fixture creates with Debian's ``initdb`` + ``pg_ctl`` on a free
   port of 127.0.0.1 (run as the ``postgres`` user when the tests run as root, since the
   server refuses to run as root), stopped and deleted at the end of the session;
3. otherwise the PostgreSQL tests are skipped, unless ``DUCKLEARN_REQUIRE_POSTGRES=1``,
   which turns the skip into a failure so CI can never pass without exercising them.

``postgres_db`` (function scope) hands each test a fresh, empty database on that server and
drops it afterwards, so suites that run against SQLite and PostgreSQL start from the same
empty state.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator

import pytest


def _require() -> bool:
    return os.environ.get("DUCKLEARN_REQUIRE_POSTGRES", "") not in ("", "0")


def _unavailable(reason: str):
    if _require():
        pytest.fail(f"PostgreSQL is required (DUCKLEARN_REQUIRE_POSTGRES=1) but {reason}")
    pytest.skip(f"no PostgreSQL server: {reason}")


def _bin_dir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg") if not _require() else __import__("psycopg")
    url = os.environ.get("DUCKLEARN_TEST_POSTGRES_URL")
    if url:
        try:
            psycopg.connect(url, connect_timeout=5).close()
        except Exception as exc:  # noqa: BLE001 - report any connection problem the same way
            _unavailable(f"cannot connect to $DUCKLEARN_TEST_POSTGRES_URL: {exc}")
        yield url
        return

    bindir = _bin_dir()
    if bindir is None:
        _unavailable("initdb not found (apt-get install postgresql)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no 'postgres' user to run the server")

    root = tempfile.mkdtemp(prefix="ducklearn-pg-")
    data, sock = os.path.join(root, "data"), os.path.join(root, "sock")
    os.makedirs(sock)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    port = _free_port()
    log = os.path.join(root, "server.log")
    try:
        subprocess.run(
            _as_server_user([f"{bindir}/initdb", "-D", data, "-U", "postgres", "-A", "trust",
                             "-E", "UTF8", "--no-sync"]),
            check=True, capture_output=True, timeout=120,
        )
        subprocess.run(
            _as_server_user([
                f"{bindir}/pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "start",
                "-o", f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off "
                      "-c max_connections=200",
            ]),
            check=True, capture_output=True, timeout=120,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        shutil.rmtree(root, ignore_errors=True)
        _unavailable(f"could not start a test cluster: {detail.decode(errors='replace')[-500:]}")

    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    deadline = time.monotonic() + 30
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            break
        except Exception:  # noqa: BLE001 - the server is still starting
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    try:
        yield url
    finally:
        subprocess.run(_as_server_user([f"{bindir}/pg_ctl", "-D", data, "-m", "fast", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_db(postgres_url: str) -> Iterator[str]:
    """URL of a fresh empty database, dropped after the test."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = postgres_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
