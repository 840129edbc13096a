"""Real parts for the service tests: a PostgreSQL server and a uvicorn process.

PostgreSQL comes from ``VEIL_TEST_POSTGRES_URL`` (``.ci/run`` starts one and exports it) or,
when the server binaries are installed, from a temporary cluster started here once per test
session (as user ``nobody`` when running as root: ``initdb`` refuses root). Each test gets a
fresh database on it. Without either, Postgres tests skip, saying why.
"""

from __future__ import annotations

import atexit
import functools
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin() -> Path | None:
    for name in ("initdb",):
        found = shutil.which(name)
        if found:
            return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


@functools.cache
def postgres_admin_url() -> tuple[str | None, str]:
    """A URL of a database on a running server that may create databases, or None and why not."""
    if url := os.environ.get("VEIL_TEST_POSTGRES_URL"):
        return url, "VEIL_TEST_POSTGRES_URL"
    bin_dir = _pg_bin()
    if bin_dir is None:
        return None, "no PostgreSQL server binaries (initdb) found and VEIL_TEST_POSTGRES_URL is not set"
    root = Path(tempfile.mkdtemp(prefix="veil-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "nobody")
        os.chmod(root, 0o700)
        as_user = ["runuser", "-u", "nobody", "--"]
    port = free_port()
    data = root / "data"
    try:
        subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "veil",
                        "--no-sync", "-E", "UTF8"], check=True, capture_output=True, timeout=120)
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w",
                        "-t", "60", "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -F", "start"],
                       check=True, capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        return None, f"could not start a temporary PostgreSQL: {exc} {detail.decode(errors='replace')[-300:]}"

    def stop() -> None:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)

    atexit.register(stop)
    return f"postgresql+psycopg://veil@127.0.0.1:{port}/postgres", "temporary server"


def fresh_postgres_database() -> str:
    """A new, empty database on the test server (skips the test when there is none)."""
    import psycopg
    import pytest
    from sqlalchemy.engine import make_url

    admin, why = postgres_admin_url()
    if admin is None:
        pytest.skip(why)
    url = make_url(admin)
    name = f"veil_test_{uuid.uuid4().hex[:12]}"
    conninfo = (f"host={url.host} port={url.port or 5432} user={url.username} dbname={url.database}"
                + (f" password={url.password}" if url.password else ""))
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)


def database_url(kind: str, tmp: Path) -> str:
    """``sqlite`` or ``postgres``: a fresh database of that kind."""
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'veil.db'}"
    return fresh_postgres_database()


class ServerProcess:
    """``uvicorn tests.server.testapp:app_from_env`` on 127.0.0.1 and a free port."""

    def __init__(self, db: str, data: Path, *, log: Path, **env: str) -> None:
        self.db, self.data, self.log_path = db, data, log
        self.env = {**os.environ, "VEIL_TEST_DB": db, "VEIL_TEST_DATA": str(data),
                    "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]),
                    "OMP_NUM_THREADS": "1", **env}
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> ServerProcess:
        self.port = free_port()
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "tests.server.testapp:app_from_env", "--factory", "--host",
             "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not start within {timeout} s: {self.log_path.read_text()[-2000:]}")

    def kill(self) -> None:
        """``kill -9``: no shutdown handlers run."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
        self.log.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self.log.close()


def wait_status(client: httpx.Client, item_id: str, states: tuple[str, ...] = ("done", "failed"), *,
                timeout: float = 60.0) -> dict:
    """Poll an item until its status is one of ``states``."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/v1/images/{item_id}")
        r.raise_for_status()
        body = r.json()
        if body["status"] in states:
            return body
        if time.monotonic() > deadline:
            raise TimeoutError(f"item {item_id} still {body['status']} after {timeout} s")
        time.sleep(0.1)
