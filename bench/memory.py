"""Peak memory and time of ``veil scan`` on one camera-sized photo (12 and 48 megapixels).

Each size is a bundled example (with the demo mark, so the demo card flags it and the whole
search runs) scaled up and saved as a JPEG; ``veil scan`` runs on it in a fresh process under
``/usr/bin/time -v``, whose "Maximum resident set size" is the peak reported.

    python bench/memory.py                       # 12 and 48 MP, demo card
    python bench/memory.py --megapixels 48 --model nudenet --model examples/demo-model/model.json
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default=str(ROOT / "examples" / "images" / "02_chelsea_mark.png"))
    ap.add_argument("--model", action="append", default=None, help="classifier(s) for veil scan (default: demo card)")
    ap.add_argument("--megapixels", type=float, nargs="+", default=[12, 48])
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="further veil scan options")
    args = ap.parse_args()
    models = args.model or [str(ROOT / "examples" / "demo-model" / "model.json")]
    veil = [sys.executable, "-m", "veil.cli"]
    base = Image.open(args.image).convert("RGB")
    print(f"models: {', '.join(models)}")
    print("| megapixels | size | peak RSS (MB) | wall (s) | unsafe | counterfactual | area % | timings (s) |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for mp in args.megapixels:
            w0, h0 = base.size
            s = (mp * 1e6 / (w0 * h0)) ** 0.5
            size = (round(w0 * s), round(h0 * s))
            folder = Path(tmp) / f"in{mp:g}"
            folder.mkdir()
            base.resize(size, Image.Resampling.BICUBIC).save(folder / "photo.jpg", quality=92)
            out = Path(tmp) / f"out{mp:g}"
            cmd = ["/usr/bin/time", "-v", *veil, "scan", str(folder), "--out", str(out),
                   *[a for m in models for a in ("--model", m)], *args.extra]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if proc.returncode != 0:
                print(proc.stderr[-2000:], file=sys.stderr)
                raise SystemExit(f"veil scan failed on {mp} MP")
            peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
            wall = re.search(r"Elapsed \(wall clock\) time .*: (\S+)", proc.stderr).group(1)
            parts = [float(p) for p in wall.split(":")]
            seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
            rec = json.loads((out / "results.jsonl").read_text().splitlines()[0])
            timings = ", ".join(f"{k} {v:.1f}" for k, v in rec["timings"].items() if k != "n_evaluated")
            print(f"| {size[0] * size[1] / 1e6:.1f} | {size[0]}×{size[1]} | {peak_kb / 1024:.0f} | {seconds:.1f} | "
                  f"{rec['unsafe']} | {rec['counterfactual_found']} | {100 * (rec['obfuscated_fraction'] or 0):.2f} | "
                  f"{timings} |")
            delivered = np.asarray(Image.open(out / rec["output"]))
            assert delivered.shape[:2] == (size[1], size[0])


if __name__ == "__main__":
    main()
