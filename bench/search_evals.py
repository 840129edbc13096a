"""Candidates classified per flagged image: the greedy search before and after galloping + bisection.

Runs the same pipeline twice per image, once with the one-at-a-time greedy search
(``greedy_linear``: prefixes 1, 2, 3, … in batches growing 2, 4, 8, the search before
issue 16) and once with ``greedy`` (galloping then bisection over the prefix length), and
reports candidates classified (``n_evaluated``), depth, how often both chose the same
prefix, and search seconds.

* ``--model demo``: the demo model on the synthetic planted-mark set of ``bench/cse.py``.
* ``--model opennsfw``: open_nsfw on BSDS500 test photos, each with its threshold lowered
  to its own score × (1 - margin) so that it is flagged (see ``bench/opennsfw_speed.py``).

    python bench/search_evals.py --model demo --n 40
    python bench/search_evals.py --model opennsfw --n 10
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from veil.classify import load_classifier  # noqa: E402
from veil.counterfactual.search import SEARCHES, greedy_linear, prefix_budget  # noqa: E402
from veil.image import load_image  # noqa: E402
from veil.pipeline import SafeguardConfig, Safeguarder  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("demo", "opennsfw"), default="demo")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--margin", type=float, default=0.5)
    ap.add_argument("--max-depth", type=int, default=10)
    ap.add_argument("--segmentation", default="bass")
    args = ap.parse_args()

    if "greedy_linear" not in SEARCHES:
        SEARCHES.register("greedy_linear", greedy_linear)  # this script only: the pre-issue-16 search
    if args.model == "demo":
        from cse import DEFAULT_MODEL, dataset

        clf = load_classifier(str(DEFAULT_MODEL))
        images = list(dataset(args.n, 2024, (240, 320))[0])
        scores = clf.unsafe_score(clf.predict_proba(images))
        images = [im for im, s in zip(images, scores, strict=True) if s > clf.threshold]
        thresholds: list[float | None] = [None] * len(images)
        what = f"demo model, {len(images)} flagged synthetic images (seed 2024)"
    else:
        clf = load_classifier("opennsfw")
        paths = sorted(Path("/work/shared/data/bsds500/images/test").glob("*.jpg"))[: args.n]
        images = [load_image(p) for p in paths]
        scores = clf.unsafe_score(clf.predict_proba(images))
        thresholds = [float(s * (1 - args.margin)) for s in scores]
        what = f"open_nsfw, {len(images)} BSDS500 test photos, threshold = own score × {1 - args.margin:g}"

    rows: dict[str, list[tuple[int, int | None, bool, float, tuple[int, ...]]]] = {"greedy_linear": [], "greedy": []}
    for img, thr in zip(images, thresholds, strict=True):
        for name in rows:
            cfg = SafeguardConfig(models=(clf,), segmentation=args.segmentation, search=name, threshold=thr,
                                  max_depth=args.max_depth, rationale=None)
            res = Safeguarder(cfg, classifiers=[clf]).run(img)
            sel = tuple(int(r.id) for r in (res.regions or [])) if res.counterfactual_found else ()
            rows[name].append((int(res.n_evaluated or 0), res.depth, res.counterfactual_found,
                               float(res.timings.get("search", 0.0)), sel))
    lin, new = rows["greedy_linear"], rows["greedy"]
    same = sum(a[4] == b[4] and a[2] == b[2] for a, b in zip(lin, new, strict=True))
    print(f"\n{what}; fullgrad / {args.segmentation}; max_depth {args.max_depth} "
          f"(greedy budget {prefix_budget(args.max_depth)} per search)\n")
    print("| search | candidates / image (mean) | max | found | mean depth | search s/img |\n|---|---|---|---|---|---|")
    for name, rs in rows.items():
        ev = [r[0] for r in rs]
        depths = [r[1] for r in rs if r[1] is not None]
        print(f"| {name} | {np.mean(ev):.2f} | {max(ev)} | {sum(r[2] for r in rs)}/{len(rs)} | "
              f"{np.mean(depths) if depths else float('nan'):.2f} | {np.mean([r[3] for r in rs]):.3f} |")
    print(f"\nsame counterfactual (regions) from both: {same}/{len(lin)}")
    print(f"command: python {' '.join(sys.argv)}")


if __name__ == "__main__":
    main()
