"""``veil token create`` and ``veil serve`` as a user runs them (the demo model card, a real process)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from tests.service_fixtures import ROOT, free_port, wait_status
from veil.cli import app
from veil.store import Store

runner = CliRunner()


def test_token_create_prints_the_secret_once_as_the_last_line(tmp_path: Path) -> None:
    r = runner.invoke(app, ["token", "create", "--role", "moderator", "--name", "alice", "--data", str(tmp_path)])
    assert r.exit_code == 0, r.output
    secret = r.stdout.strip().splitlines()[-1]
    store = Store.open(None, tmp_path)
    tok = store.token_for(secret)
    assert tok is not None and (tok.name, tok.role) == ("alice", "moderator")
    assert secret not in (tmp_path / "veil.db").read_bytes().decode("latin-1")
    listed = runner.invoke(app, ["token", "list", "--data", str(tmp_path)])
    assert "alice" in listed.stdout and secret not in listed.stdout
    bad = runner.invoke(app, ["token", "create", "--role", "root", "--name", "x", "--data", str(tmp_path)])
    assert bad.exit_code == 2 and "role must be one of submitter, moderator, admin" in bad.output
    store.close()


def test_serve_rejects_bad_options_with_one_line(tmp_path: Path) -> None:
    r = runner.invoke(app, ["serve", "--data", str(tmp_path), "--param", "nonsense", "--model", "nudenet"])
    assert r.exit_code == 2 and "STAGE.NAME=VALUE" in r.output
    r = runner.invoke(app, ["serve", "--data", str(tmp_path), "--db", "mysql://x@y/z"])
    assert r.exit_code == 2 and "sqlite:// or postgresql://" in r.output


def test_veil_serve_with_the_demo_model(tmp_path: Path) -> None:
    data = tmp_path / "data"
    secret = runner.invoke(app, ["token", "create", "--role", "submitter", "--name", "cam", "--data", str(data)]
                           ).stdout.strip().splitlines()[-1]
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "veil.cli", "serve", "--model", str(ROOT / "examples/demo-model/model.json"),
         "--segmentation", "slic", "--extent", "minimal",  # no numba JIT warm-up: the test stays short
         "--data", str(data), "--port", str(port), "--rationale", "none", "--log-level", "warning"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "veil serve did not start"
            time.sleep(0.3)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {secret}"}, timeout=30) as c:
            image = (ROOT / "examples/images/01_coffee_mark.png").read_bytes()
            r = c.post("/v1/images", files={"image": ("coffee.png", image, "image/png")})
            assert r.status_code == 202, r.text
            body = wait_status(c, r.json()["id"], timeout=180)
        rec = body["result"]
        assert body["status"] == "done" and rec["unsafe"] is True and rec["models"][0]["name"] == "veil-demo-mark"
        assert rec["obfuscated_fraction"] > 0 and not any(m["unsafe"] for m in rec["models_after"])
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
