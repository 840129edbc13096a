"""Counterfactual safeguarding benchmark (the paper's Tables 3 and 4 layout).

On a synthetic set whose ground truth is known — the Veil demo mark planted on held-out
photos, with its pixel mask — run the pipeline for each attribution method × segmentation
and report, over the correctly classified unsafe images:

* CF %     counterfactual found (the delivered image re-classified safe),
* depth    mean number of regions obfuscated (over found),
* area %   mean obfuscated share of the image (over found),
* GT %     mean ground-truth share of the image (same images),
* P / R    precision and recall of the obfuscated pixels against the mark's mask,
* s/img    wall-clock seconds per image (attribution + segmentation + search).

A second table compares the search strategies (greedy, subset, csra) at the default
attribution/segmentation, and a third times our pipeline against the plain one:
pytorch-grad-cam's FullGrad and a search that styles and classifies one candidate at a time.

    python bench/cse.py                       # defaults: 40 images, every method
    python bench/cse.py --n 10 --attributions fullgrad gradcam --segmentations slic bass
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

from veil.attribution import ATTRIBUTIONS  # noqa: E402
from veil.bench.obfuscation import mask_scores  # noqa: E402
from veil.bench.synthetic import HELDOUT_SAMPLES, make_dataset, sample_backgrounds  # noqa: E402
from veil.classify import load_classifier  # noqa: E402
from veil.counterfactual import SEARCHES, obfuscate, rank_regions, regions_mask  # noqa: E402
from veil.pipeline import DEFAULT_COARSER, SafeguardConfig, Safeguarder  # noqa: E402
from veil.segment import SEGMENTERS, merge_similar, segment  # noqa: E402

DEFAULT_MODEL = ROOT / "examples" / "demo-model" / "model.json"


def dataset(n: int, seed: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    backgrounds = sample_backgrounds(HELDOUT_SAMPLES)
    images, _, masks = make_dataset(n, seed, size=size, backgrounds=backgrounds, positive_fraction=1.0)
    return images, masks


def evaluate(sg: Safeguarder, images: np.ndarray, masks: np.ndarray) -> dict[str, Any]:
    found, depth, area, gt, prec, rec, secs, n_eval = 0, [], [], [], [], [], [], []
    for img, truth in zip(images, masks, strict=True):
        t = time.perf_counter()
        res = sg.run(img)
        secs.append(time.perf_counter() - t)
        n_eval.append(res.n_evaluated)
        if res.counterfactual_found:
            found += 1
            scores = mask_scores(res.mask, truth)
            depth.append(res.depth)
            area.append(res.obfuscated_fraction)
            gt.append(truth.mean())
            prec.append(scores.precision)
            rec.append(scores.recall)

    def mean(x: list[float]) -> float:
        return float(np.mean(x)) if x else float("nan")

    return {
        "n": len(images), "cf": found / max(len(images), 1), "depth": mean(depth),
        "area": mean(area), "gt_area": mean(gt), "precision": mean(prec), "recall": mean(rec),
        "seconds": mean(secs), "candidates": mean(n_eval),
    }


def row(name: str, m: dict[str, Any]) -> str:
    return (f"| {name} | {m['n']} | {100 * m['cf']:.1f} | {m['depth']:.2f} | {100 * m['area']:.1f} | "
            f"{100 * m['gt_area']:.1f} | {m['precision']:.2f} | {m['recall']:.2f} | {m['seconds']:.2f} |")


HEADER = ("| {} | n | CF % | depth | area % | GT % | precision | recall | s/img |\n"
          "|---|---|---|---|---|---|---|---|---|")


def plain_pipeline(clf: Any, image: np.ndarray, *, segmentation: str, style: str, max_depth: int,
                   threshold: float, merge_levels: list[float]) -> tuple[bool, dict[str, float]]:
    """The unoptimized reference: pytorch-grad-cam FullGrad, one candidate styled and classified at a time.

    Same stages and settings as the pipeline (segmentation, colour merge and coarser retries
    given as ``SafeguardConfig.merge_levels``, greedy order, style, depth), without its
    optimizations. Returns whether a counterfactual was found and the seconds spent per stage.
    """
    import torch
    from pytorch_grad_cam import FullGrad
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    class Score(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = clf.torch_module()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return clf.torch_unsafe_score(x)[:, None]

    secs = {"attribution": 0.0, "segmentation": 0.0, "search": 0.0}
    t = time.perf_counter()
    x = clf.torch_input(image)
    with FullGrad(model=Score(), target_layers=[]) as cam:
        small = cam(input_tensor=x, targets=[ClassifierOutputTarget(0)])[0]
    att = clf.attribution_to_image(small, image.shape[:2])
    secs["attribution"] = time.perf_counter() - t
    t = time.perf_counter()
    segments = segment(image, segmentation, rng=0)
    secs["segmentation"] = time.perf_counter() - t
    for level in merge_levels:
        t = time.perf_counter()
        labels = merge_similar(image, segments, level) if level else segments
        secs["segmentation"] += time.perf_counter() - t
        t = time.perf_counter()
        order, _ = rank_regions(att, labels)
        for k in range(1, min(max_depth, len(order)) + 1):
            cand = obfuscate(image, regions_mask(labels, order[:k]), style)
            if clf.unsafe_score(clf.predict_proba([cand]))[0] <= threshold:
                secs["search"] += time.perf_counter() - t
                return True, secs
        secs["search"] += time.perf_counter() - t
    return False, secs


STAGES = ("classify", "attribution", "segmentation", "search", "other")


def speed(clf: Any, images: np.ndarray, thresholds: list[float | None], settings: dict[str, Any]) -> dict[str, Any]:
    """Time our pipeline against :func:`plain_pipeline` on the same images and settings; print a table.

    The two alternate image by image so that drifts in machine load hit both alike. Per-stage
    means show where the time goes: ``classify`` is the first verdict and ``other`` includes
    re-classifying the delivered image (ours only; the plain reference does neither).
    """
    def config(thr: float | None) -> SafeguardConfig:
        # segment_size=None: segment at full resolution, as plain_pipeline does, at any --size
        return SafeguardConfig(models=(clf,), attribution="fullgrad", search="greedy", threshold=thr,
                               rationale=None, segment_size=None, **settings)

    def ours_one(img: np.ndarray, thr: float | None) -> tuple[bool, dict[str, float]]:
        sg = Safeguarder(config(thr), classifiers=[clf])
        t = time.perf_counter()
        res = sg.run(img)
        total = time.perf_counter() - t
        tm = res.timings
        secs = {"classify": tm.get("classify", 0.0), "attribution": tm.get("attribution", 0.0),
                "segmentation": tm.get("segmentation", 0.0) + tm.get("merge", 0.0), "search": tm.get("search", 0.0)}
        secs["other"] = total - sum(secs.values())
        return res.counterfactual_found, secs

    def plain_one(img: np.ndarray, thr: float | None) -> tuple[bool, dict[str, float]]:
        return plain_pipeline(clf, img, segmentation=settings["segmentation"], style=settings["style"],
                              max_depth=settings["max_depth"], threshold=thr if thr is not None else clf.threshold,
                              merge_levels=config(thr).merge_levels)

    ours_one(images[0], thresholds[0])  # warm-up (JIT, lazy model conversion)
    plain_one(images[0], thresholds[0])
    runs: dict[str, list[tuple[bool, dict[str, float]]]] = {"ours": [], "plain": []}
    for img, thr in zip(images, thresholds, strict=True):
        runs["ours"].append(ours_one(img, thr))
        runs["plain"].append(plain_one(img, thr))
    out: dict[str, Any] = {}
    print("| pipeline | s/img | " + " | ".join(STAGES) + " | found |\n|---|---|" + "---|" * len(STAGES) + "---|")
    names = {"ours": "ours (fast FullGrad, batched search)",
             "plain": "plain (pytorch-grad-cam FullGrad, one candidate at a time)"}
    for key, rs in runs.items():
        stages = {st: float(np.mean([r[1].get(st, 0.0) for r in rs])) for st in STAGES}
        total = sum(stages.values())
        found = sum(f for f, _ in rs)
        out[key] = {"seconds": total, "stages": stages, "found": found}
        cells = " | ".join(f"{stages[st]:.3f}" if st in rs[0][1] else "—" for st in STAGES)
        print(f"| {names[key]} | {total:.3f} | {cells} | {found}/{len(rs)} |")
    out["speedup"] = out["plain"]["seconds"] / out["ours"]["seconds"]
    print(f"\nspeed-up: {out['speedup']:.1f}×")
    return out


def plot_speed(runs: dict[str, dict[str, Any]], path: Path) -> None:
    """Stacked per-stage bars, ours vs plain, one panel per timed model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"classify": "#9e9e9e", "attribution": "#d62728", "segmentation": "#1f77b4",
              "search": "#2ca02c", "other": "#bcbd22"}
    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.2), squeeze=False)
    for ax, (title, res) in zip(axes[0], runs.items(), strict=True):
        for y, key in enumerate(("plain", "ours")):
            left = 0.0
            for st in STAGES:
                v = res[key]["stages"].get(st, 0.0)
                ax.barh(y, v, left=left, color=colors[st], label=st if y == 0 else None)
                left += v
            ax.text(left, y, f" {left:.2f} s", va="center", fontsize=9)
        ax.set_yticks([0, 1], ["plain", "Veil"])
        ax.set_xlim(0, 1.25 * res["plain"]["seconds"])
        ax.set_xlabel("seconds per image")
        ax.set_title(f"{title}: {res['speedup']:.1f}× faster", fontsize=10)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(STAGES), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--n", type=int, default=40, help="images in the synthetic set")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    ap.add_argument("--attributions", nargs="+", default=ATTRIBUTIONS.names())
    ap.add_argument("--segmentations", nargs="+", default=[s for s in SEGMENTERS.names() if s != "sam"])
    ap.add_argument("--searches", nargs="+", default=SEARCHES.names())
    ap.add_argument("--style", default="blur")
    ap.add_argument("--max-depth", type=int, default=10)
    ap.add_argument("--merge", type=float, default=None,
                    help="colour merge threshold (0: off; default: the segmenter's, 12 for BASS, else off)")
    ap.add_argument("--coarser", type=float, nargs="*", default=list(DEFAULT_COARSER),
                    help="merge thresholds retried before failing closed (none: fail closed at once)")
    ap.add_argument("--speed-n", type=int, default=10, help="images for the speed comparison (0: skip it)")
    ap.add_argument("--speed-arch", default="resnet50",
                    help="also time an untrained torchvision model of this architecture ('' to skip)")
    ap.add_argument("--speed-input", type=int, default=224, help="input size of --speed-arch")
    ap.add_argument("--speed-model", type=Path, default=None,
                    help="also run and time a trained model card (e.g. bench/train_large.py's resnet50)")
    ap.add_argument("--json", type=Path, default=None, help="also write all numbers here")
    ap.add_argument("--plot", type=Path, default=None, help="also draw the speed tables as a PNG here")
    args = ap.parse_args()

    clf = load_classifier(args.model)
    all_images, all_masks = dataset(args.n, args.seed, tuple(args.size))
    proba = clf.unsafe_score(clf.predict_proba(list(all_images)))
    keep = proba > clf.threshold
    images, masks = all_images[keep], all_masks[keep]
    print(f"model: {args.model}; {int(keep.sum())}/{len(keep)} planted images classified unsafe "
          f"(only those are searched); style {args.style}; max depth {args.max_depth}; "
          f"merge {'default' if args.merge is None else args.merge}; coarser {args.coarser}")
    out: dict[str, Any] = {"command": " ".join(sys.argv), "machine": platform.platform(),
                           "classified_unsafe": int(keep.sum()), "n": int(len(keep)), "grid": {}}

    print("\n### Attribution × segmentation (greedy search)\n")
    print(HEADER.format("attribution / segmentation"))
    for att in args.attributions:
        for seg in args.segmentations:
            cfg = SafeguardConfig(models=(clf,), attribution=att, segmentation=seg, style=args.style,
                                  max_depth=args.max_depth, merge=args.merge, coarser=tuple(args.coarser), rationale=None)
            m = evaluate(Safeguarder(cfg, classifiers=[clf]), images, masks)
            out["grid"][f"{att}/{seg}"] = m
            print(row(f"{att} / {seg}", m), flush=True)

    att0, seg0 = args.attributions[0], args.segmentations[0]
    print(f"\n### Search strategies ({att0} / {seg0})\n")
    print(HEADER.format("search"))
    out["searches"] = {}
    for s in args.searches:
        cfg = SafeguardConfig(models=(clf,), attribution=att0, segmentation=seg0, search=s,
                              style=args.style, max_depth=args.max_depth, merge=args.merge, coarser=tuple(args.coarser), rationale=None)
        m = evaluate(Safeguarder(cfg, classifiers=[clf]), images, masks)
        out["searches"][s] = m
        print(row(s, m), flush=True)

    settings = {"segmentation": seg0, "style": args.style, "max_depth": args.max_depth, "merge": args.merge,
                "coarser": tuple(args.coarser)}
    if args.speed_n > 0:
        print(f"\n### Speed: ours vs plain (fullgrad / {seg0} / greedy, {args.speed_n} images, demo model)\n")
        out["speed"] = speed(clf, images[: args.speed_n], [None] * args.speed_n, settings)
    if args.speed_n > 0 and args.speed_arch:
        import torch
        import torchvision

        from veil.classify.torch import TorchClassifier

        torch.manual_seed(0)
        net = getattr(torchvision.models, args.speed_arch)(num_classes=2)
        with torch.no_grad():  # default init saturates the softmax; keep scores in a searchable range
            for p in net.modules():
                if isinstance(p, torch.nn.Linear):
                    p.weight.mul_(0.01)
        big = TorchClassifier(net, ["safe", "unsafe"], ["unsafe"], input_size=args.speed_input, name=args.speed_arch)
        sub = images[: args.speed_n]
        # An untrained network has no notion of the mark: set each image's threshold just under
        # its own score so that it is flagged and both pipelines do the same search.
        thr = [float(np.clip(sc - 1e-3, 1e-3, 0.999)) for sc in big.unsafe_score(big.predict_proba(list(sub)))]
        print(f"\n### Speed at a larger model: untrained torchvision {args.speed_arch} at {args.speed_input} px "
              f"(last layer scaled by 0.01; {args.speed_n} images, threshold 0.001 under each image's score)\n")
        out["speed_" + args.speed_arch] = speed(big, sub, thr, settings)
    if args.speed_model is not None:
        large = load_classifier(str(args.speed_model))
        flagged = large.unsafe_score(large.predict_proba(list(all_images))) > large.threshold
        card = large.config
        large_title = f"trained {card.get('arch', 'model')} ({card.get('input_size', '?')} px)"
        name = f"{args.speed_model} ({card.get('arch')}, input {card.get('input_size')} px)"
        print(f"\n### Trained large model {name}: {int(flagged.sum())}/{len(flagged)} planted images "
              f"classified unsafe\n")
        print(HEADER.format("attribution / segmentation"))
        cfg = SafeguardConfig(models=(large,), attribution="fullgrad", segmentation=seg0, style=args.style,
                              max_depth=args.max_depth, merge=args.merge, coarser=tuple(args.coarser), rationale=None)
        m = evaluate(Safeguarder(cfg, classifiers=[large]), all_images[flagged], all_masks[flagged])
        out["model_grid"] = {f"fullgrad/{seg0}": m}
        print(row(f"fullgrad / {seg0}", m), flush=True)
        if args.speed_n > 0:
            sub = all_images[flagged][: args.speed_n]
            print(f"\n### Speed at the trained large model ({len(sub)} images)\n")
            out["speed_model"] = speed(large, sub, [None] * len(sub), settings)
    print(f"\ncommand: python {' '.join(sys.argv)}")
    if args.plot:
        titles = {"speed": "demo model (resnet10t, 128 px)",
                  "speed_" + args.speed_arch: f"untrained {args.speed_arch} (worst case)",
                  "speed_model": large_title if args.speed_model else ""}
        runs = {titles[k]: out[k] for k in titles if k in out}
        if runs:
            plot_speed(runs, args.plot)
            print(f"wrote {args.plot}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
