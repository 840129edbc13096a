"""A bounded load run of the moderator service (``veil serve``) on 127.0.0.1.

``--clients`` threads, each with its own submitter token, submit their share of ``--images``
small synthetic PNGs (half with a planted magenta square) and then poll until every one is
processed. Reports throughput (images submitted to the last one done), p50/p95 latency of the
submit and read requests, and checks in the database that every image was processed exactly
once (one ``processed`` audit event and one attempt per job).

The server is a real uvicorn process. By default its pipeline uses a cheap numpy classifier
(``magenta``), so the figures are the service's own cost (HTTP, multipart, validation, the
database, blobs, the worker loop and the pipeline's stages on small images); ``--model CARD``
runs a real model card instead.

    python bench/service.py                                  # 8 clients, 400 images, SQLite, 2 workers
    python bench/service.py --db postgresql+psycopg://veil@127.0.0.1:5432/veil_bench
    python bench/service.py --model examples/demo-model/model.json --images 80
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


class Magenta:
    """Unsafe when the image shows magenta: score ``c / (c + 2)`` of the magenta pixel count ``c``."""

    name = "magenta"
    labels = ("safe", "unsafe")
    unsafe_labels = ("unsafe",)
    threshold = 0.5
    config: dict[str, Any] = {}

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        c = np.array([int(((im[..., 0] > 180) & (im[..., 1] < 90) & (im[..., 2] > 180)).sum()) for im in images],
                     dtype=np.float64)
        s = c / (c + 2.0)
        return np.stack([1 - s, s], axis=1)

    def unsafe_score(self, proba: np.ndarray) -> np.ndarray:
        return np.asarray(proba)[:, 1]


def pipeline_config(model: str) -> Any:
    from veil.pipeline import SafeguardConfig

    models: tuple[Any, ...] = (Magenta(),) if model == "magenta" else (model,)
    stages = ({"attribution": "occlusion", "segmentation": "felzenszwalb", "style": "fill", "max_depth": 6}
              if model == "magenta" else {"segmentation": "slic", "extent": "minimal"})
    return SafeguardConfig(models=models, rationale="grounded", seed=0, **stages)  # type: ignore[arg-type]


def make_app() -> Any:
    """uvicorn factory (``--factory``): the service configured by BENCH_* environment variables."""
    from veil.server import ServiceSettings, create_app

    env = os.environ
    config = pipeline_config(env["BENCH_MODEL"])
    settings = ServiceSettings(db=env["BENCH_DB"], data=Path(env["BENCH_DATA"]), safeguard=config,
                               workers=int(env["BENCH_WORKERS"]), rate_limit=0, poll=0.05)
    return create_app(settings)


def images(n: int, seed: int = 0) -> list[bytes]:
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = int(rng.integers(64, 129)), int(rng.integers(64, 129))
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([60 + 80 * xx / w, 90 + 60 * yy / h, 70 + 40 * (xx + yy) / (h + w)], -1)
        arr = (base + rng.normal(0, 3, base.shape)).clip(0, 255).astype(np.uint8)
        if i % 2 == 0:
            p = int(rng.integers(10, 24))
            y, x = int(rng.integers(0, h - p)), int(rng.integers(0, w - p))
            arr[y : y + p, x : x + p] = (255, 0, 255)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, q)) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--db", default=None, help="database URL (default: SQLite in a temporary folder)")
    ap.add_argument("--model", default="magenta", help="'magenta' (cheap, built in) or a model card path")
    ap.add_argument("--poll", type=float, default=0.1, help="seconds between a client's polling rounds")
    ap.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()

    import httpx

    from veil.store import ItemFilter, Store

    tmp = Path(tempfile.mkdtemp(prefix="veil-bench-service-"))
    db = args.db or f"sqlite:///{tmp / 'veil.db'}"
    store = Store(db, tmp / "data")
    tokens = [store.create_token(f"client{i}", "submitter")[1] for i in range(args.clients)]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "BENCH_DB": db, "BENCH_DATA": str(tmp / "data"), "BENCH_WORKERS": str(args.workers),
           "BENCH_MODEL": args.model, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "bench")])}
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "service:make_app", "--factory", "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "warning"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    data = images(args.images)
    submit_lat: list[float] = []
    read_lat: list[float] = []
    done_at: dict[str, float] = {}
    errors: list[str] = []
    lock = threading.Lock()
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"server exited: {(tmp / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("server did not start within 120 s")
            time.sleep(0.2)

        def client(k: int) -> None:
            mine = data[k :: args.clients]
            pending: list[str] = []
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {tokens[k]}"}, timeout=60) as c:
                for j, img in enumerate(mine):
                    t = time.perf_counter()
                    r = c.post("/v1/images", files={"image": (f"c{k}-{j}.png", img, "image/png")})
                    dt = time.perf_counter() - t
                    with lock:
                        submit_lat.append(dt)
                    if r.status_code != 202:
                        with lock:
                            errors.append(f"submit {r.status_code}: {r.text[:200]}")
                        continue
                    pending.append(r.json()["id"])
                while pending and time.monotonic() < t0 + args.timeout:
                    still = []
                    for item_id in pending:
                        t = time.perf_counter()
                        r = c.get(f"/v1/images/{item_id}")
                        dt = time.perf_counter() - t
                        with lock:
                            read_lat.append(dt)
                        status = r.json().get("status") if r.status_code == 200 else None
                        if status in ("done", "failed"):
                            with lock:
                                done_at[item_id] = time.perf_counter()
                                if status == "failed":
                                    errors.append(f"{item_id} failed: {r.json().get('error')}")
                        else:
                            still.append(item_id)
                    pending = still
                    if pending:
                        time.sleep(args.poll)
                if pending:
                    with lock:
                        errors.append(f"client {k}: {len(pending)} images not processed within {args.timeout} s")

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = (max(done_at.values()) if done_at else time.perf_counter()) - t0
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()

    processed: dict[str, int] = {}
    for e in store.audit_events(action="processed"):
        processed[e.item_id or ""] = processed.get(e.item_id or "", 0) + 1
    all_items: list[Any] = []
    offset, total = 0, 0
    while True:
        page, total = store.items(ItemFilter(limit=500, offset=offset, sort="oldest"))
        all_items += page
        offset += 500
        if offset >= total:
            break
    once = (total == args.images and all(processed.get(i.id) == 1 for i, _ in all_items)
            and all(j.status == "done" and j.attempts == 1 for _, j in all_items))
    figures = {
        "clients": args.clients, "images": args.images, "workers": args.workers, "model": args.model,
        "db": store.dialect, "done": len(done_at), "seconds": round(wall, 2),
        "images_per_s": round(len(done_at) / wall, 2) if wall > 0 else None,
        "submit_p50_ms": round(pct(submit_lat, 50), 1), "submit_p95_ms": round(pct(submit_lat, 95), 1),
        "read_p50_ms": round(pct(read_lat, 50), 1), "read_p95_ms": round(pct(read_lat, 95), 1),
        "reads": len(read_lat), "exactly_once": once, "errors": errors[:10], "n_errors": len(errors),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    store.close()
    # the same pipeline in this process, one image after another: what the service adds is the rest
    from veil.pipeline import Safeguarder

    sg = Safeguarder(pipeline_config(args.model))
    sample = data[: min(len(data), 40)]
    t = time.perf_counter()
    for img in sample:
        sg.run(img)
    figures["pipeline_alone_s_per_img"] = round((time.perf_counter() - t) / len(sample), 4)
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print("| clients | images | workers | db | images/s | submit p50 / p95 ms | read p50 / p95 ms | exactly once |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {args.clients} | {figures['done']}/{args.images} | {args.workers} | {figures['db']} | "
          f"{figures['images_per_s']} | {figures['submit_p50_ms']} / {figures['submit_p95_ms']} | "
          f"{figures['read_p50_ms']} / {figures['read_p95_ms']} | {'yes' if once else 'NO'} |")
    print(f"pipeline alone (in-process, one thread, {len(sample)} images): "
          f"{figures['pipeline_alone_s_per_img']} s/img; load average {figures['load_average']}")
    print(json.dumps(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    if not once or errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
