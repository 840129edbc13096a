"""Extent: how much to hide once the search has found a counterfactual.

The search returns the smallest region set that makes every classifier say safe: minimal
*for the classifier*. A classifier often keys on the most distinctive small part of an object
(the spark of a bomb, the handle of a knife), so that set can leave most of the object in
plain sight; and a thin object merged with a background of its own colour drags that
background in. An extent takes the search's regions and returns the regions to deliver:

``minimal``
    The search's regions unchanged (the paper's counterfactual).
``object`` (default)
    The whole object that carried the evidence, in seven steps, each checked with the
    classifiers on the *delivered* image and on the unsafe **logit** (which, unlike the
    probability, does not saturate):

    1. *split* — every region larger than ``split_fraction`` of the image is replaced by its
       pre-merge superpixels; of a selected one only those the verdict needs (taken in
       attribution order; with ``split_rerank``, by each one's own evidence when that order needs
       more than so many of them) are kept: a blade merged with a same-coloured wall hides the blade,
       not the wall, and the rest of an object merged into a large region can still be added;
    2. *closure* — touching regions that still carry evidence (hiding one lowers the
       unsafe logit by at least ``min_gain``) are hidden too, for up to ``rounds`` rounds,
       and the hidden area never exceeds ``max_fraction`` of the image (with ``closure_pool``, the
       candidates are weighed in pools first, and one by one only in a pool that gains that much);
    3. *margin* — regions are added (the neighbour that lowers the logit most, or most for the
       area it hides with ``margin_area``) until the image is safe by ``margin`` logits under the threshold,
       also under light views of it (mirror, ±10 % scale, a shift of 3 %); after the first
       addition only the ``rescore`` best candidates of the step before and the new neighbours
       are weighed again (and a closure round weighs only what no earlier round weighed);
    4. *trim* (``trim=True``; off by default) — a closure region whose removal now costs less
       than ``min_gain / 2`` logits is dropped again, as long as the verdict (and margin) holds;
    5. *complete* (``complete="figures"``, the default; ``"grabcut"``; ``"none"``) — the hidden mask is
       grown to the objects it lies on, class-agnostically, not by the classifier: by the enclosed,
       contrasting segments and smooth patches on a grained ground attached to it, also behind an
       outline or a thin curve that touches it or past a segment it mostly covers, and in a second
       round the solid, thin or rim-like ones attached to what the first found, and the compact pieces
       of a finer cut of the segments too large or running to the edge to be figures; a solid or
       straight one may reach the image's edge as an object cut by the frame does
       (:func:`veil.segment.figures.attached_figures`) or by a colour model
       (:func:`veil.segment.grabcut.grow_to_object`, pixel-fine), and its holes are filled (a sliver of
       the object seen through the mask), within ``max_region`` per object or hole and ``max_fraction``
       in all (a figure, one segment, within 10 % of the image, or less with ``complete_max_figure``),
       and kept only if the image stays safe — if hiding the object loses the verdict (a counterfactual
       barely under the threshold moves with any change), up to ``complete_secure`` touching regions
       are added to win it back, as the margin step adds them, before a smaller growth is tried. It
       finds the parts the classifier no longer points to once the part it keys on is hidden (a bomb's
       body behind its spark);
    6. *prune* (``prune``) — once the object is hidden, the split and margin regions the verdict no
       longer needs (the margin too, under the light views, if the margin step reached it) are shown
       again: the ``prune`` largest are each weighed alone, then the longest run of those that may go
       alone (largest first) that may go together; the complete step is run once more from what stays
       hidden, taking only pixels of what was shown again (an object part such a region had hidden,
       a bomb's body the margin step took for the verdict, is hidden again by its figure, its ground is not);
    7. *look again* (when the pipeline passes ``look``) — the delivered image is cut into 2 × 2
       overlapping tiles of 0.6 of its sides; while a classifier finds one unsafe, the worst is
       safeguarded on its own (a whole run: attribution, segmentation, search, this extent) and
       what that run hides is hidden too (the whole tile when it finds no counterfactual), for
       up to ``tile_rounds`` tiles. A second object, or one the classifier stopped looking at once
       the first was hidden, is found at 1.7 times the size.

Every extent is a function ``fn(image, styled, labels, selected, score, thresholds, *,
attribution, segments, **options) -> ExtentOutcome``; ``score`` classifies a batch of
images and returns the ``(N, n_models)`` unsafe scores; an extent with a ``look`` keyword is
given one by the pipeline (:data:`Look`). Extents only ever *add* to what
they are given when it keeps the image safe, and the pipeline re-classifies the delivered
image and fails closed whatever an extent returns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np
from PIL import Image

from veil import checks
from veil.counterfactual.regions import regions_lut, regions_mask
from veil.counterfactual.styles import apply_labels, apply_mask
from veil.errors import InvalidParameterError
from veil.image import check_labels, dense_labels, fit_within
from veil.registry import Registry
from veil.segment.figures import MAX_FIGURE

Score = Callable[[list[np.ndarray]], np.ndarray]
#: ``look(crop) -> (mask or None, images classified)``: the regions a whole safeguarding run on the crop
#: would hide (None when its search finds no counterfactual); the pipeline passes it to extents that take it.
Look = Callable[[np.ndarray], tuple[np.ndarray | None, int]]

#: Why a region is hidden (the ``reason`` of each :class:`~veil.types.Region`).
REASONS = ("counterfactual", "split", "margin", "closure", "object", "tile")


@dataclass
class ExtentOutcome:
    """The regions to hide: ids into ``labels``, in the order chosen, with the reason for each.

    ``n_evaluated`` counts the images the extent classified; ``evaluated_by_step`` splits that count by the step
    that asked for them (``split``, ``closure``, ``margin``, ``trim``, ``complete``, ``prune`` with its second
    complete step, ``look`` with its tiles and its runs on them), where the extent keeps such a count.
    """

    labels: np.ndarray
    selected: tuple[int, ...]
    reasons: tuple[str, ...]
    n_evaluated: int = 0
    trace: list[dict[str, Any]] = field(default_factory=list)
    evaluated_by_step: dict[str, int] = field(default_factory=dict)


Extent = Callable[..., ExtentOutcome]

#: Shortest side (pixels) of a tile the second look classifies and safeguards.
_MIN_TILE = 32

#: Images the split step may classify to cut down a prefix wider than ``split_cut_area`` (one to three
#: batches; a wide prefix can hold hundreds of superpixels, and ranking each one alone cost up to 600).
SHRINK_BUDGET = 48

#: Runs of regions the prune step weighs per batch, the longest first (it stops once two have held).
_PRUNE_CHUNK = 4

#: name → extent ``fn(image, styled, labels, selected, score, thresholds, *, attribution, segments, **options)``.
EXTENTS: Registry[Extent] = Registry("extent")

#: The extent ``veil scan`` uses unless told otherwise.
DEFAULT_EXTENT = "object"


def logit(p: np.ndarray | float) -> np.ndarray:
    """``log(p / (1 - p))`` with ``p`` clipped to ``[1e-7, 1 - 1e-7]``.

    Examples
    --------
    >>> float(logit(0.5)), round(float(logit(0.9)), 3)
    (0.0, 2.197)
    """
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.log(q) - np.log1p(-q)


def _check(image: np.ndarray, styled: np.ndarray, labels: np.ndarray, selected: Sequence[int]) -> None:
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidParameterError(f"image (shape {image.shape}) must be H×W×3")
    if styled.shape != image.shape:
        raise InvalidParameterError(f"styled (shape {styled.shape}) must have the image's shape {image.shape}")
    if labels.shape != image.shape[:2]:
        raise InvalidParameterError(f"labels (shape {labels.shape}) must have the image's shape {image.shape[:2]}")
    check_labels(labels, integer=False)
    n = int(labels.max()) + 1 if labels.size else 0
    bad = [int(r) for r in selected if not 0 <= int(r) < n]
    if bad:
        raise InvalidParameterError(f"selected region ids {bad} are not labels of the label map (0..{n - 1})")


@EXTENTS.decorator("minimal")
def minimal(
    image: np.ndarray,
    styled: np.ndarray,
    labels: np.ndarray,
    selected: Sequence[int],
    score: Score,
    thresholds: np.ndarray,
    *,
    attribution: np.ndarray | None = None,
    segments: np.ndarray | None = None,
) -> ExtentOutcome:
    """The search's regions as they are: the smallest set that flips every classifier (the paper's)."""
    _check(np.asarray(image), np.asarray(styled), np.asarray(labels), selected)
    ids = tuple(int(r) for r in selected)
    return ExtentOutcome(np.asarray(labels), ids, ("counterfactual",) * len(ids))


# -- helpers of the object extent ------------------------------------------------------------------
def _nearest(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    ys = np.minimum(((np.arange(h) + 0.5) * labels.shape[0] / h).astype(np.int64), labels.shape[0] - 1)
    xs = np.minimum(((np.arange(w) + 0.5) * labels.shape[1] / w).astype(np.int64), labels.shape[1] - 1)
    return labels[ys[:, None], xs[None, :]]


def _small(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if image.shape[:2] == shape:
        return image
    return np.asarray(Image.fromarray(image).resize((shape[1], shape[0]), Image.Resampling.BILINEAR))


def light_views(image: np.ndarray, *, shift: float = 0.03) -> list[np.ndarray]:
    """The image, its mirror, zoomed out and in by 10 % and shifted by ``shift`` of its size.

    Examples
    --------
    >>> import numpy as np
    >>> [v.shape for v in light_views(np.zeros((20, 30, 3), np.uint8))]
    [(20, 30, 3), (20, 30, 3), (20, 30, 3), (20, 30, 3), (20, 30, 3)]
    >>> {v.shape for v in light_views(np.zeros((1, 50, 3), np.uint8))}  # a one-pixel strip too
    {(1, 50, 3)}
    """
    h, w = image.shape[:2]
    out = [image, image[:, ::-1]]
    sh, sw = max(1, round(h / 1.1)), max(1, round(w / 1.1))
    out.append(np.pad(_small(image, (sh, sw)), (((h - sh) // 2, h - sh - (h - sh) // 2),
                                                ((w - sw) // 2, w - sw - (w - sw) // 2), (0, 0)), mode="edge"))
    y0, x0 = (h - sh) // 2, (w - sw) // 2
    out.append(_small(np.ascontiguousarray(image[y0 : y0 + sh, x0 : x0 + sw]), (h, w)))
    dy, dx = min(h - 1, max(1, round(shift * h))), min(w - 1, max(1, round(shift * w)))  # (none along a 1-px side)
    out.append(np.pad(image[dy:, dx:], ((0, dy), (0, dx), (0, 0)), mode="edge"))
    return out


def _holes(mask: np.ndarray, max_region: float) -> np.ndarray:
    """The holes of ``mask``: the pieces of the rest that it encloses (not reaching the image's edge),
    each at most ``max_region`` of the image.

    Examples
    --------
    >>> import numpy as np
    >>> ring = np.zeros((9, 9), bool); ring[2:7, 2:7] = True; ring[4, 4] = False
    >>> np.argwhere(_holes(ring, 0.1)).tolist()
    [[4, 4]]
    """
    from scipy import ndimage as ndi

    # the 4-connected pieces of the rest that do not touch the edge: scipy's binary_fill_holes, without its
    # dilation to convergence (four times faster on a camera-sized mask; the same pixels, tested)
    if mask.size == 0:
        return np.zeros(mask.shape, bool)
    lab, n = ndi.label(~mask)
    size = np.bincount(lab.ravel(), minlength=n + 1)
    keep = size <= max_region * mask.size
    keep[0] = False
    keep[np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])] = False
    return keep[lab]


def _adjacency(labels: np.ndarray, n: int) -> list[set[int]]:
    pairs = []
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :]),
                 (labels[:-1, :-1], labels[1:, 1:]), (labels[:-1, 1:], labels[1:, :-1])):
        diff = a != b
        pairs.append(np.stack([a[diff], b[diff]], axis=1))
    m = max(n, int(labels.max()) + 1) if labels.size else n
    codes = np.concatenate(pairs, 0).astype(np.int64) @ np.array([m, 1], np.int64)  # (one number per pair)
    both = np.unique(codes)
    adj: list[set[int]] = [set() for _ in range(n)]
    for p, q in zip((both // m).tolist(), (both % m).tolist(), strict=True):
        adj[p].add(q)
        adj[q].add(p)
    return adj


def _cut_in(labels: np.ndarray, n: int, new_px: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """``labels`` with the pixels ``new_px`` as new regions ``n, n + 1, …``, cut along the regions they
    cross; and the new ids."""
    uniq, inv = dense_labels(labels[new_px])
    grown = labels.copy()
    grown[new_px] = n + inv
    return grown, list(range(n, n + len(uniq)))


@dataclass
class _Work:
    """The image at the extent's working size, its styled copy and label map, and the scorer.

    Scores are remembered per set of hidden regions (and per view), so that a candidate the closure
    step weighed is not classified again by the margin step; :meth:`relabel` forgets them.
    """

    image: np.ndarray
    styled: np.ndarray
    labels: np.ndarray
    score: Score
    thr_logit: np.ndarray
    views: bool
    n_evaluated: int = 0
    step: str = ""  # (the step now classifying, which :meth:`count` charges)
    by_step: dict[str, int] = field(default_factory=dict)
    _seen: dict[tuple[tuple[int, ...], int], float] = field(default_factory=dict)

    def count(self, k: int) -> None:
        """``k`` more images classified, charged to the step now running."""
        self.n_evaluated += int(k)
        self.by_step[self.step] = self.by_step.get(self.step, 0) + int(k)

    def relabel(self, labels: np.ndarray) -> None:
        self.labels = labels
        self._seen.clear()

    def full_excess(self, mask: np.ndarray, image: np.ndarray, styled: np.ndarray) -> float:
        """Worst model's logit minus its threshold's on the full-size image hidden under ``mask`` (the
        delivered image the pipeline judges; for an image larger than the pipeline's working copy, that copy:
        see ``work_size`` of :func:`object_extent`), counted among the images classified."""
        full = apply_mask(image, styled, mask)
        self.count(1)
        return float((logit(np.asarray(self.score([full]), dtype=np.float64)[0]) - self.thr_logit).max())

    def compose(self, ids: Sequence[int]) -> np.ndarray:
        # (a region too small to survive the working size may be asked for: it hides nothing here)
        return apply_labels(self.image, self.styled, self.labels, regions_lut(self.labels, list(ids)))

    def excess(self, cands: Sequence[Sequence[int]], *, views: bool = False) -> np.ndarray:
        """Worst model's logit minus its threshold's logit, per candidate (max over views if asked)."""
        if not cands:
            return np.zeros(0)
        k = 5 if views and self.views else 1
        keys = [tuple(sorted({int(r) for r in c})) for c in cands]
        todo = [(key, v) for key in dict.fromkeys(keys) for v in range(k) if (key, v) not in self._seen]
        if todo:
            composed: dict[tuple[int, ...], list[np.ndarray]] = {}
            imgs = []
            for key, v in todo:
                if key not in composed:
                    img = self.compose(key)
                    composed[key] = light_views(img) if k > 1 else [img]
                imgs.append(composed[key][v])
            s = np.asarray(self.score(imgs), dtype=np.float64)
            self.count(len(imgs))
            for (key, v), e in zip(todo, (logit(s) - self.thr_logit[None, :]).max(axis=1), strict=True):
                self._seen[(key, v)] = float(e)
        return np.asarray([max(self._seen[(key, v)] for v in range(k)) for key in keys])


@EXTENTS.decorator("object")
def object_extent(
    image: np.ndarray,
    styled: np.ndarray,
    labels: np.ndarray,
    selected: Sequence[int],
    score: Score,
    thresholds: np.ndarray,
    *,
    attribution: np.ndarray | None = None,
    segments: np.ndarray | None = None,
    margin: float = 1.0,
    views: bool = True,
    min_gain: float = 0.5,
    rounds: int = 3,
    max_fraction: float = 0.5,
    max_region: float = 0.15,
    split_fraction: float = 0.08,
    split_refine: float = 0.0,
    split_rerank: int = 0,
    split_cut_area: float = 0.15,
    group_delta: float = 12.0,
    group_members: int = 4,
    attr_ratio: float = 0.0,
    closure_on: str = "delivered",
    trim: bool = False,
    complete: str = "figures",
    complete_grow: float | None = None,
    complete_expand: int = 2,
    complete_stable: float = 0.0,
    complete_dilate: float = 0.15,
    complete_smooth: float = 0.5,
    complete_thin_window: int = 3,
    complete_size: int = 512,
    complete_through: float = 0.35,
    complete_through_solidity: float = 0.85,
    complete_bridge: bool = True,
    complete_rounds: int = 2,
    complete_fine: float = 200.0,
    complete_fine_contrast: float = 5.0,
    complete_fine_solidity: float = 0.9,
    complete_fine_thin: float = 10.0,
    complete_fine_edge: bool = True,
    complete_fine_every: bool = True,
    complete_edge_solidity: float = 0.9,
    complete_later_solidity: float = 0.85,
    complete_compact_contrast: float = 5.0,
    complete_noise_floor: float = 0.02,
    complete_faint: float = 4.0,
    complete_faint_elongation: float = 3.0,
    complete_faint_ragged: float = 1.35,
    complete_denoise: str = "auto",
    complete_fine_again: float = 100.0,
    complete_fine_again_contrast: float = 15.0,
    complete_aligned: float = 5.0,
    complete_aligned_gap: float = 0.02,
    complete_aligned_run: float = 5.0,
    complete_evidence: float = 0.8,
    complete_evidence_relative: float = 0.75,
    complete_evidence_solidity: float = 0.0,
    complete_max_figure: float = MAX_FIGURE,
    complete_max_figure_relative: float = 0.0,
    complete_limit: str = "safe",
    complete_secure: int = 6,
    max_steps: int = 6,
    rescore: int = 3,
    closure_pool: int = 0,
    margin_area: float = 0.0,
    tiles: int = 2,
    tile_fraction: float = 0.6,
    tile_rounds: int = 3,
    prune: int = 16,
    prune_from: Sequence[str] = ("split", "margin"),
    prune_gain: float = 0.1,
    look: Look | None = None,
    work_size: int = 384,
    batch_size: int = 16,
) -> ExtentOutcome:
    """Hide the whole object that carried the evidence, not only the part the classifiers need.

    Parameters
    ----------
    image, styled : (H, W, 3) uint8 ndarray
        The image and its fully obfuscated version (the style). Not modified.
    labels : (H, W) int ndarray
        The regions the search chose from.
    selected : sequence of int
        The search's counterfactual (region ids of ``labels``).
    score : callable
        ``score(list of images) -> (N, n_models)`` unsafe scores.
    thresholds : (n_models,) ndarray
        Unsafe thresholds; a model says safe at or below its own.
    attribution : (H, W) ndarray, optional
        Orders the superpixels of a split region (most evidence first).
    segments : (H, W) int ndarray, optional
        Pre-merge superpixels at the image's size; without them nothing is split.
    margin : float
        Logits under the threshold the delivered image must reach (0: the plain verdict).
    views : bool
        Also require the margin under light views (:func:`light_views`).
    min_gain : float
        Logit drop that makes a touching region "still carrying evidence" (closure).
    rounds : int
        Closure rounds (each may add every qualifying neighbour of the current mask).
    max_fraction : float
        Bound of the hidden share of the image after margin and closure steps.
    max_region : float
        Larger regions (share of the image) are never added by margin or closure, nor larger
        holes by the complete step (GrabCut's objects too).
    split_fraction : float
        Selected regions larger than this share are split into their superpixels.
    split_refine : float
        After the split step has kept the fewest superpixels of a split region (in attribution order) that
        keep the image safe, each of them whose mean attribution is under this quantile of the image's is
        dropped again, least attribution first, if the image stays safe without it (1: every kept
        superpixel may go, though one always stays; 0, the default: off). A broad map (MobileNet's) puts background superpixels
        before the key part; docs/extent-history.md has the trade (less area, not always the same recall).
    split_rerank : int
        When the attribution-ordered prefix of the split step needs more than this many superpixels (or no
        prefix keeps the image safe), the superpixels are ranked again by their own evidence (the logit drop of
        hiding each one alone, one classification each) and scanned again in that order; the prefix that hides
        less of the image is kept (0, the default: off). A broad map's long prefix is mostly background, and the
        key part's own drop puts it first; but a small piece of background whose hiding alone flips the model
        can come first too, and the object is then left in sight: docs/extent-history.md has the trade (at 4,
        MobileNet's area/GT 5.12 → 4.13 on the report seeds, recall 0.908 → 0.899).
    split_cut_area : float
        When the attribution-ordered prefix hides more than this share of the image, however few its
        superpixels (0: off; default 0.15, the most one closure region may add), the prefix is cut down: chunks
        of it are shown again while the image stays safe (delta debugging, at most :data:`SHRINK_BUDGET` images
        classified), and the smaller set is kept. A prefix that hides a sixth of the photo or more is mostly a
        broad map's background (docs/extent-history.md). With ``split_rerank`` also triggered the whole pool is
        ranked by each superpixel's own drop instead; with no prefix found the whole region is kept, as before.
    group_delta : float
        Lab distance under which touching regions are weighed together by margin and closure
        (:func:`veil.segment.merge_similar`; 0: one region at a time, which hid less area but also
        less of the objects on the report seeds: docs/extent-history.md).
    group_members : int
        A colour group of more superpixels than this is not weighed as one: the touching region is weighed on
        its own (0: any group, as before 2026-12-05 18:00 UTC). An object cut into superpixels is a few of them;
        a group of many is a stretch of ground of one colour (a sky, a wall), and closure took such groups whole
        for a logit gain a little over ``min_gain``. On the tuning seeds those of 4 or more held almost none of
        the objects and about 0.2 (ResNet-18) and 0.3 (MobileNet) of area/GT per image beside them; a close-up
        object of one colour can be a group of many too (docs/extent-history.md).
    attr_ratio : float
        Closure also takes a touching region with any logit gain whose mean attribution is at
        least this share of the counterfactual's (0: off).
    closure_on : str
        Where closure weighs a touching region: ``"delivered"`` (hiding it too, on the image with
        the counterfactual hidden) or ``"original"`` (hiding it alone, with the key part still in
        sight; experimental, see docs/extent-history.md).
    trim : bool
        Run the trim step (off by default: on the tuning seed it dropped closure regions that
        were parts of the object once the margin step had added others).
    complete : str
        ``"figures"`` (default), ``"grabcut"`` or ``"none"``: grow the hidden mask to the objects
        it lies on by the figures attached to it (:func:`veil.segment.figures.attached_figures`)
        or with GrabCut (:func:`veil.segment.grabcut.grow_to_object`), or not at all (less area,
        less of the object hidden); measured in docs/extent-history.md.
    complete_grow : float or None
        The box around each hidden piece, in multiples of its size: GrabCut's first box, or the
        box a figure must lie in (``grow`` of either function; None: 2 for GrabCut, 5 for figures,
        3 before 2026-12-04: the wider box took more of the objects for a little more area,
        docs/extent-history.md).
    complete_expand, complete_stable : int, float
        GrabCut only: how often the box may double and when its object counts as settled
        (``expand`` and ``stable`` of :func:`~veil.segment.grabcut.grow_to_object`; 0: the first
        box's object, which found more of the objects on the tuning seed than waiting for a
        settled one).
    complete_dilate : float
        GrabCut only: each object found is widened by this share of its size, so its outline
        is hidden too.
    complete_smooth : float
        Figures only: the grain under which a patch attached to the mask counts as smooth, so that a
        smooth part on a grained ground of its own colour is taken (``smooth`` of
        :func:`~veil.segment.figures.attached_figures`; 0: colour segments only).
    complete_thin_window : int
        Figures only, with ``complete_smooth`` and ``complete_fine_thin``: the smooth patches are also looked for
        on a grain map of this narrower window (pixels), and those found only there are taken if they are thin
        and straight (``thin_window`` of :func:`~veil.segment.figures.attached_figures`; 0: off, as before
        2026-12-05 13:00 UTC). The 5-pixel grain window spreads a grained band's grain over a smooth blade 4 to 8
        pixels wide lying on it, so the blade did not read as smooth; docs/extent-history.md has the trade.
    complete_size : int
        Figures only: the longer side (pixels) of the copy the figures are cut in (``size`` of
        :func:`~veil.segment.figures.attached_figures`). The finer the copy, the closer the figures follow a
        thin object's outline; docs/extent-history.md has the trade.
    complete_through : float
        Figures only: the solidity under which a segment touching the mask (an outline, a fuse) is
        looked through, so that the segments beyond it count as attached (``through`` of
        :func:`~veil.segment.figures.attached_figures`; 0: off).
    complete_through_solidity : float
        Figures only, with ``complete_through``: a segment found only by looking through must have at least this
        solidity, or be thin and straight as ``complete_fine_thin`` asks (``through_solidity`` of
        :func:`~veil.segment.figures.attached_figures`; 0: off, as before 2026-12-05 15:30 UTC). The body behind a
        bomb's outline is solid; the pieces of ground beyond a long thin curve of the ground are not, and a look
        through took them as figures: on the tuning seeds it hid area/GT 0.16 less at the same recall
        (docs/extent-history.md).
    complete_bridge : bool
        Figures only: a segment of the figure search's cut that the hidden mask mostly covers counts as part of
        the hidden piece, so the figures within reach of it are attached too (``bridge`` of
        :func:`~veil.segment.figures.attached_figures`; on since 2026-12-06, False gives the step of before): a bomb
        whose spark is hidden with most of its fuse's segment, the body lying beyond the fuse's unhidden end; a
        blade beyond the unhidden edge of its handle's segment. It found such objects on fresh seeds at about the
        same area (docs/extent-history.md).
    complete_rounds : int
        Figures only: how often to look for figures, each round from what the last one found, so
        that an object is followed part by part (the body attached to a fuse attached to the spark;
        ``rounds`` of :func:`~veil.segment.figures.attached_figures`; 1: the figures attached to the
        hidden regions only).
    complete_fine, complete_fine_contrast : float
        Figures only: the segments touching the growth that are too large or run on to the image's
        edge are cut again at this finer Felzenszwalb scale, and the figures among their pieces with
        this contrast are taken too (a bomb's body the coarse cut joined to a ground of its own tone;
        ``fine`` and ``fine_contrast`` of :func:`~veil.segment.figures.attached_figures`; 0: off; on by
        default since 2026-12-05, scale 200 and contrast 5, with ``complete_fine_solidity``).
        Only the largest growth has it: if that growth is refused, the fallbacks are the growths
        without it.
    complete_fine_solidity : float
        With ``complete_fine``: a figure of the finer cut is taken only if its solidity (pixels over its
        convex hull's) is at least this (``fine_solidity`` of
        :func:`~veil.segment.figures.attached_figures`; 0: any). A finer cut breaks a textured ground
        into ragged pieces, while a part of an object it frees is compact (a round body): on the tuning
        seeds the pieces of solidity 0.9 or more held 72–88 % of the object the finer cut could add and
        2 % of its ground (docs/extent-history.md).
    complete_fine_thin : float
        With ``complete_fine_solidity``: a piece of the finer cut under that solidity is still taken if it
        is thin and straight, at least this many times longer than wide, and stands out by the figures'
        10 CIELAB units (``fine_thin`` of :func:`~veil.segment.figures.attached_figures`; 0: off; 10 by
        default since 2026-12-05): a blade a few pixels wide at the working size has stepped edges, and
        two blades of the tuning seeds had a solidity of 0.43 and 0.85.
    complete_fine_edge : bool
        With ``complete_fine``: a piece of the finer cut that passes its tests (compact, or thin and straight,
        while ``complete_fine_solidity`` is on) may reach the image's edge (``fine_edge`` of :func:`~veil.segment.figures.attached_figures`; on by default since
        2026-12-05; False: off). An object cut by the frame runs to the edge, so no part of it the coarse cut
        joined to the ground could be taken before: on images with half the objects cut by the frame, recall
        0.47 of those objects (docs/extent-history.md).
    complete_fine_every : bool
        With ``complete_fine``: the finer cut looks into every segment of the first cut that touches the growth and
        was not taken, not only those too large or reaching the image's edge (``fine_every`` of
        :func:`~veil.segment.figures.figure_growths`; on by default since 2026-12-07, False: the default of before).
        A photographed bomb's body joined to a piece of its dark ground is a small, ragged segment, and a piece of
        its own at the finer scale (docs/extent-history.md, the 2026-12-07 17:15 block).
    complete_edge_solidity : float
        Figures only: a segment of the first cut or a smooth patch may reach the image's edge if it meets the
        frame on one side only, reaching in from it at least half as far as it runs along it
        (:func:`~veil.segment.figures.cut_by_frame`), and its solidity is at least this, or it is thin and
        straight as ``complete_fine_thin`` asks (``edge_solidity`` of
        :func:`~veil.segment.figures.attached_figures`; 0: off, as before). An object cut by the frame is a solid
        or straight piece running to it (a blade on a band of its own colour, a half disc); docs/extent-history.md
        has the trade (0.9 since 2026-12-05).
    complete_later_solidity : float
        Figures only, with ``complete_rounds`` > 1: a figure found in a later round, attached only to what an
        earlier round found, must have at least this solidity, or be thin and straight, or be a rim or thin
        curve at most 2 pixels deep (``later_solidity`` of
        :func:`~veil.segment.figures.attached_figures`; 0: off, as before 2026-12-05; 0.85 since). The figures
        beside an object's body are mostly ragged pieces of the ground around it; docs/extent-history.md has the
        trade.
    complete_compact_contrast : float
        Figures only: a segment of the first cut that stands out by less than the figures' 10 CIELAB
        units is still taken if it stands out by at least this and is as compact as
        ``complete_fine_solidity`` asks (``compact_contrast`` of
        :func:`~veil.segment.figures.attached_figures`; 0: off; 5 by default since 2026-12-05): a dark
        body on a dark ground, standing out by 9 units.
    complete_noise_floor : float
        Figures only: the smooth patches' bar (``complete_smooth``) is raised by this quantile of the image's
        grain map, the grain of its flattest places (``noise_floor`` of
        :func:`~veil.segment.figures.figure_growths`; 0: off; 0.02 by default since 2026-12-07). On an image drawn
        in flat colours it is 0 and changes nothing; on a photograph it is the sensor's noise, which reads a flat
        object as grained under the bare bar.
    complete_faint, complete_faint_elongation, complete_faint_ragged : float
        Figures only: a segment standing out by less than 10 CIELAB units is still taken if it stands out by
        ``complete_faint`` (0: off; 4 by default since 2026-12-07) and is thin and straight: at least
        ``complete_faint_elongation`` times longer than wide, its outline at most ``complete_faint_ragged`` times
        its convex hull's (``faint`` of :func:`~veil.segment.figures.figure_growths`): a grained blade on a road
        of nearly its colour, which the smooth patches find only on a drawn, flat blade.
    complete_denoise : str
        Figures only: ``"meanshift"`` cuts a mean-shift filtered copy (grain flattened before the cut: more of
        the objects of a grained or noisy photograph found, for less recall and more area on drawn images, about
        30 ms per image, docs/extent-history.md); ``"auto"`` (the default since 2026-12-07) does so only when the
        grain of the image's flattest 2 % exceeds :data:`~veil.segment.figures.NOISY`, as a photograph's does and
        a drawing in flat colours does not; ``"none"`` cuts the copy as it is.
    complete_fine_again, complete_fine_again_contrast : float
        Figures only, with ``complete_fine``, on an image cut from the mean-shift copy (``complete_denoise``): the
        finer cut's pieces that touch the growth and are not taken are cut again at this scale (when it is finer
        than ``complete_fine``), and their compact or thin, straight pieces standing out by this contrast are taken
        too (``fine_again`` of :func:`~veil.segment.figures.figure_growths`; 0: off; 100 and 15 by default since
        2026-12-07). Filtered, a grained bomb body and a dark ground of its tone flatten alike, and the cut at 200
        still joins them. Other images are not cut again: on drawn images the pieces so freed were mostly ground
        (docs/extent-history.md).
    complete_aligned : float
        Figures only, with ``complete_fine``: a thin, straight piece of the finer cut, at least this many times
        longer than wide, that touches a hidden piece end-on and continues it along its own axis is taken whatever
        its colour (``aligned`` of :func:`~veil.segment.figures.figure_growths`,
        :func:`~veil.segment.figures.aligned_pieces`; 0: off; 5 by default since 2026-12-07 15:00). A blade grained
        like the band of its colour it lies on stands out by its outline and shading only, which the finer cut
        follows and no contrast test reads; its hidden handle gives the axis. A strip of ground touching a round
        or crosswise hidden piece, or off its axis, is not taken, unless its axis runs on down the hidden mask
        (``complete_aligned_run``: a round hidden piece at least that many of its widths across;
        docs/extent-history.md).
    complete_aligned_gap : float
        With ``complete_aligned``: such a piece may lie this much farther from the growth than a touching one (2
        pixels), a share of the figure search's copy's longer side (``aligned_gap`` of
        :func:`~veil.segment.figures.figure_growths`; 0: it must touch it, as before 2026-12-07 19:30; 0.02 by
        default since): a blade beyond the dark guard between it and its hidden handle, which no figure test took.
        A piece is weighed first by the hidden pixels it touches, so the gap only ever takes more
        (docs/extent-history.md).
    complete_aligned_run : float
        With ``complete_aligned``: such a piece is also taken, whatever the shape of the hidden piece it touches,
        when its axis, carried on beyond its touching end, runs through hidden pixels for at least this many of its
        widths (``aligned_run`` of :func:`~veil.segment.figures.figure_growths`, ``run`` of
        :func:`~veil.segment.figures.aligned_pieces`; 0: off, as before 2026-12-07 21:45; 5 by default since). A
        handle hidden with its crosswise guard, or with a patch of ground the counterfactual hid beside it, is one
        hidden component with no axis along the blade's, so the axis test refused the blade beyond it; on
        photographed fresh seeds 48-49 recall rose 0.811 -> 0.830 (ResNet-18) and 0.737 -> 0.751 (MobileNetV3), the
        drawn images' recall unchanged, area/GT up 0.01-0.10 (docs/extent-history.md).
    complete_evidence : float
        Figures only: a colour figure (not a smooth patch) is taken only if its mean attribution is at
        least this quantile of the image's attribution (``min_weight`` of
        :func:`~veil.segment.figures.attached_figures`, with ``attribution`` as the weight; 0: off;
        without ``attribution`` nothing is weighed), so that a figure beside the object that the
        classifiers did not attend to (a kimono under a blade, the sails behind it) stays in sight.
        Since 2026-12-03 14:00 UTC; docs/extent-history.md has the trade.
    complete_evidence_relative : float
        Figures only, with ``complete_evidence``: a figure under that quantile is still taken if its
        mean attribution is at least this share of that of the hidden piece it is attached to
        (``relative_weight`` of :func:`~veil.segment.figures.attached_figures`; 0: off), so that the
        rest of an object the map holds little of everywhere (a second object) is still taken.
    complete_evidence_solidity : float
        Figures only, with ``complete_evidence``: a figure under both attribution bars is still taken if it stands
        out by the figures' contrast and its solidity is at least this (``exempt_solidity`` of
        :func:`~veil.segment.figures.attached_figures`; 0, the default: off). A model that keys on a bomb's spark
        attends little to its round body, which is solid; but so is a harmless disc or a window pane lying against
        the object. At 0.95 it found more of the objects on the tuning seeds and not on fresh ones, for more area
        on both: docs/extent-history.md.
    complete_max_figure, complete_max_figure_relative : float, float
        Figures only: the largest figure (one segment of the figure search's cut) the complete step may take, as a
        share of the image: ``complete_max_figure``, or ``complete_max_figure_relative`` times the share already
        hidden if that is more, and never over 10 % (the figure search's own bound, ``max_region`` of
        :func:`~veil.segment.figures.attached_figures`; 0.1 and 0, the defaults, are that bound alone). A larger
        segment touching the growth is cut finer instead, and only its compact or thin pieces may be taken. A
        jacket, a skirt or a fence beside a small object is such a segment. Opt-in (since 2026-12-06): at 0.06 and
        0.5 it took 0.2–0.3 off the benchmark's area/GT on the tuning seeds at recall within 0.006, but the
        benchmark's objects are small (at most 8.4 % of the image), the report seeds gained less (0.04–0.05), and
        a larger object's body is no figure any more: of a disc of 11 % of the image behind its spark, only the
        inside is hidden, as a hole, and the outline stays in sight (docs/extent-history.md).
    complete_limit : str
        Figures and GrabCut: what a growth must keep. ``"safe"`` (default): every model under its
        threshold on the extent's copy (``work_size``), under the light views and at full size (see
        ``work_size``); ``"margin"``: the
        margin too, if the margin step reached it (until 2026-12-03). A body the counterfactual did
        not need often lowers the margin a little when it is hidden, and an object left in sight
        breaks Veil's promise where a smaller margin does not (docs/extent-history.md).
    complete_secure : int
        Figures and GrabCut: when a growth makes the image unsafe again (or, under the light views, when the
        margin step had reached its margin), at most this many touching regions (each at most ``max_region``,
        the one that lowers the worst logit most first, with reason ``margin``) are added to make it safe
        again before the growth is refused (0: refused at once, as before 2026-12-04; docs/extent-history.md).
    max_steps : int
        Most steps of the margin step; each adds one candidate (a touching region with its colour
        group), so it may add more regions than this. Two steps hid less background on one training of
        the benchmark's cards, but left objects in sight on another (docs/extent-history.md).
    rescore : int
        After its first step, the margin step weighs again only this many of the best candidates of the
        step before and the new ones (0: every candidate at every step); closure rounds weigh only
        candidates not weighed in an earlier round.
    closure_pool : int
        Closure weighs its candidates in pools of this many first (0 or 1, the default: each on its own): a
        pool whose candidates, hidden together, lower the worst logit by less than ``min_gain`` is taken to
        hold none that would alone, and only the candidates of the other pools are weighed one by one (group
        testing). Few candidates carry evidence, so most pools cost one classification, not one a candidate. It
        holds when hiding more never raises the logit, and a candidate that gains alone but not in its pool is
        missed: on the benchmark's report seeds 2 of 26 such candidates with ResNet-18, 14 of 80 with
        MobileNetV3 and 106 of 309 with a ShuffleNetV2 card. Off by default; with a costly classifier whose
        closure candidates are many, 4 saves classifications (docs/extent-history.md).
    margin_area : float
        The margin step adds the candidate with the largest logit drop per (share of the image it
        hides) to this power (0, the default: the largest drop, whatever its size; 1 hides less
        but, on the report seeds, also less of the objects: docs/extent-history.md).
    prune : int
        The prune step (6) weighs this many of the largest split and margin regions (0: off, as before
        2026-12-05 08:30 UTC): those the verdict no longer needs once the complete step has hidden the object
        are shown again, and the complete step grows once more into them only. On the report seeds
        ResNet-18's area/GT went 3.17 → 2.92 (median 1.60 → 1.45) and MobileNet's 4.97 → 4.67 at recall within
        0.003 (docs/extent-history.md).
    prune_from : sequence of str
        The reasons of the regions the prune step may show again, of ``"split"``, ``"closure"`` and
        ``"margin"`` (closure regions too hid less on the tuning seeds, but left thin blades in sight that
        the complete step did not find again).
    prune_gain : float
        A region the prune step weighs stays hidden if showing it alone again raises the worst unsafe logit by at
        least this much: it carries evidence of its own (a piece of a thin object the complete step cannot find
        again); ground raises it by about 0.
    tiles, tile_fraction, tile_rounds : int, float, int
        The second look (step 7, only when the pipeline passes ``look``): the delivered image is cut
        into ``tiles`` × ``tiles`` overlapping tiles of ``tile_fraction`` of its sides
        (:func:`tile_boxes`; none under 32 pixels on a side), each classified; the worst unsafe tile
        not yet looked at is safeguarded on its own (``look``) and what that hides is hidden too,
        for up to ``tile_rounds`` tiles (``tiles=0``: off). An object the classifiers no longer see in the whole image once another is hidden
        (a second bomb, a blade they overlooked) is often plain to them at 1.7 times the size. Two tiles a side
        of 0.6 (each point of the image in one to four tiles) classify 4 tiles where 3 of half classified 9,
        at the same recall on the benchmark's tuning seeds (docs/extent-history.md).
    look : callable, optional
        ``look(crop) -> (mask or None, images classified)``: a whole safeguarding run on a crop
        (:class:`veil.pipeline.Safeguarder` passes one); None: no second look.
    work_size : int
        Longer side of the copy the extent classifies (the pipeline re-classifies the
        full-size delivered image). "Full size" here is the size of ``image``: the pipeline's working copy (at
        most ``search_size``, 1024 pixels by default). For a larger image the pipeline judges the delivered image
        at its own size again, and a mask at the verdict's edge can pass one and fail the other (an unsafe score
        of 0.491 on the working copy, 0.507 delivered, threshold 0.5: one of 1,201 flagged images in sixteen runs
        of the benchmark, seeds 11-13 and 44-49, both cards, drawn and photographed): that image is delivered
        fully obscured
        (docs/extent-history.md, 2026-12-07 20:45).
    batch_size : int
        Candidates per call of ``score``.

    Returns
    -------
    ExtentOutcome
        ``labels`` is ``labels`` with split regions replaced by their superpixels.

    Examples
    --------
    >>> out = object_extent(img, styled, labels, (3,), score, np.array([0.5]))  # doctest: +SKIP
    >>> out.reasons  # doctest: +SKIP
    ('counterfactual', 'closure')
    """
    image, styled, labels = np.asarray(image), np.asarray(styled), np.asarray(labels)
    _check(image, styled, labels, selected)
    for name, v in (("margin", margin), ("min_gain", min_gain), ("margin_area", margin_area),
                    ("complete_dilate", complete_dilate), ("complete_smooth", complete_smooth),
                    ("complete_through", complete_through), ("complete_fine", complete_fine),
                    ("complete_fine_contrast", complete_fine_contrast), ("complete_fine_again", complete_fine_again),
                    ("complete_fine_again_contrast", complete_fine_again_contrast),
                    ("complete_compact_contrast", complete_compact_contrast), ("complete_faint", complete_faint),
                    ("complete_evidence_relative", complete_evidence_relative),
                    ("complete_max_figure_relative", complete_max_figure_relative), ("prune_gain", prune_gain),
                    ("group_delta", group_delta), ("attr_ratio", attr_ratio)):
        checks.number(name, v, low=0)
    for name, v in (("max_fraction", max_fraction), ("max_region", max_region), ("split_fraction", split_fraction)):
        checks.number(name, v, low=0, high=1, low_open=True)
    for name, v in (("complete_through_solidity", complete_through_solidity),
                    ("complete_fine_solidity", complete_fine_solidity),
                    ("complete_edge_solidity", complete_edge_solidity),
                    ("complete_later_solidity", complete_later_solidity),
                    ("complete_evidence_solidity", complete_evidence_solidity)):
        checks.number(name, v, low=0, high=1)
    checks.number("complete_stable", complete_stable, low=0, high=1, noun="an intersection over union")
    checks.number("split_refine", split_refine, low=0, high=1, noun="a quantile")
    checks.number("split_cut_area", split_cut_area, low=0, high=1, noun="a share of the image")
    checks.number("complete_noise_floor", complete_noise_floor, low=0, high=1, high_open=True, noun="a quantile")
    checks.number("complete_evidence", complete_evidence, low=0, high=1, high_open=True, noun="a quantile")
    checks.number("complete_max_figure", complete_max_figure, low=0, high=MAX_FIGURE, low_open=True,
                  noun="a share of the image")
    for name, v in (("complete_aligned", complete_aligned), ("complete_fine_thin", complete_fine_thin)):
        checks.number(name, v, low=1, off=True, noun="a length-to-width ratio")
    checks.number("complete_aligned_gap", complete_aligned_gap, low=0, high=0.25,
                  noun="a share of the figure search's copy's longer side")
    checks.number("complete_aligned_run", complete_aligned_run, low=0, note="the piece's widths")
    for name, v in (("complete_faint_elongation", complete_faint_elongation),
                    ("complete_faint_ragged", complete_faint_ragged)):
        checks.number(name, v, low=1)
    for name, v in (("split_rerank", split_rerank), ("complete_expand", complete_expand),
                    ("group_members", group_members), ("rescore", rescore), ("closure_pool", closure_pool),
                    ("tiles", tiles), ("tile_rounds", tile_rounds), ("complete_secure", complete_secure),
                    ("prune", prune), ("rounds", rounds), ("max_steps", max_steps)):
        checks.integer(name, v, low=0)
    checks.integer("batch_size", batch_size, low=1)
    checks.integer("complete_rounds", complete_rounds, low=1)
    checks.integer("complete_thin_window", complete_thin_window, low=2, off=True, note="pixels")
    checks.integer("complete_size", complete_size, low=32, note="pixels")
    if tiles == 1:
        raise InvalidParameterError("tiles must be 0 (no second look) or at least 2, got 1")
    checks.number("tile_fraction", tile_fraction, low=0, high=1, low_open=True, high_open=True)
    for name, v in (("views", views), ("trim", trim), ("complete_fine_edge", complete_fine_edge),
                    ("complete_fine_every", complete_fine_every), ("complete_bridge", complete_bridge)):
        checks.flag(name, v)
    checks.choice("closure_on", closure_on, ("delivered", "original"))
    checks.choice("complete", complete, ("none", "grabcut", "figures"))
    checks.choice("complete_limit", complete_limit, ("safe", "margin"))
    checks.choice("complete_denoise", complete_denoise, ("none", "meanshift", "auto"))
    if complete_grow is None:
        complete_grow = 5.0 if complete == "figures" else 2.0
    checks.number("complete_grow", complete_grow, low=0, low_open=True)
    if not isinstance(prune_from, (list, tuple)) or not all(r in ("split", "closure", "margin") for r in prune_from):
        raise InvalidParameterError(
            f"prune_from must be a list of 'split', 'closure' and 'margin', got {prune_from!r}")
    checks.integer("work_size", work_size, low=32, note="pixels")
    if segments is not None and np.asarray(segments).shape != labels.shape:
        raise InvalidParameterError(
            f"segments (shape {np.asarray(segments).shape}) must have the labels' shape {labels.shape}")
    thresholds = np.asarray(thresholds, dtype=np.float64)
    h, w = labels.shape
    trace: list[dict[str, Any]] = []

    # -- 1. split: every region larger than split_fraction → its superpixels ------------------
    # (so that margin and closure can take the part of a large touching region that holds the
    # rest of the object, and a chosen large region can be cut down to the pieces it needs)
    labels = labels.astype(np.int64)
    n = int(labels.max()) + 1
    area = np.bincount(labels.ravel(), minlength=n) / float(labels.size)
    big_all = np.flatnonzero(area > split_fraction) if segments is not None else np.zeros(0, np.int64)
    big = [int(r) for r in selected if int(r) in set(big_all.tolist())]
    pieces: dict[int, list[int]] = {}
    if big_all.size:
        seg = np.asarray(segments).astype(np.int64)
        lut = np.zeros(n, bool)
        lut[big_all] = True
        inside = lut[labels]
        k = int(seg.max()) + 1
        uniq, inv = dense_labels(labels[inside] * k + seg[inside])
        new = labels.copy()
        new[inside] = n + inv
        owner = uniq // k
        for r in big:
            pieces[r] = (n + np.flatnonzero(owner == r)).tolist()
        labels = new
        n = n + len(uniq)
        area = np.bincount(labels.ravel(), minlength=n) / float(labels.size)

    shape = fit_within((h, w), work_size)
    work = _Work(_small(image, shape), _small(styled, shape), _nearest(labels, shape), score,
                 logit(thresholds), views, step="split")

    chosen: list[int] = []
    reasons: list[str] = []
    for r in selected:
        if int(r) not in pieces:
            chosen.append(int(r))
            reasons.append("counterfactual")
    att = np.asarray(attribution, dtype=np.float64) if attribution is not None else np.zeros((h, w))
    if att.shape != (h, w):
        raise InvalidParameterError(f"attribution (shape {att.shape}) must have the labels' shape {(h, w)}")
    mean_att = np.bincount(labels.ravel(), weights=att.ravel(), minlength=n) / np.maximum(
        np.bincount(labels.ravel(), minlength=n), 1)
    if pieces:
        pool = sorted((p for ps in pieces.values() for p in ps), key=lambda p: (-mean_att[p], p))

        def scan(pool: list[int]) -> tuple[int, ...] | None:
            # the fewest superpixels (in the pool's order) that keep the image safe, scanned in batches
            # of 1, 2, 4, … (hiding more can make an image less safe, so no bisection)
            k, step = 1, 1
            while k <= len(pool):
                ks = list(range(k, min(len(pool), k + step - 1) + 1))
                ok = np.flatnonzero(work.excess([chosen + pool[:j] for j in ks]) <= 0)
                if ok.size:
                    return tuple(chosen + pool[: ks[int(ok[0])]])
                k, step = ks[-1] + 1, min(2 * step, batch_size)
            return None

        def shrink(keep: list[int]) -> list[int]:
            # delta debugging (Zeller's ddmin) on a prefix that keeps the image safe: the prefix is cut into
            # n chunks, the complements are classified in one batch, and the safe one that hides least is
            # kept (n shrinks by one), else the chunks are halved; at most SHRINK_BUDGET images are classified
            n, spent = 2, 0
            while len(keep) > 1 and spent < SHRINK_BUDGET:
                size = -(-len(keep) // n)
                trials = [keep[:i] + keep[i + size :] for i in range(0, len(keep), size)][: SHRINK_BUDGET - spent]
                spent += len(trials)
                ok = np.flatnonzero(work.excess([chosen + t for t in trials]) <= 0).tolist()
                if ok:
                    keep, n = trials[min(ok, key=lambda j: float(area[trials[j]].sum()))], max(n - 1, 2)
                elif n >= len(keep):
                    break
                else:
                    n = min(2 * n, len(keep))
            return keep

        found = scan(pool)
        long = split_rerank > 0 and (found is None or len(found) - len(chosen) > split_rerank)
        wide = split_cut_area > 0 and found is not None and float(
            area[[p for p in found if p not in chosen]].sum()) > split_cut_area
        if long or wide:  # a broad map put background before the key part; the prefix that hides less is kept
            if long:  # each superpixel hidden on its own, the largest logit drop first, scanned again
                ex = _weigh(work, chosen, [[p] for p in pool], batch_size)
                again = scan([pool[j] for j in np.argsort(ex, kind="stable")])
            else:  # only wide (so a prefix was found): it is cut down, within a bounded number of classifications
                again = tuple(chosen + shrink([p for p in found or () if p not in chosen]))
            if again is not None and (found is None or float(area[list(again)].sum()) < float(area[list(found)].sum())):
                found = again
        if found is None:  # the superpixels alone do not do it: keep the whole region
            for ps in pieces.values():
                chosen += ps
                reasons += ["counterfactual"] * len(ps)
        else:
            kept = [p for p in found if p not in chosen]
            if split_refine > 0:  # drop again, least attribution first, the pieces the verdict does not need
                under = float(np.quantile(att, split_refine)) if split_refine < 1 else np.inf
                rest = sorted((p for p in kept if mean_att[p] < under), key=lambda p: (mean_att[p], p))
                while rest and len(kept) > 1:  # (one batch: each of the next pieces dropped alone; the first that may go goes)
                    trial = [[q for q in kept if q != p] for p in rest[:batch_size]]
                    ok = np.flatnonzero(work.excess([chosen + t for t in trial]) <= 0)
                    if ok.size:
                        kept, rest = trial[int(ok[0])], rest[int(ok[0]) + 1 :]
                    else:
                        rest = rest[batch_size:]
            chosen += kept
            reasons += ["split"] * len(kept)
        trace.append({"step": "split", "regions": big, "kept": len(chosen), "evaluated": work.n_evaluated})

    adj = _adjacency(work.labels, n)
    hidden = float(area[chosen].sum())

    # a touching region together with the touching-or-not regions of its colour group (the colour
    # merge at ``group_delta``), so an object cut into several superpixels is weighed as one; a group
    # of more than ``group_members`` superpixels is ground, and the touching region is weighed alone
    from veil.segment import merge_similar

    group = np.full(n, -1, np.int64)
    present = np.bincount(work.labels.ravel(), minlength=n) > 0
    _, dense = dense_labels(work.labels)
    merged = merge_similar(work.image, dense.reshape(work.labels.shape), group_delta) if group_delta else None
    if merged is not None:
        group[work.labels.ravel()] = merged.ravel()
    members: dict[int, list[int]] = {}
    for q in np.flatnonzero(present):
        members.setdefault(int(group[q]) if group[q] >= 0 else -1 - int(q), []).append(int(q))

    def neighbours(ids: Sequence[int]) -> list[tuple[int, ...]]:
        s = set(ids)
        out: dict[tuple[int, ...], None] = {}
        for q in sorted({q for r in ids for q in adj[r]} - s):
            if area[q] > max_region or hidden + area[q] > max_fraction:
                continue
            key = int(group[q]) if group[q] >= 0 else -1 - q
            kin = members.get(key, [q])
            grown = (q,) if group_members and len(kin) > group_members else tuple(sorted({q} | set(kin) - s))
            if float(area[list(grown)].sum()) > max_region or hidden + float(area[list(grown)].sum()) > max_fraction:
                grown = (q,)
            out[grown] = None
        return list(out)

    # -- 2. closure: touching regions that still carry evidence -------------------------------
    work.step = "closure"
    cf = [r for r, why in zip(chosen, reasons, strict=True) if why in ("counterfactual", "split")]
    cf_att = float(np.average(mean_att[cf], weights=area[cf])) if cf and float(area[cf].sum()) > 0 else 0.0
    base = float(work.excess([chosen])[0])
    original = float(work.excess([[]])[0]) if closure_on == "original" else 0.0
    weighed: set[tuple[int, ...]] = set()  # (a candidate weighed in an earlier round is not weighed again)
    for _ in range(rounds):
        cand = neighbours(chosen)
        if rescore:
            cand = [q for q in cand if q not in weighed]
            weighed.update(cand)
        if not cand:
            break
        # (original: the region's own evidence, with the key part still in sight)
        ref = original if closure_on == "original" else base
        with_ids = [] if closure_on == "original" else chosen  # (hidden with each candidate)
        if closure_pool > 1 and attr_ratio <= 0 and len(cand) > 1:  # group testing: pools first
            pools = [cand[i : i + closure_pool] for i in range(0, len(cand), closure_pool)]
            pooled = ref - _weigh(work, with_ids, [[r for q in pool for r in q] for pool in pools], batch_size)
            gain = np.full(len(cand), -np.inf)
            idx = [i for j, pool in enumerate(pools) if pooled[j] >= min_gain or len(pool) == 1
                   for i in range(j * closure_pool, j * closure_pool + len(pool))]
            if idx:
                gain[idx] = ref - _weigh(work, with_ids, [cand[i] for i in idx], batch_size)
        else:
            gain = ref - _weigh(work, with_ids, cand, batch_size)
        # evidence on the logit, or (attr_ratio > 0) as much attribution as the counterfactual and any gain
        hot = [attr_ratio > 0 and cf_att > 0 and float(np.average(mean_att[list(q)], weights=area[list(q)]))
               >= attr_ratio * cf_att for q in cand]
        take = [qs for qs, g, a in sorted(zip(cand, gain, hot, strict=True), key=lambda t: -t[1])
                if g >= min_gain or (a and g > 0)]
        added: list[int] = []
        for qs in take:
            new_ids = [r for r in qs if r not in added]
            if hidden + float(area[new_ids].sum()) > max_fraction:
                continue
            added += new_ids
            hidden += float(area[new_ids].sum())
        if not added:
            break
        chosen += added
        reasons += ["closure"] * len(added)
        base = float(work.excess([chosen])[0])
        trace.append({"step": "closure", "added": added, "excess": round(base, 4), "evaluated": work.n_evaluated})

    # -- 3. margin: a harder verdict (margin under the threshold, also under light views) ------
    work.step = "margin"
    # candidates are ranked on the image itself (by logit drop, or drop per area hidden); only the best
    # one is checked under the views
    # (after the first step, with ``rescore``, only the best few of the step before and the new ones)
    current = float(work.excess([chosen], views=True)[0])
    steps = 0
    gains: dict[tuple[int, ...], float] = {}  # logit drop of each candidate when it was last weighed
    while current > -margin and steps < max_steps:
        cand = neighbours(chosen)
        if rescore and gains:
            cand = sorted((q for q in cand if q in gains), key=lambda q: -gains[q])[:rescore] + [
                q for q in cand if q not in gains]
        if not cand:
            break
        ex = _weigh(work, chosen, cand, batch_size)
        drops = float(work.excess([chosen])[0]) - ex
        gains.update(zip(cand, drops.tolist(), strict=True))
        if margin_area > 0 and (drops > 0).any():  # the most logit per share of the image hidden
            cost = np.array([max(float(area[list(q)].sum()), 1e-9) for q in cand]) ** margin_area
            j = int(np.argmax(np.where(drops > 0, drops / cost, -np.inf)))
        else:
            j = int(np.argmin(ex))
        worst = float(work.excess([chosen + list(cand[j])], views=True)[0])
        if worst >= current:  # nothing helps any more
            break
        chosen += list(cand[j])
        reasons += ["margin"] * len(cand[j])
        hidden += float(area[list(cand[j])].sum())
        current = worst
        steps += 1
    base = float(work.excess([chosen])[0])
    trace.append({"step": "margin", "excess": round(current, 4), "added": steps, "evaluated": work.n_evaluated})

    # -- 4. trim: drop closure regions whose removal now costs (almost) no evidence -------------
    work.step = "trim"
    extra = [i for i, why in enumerate(reasons) if why == "closure"] if trim else []
    if extra:
        limit = -margin if current <= -margin else 0.0
        trial = [[r for k, r in enumerate(chosen) if k != i] for i in extra]
        ex = _weigh(work, [], trial, batch_size)
        drop = {i for i, e in zip(extra, ex, strict=True) if e - base < min_gain / 2 and e <= limit}
        if drop:
            kept = [r for k, r in enumerate(chosen) if k not in drop]
            if float(work.excess([kept], views=current <= -margin)[0]) <= limit:
                reasons = [why for k, why in enumerate(reasons) if k not in drop]
                chosen = kept
                trace.append({"step": "trim", "dropped": len(drop)})

    # -- 5. complete: the objects the hidden mask lies on, class-agnostically ------------------
    work.step = "complete"
    # (the largest growth first: figures followed for ``complete_rounds`` rounds, behind outlines and
    # into a finer cut of the segments too large or running to the edge; if it is refused, by the
    # verdict or the bound on the hidden share, the same without the finer cut, then one round, then
    # one round without looking through, so the step never loses more than a smaller growth would)
    scene: dict[str, Any] = {}  # (the cuts of the image, made once for both complete steps)

    def complete_step(within: np.ndarray | None = None) -> bool:
        # (one complete step from what is hidden now, only inside ``within`` if given; True when it hid more)
        nonlocal labels, n, chosen, reasons
        tries: list[tuple[float, int, float]] = []
        if complete != "none" and chosen:
            tries = [(0.0, 1, 0.0)]  # (grabcut: one try)
            if complete == "figures":
                tries = list(dict.fromkeys([(complete_through, int(complete_rounds), float(complete_fine)),
                                            (complete_through, int(complete_rounds), 0.0), (complete_through, 1, 0.0),
                                            (0.0, 1, 0.0)]))
            hidden_px = regions_mask(labels, chosen)
            if complete == "figures":  # by the enclosed, contrasting segments and smooth patches attached to it
                from veil.segment.figures import figure_growths

                growths = figure_growths(image, hidden_px, tries, grow=complete_grow, smooth=complete_smooth,
                                         size=int(complete_size), thin_window=int(complete_thin_window),
                                         fine_contrast=complete_fine_contrast,  # each ≤ 10 %
                                         fine_solidity=complete_fine_solidity, fine_thin=complete_fine_thin,
                                         fine_edge=bool(complete_fine_edge), edge_solidity=complete_edge_solidity,
                                         fine_every=bool(complete_fine_every),
                                         later_solidity=complete_later_solidity,
                                         compact_contrast=complete_compact_contrast,
                                         compact_solidity=complete_fine_solidity,
                                         weight=att if attribution is not None else None,
                                         min_weight=complete_evidence,
                                         relative_weight=complete_evidence_relative,
                                         exempt_solidity=complete_evidence_solidity,
                                         through_solidity=complete_through_solidity,
                                         bridge=bool(complete_bridge), noise_floor=complete_noise_floor,
                                         faint=complete_faint, faint_elongation=complete_faint_elongation,
                                         faint_ragged=complete_faint_ragged, denoise=complete_denoise,
                                         fine_again=complete_fine_again,
                                         fine_again_contrast=complete_fine_again_contrast,
                                         aligned=complete_aligned, aligned_gap=complete_aligned_gap,
                                         aligned_run=complete_aligned_run, scene=scene,
                                         max_region=min(MAX_FIGURE, max(complete_max_figure, complete_max_figure_relative
                                                                         * float(hidden_px.mean()))))
        refused: list[np.ndarray] = []
        for through, n_rounds, fine in tries:
            if complete == "grabcut":  # by colour, pixel-fine
                from veil.segment.grabcut import grow_to_object

                grown = grow_to_object(image, hidden_px, grow=complete_grow, expand=int(complete_expand),
                                       stable=complete_stable, max_region=max_region, dilate=complete_dilate)
            else:  # (one segmentation for every try)
                grown = next(growths)
            grown |= _holes(grown, max_region)  # a hole in what is hidden would be a peephole onto the object
            new_px = grown & ~hidden_px
            if within is not None:
                new_px &= within
            if not new_px.any():
                break
            if any(np.array_equal(new_px, r) for r in refused):  # (a second round that found nothing more)
                continue
            refused.append(new_px)
            if float(hidden_px.mean() + new_px.mean()) > max_fraction:
                continue
            grown_labels, ids = _cut_in(labels, n, new_px)
            before_labels = work.labels
            work.relabel(_nearest(grown_labels, shape))
            # still safe: a pixel-fine mask keeps the object's outline, which a model (and a person) may
            # still recognise, so the verdict is asked again, under the light views if the margin step
            # reached its margin (on the extent's copy, and once at the size of ``image``, the pipeline's
            # working copy: see work_size);
            # with complete_limit "margin" the margin too
            limit = -margin if current <= -margin and complete_limit == "margin" else 0.0
            full_ex = work.full_excess(hidden_px | new_px, image, styled)
            secured: list[int] | None = []
            if not (full_ex <= limit and float(work.excess([chosen + ids], views=current <= -margin)[0]) <= limit):
                # the object hidden, the verdict lost (a counterfactual barely under the threshold moves with any
                # change): touching regions are added, as the margin step would, until it holds again
                secured = _secure(work, grown_labels, chosen + ids, image, styled, limit=limit,
                                  views=current <= -margin, steps=int(complete_secure), max_region=max_region,
                                  max_fraction=max_fraction, batch_size=batch_size)
            if secured is not None:
                labels, n = grown_labels, n + len(ids)
                chosen += ids + secured
                reasons += ["object"] * len(ids) + ["margin"] * len(secured)
                trace.append({"step": "complete", "added": len(ids), "pixels": int(new_px.sum()),
                              "through": through, "rounds": n_rounds, "fine": fine, "secured": len(secured),
                              "evaluated": work.n_evaluated})
                return True
            work.relabel(before_labels)
        return False

    completed = complete_step()

    # -- 6. prune: split and margin regions the verdict no longer needs once the object is hidden -----
    work.step = "prune"
    # (each of the largest weighed alone, and kept if it carries evidence of its own; then the longest run
    # of those that may go alone, the largest first, that may go together; the object parts they hid are
    # found again inside them by a second complete step)
    if prune > 0 and completed:
        size = np.bincount(labels.ravel(), minlength=n) / float(labels.size)
        limit = -margin if current <= -margin else 0.0
        kinds = set(prune_from)

        def without(drop: Sequence[int]) -> list[int]:  # (the hidden regions but those at positions ``drop``)
            return [r for k, r in enumerate(chosen) if k not in drop]

        weigh = sorted((k for k, why in enumerate(reasons) if why in kinds), key=lambda k: -size[chosen[k]])[: int(prune)]
        gone: list[int] = []
        if weigh:
            alone = work.excess([chosen] + [without([c]) for c in weigh])
            free = [c for c, e in zip(weigh, alone[1:], strict=True) if e <= limit and e - alone[0] < prune_gain]

            def held() -> Iterator[int]:  # the runs that may go together, the longest first, weighed a few at a time
                for top in range(len(free), 0, -_PRUNE_CHUNK):
                    js = list(range(top, max(0, top - _PRUNE_CHUNK), -1))
                    ex = work.excess([without(free[:j]) for j in js])
                    yield from (j for j, e in zip(js, ex, strict=True) if e <= limit)

            for j in islice(held(), 2):  # (the longest two, under the views if the margin was reached)
                if current > -margin or float(work.excess([without(free[:j])], views=True)[0]) <= limit:
                    gone = free[:j]
                    break
        kept = without(gone)
        if gone and work.full_excess(regions_mask(labels, kept), image, styled) <= limit:
            freed = regions_mask(labels, [chosen[k] for k in gone])
            reasons = [why for k, why in enumerate(reasons) if k not in gone]
            chosen = kept
            trace.append({"step": "prune", "dropped": len(gone), "evaluated": work.n_evaluated})
            complete_step(freed)

    # -- 7. look again: tiles of the delivered image that a classifier still finds unsafe -------
    work.step = "look"
    # (each safeguarded on its own, larger than the classifier saw it in the whole image)
    if look is not None and tiles >= 2 and chosen:
        hidden_px = regions_mask(labels, chosen)
        boxes = [b for b in tile_boxes((h, w), tiles, tile_fraction) if min(b[2], b[3]) >= _MIN_TILE]
        looked: set[int] = set()  # (each tile is safeguarded at most once)
        for _ in range(int(tile_rounds)):
            delivered = apply_mask(image, styled, hidden_px)
            crops = {i: np.ascontiguousarray(delivered[y : y + th, x : x + tw])
                     for i, (y, x, th, tw) in enumerate(boxes) if i not in looked}
            if not crops:
                break
            sc = np.asarray(score(list(crops.values())), dtype=np.float64)
            work.count(len(crops))
            ex = (logit(sc) - work.thr_logit[None, :]).max(axis=1)
            if ex.max() <= 0:
                break
            j = list(crops)[int(np.argmax(ex))]
            looked.add(j)
            y, x, th, tw = boxes[j]
            sub, used = look(crops[j])
            work.count(int(used))
            new_px = np.zeros((h, w), bool)
            new_px[y : y + th, x : x + tw] = True if sub is None else np.asarray(sub, bool)  # (none found: all of it)
            new_px &= ~hidden_px
            if not new_px.any():  # (its run hid nothing new: on to the next unsafe tile)
                continue
            grown_labels, ids = _cut_in(labels, n, new_px)
            if work.full_excess(hidden_px | new_px, image, styled) > 0:  # (only what keeps the whole image safe)
                trace.append({"step": "tile", "box": [y, x, th, tw], "refused": True, "evaluated": work.n_evaluated})
                continue
            labels, n = grown_labels, n + len(ids)
            chosen += ids
            reasons += ["tile"] * len(ids)
            hidden_px |= new_px
            trace.append({"step": "tile", "box": [y, x, th, tw], "added": len(ids), "pixels": int(new_px.sum()),
                          "found": sub is not None, "evaluated": work.n_evaluated})

    return ExtentOutcome(labels.astype(np.int32), tuple(chosen), tuple(reasons), work.n_evaluated, trace,
                         {k: v for k, v in work.by_step.items() if v})


def _weigh(work: _Work, hidden: list[int], cands: Sequence[Sequence[int]], batch_size: int) -> np.ndarray:
    """:meth:`_Work.excess` of ``hidden`` with each of ``cands`` hidden too, ``batch_size`` candidates a call."""
    return np.concatenate([np.zeros(0)] + [work.excess([hidden + list(q) for q in cands[i : i + batch_size]])
                                           for i in range(0, len(cands), batch_size)])


def _secure(work: _Work, labels: np.ndarray, hidden: list[int], image: np.ndarray, styled: np.ndarray, *,
            limit: float, views: bool, steps: int, max_region: float, max_fraction: float,
            batch_size: int = 16) -> list[int] | None:
    """Regions of ``labels`` (the label map at the image's size; ``work`` holds it at the working size) to hide
    besides ``hidden`` so that the image is safe by ``limit`` again (under the light views if ``views``, and at
    full size): at most ``steps``, each the touching region that lowers the worst logit most, none larger than
    ``max_region`` nor the whole beyond ``max_fraction`` of the image; candidates are scored ``batch_size`` at a
    time. None when that does not do it."""
    m = max(int(work.labels.max()), *hidden) + 1  # (a region too small for the working size may be hidden)
    adj = _adjacency(work.labels, m)
    share = np.bincount(work.labels.ravel(), minlength=m) / float(work.labels.size)
    extra: list[int] = []
    hid = float(share[hidden].sum())
    best = float(work.excess([hidden], views=views)[0])
    for _ in range(steps):
        now = set(hidden) | set(extra)
        cand = [q for q in sorted({q for r in now for q in adj[r]} - now)
                if share[q] <= max_region and hid + share[q] <= max_fraction]
        if not cand:
            return None
        ex = _weigh(work, hidden + extra, [[q] for q in cand], batch_size)
        q = cand[int(np.argmin(ex))]
        worst = float(work.excess([hidden + extra + [q]], views=views)[0])
        if worst >= best:  # nothing helps any more
            return None
        extra.append(q)
        hid += float(share[q])
        best = worst
        if worst <= limit and work.full_excess(regions_mask(labels, hidden + extra), image, styled) <= limit:
            return extra
    return None


def tile_boxes(shape: tuple[int, int], tiles: int, fraction: float) -> list[tuple[int, int, int, int]]:
    """``tiles`` × ``tiles`` boxes ``(y, x, height, width)``, each ``fraction`` of the image's sides,
    spread evenly from edge to edge (overlapping when ``tiles * fraction > 1``).

    Examples
    --------
    >>> tile_boxes((100, 200), 3, 0.5)[:3]
    [(0, 0, 50, 100), (0, 50, 50, 100), (0, 100, 50, 100)]
    >>> len(tile_boxes((100, 200), 3, 0.5)), tile_boxes((100, 200), 3, 0.5)[-1]
    (9, (50, 100, 50, 100))
    """
    h, w = shape
    th, tw = max(1, round(h * fraction)), max(1, round(w * fraction))
    return [(round(i * (h - th) / (tiles - 1)), round(j * (w - tw) / (tiles - 1)), th, tw)
            for i in range(tiles) for j in range(tiles)]


def extend(
    image: np.ndarray,
    styled: np.ndarray,
    labels: np.ndarray,
    selected: Sequence[int],
    score: Score,
    thresholds: Sequence[float] | np.ndarray,
    extent: str = DEFAULT_EXTENT,
    **options: Any,
) -> ExtentOutcome:
    """Run the registered ``extent`` on a counterfactual found by :func:`~veil.counterfactual.search`."""
    return EXTENTS.get(extent)(image, styled, labels, selected, score, np.asarray(thresholds, dtype=np.float64),
                               **options)
