"""Pieces shared by the benchmarks: a PostgreSQL database, a production-shaped server, a
lean HTTP/1.1 load generator on raw asyncio sockets (so the client, not the server, is
not the bottleneck on a 2-core box), and percentile maths."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("DATABASE_URL: required (postgres://user@host:port/dbname); benchmarks run on PostgreSQL")
    if urlparse(url).scheme not in {"postgres", "postgresql"}:
        sys.exit("DATABASE_URL: benchmarks need PostgreSQL (postgres://…)")
    return url


def ensure_database(url: str) -> None:
    """Create the database named in the URL if it does not exist."""
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def server_env(url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": url,
            "CHORUS_PRODUCTION": "1",
            "SECRET_KEY": "bench-" + "x" * 60,
            "SUPPRESSION_HASH_KEY": "bench-suppression-key",
            "CHORUS_SECRET_KEYS": "YmVuY2gtcHJvdmlkZXItc2VjcmV0cy1rZXktMzJieXQ=",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "0",
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
            "STATIC_ROOT": str(ROOT / "bench" / "out" / "static"),
        }
    )
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    return env


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return result.stdout


@contextmanager
def production_server(env: dict[str, str], port: int, workers: int, threads: int = 4):
    """The HTTP tier as docs/deploy.md runs it: gunicorn, several processes × threads (WSGI).

    WebSockets go to the ASGI tier (uvicorn) in production; the API is plain HTTP, and
    Django serves sync views through WSGI without a thread hop per request.
    """
    cmd = [
        PYTHON, "-m", "gunicorn", "orchestrator.wsgi:application",
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--worker-class", "gthread",
        "--threads", str(threads), "--keep-alive", "30", "--log-level", "warning",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    try:
        wait_for_http(port)
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for_http(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"server on port {port} did not answer /healthz within {timeout:.0f}s")


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _connection(port: int, path: str, key: str, bodies, deadline: float, latencies: list, errors: list):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < deadline:
            body = next(bodies)
            request = (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            started = time.perf_counter()
            writer.write(request)
            status = await _read_response(reader)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


async def _drive(port, path, key, make_body, concurrency, seconds):
    latencies: list[float] = []
    errors: list[int] = []
    counter = iter(range(10**12))

    def bodies():
        while True:
            yield make_body(next(counter))

    gen = bodies()
    deadline = time.monotonic() + seconds
    started = time.perf_counter()
    await asyncio.gather(
        *(_connection(port, path, key, gen, deadline, latencies, errors) for _ in range(concurrency))
    )
    return latencies, errors, time.perf_counter() - started


def load(port: int, path: str, key: str, make_body, *, concurrency: int, seconds: float):
    """Run a closed-loop load; returns (sorted latencies in seconds, error statuses, elapsed s)."""
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    latencies, errors, elapsed = runner(_drive(port, path, key, make_body, concurrency, seconds))
    latencies.sort()
    return latencies, errors, elapsed


def dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


# --- Django in this process, and a qcluster beside it (engine and governor benchmarks) -----


def setup_django(env: dict[str, str]) -> None:
    """Django in the benchmark's own process, on the same settings as the workers."""
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "orchestrator.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def sql(statement: str, params: list | tuple = ()) -> int:
    """Run one statement on Django's connection; return its row count."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


@contextmanager
def qcluster(env: dict[str, str], log_path: Path, workers: int = 2, grace: float = 5.0):
    """``manage.py qcluster`` with ``workers`` workers, its output in ``log_path``; yields
    (process, open log). Stopped (the whole process group) on the way out: SIGTERM, then
    SIGKILL after ``grace`` seconds (a running tick would hold shutdown for up to a minute)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("w+")
    # No connection pool in the cluster: django-q2 forks its workers from a process whose
    # pool is already open, and the forks then share its sockets (tasks stall with psycopg
    # protocol errors). Each worker keeps one plain connection instead.
    env = {**env, "Q_WORKERS": str(workers), "DB_POOL_MAX_SIZE": "0"}
    proc = subprocess.Popen(
        [PYTHON, "manage.py", "qcluster"], cwd=ROOT, env=env,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        yield proc, log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def log_tail(log, path: Path, chars: int = 3000) -> str:
    log.flush()
    log.seek(0)
    return f"{log.read()[-chars:]}\n(the whole log: {path})"


class Stalled(Exception):
    """A drain that stopped making progress."""


def wait_for_progress(remaining, *, stall_after: float, timeout: float, every: float = 0.2, on_poll=None) -> None:
    """Poll ``remaining()`` (how much work is left) until it is 0. Raises Stalled when it
    has not gone down for ``stall_after`` seconds, or when ``timeout`` passes: a drain whose
    sends are all deferred (a governor cap already full) fails loudly instead of hanging."""
    started = last_change = time.monotonic()
    best = remaining()
    while best:
        now = time.monotonic()
        if now - last_change > stall_after:
            raise Stalled(f"{best} left, no progress for {stall_after:.0f}s")
        if now - started > timeout:
            raise Stalled(f"{best} left after {timeout:.0f}s")
        if on_poll is not None:
            on_poll()
        time.sleep(every)
        left = remaining()
        if left < best:
            best, last_change = left, time.monotonic()
