"""``veil scan`` end to end against the in-process pipeline on the same folder.

The CLI's time is the whole command's wall time (start-up, model loading, reading, writing
images, masks, overlays, results.jsonl and the report) divided by the number of images; the
in-process time is ``Safeguarder.run`` on each file, with the models already loaded. Both use
the same models and settings. Each repeat runs ``veil scan`` once per engine (``--engine``,
default ``local`` then ``auto``), then the in-process loop; the table gives the best of the
repeats and, less sensitive to load that drifts between repeats, the median over repeats of
each repeat's own ratio.

Thread counts are printed for both sides: the in-process loop runs with this process's torch
threads (``--threads``, default torch's own), ``--engine local`` with the same (its ``--threads``
is passed through when given); ``auto`` picks its own layout, read back from the scan's
``run.json``.

    python bench/scan_speed.py                          # 100 BSDS500 test photos, NudeNet
    python bench/scan_speed.py --n 50 --model examples/demo-model/model.json
    python bench/scan_speed.py --engine local --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
DATA = ROOT.parent / "shared" / "data" / "bsds500" / "images" / "test"


def _scan(folder: Path, out: Path, models: list[str], engine: str, threads: int) -> tuple[float, dict]:
    """Wall seconds of one whole ``veil scan`` command, and its run.json."""
    cmd = [sys.executable, "-m", "veil.cli", "scan", str(folder), "--out", str(out), "--engine", engine,
           *[a for m in models for a in ("--model", m)]]
    if threads:
        cmd += ["--threads", str(threads)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT, env=env)
    seconds = time.perf_counter() - t
    return seconds, json.loads((out / "run.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--model", action="append", default=None)
    ap.add_argument("--engine", action="append", default=None, help="veil scan --engine (repeatable; default local, auto)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads in-process and for --engine local (0: torch's default)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    models = args.model or ["nudenet"]
    engines = args.engine or ["local", "auto"]
    files = sorted(args.data.glob("*.jpg"))[: args.n]
    if len(files) < args.n:
        raise SystemExit(f"only {len(files)} images under {args.data}")

    import torch

    from veil import SafeguardConfig, Safeguarder

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"in-process torch threads: {torch.get_num_threads()}; os.cpu_count() {os.cpu_count()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for f in files:
            shutil.copy(f, folder / f.name)
        sg = Safeguarder(SafeguardConfig(models=tuple(models)))
        sg.run(files[0])  # warm-up (numba kernels)
        cli: dict[str, list[float]] = {e: [] for e in engines}
        layout: dict[str, str] = {}
        inproc: list[float] = []
        for rep in range(args.repeats):
            for engine in engines:
                out = Path(tmp) / f"out-{engine}-{rep}"
                seconds, run = _scan(folder, out, models, engine, args.threads if engine == "local" else 0)
                cli[engine].append(seconds / len(files))
                layout[engine] = f"{run['engine']} {run['workers']}×{run['threads'] or 'default'}"
                shutil.rmtree(out)
            t = time.perf_counter()
            for f in sorted(folder.iterdir()):
                sg.run(f)
            inproc.append((time.perf_counter() - t) / len(files))
            print(f"run {rep + 1}: " + ", ".join(f"veil scan --engine {e} ({layout[e]}) {cli[e][-1]:.3f} s/img"
                                                 for e in engines)
                  + f", in-process {inproc[-1]:.3f} s/img", flush=True)
    best_in = min(inproc)
    print(f"\n{len(files)} images, models {', '.join(models)}, best of {args.repeats}")
    print("| | workers × threads | s/img (best) | best / best in-process | median of per-run ratios |\n"
          "|---|---|---|---|---|")
    for engine in engines:
        best = min(cli[engine])
        paired = statistics.median(c / i for c, i in zip(cli[engine], inproc, strict=True))
        print(f"| veil scan --engine {engine} (whole command) | {layout[engine]} | {best:.3f} | {best / best_in:.2f} "
              f"| {paired:.2f} |")
    print(f"| in-process Safeguarder.run | 1×{torch.get_num_threads()} | {best_in:.3f} | 1.00 | 1.00 |")


if __name__ == "__main__":
    main()
