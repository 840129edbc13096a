"""Draw docs/img/pipeline.png: one bundled example through every stage of the pipeline.

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


if __name__ == "__main__":
    main()
