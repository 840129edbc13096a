"""``veil scan`` end to end against the in-process pipeline on the same folder.

The CLI's time is the whole command's wall time (start-up, model loading, reading, writing
images, masks, overlays, results.jsonl and the report) divided by the number of images; the
in-process time is ``Safeguarder.run`` on each file, with the models already loaded. Both use
the same models and settings. Run once each, CLI first, then in-process, ``--repeats`` times.

    python bench/scan_speed.py                          # 100 BSDS500 test photos, NudeNet
    python bench/scan_speed.py --n 50 --model examples/demo-model/model.json
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
DATA = ROOT.parent / "shared" / "data" / "bsds500" / "images" / "test"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--model", action="append", default=None)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    models = args.model or ["nudenet"]
    files = sorted(args.data.glob("*.jpg"))[: args.n]
    if len(files) < args.n:
        raise SystemExit(f"only {len(files)} images under {args.data}")

    from veil import SafeguardConfig, Safeguarder

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for f in files:
            shutil.copy(f, folder / f.name)
        sg = Safeguarder(SafeguardConfig(models=tuple(models)))
        sg.run(files[0])  # warm-up (numba kernels)
        rows = []
        for rep in range(args.repeats):
            out = Path(tmp) / f"out{rep}"
            cmd = [sys.executable, "-m", "veil.cli", "scan", str(folder), "--out", str(out),
                   *[a for m in models for a in ("--model", m)]]
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
            cli = (time.perf_counter() - t) / len(files)
            t = time.perf_counter()
            for f in folder.iterdir():
                sg.run(f)
            inproc = (time.perf_counter() - t) / len(files)
            rows.append((cli, inproc))
            print(f"run {rep + 1}: veil scan {cli:.3f} s/img, in-process {inproc:.3f} s/img, ratio {cli / inproc:.2f}",
                  flush=True)
    best_cli, best_in = min(r[0] for r in rows), min(r[1] for r in rows)
    print(f"\n{len(files)} images, models {', '.join(models)}")
    print("| | s/img (best of runs) |\n|---|---|")
    print(f"| veil scan (whole command) | {best_cli:.3f} |\n| in-process Safeguarder.run | {best_in:.3f} |")
    print(f"| ratio | {best_cli / best_in:.2f} |")


if __name__ == "__main__":
    main()
