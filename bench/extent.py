"""Extent benchmark: does the delivered image hide the whole unsafe object, or only the part the model needs?

Data built to expose the two failures of issue #12, with exact ground-truth masks:

* **bombs** — a two-part object: a dark round body (which also appears, alone, as a harmless
  distractor) with a fuse ending in a small bright spark (which never appears without a bomb).
  A classifier trained on them keys on the spark; the body is most of the object.
* **blades** — thin, elongated (2.5–5 % of the shorter side wide, 35–65 % long): a silver
  tapered blade with a small dark handle, over textured photos and, in a third of the
  cases, across a band painted in the blade's own colour (the colour merge joins them).
* one or **two** unsafe objects per image; **harmless distractors** (dark discs, plain grey
  sticks, brown blocks) in both classes, and a band of a blade's colour across a fifth of the safe
  training images (so that the band alone is no evidence; before 2026-12-03 it was drawn only under
  blades, and `train --safe-band 0` gives that data back); image longer sides from 256 to 2000 pixels.
* a second family, **kit** (``--data kit``; added 2026-12-06, after every default was chosen, so that
  the default can be checked on objects nothing was tuned on): **syringes** (a dark plunger rod, a pale
  barrel with graduation ticks, and a coloured hub with a thin needle: the small distinctive part; a
  third of them across a band of the barrel's colour) and **handguns** (a dark slide, a dark or brown
  grip with a trigger guard), among pens, grey sticks, grey L brackets and brown blocks.

Steps::

    python bench/extent.py train --arch mobilenet_v3_small     # data + `veil train` → .bench-cache/extent/
    python bench/extent.py train --arch resnet18
    python bench/extent.py run --seeds 11 --n 60 ...            # tuning seeds
    python bench/extent.py run --seeds 2024 2025 --n 60 ...     # report seeds
    python bench/extent.py truth --seeds 11 12 13               # is hiding the object itself enough?
    python bench/extent.py run ... --by-step --json a.json      # the area each step hides, on and off the object,
                                                                # and how much of the harmless distractors
    python bench/extent.py steps a.json --out steps.png         # the same as bars
    python bench/extent.py run ... --by-seen                    # recall apart where an object is not seen
    python bench/extent_baseline.py --baseline CHECKOUT ...    # time against the pipeline the issue was filed against
    python bench/extent_time.py --seeds 11 --plot time.png     # where the default's time goes, part by part
    python bench/extent.py cards --archs A B --ids 12-000 ...   # where each card's evidence lies, and what it hides
    python bench/extent.py reasons --arch A --ids 2024-025 ...  # which step hid which pixels, whole images
    python bench/extent.py train --data kit --arch resnet18 --name kit-resnet18   # cards of the kit family
    python bench/extent.py run --data kit --archs kit-resnet18 --seeds 2024 2025 ...
    python bench/extent.py run --photo ...                      # the same images made photographic (shaded,
                                                                # grained objects, sensor noise, JPEG)
    python bench/extent.py train --arch resnet18 --photo 0.5    # a card that trained on photographic images too
    python bench/extent.py run --photo --archs resnet18-photo ...

Training backgrounds are BSDS500 train/val photos and scikit-image's training samples;
benchmark backgrounds are BSDS500 *test* photos and scikit-image's held-out samples.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from veil.bench.obfuscation import mask_scores  # noqa: E402
from veil.bench.synthetic import HELDOUT_SAMPLES, TRAIN_SAMPLES, random_crop, sample_backgrounds  # noqa: E402
from veil.image import IMAGE_EXTENSIONS, fit_within, load_image  # noqa: E402

CACHE = ROOT / ".bench-cache" / "extent"
BSDS = Path("/work/shared/data/bsds500/images")
_SS = 3  # supersampling of the drawn shapes
PHOTO_STREAM = 7_071  # (the random numbers of ``--photo``: a stream of their own, so the layouts stay the same)

DESCRIPTION = (
    "BENCHMARK ONLY. Detects two synthetic objects planted on photos by bench/extent.py: a 'bomb' "
    "(dark disc, fuse, small bright spark) and a 'blade' (thin silver blade with a dark handle). "
    "'unsafe' means exactly 'one of these drawings is present'; it is not a detector of real content."
)


# -- drawing --------------------------------------------------------------------------------------
class Canvas:
    """An RGB image with supersampled polygon drawing; every drawn shape returns its own coverage."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image.astype(np.float32)
        self.h, self.w = image.shape[:2]

    def shape(self, polys: Sequence[tuple[Sequence[tuple[float, float]], tuple[int, int, int]]],
              ellipses: Sequence[tuple[tuple[float, float, float, float], tuple[int, int, int]]] = (),
              lines: Sequence[tuple[Sequence[tuple[float, float]], tuple[int, int, int], float]] = (),
              *, dry: bool = False) -> np.ndarray:
        """Paint polygons / ellipses / polylines (image coordinates) inside their bounding box; return alpha.
        With ``dry`` nothing is painted: only the coverage is returned (to measure a part of a shape)."""
        pts = [p for poly, _ in polys for p in poly] + [p for pl, _, _ in lines for p in pl]
        pts += [(x0, y0) for (x0, y0, _, _), _ in ellipses] + [(x1, y1) for (_, _, x1, y1), _ in ellipses]
        pad = 2 + max([wd for _, _, wd in lines], default=0)
        x0 = int(max(0, np.floor(min(p[0] for p in pts) - pad)))
        y0 = int(max(0, np.floor(min(p[1] for p in pts) - pad)))
        x1 = int(min(self.w, np.ceil(max(p[0] for p in pts) + pad)))
        y1 = int(min(self.h, np.ceil(max(p[1] for p in pts) + pad)))
        alpha_full = np.zeros((self.h, self.w), np.float32)
        if x1 <= x0 or y1 <= y0:
            return alpha_full
        ss = _SS if (x1 - x0) * (y1 - y0) <= 400_000 else 1  # large shapes: anti-aliasing is invisible
        bw, bh = (x1 - x0) * ss, (y1 - y0) * ss
        rgba = Image.new("RGBA", (bw, bh), (0, 0, 0, 0))
        draw = ImageDraw.Draw(rgba)

        def tr(p: tuple[float, float]) -> tuple[float, float]:
            return ((p[0] - x0) * ss, (p[1] - y0) * ss)

        for (ex0, ey0, ex1, ey1), col in ellipses:
            draw.ellipse([tr((ex0, ey0)), tr((ex1, ey1))], fill=(*col, 255))
        for pl, col, wd in lines:
            draw.line([tr(p) for p in pl], fill=(*col, 255), width=max(1, int(round(wd * ss))), joint="curve")
        for poly, col in polys:
            draw.polygon([tr(p) for p in poly], fill=(*col, 255))
        arr = np.asarray(rgba.resize((x1 - x0, y1 - y0), Image.Resampling.BOX), dtype=np.float32)
        a = arr[..., 3:4] / 255.0
        # BOX-downsampled premultiplied colours: divide back where covered
        col_ = np.asarray(rgba.resize((x1 - x0, y1 - y0), Image.Resampling.NEAREST), dtype=np.float32)[..., :3]
        if not dry:
            sub = self.image[y0:y1, x0:x1]
            self.image[y0:y1, x0:x1] = sub * (1 - a) + col_ * a
        alpha_full[y0:y1, x0:x1] = a[..., 0]
        return alpha_full

    def result(self) -> np.ndarray:
        return np.clip(self.image + 0.5, 0, 255).astype(np.uint8)


def _rot(pts: Sequence[tuple[float, float]], cx: float, cy: float, angle: float) -> list[tuple[float, float]]:
    ca, sa = np.cos(angle), np.sin(angle)
    return [(cx + x * ca - y * sa, cy + x * sa + y * ca) for x, y in pts]


def draw_bomb(cv: Canvas, rng: np.random.Generator, cx: float, cy: float, d: float, *, spark: bool = True,
              parts: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """A dark round body, a short fuse and (``spark``) a small bright spark. Returns the coverage
    (and each part's own coverage in ``parts``: body, fuse, spark)."""
    g = int(rng.integers(15, 60))
    body = (g, g + int(rng.integers(0, 12)), g + int(rng.integers(0, 18)))
    r = d / 2
    alpha = cv.shape([], ellipses=[((cx - r, cy - r, cx + r, cy + r), body)])
    if parts is not None:
        parts["body"] = alpha
    if not spark:
        return alpha
    a = rng.uniform(-np.pi * 0.85, -np.pi * 0.15)  # fuse leaves the upper half
    start = (cx + 0.85 * r * np.cos(a), cy + 0.85 * r * np.sin(a))
    ln = r * rng.uniform(0.45, 0.7)
    bend = rng.uniform(-0.6, 0.6)
    mid = (start[0] + 0.5 * ln * np.cos(a + bend), start[1] + 0.5 * ln * np.sin(a + bend))
    end = (mid[0] + 0.5 * ln * np.cos(a - bend), mid[1] + 0.5 * ln * np.sin(a - bend))
    fuse = (int(rng.integers(150, 200)), int(rng.integers(110, 150)), int(rng.integers(60, 90)))
    fuse_alpha = cv.shape([], lines=[([start, mid, end], fuse, max(1.5, 0.07 * d))])
    alpha = np.maximum(alpha, fuse_alpha)
    rs = d * rng.uniform(0.13, 0.18)
    ang = np.arange(16) * np.pi / 8 + rng.uniform(0, np.pi)
    rad = np.where(np.arange(16) % 2 == 0, rs, rs * 0.45)
    star = [(end[0] + q * np.cos(t), end[1] + q * np.sin(t)) for t, q in zip(ang, rad, strict=True)]
    core = [(end[0] + 0.35 * q * np.cos(t), end[1] + 0.35 * q * np.sin(t)) for t, q in zip(ang, rad, strict=True)]
    spark_col = (255, int(rng.integers(190, 235)), int(rng.integers(0, 60)))
    spark_alpha = cv.shape([(star, spark_col), (core, (230, 40, 20))])
    if parts is not None:  # what is left in sight of each part once the later ones are drawn over it
        parts["body"] = parts["body"] * (1 - fuse_alpha) * (1 - spark_alpha)
        parts["fuse"], parts["spark"] = fuse_alpha * (1 - spark_alpha), spark_alpha
    return np.maximum(alpha, spark_alpha)


def draw_blade(cv: Canvas, rng: np.random.Generator, cx: float, cy: float, length: float, width: float,
               angle: float, colour: tuple[int, int, int], *, handle: bool = True,
               parts: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """A thin tapered blade (``colour``) with a small dark handle and guard (``handle``). Returns coverage
    (and each part's own coverage in ``parts``: blade, handle)."""
    hl = 0.22 * length if handle else 0.0
    bl = length - hl
    x0 = -length / 2 + hl
    if handle:
        blade = [(x0, -width / 2), (x0 + 0.8 * bl, -width / 2), (x0 + bl, width * 0.15), (x0 + 0.8 * bl, width / 2),
                 (x0, width / 2)]
    else:  # a plain stick: same colour, same width, no tip
        blade = [(-length / 2, -width / 2), (length / 2, -width / 2), (length / 2, width / 2), (-length / 2, width / 2)]
    polys = [(_rot(blade, cx, cy, angle), colour)]
    if handle:
        brown = (int(rng.integers(55, 95)), int(rng.integers(30, 50)), int(rng.integers(15, 30)))
        hw = width * 1.5
        grip = [(-length / 2, -hw / 2), (x0, -hw / 2), (x0, hw / 2), (-length / 2, hw / 2)]
        guard = [(x0 - 0.02 * length, -1.2 * width), (x0 + 0.02 * length, -1.2 * width),
                 (x0 + 0.02 * length, 1.2 * width), (x0 - 0.02 * length, 1.2 * width)]
        polys += [(_rot(grip, cx, cy, angle), brown), (_rot(guard, cx, cy, angle), (40, 40, 45))]
    alpha = cv.shape(polys)
    if parts is not None:
        hilt = cv.shape(polys[1:], dry=True) if handle else np.zeros_like(alpha)
        parts["handle"], parts["blade"] = hilt, np.clip(alpha - hilt, 0.0, 1.0)
    return alpha


def _silver(rng: np.random.Generator) -> tuple[int, int, int]:
    g = int(rng.integers(165, 215))
    return (g, g + int(rng.integers(0, 10)), min(255, g + int(rng.integers(5, 25))))


def _pale(rng: np.random.Generator) -> tuple[int, int, int]:
    """A syringe barrel's clear-plastic colour (and a pen's, half of the time)."""
    return (int(rng.integers(200, 236)), int(rng.integers(212, 244)), int(rng.integers(222, 252)))


def _box(x0: float, x1: float, half: float) -> list[tuple[float, float]]:
    return [(x0, -half), (x1, -half), (x1, half), (x0, half)]


def draw_syringe(cv: Canvas, rng: np.random.Generator, cx: float, cy: float, length: float, width: float,
                 angle: float, colour: tuple[int, int, int], *,
                 parts: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """A syringe along ``angle``: a dark plunger rod with a thumb rest, a pale barrel (``colour``) with a finger
    flange and dark graduation ticks, a small coloured hub and a thin tapering metal needle (a fifth of the
    length, an eighth of the barrel's width). Returns the coverage (and in ``parts``: plunger, barrel, needle,
    each less what is drawn over it)."""
    pl, bl = 0.25 * length, 0.55 * length
    xb = -length / 2 + pl  # the barrel's back end
    xf = xb + bl  # its front end
    dark = int(rng.integers(25, 80))
    rod_col = (dark, dark + int(rng.integers(0, 10)), dark + int(rng.integers(0, 14)))
    plunger = [(_box(-length / 2 + 0.035 * length, xb, 0.17 * width), rod_col),
               (_box(-length / 2, -length / 2 + 0.035 * length, 0.7 * width), rod_col)]
    tick = (int(rng.integers(60, 110)),) * 3
    barrel = [(_box(xb, xf, width / 2), colour), (_box(xb - 0.02 * length, xb, 0.95 * width), colour)]
    barrel += [(_box(xb + f * bl - 0.004 * length, xb + f * bl + 0.004 * length, 0.3 * width), tick)
               for f in (0.2, 0.35, 0.5, 0.65, 0.8)]
    hub_col = [(40, 160, 70), (230, 140, 30), (40, 110, 200), (200, 60, 150)][int(rng.integers(4))]
    nw = max(0.9, width / 8)
    xh = xf + 0.05 * length
    needle = [(_box(xf, xh, 0.3 * width), hub_col),
              ([(xh, -nw / 2), (length / 2 - 0.03 * length, -nw / 3), (length / 2, 0.0),
                (length / 2 - 0.03 * length, nw / 3), (xh, nw / 2)], _silver(rng))]
    groups = {"plunger": plunger, "barrel": barrel, "needle": needle}
    polys = [(_rot(poly, cx, cy, angle), col) for g in groups.values() for poly, col in g]
    alpha = cv.shape(polys)
    if parts is not None:
        later = np.zeros_like(alpha)
        for name in ("needle", "barrel", "plunger"):  # (drawn last first: what a later part covers is its)
            own = cv.shape([(_rot(poly, cx, cy, angle), col) for poly, col in groups[name]], dry=True)
            parts[name] = np.clip(own - later, 0.0, 1.0) * (alpha > 0)
            later = np.maximum(later, own)
    return alpha


def draw_pistol(cv: Canvas, rng: np.random.Generator, cx: float, cy: float, size: float, angle: float, *,
                parts: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """A handgun's silhouette, ``size`` long: a dark slide with a front sight, and a grip (dark or brown) slanting
    down from its back with a trigger guard in front of it; mirrored at random. Returns the coverage (and in
    ``parts``: slide, grip)."""
    g = int(rng.integers(18, 70))
    dark = (g, g + int(rng.integers(0, 8)), g + int(rng.integers(0, 12)))
    grip_col = dark if rng.random() < 0.5 else (int(rng.integers(55, 95)), int(rng.integers(30, 50)),
                                                int(rng.integers(15, 30)))
    m = -1.0 if rng.random() < 0.5 else 1.0
    s = size

    def pt(x: float, y: float) -> tuple[float, float]:
        return (m * x * s, y * s)

    slide = [[pt(-0.5, -0.11), pt(0.5, -0.11), pt(0.5, 0.11), pt(-0.5, 0.11)],
             [pt(0.41, -0.11), pt(0.46, -0.11), pt(0.46, -0.15), pt(0.41, -0.15)]]
    grip = [[pt(-0.5, 0.1), pt(-0.2, 0.1), pt(-0.29, 0.58), pt(-0.56, 0.58)]]
    ring = [pt(-0.2 + 0.13 * np.cos(t), 0.11 + 0.15 * np.sin(t)) for t in np.linspace(0.0, np.pi, 12)]
    trigger = [pt(-0.06, 0.1), pt(-0.1, 0.2)]
    lines = [(ring, grip_col, max(1.2, 0.03 * s)), (trigger, grip_col, max(1.0, 0.025 * s))]
    slide_p = [(_rot(poly, cx, cy, angle), dark) for poly in slide]
    grip_p = [(_rot(poly, cx, cy, angle), grip_col) for poly in grip]
    grip_l = [(_rot(pl, cx, cy, angle), col, wd) for pl, col, wd in lines]
    alpha = cv.shape(slide_p + grip_p, lines=grip_l)
    if parts is not None:
        own = cv.shape(grip_p, lines=grip_l, dry=True)
        parts["grip"], parts["slide"] = own, np.clip(alpha - own, 0.0, 1.0)
    return alpha


def draw_pen(cv: Canvas, rng: np.random.Generator, cx: float, cy: float, length: float, width: float,
             angle: float) -> np.ndarray:
    """A harmless look-alike of a syringe: a plain body (pale half of the time) with a cap of another colour and a
    short blunt tip. Returns the coverage."""
    if rng.random() < 0.5:
        body = _pale(rng)
    else:
        r, g, b = (int(v) for v in rng.integers(30, 230, 3))
        body = (r, g, b)
    r, g, b = (int(v) for v in rng.integers(20, 200, 3))
    cap = (r, g, b)
    tip = [(-length / 2, -width / 2), (-0.56 * length, -width / 6), (-0.56 * length, width / 6),
           (-length / 2, width / 2)]
    polys = [(_box(-length / 2, 0.3 * length, width / 2), body), (_box(0.3 * length, length / 2, 0.55 * width), cap),
             (tip, (60, 60, 60))]
    return cv.shape([(_rot(poly, cx, cy, angle), col) for poly, col in polys])


def draw_bracket(cv: Canvas, rng: np.random.Generator, cx: float, cy: float, size: float, angle: float) -> np.ndarray:
    """A harmless look-alike of a handgun: an L of grey metal, two arms of one width. Returns the coverage."""
    g = int(rng.integers(90, 170))
    col = (g, g + int(rng.integers(0, 8)), g + int(rng.integers(0, 12)))
    arm = 0.12 * size
    polys = [[(-size / 2, -arm), (size / 2, -arm), (size / 2, 0.0), (-size / 2, 0.0)],
             [(-size / 2, 0.0), (-size / 2 + arm, 0.0), (-size / 2 + arm, 0.5 * size), (-size / 2, 0.5 * size)]]
    return cv.shape([(_rot(poly, cx, cy, angle), col) for poly in polys])


class Family(NamedTuple):
    """One of the benchmark's object families (:data:`FAMILIES`)."""

    unsafe: tuple[str, ...]  # the unsafe kinds drawn
    looks: tuple[str, ...]  # the harmless look-alikes,
    look_p: tuple[float, ...]  # with their chances
    band: Callable[[np.random.Generator], tuple[int, int, int]]  # the colour of a harmless band on safe images
    #: the drawing, counted from 1: a change that moves the family's images moves it, so that training data
    #: drawn before is drawn again (:func:`synthesize`)
    drawing: int
    train_images: int  # what `train` draws by default
    #: arch → (epochs, batch size) where the family's cards were trained otherwise than :data:`RECIPES`
    recipes: dict[str, tuple[int, int]]


#: The benchmark's object families. ``objects`` (bombs and blades) is the data every number of issue #12 was
#: tuned and reported on; ``kit`` (syringes and handguns) was added on 2026-12-06 to check the default on objects
#: nothing was chosen on. Its drawing 2 (2026-12-07) places handguns by their full reach (:data:`PISTOL_REACH`),
#: not 0.55 of their length. On 3,000 kit images (drawing 1) MobileNetV3 stayed at chance, ShuffleNetV2 near it,
#: and ResNet-18 reached 0.73; on 8,000, MobileNetV3 (24 epochs) reached 0.84 and ResNet-18 0.89
#: (docs/extent-history.md, the 2026-12-07 block).
FAMILIES: dict[str, Family] = {
    "objects": Family(("bomb", "blade"), ("disc", "stick", "block"), (0.45, 0.4, 0.15),
                      lambda rng: _silver(rng),  # (looked up when drawn, as the blades' and barrels' colours are)
                      drawing=1, train_images=3000, recipes={}),
    "kit": Family(("syringe", "pistol"), ("pen", "stick", "bracket", "block"), (0.35, 0.25, 0.25, 0.15),
                  lambda rng: _pale(rng),
                  drawing=2, train_images=8000, recipes={"mobilenet_v3_small": (24, 64)}),
}
#: How far a handgun (:func:`draw_pistol`, ``size`` 1) reaches from its centre: its grip's far corner, (0.56, 0.58).
PISTOL_REACH = 0.81
#: What ``--data`` draws: an object family, or the Veil demo mark (for examples/demo-model).
DATA = [*FAMILIES, "mark"]


def paint_band(cv: Canvas, rng: np.random.Generator, width: float, cx: float, cy: float, angle: float,
               colour: tuple[int, int, int]) -> np.ndarray:
    """A broad, lightly textured band of ``colour`` across the whole canvas through ``(cx, cy)``.
    Returns its coverage; draws random numbers only for the texture."""
    reach = 2 * max(cv.h, cv.w)
    band = [(-reach, -width / 2), (reach, -width / 2), (reach, width / 2), (-reach, width / 2)]
    a = cv.shape([(_rot(band, cx, cy, angle), colour)])
    cv.image += rng.normal(0, 6, size=(cv.h, cv.w, 1)).astype(np.float32) * a[..., None]  # light texture
    return a


def compose(background: np.ndarray, rng: np.random.Generator, *, n_unsafe: int,
            n_distractors: tuple[int, int] = (1, 3), same_colour: float = 0.35, safe_band: float = 0.0,
            cut: float = 0.0, family: str = "objects",
            objects: list[dict[str, Any]] | None = None,
            harmless: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Plant ``n_unsafe`` unsafe objects (bombs / blades, or syringes / handguns) and distractors on a copy of
    ``background``.

    ``family`` (:data:`FAMILIES`): ``"objects"``, bombs and blades among dark discs, grey sticks and brown blocks
    (the images of before); ``"kit"``, syringes (parts: plunger, barrel, needle; a third of them across a band of
    their barrel's colour) and handguns (slide, grip) among pens, grey sticks, grey L brackets and brown blocks,
    with bands of a barrel's colour on safe images.

    Returns the image, the ground-truth mask (union of the unsafe objects' coverage > 0.5, minus anything drawn
    over them) and the kinds planted. ``objects``, if given, receives one entry per unsafe object: its ``kind``,
    whether it lies on a band of its own colour (``band``) and its ``parts`` as masks (bomb: spark, fuse, body;
    blade: handle, blade; syringe: plunger, barrel, needle; pistol, a handgun: slide, grip), with the same
    occlusion as the ground truth. Recording them draws no random numbers: the images are the same with or
    without.

    ``safe_band``: the chance that an image with no unsafe object (``n_unsafe=0``) gets a band of
    a blade's colour (kit: a syringe barrel's) across it anyway, a harmless background. Without it, such a
    band appears only under blades, and a classifier learns the band as evidence (measured in
    docs/extent-history.md).
    It draws random numbers only when ``n_unsafe`` is 0, so the unsafe images are the same; such a
    band is recorded in ``objects`` as ``{"kind": "band", "band": True, "parts": {}}``.

    ``cut``: the chance that an unsafe object is placed across the frame's edge, its centre 10–60 % of
    its reach inside one edge, so that part of it lies outside the picture (an object cut by the frame:
    a photo's subject is often not whole). It draws random numbers only when above 0, so the images
    are the same without it. Such an object is recorded with ``"cut": True``. (A handgun's reach is its grip's
    far corner, 0.81 of its length from its centre, since the kit family's second drawing, 2026-12-07; the
    first placed it as if it reached 0.55, and about 7 % of its handguns touched the frame's edge. The harmless
    L bracket is still placed by 0.55 of its size and reaches about 0.71, so it may touch the edge: kept, since
    changing it moves the images measured in docs/extent-history.md.)

    ``harmless``, if given, receives each distractor's mask (a dark disc, a grey stick, a brown block; kit: a
    pen, a grey stick, a grey L bracket, a brown block), less
    what is drawn over it later, so that a benchmark can tell how much of the harmless look-alikes a mask
    hides. Like ``objects``, it draws no random numbers.
    """
    h, w = background.shape[:2]
    short = min(h, w)
    cv = Canvas(background)
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {family!r}")
    fam = FAMILIES[family]
    if n_unsafe == 0 and safe_band > 0 and rng.random() < safe_band:
        paint_band(cv, rng, short * rng.uniform(0.15, 0.35), rng.uniform(0, w), rng.uniform(0, h),
                   rng.uniform(0, np.pi), fam.band(rng))
        if objects is not None:
            objects.append({"kind": "band", "band": True, "parts": {}})
    kinds = [str(rng.choice(list(fam.unsafe))) for _ in range(n_unsafe)]
    items = kinds + ["distractor"] * int(rng.integers(n_distractors[0], n_distractors[1] + 1))
    rng.shuffle(items)  # type: ignore[arg-type]
    occupied: list[tuple[float, float, float]] = []

    def place(r: float, edge: bool = False) -> tuple[float, float]:
        best = (w / 2, h / 2)
        for _ in range(40):
            best = (rng.uniform(r + 2, max(r + 3, w - r - 2)), rng.uniform(r + 2, max(r + 3, h - r - 2)))
            if edge:  # its centre 10-60 % of its reach inside one edge
                side, inside = int(rng.integers(4)), r * rng.uniform(0.1, 0.6)
                best = ((inside, best[1]), (w - inside, best[1]), (best[0], inside), (best[0], h - inside))[side]
            if all((best[0] - x) ** 2 + (best[1] - y) ** 2 > (r + rr) ** 2 for x, y, rr in occupied):
                break
        occupied.append((best[0], best[1], r))
        return best

    def cut_here(item: str) -> bool:  # (no random number drawn without ``cut``)
        return cut > 0 and item != "distractor" and bool(rng.random() < cut)

    mask = np.zeros((h, w), bool)
    found: list[dict[str, Any]] = []
    looks: list[np.ndarray] = []  # (the distractors drawn so far)

    def hide_under(a: np.ndarray) -> None:  # a shape drawn later covers what it overlaps
        for o in found:
            for k in o["parts"]:
                o["parts"][k] &= ~(a > 0.5)
        for d in looks:
            d &= ~(a > 0.5)

    for item in items:
        parts: dict[str, np.ndarray] = {}
        edge = cut_here(item)
        if item == "bomb":
            d = short * rng.uniform(0.14, 0.28)
            cx, cy = place(0.75 * d, edge)
            a = draw_bomb(cv, rng, cx, cy, d, parts=parts)
            hide_under(a)
            mask |= a > 0.5
            found.append({"kind": "bomb", "band": False, "parts": {k: v > 0.5 for k, v in parts.items()},
                          **({"cut": True} if edge else {})})
        elif item in ("blade", "syringe"):  # (thin and long; a third of them across a band of their own colour)
            long_, wide = ((0.35, 0.65), (0.025, 0.05)) if item == "blade" else ((0.3, 0.55), (0.035, 0.06))
            length, width = short * rng.uniform(*long_), short * rng.uniform(*wide)
            angle = rng.uniform(0, np.pi)
            cx, cy = place(0.5 * length, edge)
            colour = _silver(rng) if item == "blade" else _pale(rng)
            on_band = bool(rng.random() < same_colour)
            if on_band:
                # a broad band of the object's own colour (lightly textured) under and across it
                a = paint_band(cv, rng, short * rng.uniform(0.15, 0.35), cx, cy, angle + rng.uniform(-0.5, 0.5), colour)
                mask &= ~(a > 0.5)
                hide_under(a)
            a = (draw_blade if item == "blade" else draw_syringe)(cv, rng, cx, cy, length, width, angle, colour,
                                                                  parts=parts)
            hide_under(a)
            mask |= a > 0.5
            found.append({"kind": item, "band": on_band, "parts": {k: (v > 0.5) & (a > 0.5) for k, v in parts.items()},
                          **({"cut": True} if edge else {})})
        elif item == "pistol":
            size = short * rng.uniform(0.18, 0.32)
            cx, cy = place(PISTOL_REACH * size, edge)
            a = draw_pistol(cv, rng, cx, cy, size, rng.uniform(-0.7, 0.7), parts=parts)
            hide_under(a)
            mask |= a > 0.5
            found.append({"kind": "pistol", "band": False, "parts": {k: v > 0.5 for k, v in parts.items()},
                          **({"cut": True} if edge else {})})
        else:
            kind = rng.choice(list(fam.looks), p=list(fam.look_p))
            if kind == "disc":
                d = short * rng.uniform(0.14, 0.28)
                cx, cy = place(d / 2)
                a = draw_bomb(cv, rng, cx, cy, d, spark=False)
            elif kind == "stick":
                length, width = short * rng.uniform(0.3, 0.6), short * rng.uniform(0.025, 0.05)
                cx, cy = place(0.5 * length)
                a = draw_blade(cv, rng, cx, cy, length, width, rng.uniform(0, np.pi), _silver(rng), handle=False)
            elif kind == "block":
                s = short * rng.uniform(0.05, 0.1)
                cx, cy = place(s)
                brown = (int(rng.integers(55, 95)), int(rng.integers(30, 50)), int(rng.integers(15, 30)))
                a = cv.shape([(_rot([(-s, -s / 3), (s, -s / 3), (s, s / 3), (-s, s / 3)], cx, cy,
                                    rng.uniform(0, np.pi)), brown)])
            elif kind == "pen":
                length, width = short * rng.uniform(0.25, 0.45), short * rng.uniform(0.03, 0.05)
                cx, cy = place(0.5 * length)
                a = draw_pen(cv, rng, cx, cy, length, width, rng.uniform(0, np.pi))
            else:  # bracket
                size = short * rng.uniform(0.15, 0.3)
                cx, cy = place(0.55 * size)
                a = draw_bracket(cv, rng, cx, cy, size, rng.uniform(0, np.pi))
            mask &= ~(a > 0.5)
            hide_under(a)
            looks.append(a > 0.5)
    if objects is not None:
        objects.extend(found)
    if harmless is not None:
        harmless.extend(looks)
    return cv.result(), mask, kinds


# -- data -----------------------------------------------------------------------------------------
def backgrounds(split: str, max_side: int = 500) -> list[np.ndarray]:
    """Training photos (BSDS500 train+val, scikit-image training samples) or held-out ones (test)."""
    dirs = [BSDS / "train", BSDS / "val"] if split == "train" else [BSDS / "test"]
    bgs = sample_backgrounds(TRAIN_SAMPLES if split == "train" else HELDOUT_SAMPLES)
    for d in dirs:
        for f in sorted(d.glob("*")) if d.is_dir() else []:
            if f.suffix.lower() in IMAGE_EXTENSIONS:
                img = Image.fromarray(load_image(f))
                img.thumbnail((max_side, max_side))
                bgs.append(np.asarray(img))
    return bgs


def _shape(rng: np.random.Generator, side: int) -> tuple[int, int]:
    aspect = float(rng.choice([1.0, 0.75, 4 / 3, 2 / 3]))
    return (side, int(round(side * aspect))) if aspect < 1 else (int(round(side / aspect)), side)


# Share of safe images with a band of a blade's colour across them: about the share of unsafe
# training images with a blade on such a band (one or two objects, p_two 0.25, half of them blades,
# 35 % of those on a band: 0.21), so that a band alone says nothing about the class.
SAFE_BAND = 0.2


def sample(bgs: list[np.ndarray], rng: np.random.Generator, side: int, *, unsafe: bool,
           p_two: float = 0.25, safe_band: float = SAFE_BAND, cut: float = 0.0, family: str = "objects",
           objects: list[dict[str, Any]] | None = None,
           harmless: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    h, w = _shape(rng, side)
    bg = random_crop(bgs[int(rng.integers(len(bgs)))], (h, w), rng)
    n = (2 if rng.random() < p_two else 1) if unsafe else 0
    return compose(bg, rng, n_unsafe=n, safe_band=safe_band, cut=cut, family=family, objects=objects,
                   harmless=harmless)


def synthesize(out: Path, n: int, seed: int, side: int, safe_band: float = SAFE_BAND,
               family: str = "objects", photo: float = 0.0) -> None:
    """``n`` training composites (half unsafe) of ``family`` as an ImageFolder ``out/{safe,unsafe}``; skipped if
    done. Otherwise the folder's images of before are removed first, so that a card never trains on a mix of two
    drawings or sizes, and the stamp is written only once every image is. With ``photo``, that share of the
    images (safe and unsafe alike) is made :func:`photographic`, each by its own random numbers, so the
    layouts are those drawn without."""
    stamp = out / "DONE.json"
    meta: dict[str, Any] = {"n": n, "seed": seed, "side": side}
    if safe_band:
        meta["safe_band"] = safe_band
    if family != "objects":
        meta["family"] = family
    if FAMILIES[family].drawing > 1:
        meta["drawing"] = FAMILIES[family].drawing
    if photo:
        meta["photo"] = photo
    if stamp.is_file() and json.loads(stamp.read_text()) == meta:
        return
    stamp.unlink(missing_ok=True)
    for cls in ("safe", "unsafe"):
        (out / cls).mkdir(parents=True, exist_ok=True)
        for old in (out / cls).glob("*.png"):
            old.unlink()
    bgs = backgrounds("train")
    rng = np.random.default_rng(seed)
    for i in range(n):
        harmless: list[np.ndarray] = []
        img, mask, _ = sample(bgs, rng, side, unsafe=bool(i % 2), safe_band=safe_band, family=family,
                              harmless=harmless)
        prng = np.random.default_rng([seed, i, PHOTO_STREAM])
        if photo and prng.random() < photo:
            img = photographic(img, np.any([mask, *harmless], axis=0), prng)
        Image.fromarray(img).save(out / ("unsafe" if i % 2 else "safe") / f"{i:05d}.png", compress_level=1)
    stamp.write_text(json.dumps(meta))


def photographic(image: np.ndarray, planted: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``image`` as a camera might give it: the planted shapes (``planted``, the objects and the harmless
    distractors) no longer flat, then grain over the whole frame and a JPEG round trip.

    The drawn shapes are flat colours with crisp edges, and a large image's background is a smaller photo
    enlarged (smooth), so a shape stands out more than a photographed object would. Here a soft light (a
    wave of 0.25–0.6 of the shorter side, ±15–30 %) shades the planted pixels, so that each object has a
    lit and a shaded side, and a fine texture (σ 3–8 grey levels) grains them; then sensor noise (σ 1–4) covers
    the frame and the image is saved as a JPEG of quality 60–92 and read back. The ground truth is not
    changed: the objects stay where they were drawn.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.full((64, 96, 3), 120, np.uint8); planted = np.zeros((64, 96), bool); planted[20:40, 30:60] = True
    >>> out = photographic(img, planted, np.random.default_rng(0))
    >>> out.shape, out.dtype, bool(out[planted].std() > out[~planted].std())
    ((64, 96, 3), dtype('uint8'), True)
    """
    import io

    from scipy.ndimage import gaussian_filter

    h, w = image.shape[:2]
    short = min(h, w)
    img = image.astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle, wave = rng.uniform(0, 2 * np.pi), short * rng.uniform(0.25, 0.6)
    light = 1 + rng.uniform(0.15, 0.3) * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / wave
                                                + rng.uniform(0, 2 * np.pi))
    grain = gaussian_filter(rng.normal(0, 1, (h, w)).astype(np.float32), 1.0)
    grain *= rng.uniform(3, 8) / max(float(grain.std()), 1e-6)
    img = np.where(planted[..., None], img * light[..., None] + grain[..., None], img)
    img += rng.normal(0, rng.uniform(1, 4), img.shape).astype(np.float32)
    buf = io.BytesIO()
    Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=int(rng.integers(60, 93)))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), dtype=np.uint8)


def benchmark_set(seed: int, n: int, sides: Sequence[int] = (256, 512, 1024, 2000), *,
                  cut: float = 0.0, family: str = "objects", photo: bool = False) -> list[dict[str, Any]]:
    """``n`` unsafe benchmark images (held-out photos) of ``family``'s objects, longer sides cycling through
    ``sides``; with ``cut``, that share of the unsafe objects runs off the frame (:func:`compose`); with
    ``photo``, each image is then made :func:`photographic` (its own random numbers: the layouts, masks and ids
    are those without)."""
    bgs = backgrounds("test", max_side=800)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        objects: list[dict[str, Any]] = []
        harmless: list[np.ndarray] = []
        img, mask, kinds = sample(bgs, rng, int(sides[i % len(sides)]), unsafe=True, p_two=0.3, cut=cut,
                                  family=family, objects=objects, harmless=harmless)
        looks = np.any(harmless, axis=0) if harmless else np.zeros(mask.shape, bool)
        if photo:
            img = photographic(img, mask | looks, np.random.default_rng([seed, i, PHOTO_STREAM]))
        out.append({"id": f"{seed}-{i:03d}", "image": img, "mask": mask, "kinds": kinds, "objects": objects,
                    "distractors": looks})
    return out


def safe_set(seed: int, n: int, sides: Sequence[int] = (256, 512, 1024, 2000), *,
             family: str = "objects") -> list[dict[str, Any]]:
    """``n`` safe images drawn like the benchmark's of ``family`` (held-out photos, distractors, a band of a
    blade's colour, or a barrel's, on some) but with no unsafe object: what a model flags here it flags
    without any object."""
    bgs = backgrounds("test", max_side=800)
    rng = np.random.default_rng(10_000 + seed)
    out = []
    for i in range(n):
        objects: list[dict[str, Any]] = []
        img, _, _ = sample(bgs, rng, int(sides[i % len(sides)]), unsafe=False, family=family, objects=objects)
        out.append({"id": f"safe-{seed}-{i:03d}", "image": img, "band": bool(objects)})
    return out


def mark_set(seed: int, n: int, sides: Sequence[int] = (256, 512, 1024, 2000)) -> list[dict[str, Any]]:
    """``n`` images with the Veil demo mark (:mod:`veil.bench.synthetic`) for the bundled demo model.

    The mark is itself a thin two-part object (a ring and a bar). A third of the images carry
    a second mark, a third a broad band of the mark's own red under random positions, and every
    image 1–3 look-alike distractors; longer sides cycle through ``sides``.
    """
    from veil.bench.synthetic import make_composite

    bgs = backgrounds("test", max_side=800)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = _shape(rng, int(sides[i % len(sides)]))
        bg = random_crop(bgs[int(rng.integers(len(bgs)))], (h, w), rng)
        if rng.random() < 1 / 3:  # a band of the mark's red across the photo
            cv = Canvas(bg)
            short = min(h, w)
            paint_band(cv, rng, short * rng.uniform(0.15, 0.35), rng.uniform(0, w), rng.uniform(0, h),
                       rng.uniform(0, np.pi), (215, 25, 30))
            bg = cv.result()
        img, mask = make_composite(bg, rng, with_symbol=True, n_distractors=(1, 3))
        kinds = ["mark"]
        if rng.random() < 1 / 3:
            img, m2 = make_composite(img, rng, with_symbol=True, n_distractors=(0, 0))
            mask |= m2
            kinds.append("mark")
        out.append({"id": f"{seed}-{i:03d}", "image": img, "mask": mask, "kinds": kinds})
    return out


#: arch → (epochs, batch size) the benchmark's cards were trained with (docs/extent-history.md); others: DEFAULT_RECIPE.
#: With fewer epochs or a smaller batch a MobileNet may not learn the task at all (test accuracy 0.53 at 6 epochs,
#: batch 32, on 2026-12-05), and ResNet-18 learns less of it (0.85 against 0.91).
RECIPES: dict[str, tuple[int, int]] = {"mobilenet_v3_small": (12, 64), "resnet18": (10, 64),
                                       "shufflenet_v2_x1_0": (40, 64)}
DEFAULT_RECIPE = (12, 64)


def train_cmd(args: argparse.Namespace) -> None:
    fam = FAMILIES[args.data]
    epochs, batch = fam.recipes.get(args.arch) or RECIPES.get(args.arch, DEFAULT_RECIPE)
    args.n = fam.train_images if args.n is None else args.n
    args.epochs = epochs if args.epochs is None else args.epochs
    args.batch_size = batch if args.batch_size is None else args.batch_size
    if not 0 <= args.photo <= 1:
        raise SystemExit(f"--photo is a share of the training images, from 0 to 1; got {args.photo}")
    photo = "-photo" if args.photo else ""  # (photographic data and its cards have folders of their own)
    data = CACHE / (("data" if args.data == "objects" else f"data-{args.data}") + photo)
    t = time.monotonic()
    synthesize(data, args.n, args.seed, args.side, args.safe_band, family=args.data, photo=args.photo)
    print(f"data: {data} ({args.n} images, {time.monotonic() - t:.0f} s)", flush=True)
    # (a card of another family never takes the folder of the benchmark's own cards)
    card = CACHE / (args.name or ((args.arch if args.data == "objects" else f"{args.data}-{args.arch}") + photo)) \
        / "model.json"
    cmd = [sys.executable, "-m", "veil.cli", "train", str(data), "--arch", args.arch, "--out", str(card),
           "--input-size", str(args.input_size), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
           "--lr", str(args.lr), "--seed", str(args.seed), "--patience", str(args.epochs), "--no-progress",
           "--augment", args.augment]
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env={**__import__("os").environ, "PYTHONPATH": str(ROOT / "src")})


def card_path(arch: str) -> Path:
    """A card trained by `train` (``.bench-cache/extent/<arch>/model.json``), or the card path given."""
    return Path(arch) if arch.endswith(".json") else CACHE / arch / "model.json"


def card_name(arch: str) -> str:
    """How tables and pictures name a card: the arch, or the folder of a card path (cards run together, joined
    by ``+``, each named so)."""
    return "+".join(Path(a).parent.name if a.endswith(".json") else a for a in arch.split("+") if a)


def load_cards(arch: str) -> list[Any]:
    """The classifiers of ``arch``: one card, or several joined by ``+`` (``resnet18+mobilenet_v3_small``), which
    `run` safeguards with together, as a pipeline with several models does: flagged when any flags the image,
    delivered when every one says safe. (A card path may not hold a ``+``.)"""
    from veil.classify import load_classifier

    names = [a for a in arch.split("+") if a]
    if not names:
        raise SystemExit(f"no card named in {arch!r}")
    shown = [card_name(a) for a in names]
    if len(set(shown)) < len(shown):
        raise SystemExit(f"the cards of {arch!r} must have different names (folders), got {shown}")
    clfs = [load_classifier(str(card_path(a))) for a in names]
    if len(clfs) > 1:  # (the benchmark's cards are all named "model" by their file: a pipeline needs them apart)
        for c, label in zip(clfs, shown, strict=True):
            c.name = label
    return clfs


# -- evaluation -----------------------------------------------------------------------------------
def evaluate(clf: Any, items: list[dict[str, Any]], extent: str, segmentation: str,
             extent_options: dict[str, Any] | None = None,
             segmentation_options: dict[str, Any] | None = None,
             config_options: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from veil.pipeline import SafeguardConfig, Safeguarder

    clfs = list(clf) if isinstance(clf, (list, tuple)) else [clf]  # (several cards: one pipeline with them all)
    cfg = SafeguardConfig(models=tuple(clfs), segmentation=segmentation, extent=extent, rationale=None,
                          extent_options=dict(extent_options or {}),
                          segmentation_options=dict(segmentation_options or {}), **dict(config_options or {}))
    sg = Safeguarder(cfg, classifiers=clfs)
    per: list[dict[str, Any]] = []
    for it in items:
        t = time.perf_counter()
        res = sg.run(it["image"])
        secs = time.perf_counter() - t
        if not res.unsafe:
            continue
        row: dict[str, Any] = {"id": it["id"], "kinds": it["kinds"], "side": max(it["image"].shape[:2]),
                               "seconds": secs, "found": res.counterfactual_found,
                               "verified": bool(res.models_after) and not any(m.unsafe for m in res.models_after),
                               "fail_closed": res.fail_closed, "error": res.error, "depth": res.depth,
                               "area": res.obfuscated_fraction, "gt": float(it["mask"].mean()),
                               "evaluated": res.n_evaluated}
        if res.counterfactual_found:
            m = mask_scores(res.mask, it["mask"])
            row.update(recall=m.recall, precision=m.precision, ratio=float(res.mask.sum() / max(it["mask"].sum(), 1)),
                       reasons=[r.reason for r in res.regions])
            row["steps"] = step_shares(res, it["mask"])
            looks = it.get("distractors")
            if looks is not None and looks.any():  # the harmless look-alikes hidden too (part of the waste)
                on = int((res.mask & looks).sum())
                row["distractors"] = float(on / looks.sum())
                row["distractor_ratio"] = float(on / max(it["mask"].sum(), 1))
            if it.get("objects"):  # how much of each part of each object the delivered mask hides
                row["objects"] = [{"kind": o["kind"], "band": o["band"],
                                   "parts": {k: float((res.mask & v).sum() / v.sum()) for k, v in o["parts"].items()
                                             if v.any()}} for o in it["objects"]]
                # and whether the classifiers see each object on its own (outside the timed run)
                for o, ev in zip(row["objects"], object_seen(sg, it["image"], it["objects"]), strict=True):
                    if ev is not None:
                        o.update(ev)
                if any("seen" in o for o in row["objects"]):
                    row["all_seen"] = all(o["seen"] for o in row["objects"] if "seen" in o)
        per.append(row)
    return summarize(per), per


#: Logit drop by which a benchmark object must raise the unsafe excess to count as seen (:func:`object_seen`).
SEEN_DROP = 1.0


def object_seen(sg: Any, image: np.ndarray, objects: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
    """Do the classifiers see each planted object on its own?

    With the image's other objects hidden (the pipeline's style; distractors and background stay), ``alone`` is
    the unsafe excess (over the models, the largest ``logit(score) - logit(threshold)``) with the object in
    sight, and ``drop`` how much hiding it too lowers that excess. The object is seen (carries evidence of its
    own) when the image with it alone is flagged (``alone > 0``) and it is what flags it (``drop >= SEEN_DROP``). An object
    no classifier sees on its own (a second bomb the model overlooks, a blade it takes for background) is one
    no classifier-driven extent can be asked to find: the ``--by-seen`` table keeps those images apart.
    None for an object without pixels (drawn wholly under another one).
    """
    from veil.counterfactual.extent import logit
    from veil.counterfactual.styles import apply_mask, stylize

    masks = [np.any([v for v in o["parts"].values()], axis=0) if o["parts"] else None for o in objects]
    present = [m for m in masks if m is not None and m.any()]
    if not present:
        return [None] * len(objects)
    every = np.any(present, axis=0)
    styled = stylize(image, sg.config.style, **sg.config.style_options)
    order = [k for k, m in enumerate(masks) if m is not None and m.any()]
    images = [apply_mask(image, styled, every)] + [apply_mask(image, styled, every & ~masks[k]) for k in order]
    thr = logit(np.asarray(sg.thresholds, dtype=np.float64))
    excess = (logit(np.asarray(sg.unsafe_scores(images), dtype=np.float64)) - thr[None, :]).max(axis=1)
    out: list[dict[str, Any] | None] = [None] * len(objects)
    for j, k in enumerate(order, 1):
        alone, drop = float(excess[j]), float(excess[j] - excess[0])
        out[k] = {"alone": alone, "drop": drop, "seen": bool(alone > 0 and drop >= SEEN_DROP)}
    return out


SEEN_HEADER = ("| model | extent | images | every object seen on its own | recall mean | recall ≥ 0.5 | recall ≥ 0.9 | "
               "an object not seen | recall mean | recall ≥ 0.5 |\n"
               "|---|---|---|---|---|---|---|---|---|---|")


def seen_rows(model: str, extent: str, per: list[dict[str, Any]]) -> list[str]:
    """The recall of the images whose every object the classifiers see on its own (:func:`object_seen`) and of
    those with an object they do not see, apart (images with a counterfactual)."""
    found = [r for r in per if r["found"] and "all_seen" in r]
    if not found:
        return []

    def cells(rs: list[dict[str, Any]], full: bool) -> str:
        if not rs:
            return "0 | – | – | –" if full else "0 | – | –"
        rec = np.array([r["recall"] for r in rs])
        out = f"{len(rs)} | {rec.mean():.3f} | {100 * np.mean(rec >= 0.5):.0f} %"
        return out + (f" | {100 * np.mean(rec >= 0.9):.0f} %" if full else "")

    seen = [r for r in found if r["all_seen"]]
    blind = [r for r in found if not r["all_seen"]]
    return [f"| {model} | {extent} | {len(found)} | {cells(seen, True)} | {cells(blind, False)} |"]


def summarize(per: list[dict[str, Any]]) -> dict[str, Any]:
    found = [r for r in per if r["found"]]

    def mean(xs: list[float]) -> float:
        return float(np.mean(xs)) if xs else float("nan")

    rec = [r["recall"] for r in found]
    ratio = [r["ratio"] for r in found]
    seen = [r["recall"] for r in found if r.get("all_seen")]  # (every object seen on its own: object_seen)
    return {
        "n_flagged": len(per), "cf": mean([float(r["found"]) for r in per]),
        "verified": mean([float(r["found"] and r["verified"]) for r in per]),
        # fully obscured for an error, not for want of a counterfactual (the delivered image, judged at its own
        # size, still unsafe where the extent's working copy was safe; a model that failed)
        "failed": mean([float(bool(r.get("error"))) for r in per]),
        "depth": mean([float(r["depth"]) for r in found]), "obfuscated": mean([r["area"] for r in found]),
        "ratio_mean": mean(ratio), "ratio_median": float(np.median(ratio)) if ratio else float("nan"),
        "recall": mean(rec), "recall_50": mean([float(x >= 0.5) for x in rec]),
        "recall_90": mean([float(x >= 0.9) for x in rec]), "precision": mean([r["precision"] for r in found]),
        "seconds": mean([r["seconds"] for r in per]),
        "evaluated": mean([float(r["evaluated"]) for r in per]),  # images classified (search + extent)
        "n_seen": len(seen), "recall_seen": mean(seen),
        "recall_50_seen": mean([float(x >= 0.5) for x in seen]),
        # the harmless distractors: the share of their pixels hidden (images with one), and the part of
        # area/GT that lies on them (every image with a counterfactual; 0 where there is none; nan for data
        # that records none, the mark data)
        "distractors": mean([r["distractors"] for r in found if "distractors" in r]),
        "distractor_ratio": (mean([r.get("distractor_ratio", 0.0) for r in found])
                             if any("distractors" in r for r in found) else float("nan")),
    }


PART_HEADER = ("| model | extent | object part | parts | hidden mean | hidden ≥ 0.5 | hidden ≥ 0.9 |\n"
               "|---|---|---|---|---|---|---|")


def part_groups(per: list[dict[str, Any]]) -> dict[str, list[float]]:
    """How much of each part of the benchmark's objects the delivered images hide, per part
    (blades on a band of their own colour apart), over the flagged images with a counterfactual."""
    groups: dict[str, list[float]] = {}
    for row in per:
        for o in row.get("objects", []):
            where = " (own-colour band)" if o["band"] else ""
            for part, r in o["parts"].items():
                groups.setdefault(f"{o['kind']}: {part}{where}", []).append(r)
    return groups


def outline(mask: np.ndarray, per: int = 300) -> np.ndarray:
    """The ring just outside ``mask``, ``max(1, longer side // per)`` pixels wide (how pictures outline masks)."""
    from scipy.ndimage import binary_dilation

    return binary_dilation(mask, iterations=max(1, max(mask.shape) // per)) & ~mask


def reason_masks(res: Any, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Per reason a region was hidden (counterfactual, split, closure, …): the pixels of the delivered mask
    (``shape``, the image's size) that regions hidden for it cover, reasons in alphabetical order."""
    from veil.segment import resize_labels

    seg = res.segments if res.segments.shape == tuple(shape) else resize_labels(res.segments, tuple(shape))
    return {why: np.isin(seg, [r.id for r in res.regions if r.reason == why]) & res.mask
            for why in sorted({r.reason for r in res.regions})}


def step_shares(res: Any, gt: np.ndarray) -> dict[str, list[float]]:
    """Per reason a region was hidden (counterfactual, split, closure, …): ``[area, of it on the object]``,
    both over the ground truth's area, on the delivered mask."""
    g = max(int(gt.sum()), 1)
    return {why: [float(m.sum() / g), float((m & gt).sum() / g)] for why, m in reason_masks(res, gt.shape).items()}


#: Colour of each step's regions in `reasons` pictures (a reason not listed: grey).
REASON_COLOURS: dict[str, tuple[int, int, int]] = {
    "counterfactual": (230, 25, 25), "split": (255, 140, 0), "closure": (240, 220, 0), "margin": (0, 200, 220),
    "object": (30, 60, 255), "tile": (220, 0, 220)}


def reason_overlay(image: np.ndarray, masks: dict[str, np.ndarray], gt: np.ndarray,
                   looks: np.ndarray | None = None, *, alpha: float = 0.6) -> np.ndarray:
    """``image`` with each reason's pixels tinted by its colour (:data:`REASON_COLOURS`), the ground truth's
    outline in green and the harmless distractors' (``looks``) in white. A new array; inputs untouched."""
    out = image.astype(np.float32)  # (a copy)
    for why, m in masks.items():
        out[m] = (1 - alpha) * out[m] + alpha * np.array(REASON_COLOURS.get(why, (128, 128, 128)), np.float32)
    if looks is not None and looks.any():
        out[outline(looks)] = (255, 255, 255)
    out[outline(gt)] = (0, 255, 0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


STEP_HEADER = ("| model | extent | step | images with it | area/GT | of it on the object (recall) | of it off the object |\n"
               "|---|---|---|---|---|---|---|")


#: The extent's steps in the order they run (``reason`` of the regions each one hides).
STEP_ORDER = ("counterfactual", "split", "closure", "margin", "object", "tile")


def step_means(per: list[dict[str, Any]]) -> list[tuple[str, int, float, float]]:
    """Per step present: ``(step, images with it, area/GT, of it on the object)``, means over the images with a
    counterfactual (a step an image lacks counts 0 there)."""
    found = [r for r in per if r["found"] and "steps" in r]
    present = {w for r in found for w in r["steps"]}  # (a reason this list does not know yet comes last)
    out = []
    for why in [w for w in STEP_ORDER if w in present] + sorted(present - set(STEP_ORDER)):
        a = np.array([r["steps"].get(why, [0.0, 0.0]) for r in found]).mean(axis=0)
        out.append((why, sum(why in r["steps"] for r in found), float(a[0]), float(a[1])))
    return out


def step_rows(model: str, extent: str, per: list[dict[str, Any]]) -> list[str]:
    """One table row per step (:func:`step_means`): its area/GT, on the object and off it."""
    return [f"| {model} | {extent} | {why} | {k} | {area:.2f} | {on:.3f} | {area - on:.2f} |"
            for why, k, area, on in step_means(per)]


LOOKS_HEADER = ("| model | extent | images with a distractor | of its pixels hidden (mean) | images with ≥ half of it "
                "hidden | area/GT on distractors | area/GT off the object |\n|---|---|---|---|---|---|---|")


def distractor_rows(model: str, extent: str, per: list[dict[str, Any]]) -> list[str]:
    """How much of the harmless look-alikes (the benchmark's dark discs, grey sticks and brown blocks) the
    delivered masks hide, and the part of area/GT that lies on them against all that lies off the object
    (means over the images with a counterfactual; an image without a distractor counts 0 there)."""
    found = [r for r in per if r["found"] and "steps" in r]
    if not found:
        return []
    with_one = [r["distractors"] for r in found if "distractors" in r]
    off = float(np.mean([r["ratio"] - r["recall"] for r in found]))
    on = float(np.mean([r.get("distractor_ratio", 0.0) for r in found]))
    share = f"{np.mean(with_one):.2f} | {100 * np.mean(np.asarray(with_one) >= 0.5):.0f} %" if with_one else "– | –"
    return [f"| {model} | {extent} | {len(with_one)} | {share} | {on:.2f} | {off:.2f} |"]


def steps_cmd(args: argparse.Namespace) -> None:
    """The ``--by-step`` table of the rows of ``run --json`` files, and a bar chart: per step of the extent,
    the area it hides over the object's, on the object (the recall it brings) and off it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for path in args.runs:
        data = json.loads(Path(path).read_text())
        for row in data["rows"]:
            if any("steps" in r for r in row["per_image"]):
                model = card_name(str(row["model"]))
                rows.append((model, run_label(data, row), row["per_image"]))
    if not rows:
        raise SystemExit("no rows with per-step shares in the given files (run them with this version of `run`)")
    print(STEP_HEADER)
    for model, label, per in rows:
        print("\n".join(step_rows(model, label, per)))
    fig, axes = plt.subplots(1, len(rows), figsize=(5.2 * len(rows), 3.6), squeeze=False, sharex=True)
    for ax, (model, label, per) in zip(axes[0], rows, strict=True):
        means = step_means(per)
        steps = [m[0] for m in means]
        a = np.array([m[2:] for m in means])
        y = np.arange(len(steps))[::-1]
        ax.barh(y, a[:, 1], color="#2a9d8f", label="on the object (recall)")
        ax.barh(y, a[:, 0] - a[:, 1], left=a[:, 1], color="#e76f51", label="off the object")
        ax.set_yticks(y, steps)
        ax.set_title(f"{model} / {label}\narea/GT {a[:, 0].sum():.2f}, recall {a[:, 1].sum():.2f}", fontsize=9)
        ax.set_xlabel("area hidden / object area (mean over images)")
    axes[0][0].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"\n{args.out}")


def part_rows(model: str, extent: str, per: list[dict[str, Any]]) -> list[str]:
    """One table row per part (:func:`part_groups`)."""
    groups = part_groups(per)
    out = []
    for name in sorted(groups):
        r = np.asarray(groups[name])
        out.append(f"| {model} | {extent} | {name} | {len(r)} | {r.mean():.2f} | {np.mean(r >= 0.5) * 100:.0f} % | "
                   f"{np.mean(r >= 0.9) * 100:.0f} % |")
    return out


HEADER = ("| model | extent | segmentation | flagged | CF % | verified % | depth | obfuscated % | area/GT mean | "
          "area/GT median | recall mean | recall ≥ 0.5 | recall ≥ 0.9 | precision | s/img |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def table_row(model: str, extent: str, seg: str, m: dict[str, Any]) -> str:
    return (f"| {model} | {extent} | {seg} | {m['n_flagged']} | {100 * m['cf']:.1f} | {100 * m['verified']:.1f} | "
            f"{m['depth']:.2f} | {100 * m['obfuscated']:.1f} | {m['ratio_mean']:.2f} | {m['ratio_median']:.2f} | "
            f"{m['recall']:.2f} | {100 * m['recall_50']:.0f} % | {100 * m['recall_90']:.0f} % | "
            f"{m['precision']:.2f} | {m['seconds']:.2f} |")


def plot_parts(runs: dict[str, dict[str, list[float]]], path: Path) -> None:
    """Grouped bars: per object part, the share of parts at least half hidden, one bar per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = sorted({p for g in runs.values() for p in g})
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(parts) * max(1, len(runs)) / 2 + 1.2))
    height = 0.8 / max(1, len(runs))
    for k, (name, groups) in enumerate(runs.items()):
        vals = [float(np.mean(np.asarray(groups[p]) >= 0.5)) if groups.get(p) else np.nan for p in parts]
        ax.barh(np.arange(len(parts)) + k * height, vals, height=height, label=name)
    ax.set_yticks(np.arange(len(parts)) + (len(runs) - 1) * height / 2, parts, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of parts at least half hidden in the delivered image")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def recall_survival(recalls: Sequence[float], at: np.ndarray) -> np.ndarray:
    """Share of the images whose recall is at least each value of ``at`` (1 at 0, the share ≥ 0.5 at 0.5).

    >>> recall_survival([0.2, 0.5, 1.0, 1.0], np.array([0.0, 0.5, 0.9, 1.0])).tolist()
    [1.0, 0.75, 0.5, 0.5]
    """
    r = np.sort(np.asarray(recalls, dtype=np.float64))
    if r.size == 0:
        return np.full(np.shape(at), np.nan)
    return 1.0 - np.searchsorted(r, np.asarray(at, dtype=np.float64), side="left") / r.size


def _pair_key(name: str) -> str:
    """What a run's name says besides its extent, so that `minimal` and the default of one segmentation share a
    colour: ``object / slic`` and ``minimal / slic`` → ``slic``; ``minimal [slic]`` and ``object (default) [slic]``
    (`frontier`'s names) → `` [slic]``; another variant's name stays its own."""
    if " / " in name:
        return name.split(" / ", 1)[1]
    seg = name[name.index(" ["):] if " [" in name else ""
    base = name[: len(name) - len(seg)]
    return seg if base.startswith("minimal") or base.endswith("(default)") else name


def plot_recall(runs: dict[str, list[float]], path: Path) -> None:
    """The recall distribution of each run (named ``model / extent / …``) as the share of images whose recall is
    at least x, one panel per model: a curve that stays high to the right hides most of most objects. The
    `minimal` rows are dashed; the target at 0.5 (≥ 95 % of the images) is marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models: dict[str, dict[str, list[float]]] = {}
    for name, rec in runs.items():
        model, _, rest = name.partition(" / ")
        models.setdefault(model if rest else "", {})[rest or name] = rec
    fig, axes = plt.subplots(1, len(models), figsize=(5.6 * len(models), 3.9), squeeze=False)
    xs = np.linspace(0, 1, 401)
    share = TARGETS["median"][0]  # (the share ≥ 0.5 the issue asks for)
    for ax, (model, rows) in zip(axes[0], models.items(), strict=True):
        colours: dict[str, str] = {}  # (one colour per variant but the extent, so minimal and object pair up)
        for name, rec in rows.items():
            if not rec:
                continue
            minimal = name.startswith("minimal")
            colour = colours.setdefault(_pair_key(name), f"C{len(colours) % 10}")
            ax.step(xs, recall_survival(rec, xs), where="post", linewidth=1.6, color=colour,
                    linestyle="--" if minimal else "-", label=f"{name} (n={len(rec)}, mean {np.mean(rec):.2f})")
        ax.axvline(0.5, color="#999", ls=":")
        ax.axvline(0.9, color="#999", ls=":")
        ax.scatter([0.5], [share], marker="_", s=400, color="black", zorder=3,
                   label=f"target: ≥ {100 * share:.0f} % of the images at 0.5")
        ax.set_xlabel("ground-truth recall of the hidden area (x)")
        ax.set_ylabel("share of images with recall ≥ x")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        if model:
            ax.set_title(model, fontsize=9)
        ax.legend(fontsize=6.5, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def worst_cases(clfs: list[Any], items: list[dict[str, Any]], per: dict[str, list[dict[str, Any]]], path: Path,
                segmentation: str, k: int = 3) -> None:
    """Delivered images of the ``k`` lowest-recall and ``k`` highest-area images per extent, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from veil.pipeline import SafeguardConfig, Safeguarder

    by_id = {it["id"]: it for it in items}
    rows = []
    for extent, rs in per.items():
        found = [r for r in rs if r["found"]]
        low = sorted(found, key=lambda r: r["recall"])[:k]
        big = sorted(found, key=lambda r: -r["ratio"])[:k]
        for r, why in [(r, f"recall {r['recall']:.2f}") for r in low] + [(r, f"area/GT {r['ratio']:.1f}") for r in big]:
            rows.append((extent, r["id"], why))
    fig, axes = plt.subplots(len(per), 2 * k, figsize=(2.3 * 2 * k, 2.4 * len(per)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, extent in enumerate(per):
        sg = Safeguarder(SafeguardConfig(models=tuple(clfs), segmentation=segmentation, extent=extent,
                                         rationale=None), classifiers=clfs)
        for j, (_, rid, why) in enumerate([r for r in rows if r[0] == extent]):
            it = by_id[rid]
            res = sg.run(it["image"])
            shown = res.image.copy()
            shown[outline(it["mask"], 200)] = (0, 255, 0)
            axes[i][j].imshow(shown)
            axes[i][j].set_title(f"{extent}: {why}", fontsize=7)
    fig.suptitle("delivered images (green: ground-truth outline)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


#: The issue's targets for the default extent: (recall mean, area/GT mean) and (share ≥ 0.5, area/GT median).
TARGETS = {"mean": (0.9, 2.0), "median": (0.95, 1.5)}


def run_label(data: dict[str, Any], row: dict[str, Any]) -> str:
    """A variant's label: its extent, and the options the run was given (read from its command line when
    the file predates the ``extent_options`` key)."""
    if row["extent"] == "minimal":
        return "minimal"
    opts = data.get("extent_options")
    if opts is None:
        cmd = data.get("command", "")
        opts = cmd.split("--extent-options ", 1)[1].split(" --", 1)[0] if "--extent-options " in cmd else ""
    if isinstance(opts, dict):
        opts = json.dumps(opts) if opts else ""
    return f"{row['extent']} {opts}".strip() if opts and opts != "{}" else f"{row['extent']} (default)"


def frontier_cmd(args: argparse.Namespace) -> None:
    """Recall against area/GT for every row of the given `run --json` files, one panel pair per model,
    with the targets' corner shaded: where each measured variant lies on the trade of hiding more of
    the object for more area."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    labels = list(args.labels or [])
    for k, path in enumerate(args.runs):
        data = json.loads(Path(path).read_text())
        for row in data["rows"]:
            model = card_name(str(row["model"]))
            name = labels[k] if k < len(labels) and row["extent"] != "minimal" else run_label(data, row)
            if row.get("segmentation", "bass") != "bass":
                name += f" [{row['segmentation']}]"
            if all(name != n for n, _ in points.get(model, [])):
                points.setdefault(model, []).append((name, row))
    if not points:
        raise SystemExit("no rows in the given files")
    if getattr(args, "recall_plot", None):
        plot_recall({f"{model} / {name}": [p["recall"] for p in r.get("per_image", []) if p.get("found")]
                     for model, pts in points.items() for name, r in pts}, args.recall_plot)
        print(f"wrote {args.recall_plot}")
    print("| model | variant | recall mean | recall ≥ 0.5 | area/GT mean | area/GT median | s/img |")
    print("|---|---|---|---|---|---|---|")
    for model, pts in points.items():
        for name, r in sorted(pts, key=lambda t: t[1]["ratio_mean"]):
            print(f"| {model} | {name} | {r['recall']:.3f} | {100 * r['recall_50']:.0f} % | {r['ratio_mean']:.2f} | "
                  f"{r['ratio_median']:.2f} | {r['seconds']:.2f} |")
    timed = bool(getattr(args, "time", False))  # (a third panel: recall against seconds per flagged image)
    panels = [("recall", "ratio_mean", "recall mean", "area / ground truth, mean", TARGETS["mean"]),
              ("recall_50", "ratio_median", "share of images with recall ≥ 0.5", "area / ground truth, median",
               TARGETS["median"])]
    if timed:  # (no area target there: the recall target as a line)
        panels.append(("recall", "seconds", "recall mean", "seconds per flagged image (as run)", None))
    fig, axes = plt.subplots(len(points), len(panels) + 1, figsize=(5 * len(panels) + 5, 4.2 * len(points)),
                             squeeze=False, gridspec_kw={"width_ratios": [1] * len(panels) + [0.8]})
    for i, (model, pts) in enumerate(points.items()):
        pts = sorted(pts, key=lambda t: t[1]["ratio_mean"])  # numbered in order of area, named on the right
        key = axes[i][-1]
        key.axis("off")
        key.text(0, 1, "\n".join(f"{n}. {name}" for n, (name, _) in enumerate(pts, 1)), va="top", fontsize=7,
                 transform=key.transAxes, wrap=True)
        for j, (ykey, xkey, ylab, xlab, target) in enumerate(panels):
            ax = axes[i][j]
            xs, ys = [r[xkey] for _, r in pts], [r[ykey] for _, r in pts]
            if target is not None:
                ax.fill_between([0, target[1]], target[0], 1.02, color="tab:green", alpha=0.15, label="target")
            else:
                ax.axhline(TARGETS["mean"][0], color="tab:green", alpha=0.5, lw=1, label="recall target")
            for n, (name, r) in enumerate(pts, 1):
                default = name.endswith("(default)")
                ax.scatter(r[xkey], r[ykey], s=60 if default else 30, marker="*" if default else "o",
                           color="tab:red" if default else "tab:blue", zorder=3)
                ax.annotate(str(n), (r[xkey], r[ykey]), fontsize=7, xytext=(3, 3 + 7 * (n % 2)),
                            textcoords="offset points")
            ax.set_xlim(0, max(max(xs), target[1] if target is not None else 0.0) * 1.15)
            ax.set_ylim(min(0.0, min(ys)) if ykey == "recall_50" else max(0.0, min(ys) - 0.1), 1.02)
            ax.set_xlabel(xlab)
            ax.set_ylabel(ylab)
            ax.set_title(f"{model}", fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(args.title or "recall against area: measured variants of the object extent", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    plt.close(fig)
    print(f"wrote {args.out}")


def run_cmd(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    out: dict[str, Any] = {"command": "python " + " ".join(sys.argv), "machine": platform.platform(), "rows": []}
    if args.ids:  # (chosen images of the seeds, as the full run draws them)
        items = items_by_id(args.ids, data=args.data, cut=args.cut, photo=args.photo)
        drawn = f"images {' '.join(it['id'] for it in items)}"
    else:
        items = [it for s in args.seeds for it in draw_set(s, args.n, data=args.data, cut=args.cut,
                                                           photo=args.photo)]
        drawn = f"seeds {args.seeds}"
    opts = json.loads(args.extent_options) if args.extent_options else {}
    seg_opts = json.loads(args.segmentation_options) if args.segmentation_options else {}
    cfg_opts = json.loads(args.config_options) if args.config_options else {}
    out["extent_options"], out["config_options"] = opts, cfg_opts
    print(f"{len(items)} unsafe images ({args.data} data{', photographic' if args.photo else ''}, {drawn}, "
          "longer sides 256/512/1024/2000)\n",
          flush=True)
    print(HEADER)
    recalls: dict[str, list[float]] = {}
    per_all: dict[str, dict[str, list[dict[str, Any]]]] = {}
    parts_out: list[str] = []
    steps_out: list[str] = []
    looks_out: list[str] = []
    seen_out: list[str] = []
    failed_out: list[str] = []
    part_runs: dict[str, dict[str, list[float]]] = {}
    for arch in args.archs:
        clfs = load_cards(arch)  # (one card, or several run together: A+B)
        name = card_name(arch)
        for seg in args.segmentations:
            for extent in args.extents:
                m, per = evaluate(clfs, items, extent, seg, opts if extent != "minimal" else None, seg_opts,
                                  cfg_opts if extent != "minimal" else None)
                out["rows"].append({"model": arch, "extent": extent, "segmentation": seg, **m, "per_image": per})
                print(table_row(name, extent, seg, m), flush=True)
                failed_out.extend(f"{name} / {extent} / {seg}: {r['id']} ({r['error']})"
                                  for r in per if r.get("error"))
                if args.by_kind:
                    for kind in sorted({k for r in per for k in r["kinds"]}):
                        sub = [r for r in per if set(r["kinds"]) == {kind}]
                        if sub:
                            print(table_row(f"{name} [{kind} only]", extent, seg, summarize(sub)), flush=True)
                if args.by_step:
                    steps_out.extend(step_rows(name, extent, per))
                    looks_out.extend(distractor_rows(name, extent, per))
                if args.by_seen:
                    seen_out.extend(seen_rows(name, extent, per))
                if args.by_part or args.part_plot:
                    parts_out.extend(part_rows(name, extent, per))
                    part_runs[f"{name} / {extent}"] = part_groups(per)
                recalls[f"{name} / {extent} / {seg}"] = [r["recall"] for r in per if r["found"]]
                per_all.setdefault(f"{arch}/{seg}", {})[extent] = per
        if args.json:
            args.json.write_text(json.dumps(out, indent=1, default=float))
        if args.plot:
            plot_recall(recalls, args.plot)
        if args.part_plot:
            plot_parts(part_runs, args.part_plot)
        if args.worst:
            worst_cases(clfs, items, per_all[f"{arch}/{args.segmentations[0]}"],
                        args.worst.with_name(f"{args.worst.stem}-{name}{args.worst.suffix}"), args.segmentations[0])
    if failed_out:
        print("\nFully obscured for an error, not for want of a counterfactual "
              "(counted as no counterfactual in CF %):")
        print("\n".join(f"* {line}" for line in failed_out))
    if steps_out:
        print("\nWhere the hidden area comes from, per step (means over the images with a counterfactual):\n")
        print(STEP_HEADER)
        print("\n".join(steps_out))
    if looks_out:
        looks_named = {"objects": "dark discs, grey sticks, brown blocks",
                       "kit": "pens, grey sticks, grey L brackets, brown blocks"}.get(args.data, "look-alikes")
        print(f"\nThe harmless distractors ({looks_named}) the delivered images hide:\n")
        print(LOOKS_HEADER)
        print("\n".join(looks_out))
    if seen_out:
        print("\nImages whose every object the classifier sees on its own, and images with one it does not see "
              f"(alone in sight, the image is not flagged or the object lowers the unsafe logit by < {SEEN_DROP:g}):\n")
        print(SEEN_HEADER)
        print("\n".join(seen_out))
    if parts_out:
        print("\nHow much of each part of the objects the delivered images hide:\n")
        print(PART_HEADER)
        print("\n".join(parts_out))
    print(f"\ncommand: python {' '.join(sys.argv)}")


def oracle_cmd(args: argparse.Namespace) -> None:
    """The best any extent could do with the pipeline's regions: each region hidden iff at least half of it
    is ground truth. A bound that no classifier-driven extent can beat with these regions."""
    from veil.pipeline import SafeguardConfig
    from veil.segment import merge_similar, segment

    items = [it for s in args.seeds for it in draw_set(s, args.n, data=args.data)]
    opts = json.loads(args.segmentation_options) if args.segmentation_options else {}
    cfg = SafeguardConfig(segmentation=args.segmentation, segmentation_options=opts, rationale=None)
    level = cfg.merge_levels[0]
    print(f"{len(items)} unsafe images ({args.data} data, seeds {args.seeds}); {args.segmentation} {opts or ''}, "
          f"segmented at {cfg.segment_size} px, merge {level:g}\n")
    print("| regions | regions per image | recall mean | recall ≥ 0.5 | recall ≥ 0.9 | area/GT mean | area/GT median |")
    print("|---|---|---|---|---|---|---|")
    rows: dict[str, list[tuple[float, float, int]]] = {"superpixels": [], f"merged ({level:g})": []}
    for it in items:
        img = it["image"]
        shape = fit_within(img.shape, cfg.segment_size)
        small = img if shape == img.shape[:2] else np.asarray(
            Image.fromarray(img).resize(shape[::-1], Image.Resampling.BILINEAR))
        gt = np.asarray(Image.fromarray(it["mask"].astype(np.uint8) * 255).resize(
            shape[::-1], Image.Resampling.NEAREST)) > 0
        seg = segment(small, args.segmentation, rng=cfg.seed, **opts)
        for key, lab in (("superpixels", seg), (f"merged ({level:g})", merge_similar(small, seg, level) if level else seg)):
            n = int(lab.max()) + 1
            cnt = np.bincount(lab.ravel(), minlength=n)
            share = np.bincount(lab.ravel(), weights=gt.ravel().astype(float), minlength=n) / np.maximum(cnt, 1)
            hide = (share >= 0.5)[lab]
            g = max(int(gt.sum()), 1)
            rows[key].append((float((hide & gt).sum() / g), float(hide.sum() / g), n))
    for key, rs in rows.items():
        rec, area, n = (np.array([r[i] for r in rs]) for i in range(3))
        print(f"| {key} | {np.mean(n):.0f} | {rec.mean():.2f} | {100 * np.mean(rec >= 0.5):.0f} % | "
              f"{100 * np.mean(rec >= 0.9):.0f} % | {area.mean():.2f} | {np.median(area):.2f} |")
    print(f"\ncommand: python {' '.join(sys.argv)}")


def truth_cmd(args: argparse.Namespace) -> None:
    """Is hiding the object itself enough for the classifier? The ground truth, widened by a rim, hidden
    with the pipeline's style and classified: the share of flagged images a model still finds unsafe.
    No verified-safe extent can hide only the object where a model still finds the image unsafe. With
    ``--show``, a picture of such images (the widest rim)."""
    import torch
    from scipy import ndimage as ndi

    from veil.classify import load_classifier
    from veil.counterfactual.styles import stylize
    from veil.image import resize
    from veil.pipeline import SafeguardConfig, Safeguarder

    torch.set_num_threads(args.threads)
    items = [it for s in args.seeds for it in draw_set(s, args.n, data=args.data)]
    print(f"{len(items)} unsafe images ({args.data} data, seeds {args.seeds}); the ground truth widened by a rim "
          f"of the given share of the longer side, hidden with the default style\n")
    print("| model | rim | images | flagged | still unsafe, all | no band | on a band of its colour | area/GT |")
    print("|---|---|---|---|---|---|---|---|")
    shows: list[tuple[str, list[tuple[float, str, float, np.ndarray]]]] = []
    splits: list[tuple[str, float, dict[bool, list[dict[str, Any]]]]] = []
    runs: dict[tuple[str, str], dict[str, Any]] = {}  # (model, image id) → a `run --json` row of the object extent
    safe = ([it for s in args.seeds for it in safe_set(s, args.safe_n, family=args.data)]
            if args.data != "mark" and args.safe_n else [])
    fprs: list[tuple[str, list[str]]] = []
    for path in args.run or []:
        for row in json.loads(Path(path).read_text())["rows"]:
            if row["extent"] == args.run_extent:
                model = card_name(row["model"])
                runs.update({(model, r["id"]): r for r in row["per_image"] if r["found"]})
    for arch in args.archs:
        clf = load_classifier(str(card_path(arch)))
        name = card_name(arch)
        sg = Safeguarder(SafeguardConfig(models=(clf,), rationale=None), classifiers=[clf])
        thr = np.asarray(sg.thresholds, dtype=np.float64)
        rows: dict[Any, list[tuple[bool, bool, float]]] = {r: [] for r in args.rims}
        if args.shapes:
            rows = {"box, blurred": [], "filled with the ring's colour": [], **rows}
        kept: list[tuple[float, str, float, np.ndarray]] = []  # (score after, id, score before, picture)
        rim_split = min((r for r in args.rims if r > 0), default=args.rims[0])  # (for --run)
        split: dict[bool, list[dict[str, Any]]] = {True: [], False: []}  # enough? → the run's rows
        for it in items:
            img, gt = it["image"], it["mask"]
            styled = stylize(img, sg.config.style, **sg.config.style_options)
            hidden: list[tuple[Any, np.ndarray, np.ndarray]] = []
            for rim in args.rims:
                r = int(round(rim * max(gt.shape)))
                m = ndi.binary_dilation(gt, iterations=r) if r > 0 else gt
                hidden.append((rim, m, np.where(m[..., None], styled, img)))
            if args.shapes:  # not the silhouette, nor the blur's colours? (a rim of 1 %)
                r = max(1, int(round(0.01 * max(gt.shape))))
                m = ndi.binary_dilation(gt, iterations=r)
                pieces, _ = ndi.label(m)
                box, filled = m.copy(), img.copy()
                for k, sl in enumerate(ndi.find_objects(pieces), 1):
                    box[sl] = True  # each piece's bounding box, blurred
                    piece = pieces == k
                    ring = ndi.binary_dilation(piece, iterations=r) & ~m
                    filled[piece] = img[ring].mean(0).astype(np.uint8) if ring.any() else 128  # the ring's mean colour
                hidden[:0] = [("box, blurred", box, np.where(box[..., None], styled, img)),
                              ("filled with the ring's colour", m, filled)]
            sc = np.asarray(sg.unsafe_scores([img] + [h[2] for h in hidden]), dtype=np.float64)
            if not (sc[0] > thr).any():
                continue
            band = any(o.get("band", False) for o in it.get("objects", []))
            for (rim, m, _), row in zip(hidden, sc[1:], strict=True):
                rows[rim].append((bool((row > thr).any()), band, float(m.sum() / max(int(gt.sum()), 1))))
                if rim == rim_split and (name, it["id"]) in runs:
                    split[not bool((row > thr).any())].append(runs[(name, it["id"])])
            if args.show and (sc[-1] > thr).any():  # still unsafe with the widest rim hidden: a small copy, outlined
                m, shown = hidden[-1][1], hidden[-1][2].copy()
                shown[outline(m, 200)] = (0, 255, 0)
                size = fit_within(shown.shape, 384)
                kept.append((float(sc[-1].max()), it["id"], float(sc[0].max()),
                             shown if size == shown.shape[:2] else resize(shown, size)))
                kept = sorted(kept, key=lambda k: -k[0])[: args.show_n]
        shows.append((name, kept))
        splits.append((name, rim_split, split))
        if safe:  # the baseline: what the model flags with no unsafe object at all
            fl = np.array([(bool((sg.unsafe_scores([it["image"]])[0] > thr).any()), it["band"]) for it in safe], bool)
            fprs.append((name, [f"{100 * fl[sel, 0].mean():.0f} % of {int(sel.sum())}" if sel.any() else "—"
                                for sel in (np.ones(len(fl), bool), ~fl[:, 1], fl[:, 1])]))
        for rim, rs in rows.items():
            un = np.array([r[0] for r in rs], bool)
            band = np.array([r[1] for r in rs], bool)
            cells = [f"{100 * un[sel].mean():.0f} % of {int(sel.sum())}" if sel.any() else "—"
                     for sel in (np.ones_like(un), ~band, band)]
            print(f"| {name} | {rim if isinstance(rim, str) else format(rim, 'g')} | {len(items)} | {len(rs)} | "
                  f"{' | '.join(cells)} | "
                  f"{np.mean([r[2] for r in rs]):.2f} |", flush=True)
    if fprs:
        print(f"\nSafe images drawn the same way with no unsafe object ({args.safe_n} per seed, `safe_set`): "
              "the share each model flags anyway\n")
        own = "blade" if args.data == "objects" else "barrel"
        print(f"| model | flagged, all | no band | with a band of a {own}'s colour |")
        print("|---|---|---|---|")
        for name, cells in fprs:
            print(f"| {name} | {' | '.join(cells)} |")
    if runs:
        print(f"\nThe {args.run_extent} extent's masks (from {', '.join(map(str, args.run))}), split by whether hiding "
              "the object with the rim below is enough for the model:\n")
        print("| model | rim | object hidden enough | images | area/GT mean | median | recall mean | recall ≥ 0.5 |")
        print("|---|---|---|---|---|---|---|---|")
        for name, rim, split in splits:
            for enough in (True, False):
                rs = split[enough]
                if rs:
                    ratio, rec = np.array([r["ratio"] for r in rs]), np.array([r["recall"] for r in rs])
                    print(f"| {name} | {rim:g} | {'yes' if enough else 'no'} | {len(rs)} | {ratio.mean():.2f} | "
                          f"{np.median(ratio):.2f} | {rec.mean():.3f} | {100 * np.mean(rec >= 0.5):.0f} % |")
    if args.show:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        cols = max(1, max(len(k) for _, k in shows))
        fig, axes = plt.subplots(len(shows), cols, figsize=(2.8 * cols, 2.5 * len(shows)), squeeze=False)
        for i, (name, kept) in enumerate(shows):
            for j in range(cols):
                ax = axes[i][j]
                ax.axis("off")
                if j < len(kept):
                    after, rid, before, pic = kept[j]
                    ax.imshow(pic)
                    ax.set_title(f"{name} {rid}: unsafe {before:.2f} → {after:.2f}", fontsize=7)
        fig.suptitle(f"Still unsafe with the object and a rim of {args.rims[-1]:g} of the longer side hidden "
                     "(green: the hidden area's outline)", fontsize=8)
        fig.tight_layout()
        fig.savefig(args.show, dpi=100)
        plt.close(fig)
        print(f"wrote {args.show}")
    print(f"\ncommand: python {' '.join(sys.argv)}")


def evidence_cmd(args: argparse.Namespace) -> None:
    """Does the part of the object left in sight after the minimal counterfactual still carry logit evidence?

    For every superpixel touching the minimal counterfactual's regions: the drop of the worst
    model's unsafe logit when it is hidden too, on the delivered image (what closure measures)
    and on the original image (evidence in the presence of the key part). Superpixels at least
    half ground truth count as object, the others as background; a closure rule can only work
    where the two distributions separate.
    """
    import torch

    from veil.classify import load_classifier
    from veil.counterfactual import extent as ext
    from veil.pipeline import SafeguardConfig, Safeguarder

    torch.set_num_threads(args.threads)
    items = [it for s in args.seeds for it in draw_set(s, args.n, data=args.data)]
    clf = load_classifier(str(card_path(args.arch)))
    rows: list[tuple[bool, float, float]] = []
    current: dict[str, np.ndarray] = {}

    def probe(image: np.ndarray, styled: np.ndarray, labels: np.ndarray, selected: Sequence[int], score: Any,
              thresholds: np.ndarray, *, attribution: Any = None, segments: Any = None) -> Any:
        h, w = labels.shape
        gt = current["mask"]
        g = gt[(np.arange(h) * gt.shape[0] // h)[:, None], (np.arange(w) * gt.shape[1] // w)[None, :]]
        hid = np.isin(labels, list(selected))
        pieces = np.unique(np.asarray(segments, np.int64) * 2 + hid, return_inverse=True)[1].reshape(h, w)
        n = int(pieces.max()) + 1
        cnt = np.bincount(pieces.ravel(), minlength=n)
        share = np.bincount(pieces.ravel(), weights=g.ravel().astype(float), minlength=n) / np.maximum(cnt, 1)
        hidden = sorted(set(np.unique(pieces[hid]).tolist()))
        touch = sorted({q for r in hidden for q in ext._adjacency(pieces, n)[r]} - set(hidden))
        shape = fit_within((h, w), 384)
        work = ext._Work(ext._small(image, shape), ext._small(styled, shape), ext._nearest(pieces, shape), score,
                         ext.logit(thresholds), False)
        if touch:
            after = work.excess([hidden] + [hidden + [q] for q in touch])
            before = work.excess([[]] + [[q] for q in touch])
            for q, a, b in zip(touch, after[1:], before[1:], strict=True):
                rows.append((bool(share[q] >= 0.5), float(after[0] - a), float(before[0] - b)))
        return ext.minimal(image, styled, labels, selected, score, thresholds)

    ext.EXTENTS.register("evidence-probe", probe)
    sg = Safeguarder(SafeguardConfig(models=(clf,), extent="evidence-probe", rationale=None), classifiers=[clf])
    for it in items:
        current["mask"] = it["mask"]
        sg.run(it["image"])
    obj = np.array([r[0] for r in rows], bool)
    print(f"{args.arch}: {len(items)} images ({args.data} data, seeds {args.seeds}); {len(rows)} superpixels touch "
          f"the minimal counterfactual, {int(obj.sum())} of them object\n")
    print("| logit drop ≥ | object (delivered image) | background (delivered) | object (original image) | "
          "background (original) |\n|---|---|---|---|---|")
    for t in (0.0, 0.1, 0.25, 0.5, 1.0):
        cols = [np.mean(np.array([r[k] for r in rows])[sel] >= t) if sel.any() else float("nan")
                for k in (1, 2) for sel in (obj, ~obj)]
        print(f"| {t:g} | {cols[0]:.2f} | {cols[1]:.2f} | {cols[2]:.2f} | {cols[3]:.2f} |")
    print(f"\ncommand: python {' '.join(sys.argv)}")


def show_cmd(args: argparse.Namespace) -> None:
    """Chosen images delivered under several extent option sets, side by side, cropped around the
    ground truth, with the grain map the complete step's smooth patches read (green: ground truth)."""
    import matplotlib
    import torch

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from veil.classify import load_classifier
    from veil.image import fit_within, resize
    from veil.pipeline import DEFAULT_SEARCH_SIZE, SafeguardConfig, Safeguarder
    from veil.segment.figures import grain

    torch.set_num_threads(args.threads)
    clf = load_classifier(str(card_path(args.arch)))
    items = {it["id"]: it for it in benchmark_set(args.seed, args.n, cut=args.cut, photo=args.photo)}
    options = [json.loads(o) if o else {} for o in args.options]
    labels = args.labels or [o or "default" for o in args.options]
    runs = [Safeguarder(SafeguardConfig(models=(clf,), segmentation="bass", extent="object", rationale=None,
                                        extent_options=o), classifiers=[clf]) for o in options]
    fig, axes = plt.subplots(len(args.ids), 2 + len(runs), figsize=(2.6 * (2 + len(runs)), 2.6 * len(args.ids)),
                             squeeze=False)
    for i, rid in enumerate(args.ids):
        it = items[rid]
        gt = it["mask"]
        ys, xs = np.nonzero(gt)
        pad = int(max(np.ptp(ys), np.ptp(xs))) // 3 + 4
        y0, y1 = max(0, ys.min() - pad), min(gt.shape[0], ys.max() + pad + 1)
        x0, x1 = max(0, xs.min() - pad), min(gt.shape[1], xs.max() + pad + 1)
        edge = outline(gt)
        size = fit_within(it["image"].shape, DEFAULT_SEARCH_SIZE)  # what the extent sees
        work = it["image"] if size == it["image"].shape[:2] else resize(it["image"], size)
        g = resize(grain(work), gt.shape)
        panels = [(it["image"], f"{rid} ({max(gt.shape)} px)"), (g, "grain (the extent's copy)")]
        for sg, name in zip(runs, labels, strict=True):
            res = sg.run(it["image"])
            shown = res.image.copy()
            shown[edge] = (0, 255, 0)
            rec = float((res.mask & gt).sum() / gt.sum()) if res.mask is not None else 0.0
            panels.append((shown, f"{name}: recall {rec:.2f}"))
        for j, (im, title) in enumerate(panels):
            ax = axes[i][j]
            ax.imshow(im[y0:y1, x0:x1], cmap="magma" if im.ndim == 2 else None)
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    plt.close(fig)
    print(f"wrote {args.out}")


def parse_ids(ids: Sequence[str]) -> list[tuple[int, int]]:
    """Benchmark image ids (``SEED-INDEX``, e.g. ``2024-025``) as ``(seed, index)`` pairs."""
    out = []
    for rid in ids:
        seed, sep, idx = rid.rpartition("-")
        if not sep or not seed.lstrip("-").isdigit() or not idx.isdigit():
            raise SystemExit(f"image id {rid!r} is not SEED-INDEX (e.g. 2024-025)")
        out.append((int(seed), int(idx)))
    return out


def draw_set(seed: int, n: int, *, data: str = "objects", cut: float = 0.0, photo: bool = False) -> list[dict[str, Any]]:
    """The first ``n`` images of ``seed`` as `run` draws them: :func:`mark_set` for the mark data, else
    :func:`benchmark_set` of that family (with ``cut`` and ``photo``)."""
    if data == "mark" and (cut or photo):
        raise SystemExit("--cut and --photo are for the objects and kit data")
    return mark_set(seed, n) if data == "mark" else benchmark_set(seed, n, cut=cut, family=data, photo=photo)


def items_by_id(ids: Sequence[str], *, data: str = "objects", cut: float = 0.0,
                photo: bool = False) -> list[dict[str, Any]]:
    """The benchmark images ``ids`` (``SEED-INDEX``), in the order given, each once: the images `run` draws
    for those seeds (image ``i`` of a seed does not depend on how many are drawn after it)."""
    pairs = list(dict.fromkeys(parse_ids(ids)))
    sets = {seed: draw_set(seed, 1 + max(i for s, i in pairs if s == seed), data=data, cut=cut, photo=photo)
            for seed in dict.fromkeys(s for s, _ in pairs)}
    return [sets[seed][i] for seed, i in pairs]


def reasons_cmd(args: argparse.Namespace) -> None:
    """Whole delivered images with each step's regions in its own colour: where the area comes from."""
    import torch

    from veil.pipeline import SafeguardConfig, Safeguarder

    torch.set_num_threads(args.threads)
    clfs = load_cards(args.arch)  # (one card, or several together: A+B)
    items = items_by_id(args.ids, data=args.data, cut=args.cut, photo=args.photo)
    sg = Safeguarder(SafeguardConfig(models=tuple(clfs), segmentation="bass", extent="object", rationale=None,
                                     extent_options=json.loads(args.options) if args.options else {}),
                     classifiers=clfs)
    draw_reasons(sg, items, f"{card_name(args.arch)}: what each step of the extent hid",
                 args.out, dpi=args.dpi)
    print(f"wrote {args.out}")


def draw_reasons(sg: Any, items: list[dict[str, Any]], title: str, path: Path, *, dpi: int = 80) -> None:
    """One row per item: the image, and what ``sg.run`` delivers for it with each reason's regions tinted
    (:func:`reason_overlay`), titled with its recall and each reason's area/GT."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig, axes = plt.subplots(len(items), 2, figsize=(7.2, 3.6 * len(items)), squeeze=False)
    for i, it in enumerate(items):
        gt = it["mask"]
        res = sg.run(it["image"])
        axes[i][0].imshow(it["image"])
        axes[i][0].set_title(f"{it['id']} ({max(gt.shape)} px)", fontsize=8)
        if res.mask is None or not res.counterfactual_found:
            axes[i][1].imshow(res.image)
            axes[i][1].set_title("no counterfactual: fully obscured" if res.unsafe else "not flagged", fontsize=8)
        else:
            masks = reason_masks(res, gt.shape)
            g = max(int(gt.sum()), 1)
            axes[i][1].imshow(reason_overlay(it["image"], masks, gt, it.get("distractors")))
            parts = ", ".join(f"{why} {m.sum() / g:.2f}" for why, m in masks.items())
            axes[i][1].set_title(f"recall {(res.mask & gt).sum() / g:.2f}, area/GT {res.mask.sum() / g:.2f}\n"
                                 f"({parts})", fontsize=7)
        for ax in axes[i]:
            ax.axis("off")
    handles = [Patch(color=np.array(c) / 255, label=why) for why, c in REASON_COLOURS.items()]
    handles += [Patch(facecolor="none", edgecolor=(0, 1, 0), label="ground truth"),
                Patch(facecolor="0.85", edgecolor="0.5", label="harmless distractors (white outline)")]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=9)
    # (room for the legend below, about half an inch, and for the title above, about a third)
    fig.tight_layout(rect=(0, 0.55 / (3.6 * len(items)), 1, 1 - 0.35 / (3.6 * len(items))))
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def card_panel(sg: Any, it: dict[str, Any]) -> dict[str, Any]:
    """One card's view of one image: its attribution map at the image's size, the delivered image, and the
    recall and area/GT of what it hid (a fully obscured image, with no counterfactual, hides everything)."""
    from veil.image import resize

    res = sg.run(it["image"])
    gt = it["mask"]
    mask = np.asarray(res.mask, bool) if res.mask is not None else np.ones_like(gt)
    att = np.zeros(gt.shape, np.float32)
    if res.attribution is not None:
        att = resize(np.asarray(res.attribution, np.float32), gt.shape)
    return {"attribution": att, "delivered": res.image, "flagged": bool(res.unsafe),
            "recall": float((mask & gt).sum() / gt.sum()), "ratio": float(mask.sum() / gt.sum())}


def draw_cards(items: list[dict[str, Any]], panels: list[list[dict[str, Any]]], names: list[str], path: Path) -> None:
    """One row per image: the image, then each card's attribution map and delivered image (green: ground truth)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 1 + 2 * len(names)
    fig, axes = plt.subplots(len(items), cols, figsize=(2.4 * cols, 2.4 * len(items)), squeeze=False)
    for i, (it, row) in enumerate(zip(items, panels, strict=True)):
        gt = it["mask"]
        shown = [(it["image"], f"{it['id']} ({max(gt.shape)} px)")]
        for name, pan in zip(names, row, strict=True):
            verdict = f"recall {pan['recall']:.2f}, area/GT {pan['ratio']:.1f}" if pan["flagged"] else "not flagged"
            shown += [(pan["attribution"], f"{name}: attribution"), (pan["delivered"], f"{name}: {verdict}")]
        for j, (im, title) in enumerate(shown):
            ax = axes[i][j]
            ax.imshow(im, cmap="magma" if im.ndim == 2 else None)
            ax.contour(gt, [0.5], colors="lime", linewidths=0.7)
            ax.set_title(title, fontsize=6)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def cards_cmd(args: argparse.Namespace) -> None:
    """The same images under several cards with the default pipeline: where each card's evidence lies
    (its attribution map) and what the default extent hides for it, whole images, not cropped."""
    import torch

    from veil.classify import load_classifier
    from veil.pipeline import SafeguardConfig, Safeguarder

    torch.set_num_threads(args.threads)
    items = {it["id"]: it for it in benchmark_set(args.seed, args.n)}
    missing = [i for i in args.ids if i not in items]
    if missing:
        raise SystemExit(f"no image {', '.join(missing)} among seed {args.seed}'s {args.n}")
    chosen = [items[i] for i in args.ids]
    panels: list[list[dict[str, Any]]] = [[] for _ in chosen]
    for arch in args.archs:
        clf = load_classifier(str(card_path(arch)))
        sg = Safeguarder(SafeguardConfig(models=(clf,), rationale=None), classifiers=[clf])
        for row, it in zip(panels, chosen, strict=True):
            row.append(card_panel(sg, it))
    draw_cards(chosen, panels, args.labels or [card_name(a) for a in args.archs],
               args.out)
    print(f"wrote {args.out}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="synthesize the training set and train one classifier with `veil train`")
    t.add_argument("--arch", default="mobilenet_v3_small")
    t.add_argument("--name", default="", help="folder under .bench-cache/extent/ for the card (default: the arch; "
                                              "with --data kit, kit-ARCH)")
    t.add_argument("--n", type=int, default=None,
                   help="training images to draw (default: the family's, 3,000 for objects, 8,000 for kit)")
    t.add_argument("--side", type=int, default=192)
    t.add_argument("--input-size", type=int, default=128)
    t.add_argument("--augment", default="flip", help="veil train's --augment (flip, hide, ...)")
    t.add_argument("--epochs", type=int, default=None,
                   help="default: the recipe the benchmark's cards were trained with (RECIPES: 12 for MobileNet, "
                        "10 for ResNet-18, 40 for ShuffleNetV2, 12 for others; kit: 24 for MobileNet)")
    t.add_argument("--batch-size", type=int, default=None, help="default: the recipe's (64)")
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--data", choices=sorted(FAMILIES), default="objects",
                   help="the object family to train on: objects (bombs and blades, the benchmark's cards) or kit "
                        "(syringes and handguns; the card goes to kit-ARCH unless --name says otherwise)")
    t.add_argument("--photo", type=float, nargs="?", const=1.0, default=0.0, metavar="SHARE",
                   help="make that share of the training images photographic, as run's --photo does (alone: all of "
                        "them); the data and the card get folders of their own (data-photo, ARCH-photo)")
    t.add_argument("--safe-band", type=float, default=SAFE_BAND,
                   help="share of safe training images with a band of a blade's (kit: a barrel's) colour across them "
                        "(0: bands only under blades, the cards before 2026-12-03)")
    r = sub.add_parser("run", help="run the benchmark")
    r.add_argument("--archs", nargs="+", default=["mobilenet_v3_small", "resnet18"],
                   help="architectures trained by `train` (or model card paths); A+B runs cards A and B together, "
                        "in one pipeline (flagged when either flags, delivered when both say safe)")
    r.add_argument("--data", choices=DATA, default="objects",
                   help="objects: bombs and blades (for the `train` models); kit: syringes and handguns (for cards "
                        "trained with `train --data kit`); mark: the Veil demo mark (for examples/demo-model)")
    r.add_argument("--extents", nargs="+", default=["minimal", "object"])
    r.add_argument("--segmentations", nargs="+", default=["bass"])
    r.add_argument("--seeds", type=int, nargs="+", default=[2024])
    r.add_argument("--n", type=int, default=60, help="images per seed")
    r.add_argument("--ids", nargs="+", default=None,
                   help="only these images, SEED-INDEX (e.g. 2024-025 13-007), as the full run draws them; "
                        "--seeds and --n are then not used")
    r.add_argument("--cut", type=float, default=0.0,
                   help="share of the unsafe objects placed across the frame's edge (objects cut by the frame; "
                        "0: none, the images of before)")
    r.add_argument("--photo", action="store_true",
                   help="the same images made photographic: shaded, grained objects, sensor noise, a JPEG round "
                        "trip (the masks unchanged)")
    r.add_argument("--extent-options", default="", help="JSON options for the non-minimal extents (tuning)")
    r.add_argument("--segmentation-options", default="", help='JSON, e.g. \'{"n_segments": 400}\'')
    r.add_argument("--config-options", default="",
                   help='JSON SafeguardConfig fields for the non-minimal extents, e.g. \'{"merge": 0}\' (tuning)')
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--json", type=Path)
    r.add_argument("--by-kind", action="store_true", help="also a row per object kind (images with that kind only)")
    r.add_argument("--by-part", action="store_true",
                   help="also a table of how much of each object part is hidden (bomb: spark, fuse, body; "
                        "blade: handle, blade; kit: syringe: plunger, barrel, needle; pistol: slide, grip; objects "
                        "on a band of their own colour apart)")
    r.add_argument("--by-step", action="store_true",
                   help="also a table of how much area each step of the extent hides, on and off the object, "
                        "and one of how much of the harmless distractors it hides")
    r.add_argument("--by-seen", action="store_true",
                   help="also the recall of the images whose every object the classifier sees on its own, and of "
                        "the images with an object it does not see (a second object it overlooks), apart")
    r.add_argument("--part-plot", type=Path, help="bar chart of the --by-part table (implies --by-part)")
    r.add_argument("--plot", type=Path)
    r.add_argument("--worst", type=Path, help="PNG of the worst cases (one per model)")
    o = sub.add_parser("oracle", help="the best recall/area any extent could reach with the pipeline's regions")
    o.add_argument("--data", choices=DATA, default="objects")
    o.add_argument("--segmentation", default="bass")
    o.add_argument("--segmentation-options", default="", help='JSON, e.g. \'{"n_segments": 400}\'')
    o.add_argument("--seeds", type=int, nargs="+", default=[2024])
    o.add_argument("--n", type=int, default=60, help="images per seed")
    e = sub.add_parser("evidence", help="does the object left in sight after the minimal counterfactual still "
                                        "carry logit evidence? (what closure can follow)")
    e.add_argument("--arch", default="mobilenet_v3_small", help="a card trained by `train` (or a card path)")
    e.add_argument("--data", choices=DATA, default="objects")
    e.add_argument("--seeds", type=int, nargs="+", default=[11])
    e.add_argument("--n", type=int, default=30, help="images per seed")
    e.add_argument("--threads", type=int, default=1)
    g = sub.add_parser("truth", help="is hiding the object itself (and a rim) enough for the classifier?")
    g.add_argument("--archs", nargs="+", default=["mobilenet_v3_small", "resnet18"],
                   help="architectures trained by `train` (or model card paths)")
    g.add_argument("--data", choices=DATA, default="objects")
    g.add_argument("--seeds", type=int, nargs="+", default=[2024])
    g.add_argument("--n", type=int, default=40, help="images per seed")
    g.add_argument("--rims", type=float, nargs="+", default=[0.0, 0.01, 0.03],
                   help="rims around the ground truth, as shares of the image's longer side")
    g.add_argument("--threads", type=int, default=1)
    g.add_argument("--shapes", action="store_true",
                   help="also hide each object's bounding box (blurred), and the object with a 1 %% rim filled "
                        "with the mean colour of a ring around it (is it the silhouette, or the blur's colours?)")
    g.add_argument("--show", type=Path, help="PNG of the images still unsafe with the widest rim hidden")
    g.add_argument("--show-n", type=int, default=4, help="images per model in --show (the highest scores)")
    g.add_argument("--run", type=Path, nargs="+",
                   help="`run --json` files of the same images: their masks' area and recall, split by whether "
                        "hiding the object (the smallest positive rim) is enough")
    g.add_argument("--run-extent", default="object", help="the extent whose rows --run reads")
    g.add_argument("--safe-n", type=int, default=120,
                   help="safe images per seed, drawn the same way with no unsafe object: the share each model "
                        "flags anyway (0: skip)")
    f = sub.add_parser("frontier", help="recall against area/GT of the rows of several `run --json` files, "
                                        "with the targets shaded (where each variant lies on the trade)")
    f.add_argument("runs", type=Path, nargs="+", help="`run --json` files")
    f.add_argument("--labels", nargs="*", help="a label per file for its non-minimal rows (default: its options)")
    f.add_argument("--title")
    f.add_argument("--time", action="store_true",
                   help="a third panel: recall against seconds per flagged image (compare runs made alike)")
    f.add_argument("--out", type=Path, required=True)
    f.add_argument("--recall-plot", type=Path,
                   help="also the recall distribution of every row (share of images with recall ≥ x), as `run --plot`")
    st = sub.add_parser("steps", help="the area each step of the extent hides, on and off the object, of the rows "
                                      "of `run --json` files (runs since 2026-12-03 17:00 UTC), with a bar chart")
    st.add_argument("runs", type=Path, nargs="+", help="`run --json` files")
    st.add_argument("--out", type=Path, required=True)
    w = sub.add_parser("show", help="chosen images delivered under several extent option sets, side by side")
    w.add_argument("--arch", default="resnet18", help="a card trained by `train` (or a card path)")
    w.add_argument("--seed", type=int, default=11)
    w.add_argument("--n", type=int, default=40, help="images in the seed's set (the ids index it)")
    w.add_argument("--ids", nargs="+", required=True, help="image ids, e.g. 11-011")
    w.add_argument("--options", nargs="+", default=['{"complete_smooth": 0}', ""],
                   help="JSON extent options per column ('' for the defaults)")
    w.add_argument("--labels", nargs="*", help="a title per option set")
    w.add_argument("--cut", type=float, default=0.0, help="as run's --cut (the images of that set)")
    w.add_argument("--photo", action="store_true", help="as run's --photo (the images of that set)")
    w.add_argument("--threads", type=int, default=1)
    w.add_argument("--out", type=Path, required=True)
    c = sub.add_parser("cards", help="the same images under several cards: attribution and what the default hides")
    c.add_argument("--archs", nargs="+", required=True, help="cards trained by `train` (or card paths)")
    c.add_argument("--seed", type=int, default=11)
    c.add_argument("--n", type=int, default=40, help="images in the seed's set (the ids index it)")
    c.add_argument("--ids", nargs="+", required=True, help="image ids, e.g. 11-011")
    c.add_argument("--labels", nargs="*", help="a title per card")
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--out", type=Path, required=True)
    rs = sub.add_parser("reasons", help="whole delivered images, each step's regions in its own colour "
                                        "(counterfactual, split, closure, margin, object, tile)")
    rs.add_argument("--arch", default="resnet18",
                    help="a card trained by `train` (or a card path); A+B: cards A and B together, as `run` takes them")
    rs.add_argument("--ids", nargs="+", required=True, help="image ids SEED-INDEX, e.g. 2024-025 2025-020")
    rs.add_argument("--options", default="", help="JSON extent options ('' for the defaults)")
    rs.add_argument("--cut", type=float, default=0.0, help="as run's --cut (the images of that set)")
    rs.add_argument("--photo", action="store_true", help="as run's --photo (the images of that set)")
    rs.add_argument("--data", choices=sorted(FAMILIES), default="objects",
                    help="as run's --data (the images of that set)")
    rs.add_argument("--threads", type=int, default=1)
    rs.add_argument("--dpi", type=int, default=80)
    rs.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    {"reasons": reasons_cmd, "train": train_cmd, "run": run_cmd, "oracle": oracle_cmd, "evidence": evidence_cmd,
     "show": show_cmd, "cards": cards_cmd, "truth": truth_cmd, "frontier": frontier_cmd, "steps": steps_cmd}[args.cmd](args)


if __name__ == "__main__":
    main()
