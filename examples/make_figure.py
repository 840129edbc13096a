"""Draw docs/img/pipeline.png (one bundled example through every stage of the pipeline) and
docs/img/merge.png (what joining superpixels by colour changes for the search).

The "unsafe" content of the bundled examples is the synthetic demo mark, so the input can be
shown here; Veil's own report never shows an unsafe input.

    .venv/bin/python examples/make_figure.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from skimage.segmentation import find_boundaries  # noqa: E402

from veil import SafeguardConfig, Safeguarder, load_image  # noqa: E402

HERE = Path(__file__).resolve().parent


def main(image: str = "02_chelsea_mark.png", out: Path = HERE.parent / "docs" / "img" / "pipeline.png") -> None:
    img = load_image(HERE / "images" / image)
    sg = Safeguarder(SafeguardConfig(models=(str(HERE / "demo-model" / "model.json"),)))
    res = sg.run(img)
    if res.attribution is None or res.segments is None:
        raise SystemExit(f"{image} was not obfuscated (unsafe={res.unsafe}); pick an image with the mark")
    bounds = find_boundaries(res.segments, mode="inner")
    regions = img.copy()
    regions[bounds] = (255, 255, 255)
    regions[res.mask] = (0.4 * regions[res.mask] + 0.6 * np.array([230, 30, 30])).astype(np.uint8)
    panels = [
        (img, f"input: unsafe {res.models[0].unsafe_score:.2f}"),
        (res.attribution, f"attribution ({res.settings['attribution']})"),
        (regions, f"{res.settings['segmentation']} + merge {sg.config.merge_threshold:g}: "
                  f"chosen in red (depth {res.depth})"),
        (res.image, f"delivered: unsafe {res.models_after[0].unsafe_score:.2f}, "
                    f"{100 * res.obfuscated_fraction:.1f}% obfuscated"),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax, (arr, title) in zip(axes, panels, strict=True):
        ax.imshow(arr, cmap="inferno" if np.ndim(arr) == 2 else None)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")
    merge_figure(out.parent / "merge.png")


def merge_figure(out: Path, index: int = 26) -> None:
    """Superpixels alone vs joined by colour: the regions and what the search obfuscates with each.

    The image is number ``index`` of the 40-image synthetic set that ``bench/cse.py`` reports on.
    """
    from veil.bench.synthetic import HELDOUT_SAMPLES, make_dataset, sample_backgrounds

    images, _, _ = make_dataset(40, 2024, size=(240, 320), positive_fraction=1.0,
                                backgrounds=sample_backgrounds(HELDOUT_SAMPLES))
    img = images[index]
    model = str(HERE / "demo-model" / "model.json")
    runs = [(m, Safeguarder(SafeguardConfig(models=(model,), merge=m, coarser=())).run(img)) for m in (0.0, 12.0)]
    ys, xs = np.nonzero(runs[1][1].mask)
    pad = 40
    y0, y1 = max(0, ys.min() - pad), min(img.shape[0], ys.max() + pad)
    x0, x1 = max(0, xs.min() - pad), min(img.shape[1], xs.max() + pad)
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    for i, (merge, res) in enumerate(runs):
        if res.segments is None:
            raise SystemExit("the example was not obfuscated; pick an image with the mark")
        crop = (slice(y0, y1), slice(x0, x1))
        regions = img.copy()
        regions[find_boundaries(res.segments, mode="inner")] = (255, 255, 255)
        n = len(np.unique(res.segments))
        name = "BASS superpixels" if merge == 0 else f"joined by colour (ΔE < {merge:g})"
        axes[2 * i].imshow(regions[crop])
        axes[2 * i].set_title(f"{name}: {n} regions", fontsize=10)
        chosen = img.copy()
        chosen[res.mask] = (0.4 * chosen[res.mask] + 0.6 * np.array([230, 30, 30])).astype(np.uint8)
        axes[2 * i + 1].imshow(chosen[crop])
        axes[2 * i + 1].set_title(f"obfuscated: depth {res.depth}, {100 * res.obfuscated_fraction:.1f}% of image",
                                  fontsize=10)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
