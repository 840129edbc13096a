"""Throughput of ``veil scan``'s engines: images per second for 1 and 2 workers, Ray's overhead.

Layouts (``--layouts``; ``engine:workers×threads``):

``local:1x1``, ``local:1x2``
    Today's single process with one torch thread, and with two (every core of this machine).
``process:1x1``, ``process:2x1``
    The process pool (spawned workers, one pipeline each, one torch thread each).
``ray:1x1``, ``ray:2x1``
    Ray Data ``map_batches`` on an actor pool of 1 or 2 actors of 1 CPU, on a local instance
    started once (``ray.init(num_cpus=2)``) and kept for every Ray run.

Every layout runs the same scan (:func:`veil.engines.run.run_scan`, records fsync'ed to a fresh
``results.jsonl``, images, masks and overlays written) over the same inputs: the bundled demo
photos shrunk to ``--size`` px and copied until there are ``--n`` files, judged by the demo
model with the default pipeline (FullGrad, BASS, greedy, object extent, grounded rationale);
half of them carry the planted mark, so half go through the whole search. The rate is
*steady*: images per second in the driver between the outcome of image ``k = max(workers,
n/4)`` and the last one, so start-up (spawning workers, importing torch, loading the model,
Ray's actors) and each worker's first image (numba compiles) are left out; the wall rate with
start-up is shown too. *Worker s/img* is the time spent inside ``Worker.process`` per image
over the same images (the pipeline and PNG encoding; for ``local``, whose files are encoded
while the next image runs, it includes that overlap). For a one-worker layout the driver's
time per image above the worker's is the engine's overhead (moving items, pickling outcomes,
writing files); Ray against the process pool compares their time per image at the same
number of workers. A warm-up scan runs first in the bench's own process (the local layouts
run there). Layouts are run in the order given, ``--repeats`` times, alternating; the best
rate per layout is kept. The load average before and after each layout is printed: on a
shared machine it says how far to trust a row.

    python bench/scale.py                                   # the table in docs/benchmarks.md
    python bench/scale.py --n 12 --repeats 1 --layouts local:1x1 process:2x1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

LAYOUTS = ["local:1x1", "local:1x2", "process:1x1", "process:2x1", "ray:1x1", "ray:2x1"]


def make_inputs(folder: Path, n: int, size: int) -> None:
    from PIL import Image

    photos = sorted((ROOT / "examples" / "images").glob("*.png"))
    folder.mkdir(parents=True)
    for i in range(n):
        img = Image.open(photos[i % len(photos)]).convert("RGB")
        img.thumbnail((size, size))
        img.save(folder / f"{i:04d}_{photos[i % len(photos)].name}")


def run_layout(layout: str, folder: Path, out: Path, config) -> dict:  # noqa: ANN001
    from veil.engines import ScanOptions, make_engine
    from veil.engines.inputs import collect_inputs
    from veil.engines.run import run_scan
    from veil.output import make_sink
    from veil.scan import settings_hash

    name, shape = layout.split(":")
    workers, threads = (int(x) for x in shape.split("x"))
    if name == "ray":
        engine = make_engine("ray", workers=workers, actor_cpus=threads)
    else:
        engine = make_engine(name, workers=workers, threads=threads)
    options = ScanOptions(config, settings_hash(config))
    sink = make_sink("folder", out)
    stamps: list[float] = []
    worker_s: list[float] = []

    def seen(o) -> None:  # noqa: ANN001
        stamps.append(time.perf_counter())
        worker_s.append(o.seconds)

    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    run = run_scan(collect_inputs([folder]), sink, engine, options, on_outcome=seen)
    wall = time.perf_counter() - t0
    sink.close()
    k = max(workers, len(stamps) // 4)  # past start-up and each worker's first image (numba compiles)
    n_steady = len(stamps) - k
    return {"layout": layout, "n": len(stamps), "img_s": n_steady / (stamps[-1] - stamps[k - 1]),
            "wall_img_s": len(stamps) / wall, "worker_s_per_img": sum(worker_s[k:]) / n_steady,
            "load_before": load0, "load_after": os.getloadavg()[0], "unsafe": run.counts.unsafe,
            "failed": run.counts.failed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=24, help="input files")
    ap.add_argument("--size", type=int, default=256, help="longer side of the inputs, px")
    ap.add_argument("--layouts", nargs="+", default=LAYOUTS)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--results", type=Path, default=None, help="append every run as a JSON line")
    args = ap.parse_args()

    from veil.pipeline import SafeguardConfig

    config = SafeguardConfig(models=(str(ROOT / "examples" / "demo-model" / "model.json"),))
    rows: list[dict] = []
    ray = None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        make_inputs(folder, args.n, args.size)
        if any(lay.startswith("ray:") for lay in args.layouts):
            import ray

            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            # warm-up in this process (numba's first compile, lazy imports), which the local
            # layouts would otherwise pay in their first measured run only
            run_layout("local:1x1", folder, Path(tmp) / "warm", config)
            for rep in range(args.repeats):
                order = args.layouts if rep % 2 == 0 else args.layouts[::-1]
                for layout in order:
                    out = Path(tmp) / "out"
                    shutil.rmtree(out, ignore_errors=True)
                    row = run_layout(layout, folder, out, config)
                    row["repeat"] = rep
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    if args.results:
                        with open(args.results, "a") as fh:
                            fh.write(json.dumps(row) + "\n")
        finally:
            if ray is not None:
                ray.shutdown()

    best: dict[str, dict] = {}
    for r in rows:
        if r["layout"] not in best or r["img_s"] > best[r["layout"]]["img_s"]:
            best[r["layout"]] = r
    print(f"\n{args.n} inputs at {args.size} px, demo model, default pipeline; best of {args.repeats}\n")
    print("| layout | img/s (steady) | img/s incl. start-up | worker s/img | load avg before → after |")
    print("|---|---|---|---|---|")
    for lay in args.layouts:
        r = best[lay]
        print(f"| {lay} | {r['img_s']:.3f} | {r['wall_img_s']:.3f} | {r['worker_s_per_img']:.3f} | "
              f"{r['load_before']:.1f} → {r['load_after']:.1f} |")

    def rate(lay: str) -> float | None:
        return best[lay]["img_s"] if lay in best else None

    one, two, single2 = rate("process:1x1") or rate("local:1x1"), rate("process:2x1"), rate("local:1x2")
    if one and two:
        print(f"\nprocess 2×1 / 1×1: {two / one:.2f}× (target ≥ 1.7×)")
    if two and single2:
        print(f"process 2×1 / single process 2 threads: {two / single2:.2f}× (target > 1)")
    for w in (1, 2):
        r, p = rate(f"ray:{w}x1"), rate(f"process:{w}x1")
        if r and p:
            print(f"ray {w}×1 vs process {w}×1: {(w / r - w / p) * 1000:+.0f} ms per image per worker "
                  f"= {(p / r - 1) * 100:+.1f} % of the process pool's time per image (target ≤ 10 %)")
    for lay in args.layouts:
        if lay.endswith(":1x1") and lay in best and not lay.startswith("local"):  # local overlaps items
            r = best[lay]
            print(f"{lay}: {1 / r['img_s'] * 1000:.0f} ms per image in the driver, {r['worker_s_per_img'] * 1000:.0f} ms "
                  f"inside the worker: engine overhead {(1 / r['img_s'] - r['worker_s_per_img']) / r['worker_s_per_img'] * 100:+.1f} %")


if __name__ == "__main__":
    main()
