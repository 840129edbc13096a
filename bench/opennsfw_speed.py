"""Speed at ResNet-50 scale on a real model: open_nsfw, the whole pipeline against the stock one.

On BSDS500 test photos, for each image in turn (so that both sides see the same machine
load), run

* **ours**: ``Safeguarder`` with FullGrad, the default segmentation (BASS + colour merge),
  the greedy search (galloping + bisection), blur and the ``minimal`` extent (``--extent``;
  the stock pipeline has no extent step: ``object`` adds its own classifications), and
* **stock**: ``bench/cse.py``'s ``plain_pipeline`` on the same classifier: pytorch-grad-cam's
  ``FullGrad`` on the same onnx2torch-converted module, the same segmentation, merge levels
  and ranking, then the prefixes top-1, top-2, … styled and classified one at a time,

and measure the **floor** for the image: one forward + backward of the converted module
(attribution's minimum), plus as many single-image forwards (onnxruntime, preprocessing
included) as our search classified candidates, plus our segmentation time.

open_nsfw flags almost no ordinary photo (2 of 500 BSDS500 photos at 0.5), so each image
gets its own threshold: its nsfw score times ``1 - margin`` (``--margin 0.5``: half its
score). The image is then flagged and both pipelines must lower its score that far; the
search runs on every timed image.

    python bench/opennsfw_speed.py --n 10
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
sys.path.insert(0, str(ROOT / "bench"))

from cse import STAGES, plain_pipeline  # noqa: E402

from veil.classify import load_classifier  # noqa: E402
from veil.image import load_image  # noqa: E402
from veil.pipeline import SafeguardConfig, Safeguarder  # noqa: E402

DATA = Path("/work/shared/data/bsds500/images/test")


def floor_parts(clf: Any, image: np.ndarray) -> tuple[float, float]:
    """Seconds of one forward+backward of the torch module and of one onnxruntime classification."""
    import torch

    t = time.perf_counter()
    x = clf.torch_input(image).requires_grad_(True)
    torch.autograd.grad(clf.torch_unsafe_score(x).sum(), x)
    fb = time.perf_counter() - t
    t = time.perf_counter()
    clf.unsafe_score(clf.predict_proba([image]))
    return fb, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--n", type=int, default=10, help="photos timed (the first N in name order)")
    ap.add_argument("--margin", type=float, default=0.5, help="threshold = own score × (1 - margin)")
    ap.add_argument("--segmentation", default="bass")
    ap.add_argument("--style", default="blur")
    ap.add_argument("--max-depth", type=int, default=10)
    ap.add_argument("--extent", default="minimal",
                    help="our extent (minimal: the search's regions, the paper's counterfactual, as stock delivers)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads (0: torch's default); 1 avoids OpenMP stalls on an oversubscribed machine")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    clf = load_classifier("opennsfw")
    paths = sorted(args.data.glob("*.jpg"))[: args.n]
    images = [load_image(p) for p in paths]
    scores = clf.unsafe_score(clf.predict_proba(images))
    thresholds = [float(s * (1 - args.margin)) for s in scores]

    def ours(img: np.ndarray, thr: float) -> tuple[bool, dict[str, float], int]:
        cfg = SafeguardConfig(models=(clf,), attribution="fullgrad", segmentation=args.segmentation,
                              search="greedy", style=args.style, max_depth=args.max_depth, threshold=thr,
                              rationale=None, segment_size=None, extent=args.extent)
        sg = Safeguarder(cfg, classifiers=[clf])
        t = time.perf_counter()
        res = sg.run(img)
        total = time.perf_counter() - t
        tm = res.timings
        secs = {"classify": tm.get("classify", 0.0), "attribution": tm.get("attribution", 0.0),
                "segmentation": tm.get("segmentation", 0.0) + tm.get("merge", 0.0), "search": tm.get("search", 0.0)}
        secs["other"] = total - sum(secs.values())
        return res.counterfactual_found, secs, int(res.n_evaluated or 0)

    def stock(img: np.ndarray, thr: float) -> tuple[bool, dict[str, float]]:
        cfg = SafeguardConfig(models=(clf,), segmentation=args.segmentation, threshold=thr)
        return plain_pipeline(clf, img, segmentation=args.segmentation, style=args.style, max_depth=args.max_depth,
                              threshold=thr, merge_levels=cfg.merge_levels)

    ours(images[0], thresholds[0])  # warm-up: torch conversion, numba JIT, first allocations
    stock(images[0], thresholds[0])
    rows: list[dict[str, Any]] = []
    for p, img, thr, sc in zip(paths, images, thresholds, scores, strict=True):
        f_ours, s_ours, n_eval = ours(img, thr)
        f_stock, s_stock = stock(img, thr)
        fb, fwd = floor_parts(clf, img)
        floor = fb + n_eval * fwd + s_ours["segmentation"]
        rows.append({"image": p.name, "score": float(sc), "threshold": thr, "ours": s_ours, "stock": s_stock,
                     "found_ours": f_ours, "found_stock": f_stock, "n_evaluated": n_eval,
                     "forward_backward": fb, "forward": fwd, "floor": floor})
        ours_core = s_ours["attribution"] + s_ours["segmentation"] + s_ours["search"]
        print(f"{p.name}: score {sc:.4f} thr {thr:.4f} | ours {sum(s_ours.values()):.2f} s "
              f"(core {ours_core:.2f}, {n_eval} evals, found {f_ours}) | stock {sum(s_stock.values()):.2f} s "
              f"(found {f_stock}) | floor {floor:.2f} s", flush=True)

    def mean(key: str, st: str) -> float:
        return float(np.mean([r[key].get(st, 0.0) for r in rows]))

    import torch

    print(f"\n{len(rows)} BSDS500 test photos, open_nsfw (onnx2torch ResNet-50, 224 px crop), "
          f"torch threads {torch.get_num_threads()}, "
          f"fullgrad / {args.segmentation} / greedy / {args.style} / extent {args.extent}; "
          f"threshold = own score × {1 - args.margin:g}\n")
    print("| pipeline | s/img | " + " | ".join(STAGES) + " | found |\n|---|---|" + "---|" * len(STAGES) + "---|")
    out: dict[str, Any] = {"command": "python " + " ".join(sys.argv), "machine": platform.platform(), "rows": rows}
    for key, label in (("ours", "ours (fast FullGrad, galloping greedy)"),
                       ("stock", "stock (pytorch-grad-cam FullGrad, one candidate at a time)")):
        stages = {st: mean(key, st) for st in STAGES}
        found = sum(r[f"found_{key}"] for r in rows)
        out[key] = {"seconds": sum(stages.values()), "stages": stages, "found": found}
        cells = " | ".join(f"{stages[st]:.3f}" if st in rows[0][key] else "—" for st in STAGES)
        print(f"| {label} | {out[key]['seconds']:.3f} | {cells} | {found}/{len(rows)} |")
    core = {k: out[k]["stages"]["attribution"] + out[k]["stages"]["segmentation"] + out[k]["stages"]["search"]
            for k in ("ours", "stock")}
    floor = float(np.mean([r["floor"] for r in rows]))
    out.update(floor=floor, core=core, evals=float(np.mean([r["n_evaluated"] for r in rows])),
               speedup=out["stock"]["seconds"] / out["ours"]["seconds"], speedup_core=core["stock"] / core["ours"],
               vs_floor=out["ours"]["seconds"] / floor, core_vs_floor=core["ours"] / floor)
    print(f"\nfloor (1 forward+backward {np.mean([r['forward_backward'] for r in rows]):.3f} s + "
          f"{out['evals']:.1f} forwards × {np.mean([r['forward'] for r in rows]):.3f} s + segmentation "
          f"{out['ours']['stages']['segmentation']:.3f} s): {floor:.3f} s/img")
    print(f"speed-up, whole pipeline: {out['speedup']:.1f}×; attribution+segmentation+search: "
          f"{out['speedup_core']:.1f}×")
    print(f"ours / floor: whole pipeline {out['vs_floor']:.2f}×; attribution+segmentation+search "
          f"{out['core_vs_floor']:.2f}×")
    print(f"\ncommand: {out['command']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
