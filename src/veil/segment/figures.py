"""Grow a seed mask by the figures attached to it: enclosed, contrasting segments, class-agnostically.

The counterfactual search hides what the classifier needs, often one distinctive part of an
object (a bomb's spark, a knife's handle), and the rest of the object may hold no evidence the
classifier can point to. :func:`attached_figures` asks the image's own segmentation instead: the
image is cut into Felzenszwalb segments, and a segment is taken as part of the object when it

* touches a seed piece,
* is *enclosed* — it lies inside a box ``grow`` times the piece's size around the piece and does
  not reach the image's edge (background goes on beyond an object; a part of the object stops
  near it), unless (``edge_solidity``) it reaches the edge as an object cut by the frame does
  (:func:`cut_by_frame`) and is solid or thin and straight, and
* stands out from its surroundings: its mean colour differs from a ring around it by at least
  ``contrast`` in CIELAB (a figure, not a patch of texture).

Unlike a colour model grown from the seed (:func:`veil.segment.grabcut.grow_to_object`), this
takes a part of another colour (a silver blade on a dark handle) and follows thin parts, since a
segment is kept or dropped whole. It adds background figures next to the seed too, and cannot
separate an object from a region of its own colour by colour alone. So, unless ``smooth`` is 0,
a second kind of figure is taken too: a *smooth patch* (a connected piece where the full-size
image has no grain, :func:`grain`) attached to a seed piece, enclosed as above, on a ground that
is grained. A smooth blade on a grained band of its own colour is one segment with the band by
colour, and a smooth patch of its own. Patches are cut at the seed: a smooth seed (a handle reaching
out of the band into a smooth sky) does not join the blade and the sky into one patch.

A segment touching a seed piece that is a rim or a thin curve (an object's outline, an
anti-aliased edge, a fuse) is looked through (``through``): the segments beyond it are candidates
too, so a bomb's body counts as attached when only its outline touches the hidden spark.

With ``rounds`` > 1 the search is repeated from what was found, on the same segmentation, so an
object is followed part by part: the body attached to a fuse that was attached to the hidden spark.
The later rounds take colour figures only, and with ``later_solidity`` only solid, thin and straight
or rim-like ones (the ground beside a body is mostly ragged).

With ``fine`` > 0, the segments that touch what was found but could not be figures because they
are too large or run on to the image's edge are cut again, finer (Felzenszwalb at scale ``fine``),
and the figures among their pieces are taken too (contrast at least ``fine_contrast``): a body
that the coarse cut joined to a pole or a ground of its own tone running to the edge. Only those
segments are cut again, so the background elsewhere is not broken into more figures; with
``figure_growths(fine_every=True)`` (the object extent's default since 2026-12-07) every touching segment
that was not taken is, which frees a body joined to a small, ragged piece of its ground.

With ``aligned`` > 0 (and a ``fine`` cut), a thin, straight piece of the finer cut that touches a hidden
piece end-on and *continues it along its own axis* is taken whatever its colour (:func:`aligned_pieces`): a
blade on a band of its own colour, beyond its hidden handle, which stands out from the band by its outline
and shading only. With ``aligned_gap`` the piece may lie that much farther from the hidden piece (a share of the
working copy's longer side), across a guard or a collar between them that is not hidden. With ``aligned_run``
the hidden piece need not be elongated itself: it is enough that the piece's axis, carried on beyond its touching
end, runs through the hidden mask for so many of the piece's widths (a handle whose hidden component also holds a
crosswise guard or a hidden patch of ground beside it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from veil import checks
from veil.errors import InvalidParameterError
from veil.segment.seeded import checked, dilate, resize_mask, seed_pieces, working_copy

#: The share of an image's pixels whose grain ``denoise="auto"`` reads: its flattest places.
FLATTEST = 0.02

#: ``denoise="auto"`` cuts a mean-shift filtered copy when the grain of the image's flattest 2 % exceeds this: about
#: 0 on an image drawn in flat colours, above it on most photographs (sensor noise); the extent benchmark's drawn
#: images, whose grounds are photographs, are over it now and then (2 and 13 of 80; docs/extent-history.md).
NOISY = 0.05

#: The largest share of the image one figure may cover (``max_region``'s default): the bound the object
#: extent's complete step may lower (``complete_max_figure``), never raise.
MAX_FIGURE = 0.1


def attached_figures(
    image: np.ndarray,
    seed: np.ndarray,
    *,
    grow: float = 3.0,
    scale: float = 400.0,
    sigma: float = 0.8,
    contrast: float = 10.0,
    max_region: float = MAX_FIGURE,
    size: int = 384,
    smooth: float = 0.5,
    texture_contrast: float = 1.0,
    texture_window: int = 5,
    thin_window: int = 3,
    through: float = 0.35,
    rounds: int = 1,
    fine: float = 0.0,
    fine_contrast: float = 20.0,
    fine_solidity: float = 0.0,
    fine_thin: float = 0.0,
    fine_edge: bool = False,
    edge_solidity: float = 0.0,
    later_solidity: float = 0.0,
    compact_contrast: float = 0.0,
    compact_solidity: float = 0.9,
    weight: np.ndarray | None = None,
    min_weight: float = 0.0,
    relative_weight: float = 0.0,
    exempt_solidity: float = 0.0,
    through_solidity: float = 0.0,
    bridge: bool = False,
) -> np.ndarray:
    """The seed and the enclosed, contrasting segments attached to it.

    Parameters
    ----------
    image : (H, W, 3) uint8 ndarray
        RGB image.
    seed : (H, W) bool ndarray
        Pixels known to belong to objects (for Veil: the hidden regions).
    grow : float
        A segment must lie inside a box this many times a seed piece's larger side around it.
    scale, sigma : float
        Felzenszwalb's scale and smoothing (:func:`skimage.segmentation.felzenszwalb`), at ``size``.
    contrast : float
        Least CIELAB distance between a segment's mean colour and the mean colour of a ring
        around it (0: no contrast test).
    max_region : float
        A segment covering more than this share of the image is not taken.
    size : int
        Longer side at which the image is segmented (the mask is scaled back).
    smooth : float
        A pixel whose :func:`grain` (full-size, area-averaged to ``size``) is under this is smooth;
        0 turns the smooth patches off.
    texture_contrast : float
        Least difference in :func:`grain` between the ring around a smooth patch and the patch (a
        smooth patch on a ground as smooth is not a figure).
    texture_window : int
        Side of the window of :func:`grain`, in full-size pixels.
    thin_window : int
        With ``fine_thin``: the smooth patches are also looked for on a :func:`grain` map of this narrower
        window, and those found only there are taken if they are thin and straight (:func:`straight`; 0: off).
        A window about as wide as the object spreads the ground's grain over it: a smooth blade 4 to 8 pixels
        wide on a grained band reads as grained at 5 pixels, as smooth at 3; a narrower window alone would
        also find more chance smooth patches on a grained ground, so only thin, straight ones are kept from it.
    through : float
        A segment within reach of a seed piece whose solidity (pixels over its convex hull's) is
        under this, or that is about three pixels wide or less, is looked through: the segments
        beyond it (and beyond the one-pixel bands along it) are candidates too (0: off).
    rounds : int
        How often to look for figures: each later round starts from the seed and all figures found so
        far (its boxes from their pieces), and takes colour figures only (not smooth patches).
    fine : float
        Felzenszwalb scale of a finer cut of the segments that touch what was found but are too large
        or reach the image's edge; the figures among their pieces are taken too (0: off).
    fine_contrast : float
        Least contrast (CIELAB, as ``contrast``) of a figure of the finer cut.
    fine_solidity : float
        Least solidity (its pixels over its convex hull's) of a figure of the finer cut (0: any): a finer
        cut breaks a textured ground into ragged pieces, while a part of an object it frees (a round
        body) is compact.
    fine_thin : float
        With ``fine_solidity``: a figure of the finer cut under that solidity is still taken if it is a thin,
        straight piece (:func:`straight`: at least this many times longer than wide, about three pixels wide
        or more and a twelfth of the working copy's longer side long, with an outline no longer than a tenth
        over its convex hull's) that stands out by ``contrast`` (0: off). A thin blade or needle at the working size is a
        strip with stepped edges whose solidity can be under one half, but whose outline is straight; a ragged
        piece of a textured ground has a long outline.
    fine_edge : bool
        A piece of the finer cut that passes its tests may reach the image's edge (with ``fine_solidity``, only
        a compact or thin, straight one does; without it, any that stands out): an object cut by the frame runs
        to the edge, so its part the coarse cut joined to the ground cannot be enclosed. The coarse segments
        and smooth patches must still stay off the edge (a ground runs on beyond it), unless ``edge_solidity``
        lets them reach it.
    edge_solidity : float
        A segment of the first cut or a smooth patch may reach the image's edge if it meets the frame as an
        object cut by it does (:func:`cut_by_frame`) and its solidity is at least this, or (with ``fine_thin``)
        it is thin and straight (:func:`straight`); a segment must also stand out by ``contrast`` (0: off, no
        segment or patch may reach the edge). An object cut by the frame is a solid
        or straight piece running to it; a ground running on beyond the frame is rarely either.
    later_solidity : float
        With ``rounds`` > 1: a figure found in a later round (attached only to what an earlier round found) must
        have at least this solidity, or be thin and straight (with ``fine_thin``), or be a rim or thin curve of
        a mean depth of at most 2 pixels (0: off). The figures beside an object's parts are mostly pieces of
        the ground around it, which are ragged; the parts an object is followed to (a body, a rim) are not
        (but two blades crossing are one ragged segment: docs/extent-history.md).
    compact_contrast, compact_solidity : float
        A segment of the first cut under ``contrast`` is still a figure if it stands out by at least
        ``compact_contrast`` and its solidity is at least ``compact_solidity`` (0: off): a compact
        segment attached to the seed is a part of an object more often than a ragged one (a dark body
        on a dark ground).
    weight : (H, W) ndarray, optional
        A per-pixel weight (for Veil: the attribution map of the unsafe class).
    min_weight : float
        With ``weight``: a colour segment (not a smooth patch) is taken only if its mean weight is at
        least this quantile of the image's weights (0: off), so that a figure the classifier paid no
        more attention to than to most of the image stays in sight.
    relative_weight : float
        With ``min_weight``: a colour segment under that quantile is still taken if its mean weight is at
        least this share of the mean weight of the seed piece it is attached to (0: off), so that the rest
        of an object the weight holds little of everywhere (a second object) is not left out. Meant for
        non-negative weights, as attribution maps are.
    exempt_solidity : float
        With ``min_weight``: a segment under both weight bars is still taken if it stands out by ``contrast`` (the
        finer cut's ``fine_contrast`` for its pieces) and its solidity is at least this (0: off). A classifier that
        keys on a small part (a spark) gives the rest of the object (a round body) little weight; a solid,
        contrasting figure attached to what is hidden is a part of an object more often than the ragged ground
        the weight bars are there to leave out.
    through_solidity : float
        With ``through``: a segment found only by looking through a rim or thin curve must have at least this
        solidity, or (with ``fine_thin``) be thin and straight and stand out by ``contrast`` (0: off, any figure). The
        body an outline holds is solid; beyond a long thin curve of the ground (the edge of a band, a wall's joint)
        lie ragged pieces of ground, which a look through took as figures too.
    bridge : bool
        A segment of the first cut that the seed mostly covers (at least half of its pixels) counts as part of
        the seed piece: the segments within reach of it are attached too. Where the hidden piece stops short of
        the end of its segment (a spark hidden with most of its fuse), the rest of the object (the body at the
        fuse's far end) is not within reach of the piece itself.

    Returns
    -------
    (H, W) bool ndarray
        ``seed`` or'ed with the figures found.

    Examples
    --------
    A silver bar attached to a dark handle (the seed) is taken; the grey background is not:

    >>> import numpy as np
    >>> img = np.random.default_rng(0).integers(90, 130, (120, 160, 3)).astype(np.uint8)  # grey texture
    >>> img[56:64, 20:40] = (60, 35, 20)      # the handle
    >>> img[57:63, 40:90] = (200, 205, 215)   # the blade
    >>> seed = np.zeros((120, 160), bool); seed[56:64, 20:40] = True
    >>> out = attached_figures(img, seed)
    >>> bool(out[57:63, 40:90].mean() > 0.9), bool(out[:40].any())
    (True, False)
    """
    return next(figure_growths(image, seed, [(through, rounds, fine)], grow=grow, scale=scale, sigma=sigma,
                               contrast=contrast, max_region=max_region, size=size, smooth=smooth,
                               texture_contrast=texture_contrast, texture_window=texture_window,
                               thin_window=thin_window, fine_contrast=fine_contrast, fine_solidity=fine_solidity,
                               fine_thin=fine_thin,
                               fine_edge=fine_edge, edge_solidity=edge_solidity, later_solidity=later_solidity,
                               compact_contrast=compact_contrast, compact_solidity=compact_solidity,
                               weight=weight, min_weight=min_weight, relative_weight=relative_weight,
                               exempt_solidity=exempt_solidity, through_solidity=through_solidity,
                               bridge=bridge))


def figure_growths(
    image: np.ndarray,
    seed: np.ndarray,
    tries: Sequence[tuple[float, int] | tuple[float, int, float]],
    *,
    grow: float = 3.0,
    scale: float = 400.0,
    sigma: float = 0.8,
    contrast: float = 10.0,
    max_region: float = MAX_FIGURE,
    size: int = 384,
    smooth: float = 0.5,
    texture_contrast: float = 1.0,
    texture_window: int = 5,
    thin_window: int = 3,
    fine_contrast: float = 20.0,
    fine_solidity: float = 0.0,
    fine_thin: float = 0.0,
    fine_edge: bool = False,
    edge_solidity: float = 0.0,
    later_solidity: float = 0.0,
    compact_contrast: float = 0.0,
    compact_solidity: float = 0.9,
    weight: np.ndarray | None = None,
    min_weight: float = 0.0,
    relative_weight: float = 0.0,
    exempt_solidity: float = 0.0,
    through_solidity: float = 0.0,
    bridge: bool = False,
    noise_floor: float = 0.0,
    faint: float = 0.0,
    faint_elongation: float = 3.0,
    faint_ragged: float = 1.35,
    denoise: str = "none",
    fine_again: float = 0.0,
    fine_again_contrast: float = 15.0,
    aligned: float = 0.0,
    aligned_gap: float = 0.0,
    aligned_run: float = 0.0,
    fine_every: bool = False,
    scene: dict[str, Any] | None = None,
) -> Iterator[np.ndarray]:
    """:func:`attached_figures` for each ``(through, rounds)`` or ``(through, rounds, fine)`` of ``tries`` in
    turn, each computed when it is asked for, all on one segmentation and one grain map (the object
    extent asks for a smaller growth only when a larger one is refused; the finer cut, if any try asks
    for it, is made once per scale). ``scene``, a dict the caller keeps between calls on one image, keeps
    what depends on the image alone (the working copy, its cuts and its grain map), so that a second call
    with another seed does not make them again. The other parameters are :func:`attached_figures`'s, but for
    these, which make the search hold on photographs (grain, sensor noise, JPEG), not only on drawn shapes of
    one flat colour (docs/extent-history.md, 2026-12-07 10:30):

    * ``noise_floor``: the bar under which a pixel's grain is smooth (``smooth``) is raised by this quantile of
      the image's grain map: the grain of its flattest places, which is the sensor's noise (0 on an image drawn
      in flat colours, so 0.02 changes nothing there). 0: off.
    * ``faint``: a segment standing out by less than ``contrast`` is still taken if it stands out by at least
      this and is thin and straight (:func:`straight`, at least ``faint_elongation`` times longer than wide, an
      outline at most ``faint_ragged`` times its convex hull's): a blade on a road of nearly its colour, whose
      segment a grained surface makes ragged. 0: off.
    * ``denoise``: ``"meanshift"`` segments a mean-shift filtered copy (:func:`cv2.pyrMeanShiftFiltering`,
      spatial radius 5, colour radius 15), which flattens grain before the cut; ``"auto"`` does so only when the
      grain of the image's flattest 2 % exceeds :data:`NOISY` (a photograph, not a drawing of flat colours);
      ``"none"`` cuts the copy as it is.
    * ``fine_again``: on an image cut from the mean-shift copy, the pieces of the finer cut (a try's ``fine``)
      that touch the growth and were not taken are cut again at this scale, and their compact or thin, straight
      pieces that stand out by ``fine_again_contrast`` are taken too: filtered, a grained body and a ground of its
      tone flatten alike, and the finer cut still joins them. Not on other images, where the pieces so freed are
      mostly ground, nor in a try whose ``fine`` is not coarser than this. 0: off.
    * ``aligned``: in a try with a ``fine`` cut, the pieces of that cut that continue a piece of the growth along
      its own axis, at least this many times longer than wide, are taken whatever their contrast
      (:func:`aligned_pieces`): a blade grained like the band of its colour it lies on, beyond its hidden
      handle. 0: off.
    * ``aligned_gap``: with ``aligned``, such a piece may lie this much farther from the growth than a touching
      one (a share of the working copy's longer side; in pixels, ``gap`` of :func:`aligned_pieces`): a blade
      beyond the dark guard between it and its hidden handle, which the growth did not take. 0: it must touch
      the growth.
    * ``aligned_run``: with ``aligned``, a piece is also taken when its axis, carried on beyond the end that touches
      the growth, runs through the growth for at least this many of the piece's widths (``run`` of
      :func:`aligned_pieces`), whatever the shape of the hidden piece it enters: a handle hidden with its
      crosswise guard, or with a patch of ground beside it, whose hidden component as a whole has no axis along
      the blade's. 0: off.
    * ``fine_every``: a try's ``fine`` cut looks into every segment of the first cut that touches the growth and
      was not taken, not only those too large or reaching the image's edge: a body joined to a piece of its dark
      ground in a segment too ragged to be a figure, yet small and off the edge, is a piece of its own in the
      finer cut. False: off.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.random.default_rng(0).integers(90, 130, (60, 80, 3)).astype(np.uint8)  # grey texture
    >>> img[20:30, 10:20] = (250, 200, 40)  # the seed
    >>> img[22:28, 20:50] = (30, 30, 35)    # a dark bar attached to it
    >>> seed = np.zeros((60, 80), bool); seed[20:30, 10:20] = True
    >>> [bool(m[22:28, 20:50].mean() > 0.9) for m in figure_growths(img, seed, [(0.35, 2), (0.0, 1)], smooth=0)]
    [True, False]
    """
    from veil.segment.bass import rgb_to_lab

    image, seed = checked(image, seed)
    for name, v in (("grow", grow), ("scale", scale)):
        checks.number(name, v, low=0, low_open=True)
    for t in tries:
        if not (isinstance(t, (tuple, list)) and len(t) in (2, 3)):
            raise InvalidParameterError(f"each try must be (through, rounds) or (through, rounds, fine), got {t!r}")
        checks.number("through", t[0], low=0)
        checks.integer("rounds", t[1], low=1)
        if len(t) > 2:
            checks.number("fine", t[2], low=0)
    asked: list[tuple[float, int, float]] = [(float(t[0]), int(t[1]), float(t[2]) if len(t) > 2 else 0.0)
                                             for t in tries]
    for name, v in (("fine_solidity", fine_solidity), ("compact_solidity", compact_solidity),
                    ("edge_solidity", edge_solidity), ("later_solidity", later_solidity),
                    ("exempt_solidity", exempt_solidity), ("through_solidity", through_solidity)):
        checks.number(name, v, low=0, high=1)
    for name, v in (("sigma", sigma), ("contrast", contrast), ("smooth", smooth), ("fine_contrast", fine_contrast),
                    ("texture_contrast", texture_contrast), ("compact_contrast", compact_contrast),
                    ("faint", faint), ("fine_again", fine_again), ("fine_again_contrast", fine_again_contrast),
                    ("relative_weight", relative_weight)):
        checks.number(name, v, low=0)
    for name, v in (("fine_thin", fine_thin), ("aligned", aligned)):
        checks.number(name, v, low=1, off=True, noun="a length-to-width ratio")
    for name, v in (("faint_elongation", faint_elongation), ("faint_ragged", faint_ragged)):
        checks.number(name, v, low=1)
    checks.number("max_region", max_region, low=0, high=1, low_open=True)
    for name, v in (("noise_floor", noise_floor), ("min_weight", min_weight)):
        checks.number(name, v, low=0, high=1, high_open=True, noun="a quantile")
    checks.number("aligned_gap", aligned_gap, low=0, high=0.25, noun="a share of the working copy's longer side")
    checks.number("aligned_run", aligned_run, low=0, note="the piece's widths")
    checks.integer("size", size, low=32, note="pixels")
    checks.integer("texture_window", texture_window, low=2, note="pixels")
    checks.integer("thin_window", thin_window, low=2, off=True, note="pixels")
    for name, v in (("fine_edge", fine_edge), ("bridge", bridge), ("fine_every", fine_every)):
        checks.flag(name, v)
    checks.choice("denoise", denoise, ("none", "meanshift", "auto"))
    compact = (float(compact_contrast), float(compact_solidity)) if compact_contrast > 0 else None
    if weight is not None and np.shape(weight) != np.shape(seed):
        raise InvalidParameterError(f"weight (shape {np.shape(weight)}) must have the seed's shape {np.shape(seed)}")
    h, w = seed.shape
    if not seed.any():
        for _ in asked:
            yield seed.copy()
        return
    # (skimage's labels, faster; one graph for both cuts)
    from veil.segment.graph import felzenszwalb_graph

    key = (image.shape, int(size), float(sigma), float(scale), int(texture_window), denoise)
    if scene is None or scene.get("key") != key:  # (what depends on the image alone, made once per scene)
        import cv2

        small, hs = working_copy(image, seed, size)
        residual = grained = None
        if denoise == "auto" or smooth > 0:  # (the grain map at the working size, for both)
            residual = _residual(image)
            grained = _grain_at(residual, int(texture_window), hs.shape)
        denoised = denoise == "meanshift" or (denoise == "auto" and grained is not None
                                              and float(np.quantile(grained, FLATTEST)) > NOISY)
        if denoised:
            small = cv2.pyrMeanShiftFiltering(np.ascontiguousarray(small), 5, 15)
        graph = felzenszwalb_graph(small, sigma=sigma)
        made: dict[str, Any] = {"key": key, "small": small, "lab": rgb_to_lab(small), "graph": graph,
                                 "seg": graph(scale, max(10, hs.size // 4000)), "residual": residual,
                                 "grained": grained, "finer": {}, "grained_thin": {}, "denoised": denoised}
        if scene is None:
            scene = made
        else:
            scene.clear()
            scene.update(made)
    else:
        hs = resize_mask(seed, scene["small"].shape[:2])
    lab, graph, seg = scene["lab"], scene["graph"], scene["seg"]
    # (the thin, straight test: least elongation, least contrast, least length)
    thin = (float(fine_thin), float(contrast), max(hs.shape) / 12.0) if fine_thin > 0 else None
    faint_ = (float(faint), float(faint_elongation), max(hs.shape) / 12.0, float(faint_ragged)) if faint > 0 else None
    patches = hs
    if smooth > 0:  # smooth patches on a grained ground (a smooth object on a grained band of its colour)
        def grain_at(window: int) -> np.ndarray:  # (the grain map at the working size)
            if scene.get("residual") is None:  # (one residual for both windows)
                scene["residual"] = _residual(image)
            return _grain_at(scene["residual"], window, hs.shape)

        if scene["grained"] is None:  # (a scene made without smooth patches)
            scene["grained"] = grain_at(int(texture_window))
        if noise_floor > 0:  # (the grain of the flattest places: the sensor's noise)
            smooth = smooth + float(np.quantile(scene["grained"], noise_floor))
        patches = _smooth_patches(scene["grained"], hs, grow=grow, smooth=smooth, contrast=texture_contrast,
                                  max_region=max_region, edge_solidity=edge_solidity, thin=thin)
        if thin is not None and thin_window:  # (thin, straight ones on a narrower window's map too)
            narrow = scene["grained_thin"]  # window → its grain map
            if int(thin_window) not in narrow:
                narrow[int(thin_window)] = grain_at(int(thin_window))
            patches |= _smooth_patches(narrow[int(thin_window)], hs, grow=grow, smooth=smooth,
                                       contrast=texture_contrast, max_region=max_region, edge_solidity=edge_solidity,
                                       thin=thin, only_thin=True)
    # (the weights at the working size, the least mean taken, the share of its piece's mean that is taken too)
    weighed: tuple[np.ndarray, float, float, float] | None = None
    if weight is not None and min_weight > 0:
        import cv2

        ws: np.ndarray = np.nan_to_num(np.asarray(weight, dtype=np.float32))
        if ws.shape != hs.shape:
            ws = cv2.resize(ws, (hs.shape[1], hs.shape[0]), interpolation=cv2.INTER_AREA)
        weighed = (ws, float(np.quantile(ws, min_weight)), float(relative_weight), float(exempt_solidity))
    finer: dict[float, np.ndarray] = scene["finer"]  # scale → the finer cut of the working copy
    for through, rounds, fine in asked:
        out = _figures(seg, lab, hs, grow=grow, contrast=contrast, max_region=max_region, through=through,
                       weighed=weighed, compact=compact, edge_solidity=edge_solidity, thin=thin, faint=faint_,
                       through_solidity=through_solidity, bridge=bridge) | patches
        for _ in range(int(rounds) - 1):  # follow the object part by part, on the same segments
            more = _figures(seg, lab, out, grow=grow, contrast=contrast, max_region=max_region, through=through,
                            weighed=weighed, compact=compact, edge_solidity=edge_solidity, thin=thin, faint=faint_,
                            solidity=later_solidity, rim=2.0, through_solidity=through_solidity, bridge=bridge)
            if not (more & ~out).any():
                break
            out = more
        if fine > 0:  # the touching segments too large or running on to the edge (fine_every: all not taken), cut finer
            def cut(fine: float = fine) -> np.ndarray:  # (only when there is such a segment)
                if fine not in finer:
                    finer[fine] = graph(fine, max(10, hs.size // 16000))
                return finer[fine]

            out = _finer_figures(seg, cut, lab, out, grow=grow, contrast=fine_contrast, solidity=fine_solidity,
                                 max_region=max_region, through=through, weighed=weighed, thin=thin,
                                 edge=bool(fine_edge), every=bool(fine_every))
            if 0 < fine_again < fine and scene["denoised"]:  # (its pieces that are no figures, finer; the finer
                # cut is made here even if no segment of the first cut asked for it, so that whether the third cut
                # is made does not depend on what another try or step cut before)
                out = _finer_figures(cut(), functools.partial(cut, fine_again), lab, out, grow=grow,
                                     contrast=fine_again_contrast, solidity=fine_solidity, max_region=max_region,
                                     through=through, weighed=weighed, thin=thin, edge=bool(fine_edge), every=True)
            if aligned > 0:  # (thin, straight pieces continuing a hidden piece, whatever their colour)
                out = aligned_pieces(cut(), out, elongation=float(aligned), length=max(hs.shape) / 12.0,
                                     max_region=max_region, gap=round(aligned_gap * max(hs.shape)),
                                     run=float(aligned_run))
        yield resize_mask(out, (h, w)) | seed


def grain(image: np.ndarray, window: int = 5, *, clip: float = 30.0) -> np.ndarray:
    """How grained the image is around each pixel: the mean absolute difference between the grey level
    and its 3×3 median, over a ``window``-pixel square, at most ``clip``. About 0 on a smooth
    surface *and* along a clean edge (the median keeps edges), the grain's strength on a textured one.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.full((20, 40, 3), 128, np.uint8)
    >>> img[:, 10:] = 60                                   # a clean edge
    >>> img[:, 25:] += np.random.default_rng(0).integers(0, 12, (20, 15, 1)).astype(np.uint8)  # grain
    >>> t = grain(img)
    >>> float(t[5:15, 2:20].max()), bool(t[5:15, 29:38].mean() > 2)
    (0.0, True)
    """
    return _grain_of(_residual(image), window, clip)


def _grain_at(residual: np.ndarray, window: int, shape: tuple[int, ...]) -> np.ndarray:
    """:func:`grain` of ``window`` from the image's :func:`_residual`, area-averaged to ``shape`` (the working copy's)."""
    import cv2

    g = _grain_of(residual, window)
    return g if g.shape == tuple(shape) else cv2.resize(g, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def _residual(image: np.ndarray) -> np.ndarray:
    """The absolute difference between the grey level and its 3×3 median (what :func:`grain` averages)."""
    import cv2

    g = np.asarray(image, dtype=np.float32).mean(axis=2)
    return np.abs(g - cv2.medianBlur(g, 3))


def _grain_of(residual: np.ndarray, window: int, clip: float = 30.0) -> np.ndarray:
    """:func:`grain` from the image's :func:`_residual` (made once for several windows)."""
    import cv2

    return np.minimum(cv2.blur(residual, (window, window)), clip).astype(np.float32)


def _mean_depth(mask: np.ndarray) -> float:
    """Mean distance of ``mask``'s pixels to its border (1 for a one-pixel band, about a third of the radius
    for a disc)."""
    from veil.segment.shape import depth_squared

    depth = np.sqrt(depth_squared(mask).astype(np.float64))  # (scipy's distance_transform_edt, exactly)
    return float(depth[depth > 0].mean())


def _solidity(mask: np.ndarray) -> float:
    """Pixels of ``mask`` over pixels of its convex hull (1 for a convex shape, low for a rim or a curve)."""
    from veil.segment.shape import convex_hull_count

    return float(mask.sum()) / max(1.0, float(convex_hull_count(mask)))


def _solid_at_least(mask: np.ndarray, least: float) -> bool:
    """``_solidity(mask) >= least``, without the hull when the bounding box answers: the hull's pixels lie in the
    box, so a mask filling at least ``least`` of its box is at least that solid (most compact segments)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not rows.size:
        return 0.0 >= least  # (as _solidity: nothing over no hull)
    if float(mask.sum()) / float((rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)) >= least:
        return True  # (a division as _solidity's: correctly rounded, so never above the hull's ratio)
    return _solidity(mask) >= least


def straight(mask: np.ndarray, elongation: float, length: float, ragged: float = 1.1) -> bool:
    """Whether ``mask`` is a thin, straight piece: at least ``elongation`` times longer than wide (by its second
    moments, as :func:`skimage.measure.regionprops`' axes), its longer axis at least ``length`` pixels, more than
    a band (a mean distance to its border over 1.25 pixels: about three pixels wide or more), and with an outline
    at most ``ragged`` times its convex hull's (a tenth longer by default: a strip's stepped edges are straight; a
    ragged piece's are not).

    Examples
    --------
    >>> import numpy as np
    >>> strip = np.zeros((40, 60), bool)
    >>> for x in range(5, 55):  # a diagonal strip four pixels wide
    ...     strip[int(5 + 0.5 * x) : int(9 + 0.5 * x), x] = True
    >>> straight(strip, 8, 32)
    True
    >>> comb = strip.copy()
    >>> for x in range(5, 55, 2):  # the same strip with teeth along one side
    ...     comb[int(9 + 0.5 * x) : int(13 + 0.5 * x), x] = True
    >>> straight(comb, 8, 32), straight(strip, 8, 80)  # (a ragged outline; too short)
    (False, False)
    """
    from skimage.measure import perimeter

    from veil.segment.shape import convex_hull_mask

    ys, xs = np.nonzero(mask)
    if ys.size < 3:
        return False
    cov = np.cov(np.stack([ys, xs]).astype(np.float64), bias=True)
    small, large = np.linalg.eigvalsh(cov)
    small = max(float(small), 1.0 / 12.0)  # (a line one pixel wide)
    if 4.0 * np.sqrt(max(float(large), 0.0)) < length or large < elongation**2 * small:
        return False
    if _mean_depth(mask) <= 1.25:
        return False
    return bool(perimeter(convex_hull_mask(mask)) * ragged >= perimeter(mask))


def cut_by_frame(mask: np.ndarray, box: tuple[int, int, int, int], shape: tuple[int, int]) -> bool:
    """Whether ``mask`` (a crop at rows ``box[0]:box[1]``, columns ``box[2]:box[3]`` of an image of ``shape``)
    reaches the image's edge as an object cut by the frame does: on one side only, and reaching in from it at
    least half as far as it runs along it (a half disc, a blade running off the picture). A piece of ground in
    a corner meets two sides, and a strip of ground along an edge runs along it further than it reaches in.

    Examples
    --------
    >>> import numpy as np
    >>> half = np.zeros((20, 20), bool); half[5:15, 10:] = True   # a block running off the right edge
    >>> cut_by_frame(half, (0, 20, 0, 20), (20, 20))
    True
    >>> strip = np.zeros((20, 20), bool); strip[:, 17:] = True    # a strip along it, top to bottom
    >>> cut_by_frame(strip, (0, 20, 0, 20), (20, 20))
    False
    """
    y0, y1, x0, x1 = box
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not rows.size:
        return False
    runs = [(y0 == 0 and rows[0] == 0, int(mask[0].sum()), rows[-1] + 1),  # (touches, along, reaches in)
            (y1 == shape[0] and rows[-1] == mask.shape[0] - 1, int(mask[-1].sum()), mask.shape[0] - rows[0]),
            (x0 == 0 and cols[0] == 0, int(mask[:, 0].sum()), cols[-1] + 1),
            (x1 == shape[1] and cols[-1] == mask.shape[1] - 1, int(mask[:, -1].sum()), mask.shape[1] - cols[0])]
    sides = [(along, depth) for touches, along, depth in runs if touches]
    return bool(len(sides) == 1 and sides[0][1] >= 0.5 * sides[0][0])


def _cut_object(mask: np.ndarray, box: tuple[int, int, int, int], shape: tuple[int, int], solidity: float,
                thin: tuple[float, float, float] | None) -> bool:
    """Whether a piece reaching the image's edge may be taken: it meets the frame as an object cut by it does
    (:func:`cut_by_frame`) and is that solid, or (``thin``: least elongation, unused, least length) thin and
    straight."""
    return cut_by_frame(mask, box, shape) and (
        _solid_at_least(mask, solidity) or (thin is not None and straight(mask, thin[0], thin[2])))


def _attached(seg: np.ndarray, hs: np.ndarray, taken: set[int], *, grow: float, max_region: float, reach: int,
              background: int | None = None, through: float = 0.0,
              through_width: float = 1.5,
              edge: bool = False, bridge: bool = False) -> Iterator[tuple[int, tuple[slice, ...], int, np.ndarray, bool]]:
    """The segments of ``seg`` within ``reach`` pixels of a piece of ``hs`` that may be parts of its object:
    not in ``taken`` (read as it grows), not ``background``, not mostly hidden, at most ``max_region`` of
    the image and enclosed (inside the box ``grow`` times the piece's size around it, off the image's
    edge). With ``through`` > 0, a segment within reach that is a rim or a thin curve (solidity under
    ``through``, or a mean distance to its border of at most ``through_width`` pixels) is looked through:
    the segments within ``reach`` of it are candidates too (the body inside a bomb's outline), and so are
    those beyond a one-pixel band found so.
    With ``edge``, a segment may reach the image's edge (it must still lie in the box). With ``bridge``, a segment
    the piece mostly covers (at least half of its pixels; at most ``max_region``) counts as part of the piece: the
    segments within reach of it are attached too (a bomb's body beyond the unhidden end of its fuse's segment).
    Yields each one's id, bounding box, pixel count, the piece (a mask of ``hs``'s shape) it is attached to and
    whether it was found only by looking through."""
    from scipy import ndimage as ndi

    sh, sw = hs.shape
    n = int(seg.max()) + 1
    count = np.bincount(seg.ravel(), minlength=n)
    hidden = np.bincount(seg.ravel(), weights=hs.ravel().astype(np.float64), minlength=n)
    boxes = ndi.find_objects(seg + 1)  # segment s: rows boxes[s][0], columns boxes[s][1]

    def near(mask: np.ndarray, y0: int, x0: int) -> set[int]:  # segments within reach of a mask placed at (y0, x0)
        m = np.zeros((mask.shape[0] + 2 * reach, mask.shape[1] + 2 * reach), bool)
        m[reach:-reach, reach:-reach] = mask
        m = dilate(m, reach)
        ya, xa = y0 - reach, x0 - reach
        cy0, cx0 = max(0, ya), max(0, xa)
        cy1, cx1 = min(sh, ya + m.shape[0]), min(sw, xa + m.shape[1])
        return set(np.unique(seg[cy0:cy1, cx0:cx1][m[cy0 - ya : cy1 - ya, cx0 - xa : cx1 - xa]]).tolist())

    depth: dict[int, float] = {}  # mean depth of a segment, computed once

    def mean_depth(t: int) -> float:
        if t not in depth:
            depth[t] = _mean_depth(seg[boxes[t]] == t)
        return depth[t]

    # (the segments a bridge crosses: mostly hidden, not whole, for one covered whole is part of a piece already
    # and what it reaches is in that piece's reach)
    crossable = bridge & (0.5 * count <= hidden) & (hidden < count) & (count <= max_region * sh * sw)
    if background is not None:
        crossable[background] = False
    for piece, (py0, py1, px0, px1) in seed_pieces(hs):
        pad = grow * max(py1 - py0, px1 - px0)
        by0, by1, bx0, bx1 = py0 - pad, py1 - 1 + pad, px0 - pad, px1 - 1 + pad
        direct = near(piece[py0:py1, px0:px1], py0, px0)
        queue = [t for t in sorted(direct) if crossable[t]]  # (the bridge: through the segments the piece mostly
        bridged = set(queue)  # covers, and those they reach that it also covers)
        while queue:
            t = queue.pop()
            more = near(seg[boxes[t]] == t, boxes[t][0].start, boxes[t][1].start) - direct
            direct |= more
            new = [u for u in sorted(more) if u not in bridged and crossable[u]]
            bridged.update(new)
            queue += new
        found = set(direct)
        if through > 0:  # look through the rims and thin curves within reach, and the one-pixel bands
            # (the blur of the segmentation along a sharp edge) beyond them, while fewer than 8 were weighed
            queue = [t for t in sorted(direct - {background})
                     if count[t] <= max_region * sh * sw and hidden[t] < 0.5 * count[t]]
            weighed = 0
            while queue:
                t = queue.pop(0)
                weighed += 1
                own = seg[boxes[t]] == t
                if mean_depth(t) <= through_width or not _solid_at_least(own, through):
                    beyond = near(own, boxes[t][0].start, boxes[t][1].start) - found - {background}
                    found |= beyond
                    if weighed < 8:
                        queue += [b for b in sorted(beyond) if count[b] <= max_region * sh * sw and mean_depth(b) <= 1.25]
        for s in sorted(found):
            if s == background or s in taken or hidden[s] >= 0.5 * count[s] or count[s] > max_region * sh * sw:
                continue
            ys, xs = boxes[s]
            y0, y1, x0, x1 = ys.start, ys.stop - 1, xs.start, xs.stop - 1
            if not (by0 < y0 and y1 < by1 and bx0 < x0 and x1 < bx1
                    and (edge or (y0 > 0 and x0 > 0 and y1 < sh - 1 and x1 < sw - 1))):
                continue
            yield s, boxes[s], int(count[s]), piece, s not in direct


def _figures(seg: np.ndarray, lab: np.ndarray, hs: np.ndarray, *, grow: float, contrast: float, max_region: float,
             through: float = 0.0, background: int | None = None, through_solidity: float = 0.0,
             weighed: tuple[np.ndarray, float, float, float] | None = None, solidity: float = 0.0,
             compact: tuple[float, float] | None = None,
             thin: tuple[float, float, float] | None = None, edge: bool = False,
             edge_solidity: float = 0.0, rim: float = 0.0, bridge: bool = False,
             faint: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """``hs`` with the figures among the segments ``seg`` (a Felzenszwalb cut of the working copy) attached to
    its pieces; contrast is measured in ``lab`` (the working copy in CIELAB); ``background`` is never taken;
    with ``weighed`` (weights at the working size, least mean, share of the piece's mean, exempt solidity), neither
    is a segment whose mean weight is under both the least mean and that share of its piece's, unless it stands
    out by ``contrast`` and is that solid; nor one whose solidity is under
    ``solidity``, unless (``thin``: least elongation, least contrast, least length) it is a :func:`straight`
    piece that stands out by that contrast. With ``compact`` (least contrast, least solidity), a segment under
    ``contrast`` is still taken if it stands out by that least contrast and is that solid. With ``edge``, a segment
    reaching the image's edge may be taken too. With ``through_solidity``, a segment found only by looking through
    (``through``) must be that solid, or (``thin``) a straight piece that stands out by its contrast. ``bridge`` is
    :func:`_attached`'s. With ``faint`` (least contrast, least elongation, least length, most outline over its
    hull's), a segment under ``contrast`` is still taken if it stands out by that least contrast and is a
    :func:`straight` piece so measured."""

    sh, sw = hs.shape
    out = hs.copy()
    taken: set[int] = set()
    piece_weight: dict[int, tuple[np.ndarray, float]] = {}  # each piece's mean weight, by identity (the piece
    # is kept with it, so that no later piece can take its id)
    exempt = weighed[3] if weighed is not None else 0.0
    behind: set[int] = set()  # (the segments found only by looking through, for some piece so far)

    def thin_straight(cm: np.ndarray, stands: float) -> bool:  # (thin, straight and standing out: the costliest test)
        return thin is not None and stands >= thin[1] and straight(cm, thin[0], thin[2])

    for s, (ys, xs), count, piece, looked in _attached(seg, hs, taken, grow=grow, max_region=max_region, reach=2,
                                                      through=through, background=background,
                                                      edge=edge or edge_solidity > 0, bridge=bridge):
        if looked:
            behind.add(s)
        framed = not edge and (ys.start == 0 or xs.start == 0 or ys.stop == sh or xs.stop == sw)
        r = max(2, round(0.25 * float(np.sqrt(count))))
        cy0, cy1 = max(0, ys.start - r), min(sh, ys.stop + r)
        cx0, cx1 = max(0, xs.start - r), min(sw, xs.stop + r)
        cm = seg[cy0:cy1, cx0:cx1] == s
        unweighed = False  # (under both weight bars: taken only if solid and contrasting, with an exempt solidity)
        if weighed is not None:  # as attended as most of the image, or (relative > 0) as the piece it is attached to
            mw = float(weighed[0][cy0:cy1, cx0:cx1][cm].mean())
            if mw < weighed[1]:
                if weighed[2] > 0 and id(piece) not in piece_weight:
                    piece_weight[id(piece)] = (piece, float(weighed[0][piece].mean()))
                unweighed = weighed[2] <= 0 or mw < weighed[2] * piece_weight[id(piece)][1]
                if unweighed and exempt <= 0:
                    continue
        stands = np.inf
        if contrast > 0:  # (after the weight: a dilation costs more than a mean)
            ring = dilate(cm, r) & ~cm & ~hs[cy0:cy1, cx0:cx1]
            crop = lab[cy0:cy1, cx0:cx1]
            stands = float(np.linalg.norm(crop[cm].mean(0) - crop[ring].mean(0))) if ring.any() else -1.0
            if stands < contrast and not (compact is not None and stands >= compact[0]
                                          and _solid_at_least(cm, compact[1])) and not (
                    faint is not None and stands >= faint[0] and straight(cm, faint[1], faint[2], faint[3])):
                continue
        if unweighed and not (stands >= contrast and _solid_at_least(cm, exempt)):
            continue
        thin_figure: bool | None = None  # (asked at most once)
        if solidity > 0 and not _solid_at_least(cm, solidity):
            thin_figure = thin_straight(cm, stands)
            if not thin_figure and not (rim > 0 and _mean_depth(cm) <= rim):
                continue
        if through_solidity > 0 and s in behind and not _solid_at_least(cm, through_solidity):
            if thin_figure is None:
                thin_figure = thin_straight(cm, stands)
            if not thin_figure:
                continue  # (behind a rim: the body an outline holds is solid; the ground beyond an edge seldom is)
        if framed and not (stands >= contrast and _cut_object(cm, (cy0, cy1, cx0, cx1), (sh, sw), edge_solidity, thin)):
            continue  # (reaching the frame: only a solid or thin, straight piece of an object cut by it)
        out[cy0:cy1, cx0:cx1] |= cm
        taken.add(s)
    return out


def _finer_figures(seg: np.ndarray, fine: np.ndarray | Callable[[], np.ndarray], lab: np.ndarray, out: np.ndarray,
                   *, grow: float, contrast: float, max_region: float, through: float,
                   weighed: tuple[np.ndarray, float, float, float] | None = None, solidity: float = 0.0,
                   thin: tuple[float, float, float] | None = None, edge: bool = False,
                   every: bool = False) -> np.ndarray:
    """``out`` with the figures among the pieces of ``fine`` (a finer cut) that lie in the segments of ``seg``
    touching ``out`` that could not be figures: larger than ``max_region`` or reaching the image's edge (with
    ``every``, any touching segment ``out`` does not mostly cover). With
    ``edge``, a piece may reach the image's edge itself (an object cut by the frame).
    ``fine`` may be a function that makes the finer cut: it is called only when there are such segments."""
    from scipy import ndimage as ndi

    sh, sw = out.shape
    n = int(seg.max()) + 1
    count = np.bincount(seg.ravel(), minlength=n)
    hidden = np.bincount(seg.ravel(), weights=out.ravel().astype(np.float64), minlength=n)
    boxes = ndi.find_objects(seg + 1)
    touching = np.unique(seg[dilate(out, 2) & ~out])
    coarse = [int(t) for t in touching if hidden[t] < 0.5 * count[t] and boxes[t] is not None and (
        every or count[t] > max_region * sh * sw or boxes[t][0].start == 0 or boxes[t][1].start == 0
        or boxes[t][0].stop == sh or boxes[t][1].stop == sw)]
    if not coarse:
        return out
    if callable(fine):
        fine = fine()
    inside = np.isin(seg, coarse)
    pieces = np.where(inside, fine + 1, 0)  # 0: not looked at again
    return _figures(pieces, lab, out, grow=grow, contrast=contrast, max_region=max_region, through=through,
                    background=0, weighed=weighed, solidity=solidity, thin=thin, edge=edge)


def aligned_pieces(pieces: np.ndarray, hidden: np.ndarray, *, elongation: float, length: float,
                   max_region: float = MAX_FIGURE, ragged: float = 1.35, end: float = 0.6, angle: float = 10.0,
                   offset: float = 0.5, reach: int = 2, gap: int = 0, run: float = 0.0) -> np.ndarray:
    """``hidden`` with the pieces of the label map ``pieces`` that continue one of its pieces along its axis.

    A piece is taken when it is not mostly hidden, at most ``max_region`` of the image, off the image's edge,
    thin and straight (:func:`straight`: at least ``elongation`` times longer than wide, ``length`` pixels long,
    an outline at most ``ragged`` times its hull's), and touches ``hidden`` *end-on*: the hidden pixels within
    ``reach`` of it lie at one of its ends (their median distance from its centre along its axis at least ``end``
    times its half-length) and near its axis (their median distance from it at most its width plus ``reach``, or
    plus ``reach + gap`` across a gap). Half-length and width are twice the standard deviations of the piece's
    pixels along and across its axis (for a straight bar, 1.15 times its half-length and 0.58 times its width).
    With ``gap``, a piece that fails these tests with the hidden pixels within ``reach`` is weighed again by those
    within ``reach + gap`` pixels (a blade beyond the guard between it and its hidden handle), so that ``gap`` only
    ever takes more. The hidden piece it touches (``hidden``'s 8-connected components at those pixels) must be
    elongated (its axes at least 1.25 apart) along the same axis, within ``angle`` degrees, with its centroid at
    most ``offset`` times the piece's width off that axis: so the piece continues the hidden piece, as a blade
    continues its hidden handle. With ``run`` > 0 the piece is also taken, whatever the shape of that hidden piece,
    when its axis, carried on beyond its touching end (from 0.87 of its half-length, the end of a straight bar),
    meets hidden pixels for at least ``run`` times its width, walked one pixel at a time for up to 6 half-lengths
    (before the first hidden pixel, the unhidden ones within ``reach + gap`` + 2 pixels are passed over and two
    more may follow; after it, the walk ends at the third unhidden pixel in a row): a handle hidden with its
    crosswise guard, or with a patch of ground beside it, is no elongated component, yet the blade's axis runs
    down it. Neither colour nor
    attribution is asked: a blade on a band of its own colour stands out by its outline only, and the finer cut
    follows the outline; without ``run``, a strip of ground beside a round or a crosswise hidden piece, or one
    touching it off its axis, is not taken (docs/extent-history.md, 2026-12-07 15:00; the gap, 19:30; the run,
    21:45).

    Raises
    ------
    InvalidParameterError
        ``pieces`` is not a label map of integers >= 0 of ``hidden``'s shape, or an option lies outside its range
        (``reach`` an integer >= 1, ``gap`` one >= 0; ``elongation`` and ``ragged`` >= 1, ``length``, ``end``,
        ``offset`` and ``run`` >= 0, ``max_region`` in (0, 1], ``angle`` in [0, 90], all finite numbers).

    Examples
    --------
    >>> import numpy as np
    >>> pieces = np.zeros((60, 90), int)
    >>> pieces[28:32, 40:80] = 1                    # a thin piece, continuing ...
    >>> hidden = np.zeros((60, 90), bool); hidden[27:33, 20:40] = True   # ... a hidden bar along its axis
    >>> bool(aligned_pieces(pieces, hidden, elongation=5, length=10)[30, 60])
    True
    >>> across = np.zeros((60, 90), bool); across[10:50, 34:40] = True  # a bar across its axis
    >>> bool(aligned_pieces(pieces, across, elongation=5, length=10)[30, 60])
    False
    >>> short = np.zeros((60, 90), bool); short[27:33, 20:34] = True    # ... a hidden bar 6 pixels short of it
    >>> [bool(aligned_pieces(pieces, short, elongation=5, length=10, gap=g)[30, 60]) for g in (0, 6)]
    [False, True]
    """
    from scipy import ndimage as ndi

    hidden = np.asarray(hidden, bool)
    pieces = np.asarray(pieces)
    if pieces.shape != hidden.shape or not np.issubdtype(pieces.dtype, np.integer) or (pieces.size and pieces.min() < 0):
        raise InvalidParameterError(f"pieces (shape {pieces.shape}, {pieces.dtype}) must be a label map of integers "
                                    f">= 0 of the hidden mask's shape {hidden.shape}")
    for name, v in (("elongation", elongation), ("ragged", ragged)):
        checks.number(name, v, low=1)
    for name, v in (("length", length), ("end", end), ("offset", offset)):
        checks.number(name, v, low=0)
    checks.number("max_region", max_region, low=0, high=1, low_open=True)
    checks.number("angle", angle, low=0, high=90, note="degrees")
    checks.integer("reach", reach, low=1)
    checks.integer("gap", gap, low=0)
    checks.number("run", run, low=0, note="the piece's widths")
    pieces = pieces.astype(np.int64, copy=False)  # (pieces + 1 below must not wrap)
    sh, sw = hidden.shape
    out = hidden.copy()
    n = int(pieces.max()) + 1 if pieces.size else 0
    if n == 0 or not hidden.any():
        return out
    count = np.bincount(pieces.ravel(), minlength=n)
    covered = np.bincount(pieces.ravel(), weights=hidden.ravel().astype(np.float64), minlength=n)
    boxes = ndi.find_objects(pieces + 1)
    components: np.ndarray | None = None  # (hidden's 8-connected pieces, labelled when first asked)
    near = int(reach) + int(gap)
    for s in np.unique(pieces[dilate(hidden, near) & ~hidden]).tolist():
        box = boxes[s]
        if box is None or covered[s] >= 0.5 * count[s] or count[s] > max_region * sh * sw:
            continue
        if box[0].start == 0 or box[1].start == 0 or box[0].stop == sh or box[1].stop == sw:
            continue
        y0, y1 = max(0, box[0].start - near), min(sh, box[0].stop + near)
        x0, x1 = max(0, box[1].start - near), min(sw, box[1].stop + near)
        cm = pieces[y0:y1, x0:x1] == s
        if not straight(cm, elongation, length, ragged):
            continue
        if components is None:
            components = ndi.label(hidden, structure=np.ones((3, 3), bool))[0]
        if any(_continues(cm, (y0, x0), hidden, components, span, end=end, angle=angle, offset=offset, run=run)
               for span in ((reach, near) if gap > 0 else (reach,))):
            out[y0:y1, x0:x1] |= cm
    return out


def _continues(cm: np.ndarray, origin: tuple[int, int], hidden: np.ndarray, components: np.ndarray, span: int, *,
               end: float, angle: float, offset: float, run: float = 0.0) -> bool:
    """Whether the piece ``cm`` (a crop placed at ``origin``) continues a piece of ``hidden`` (labelled in
    ``components``) along its axis, by the hidden pixels within ``span`` of it (:func:`aligned_pieces`)."""
    y0, x0 = origin
    h, w = cm.shape
    cy_, cx_ = np.nonzero(dilate(cm, span) & hidden[y0 : y0 + h, x0 : x0 + w] & ~cm)
    if not cy_.size:
        return False
    ys, xs = np.nonzero(cm)
    cy, cx = ys.mean() + y0, xs.mean() + x0
    lam, vec = np.linalg.eigh(np.cov(np.stack([ys, xs]).astype(np.float64), bias=True))
    axis = vec[:, 1]
    half, width = 2.0 * np.sqrt(max(float(lam[1]), 0.0)), 2.0 * np.sqrt(max(float(lam[0]), 1.0 / 12.0))
    py, px = cy_ + y0 - cy, cx_ + x0 - cx
    signed = py * axis[0] + px * axis[1]  # (along the axis, towards the hidden pixels where positive)
    along, across = np.abs(signed), np.abs(py * axis[1] - px * axis[0])
    if not (np.median(along) >= end * half and np.median(across) <= width + span):
        return False  # (not end-on)
    if run > 0:  # (its axis runs on down a hidden piece, whatever that piece's own shape)
        sign = 1.0 if np.median(signed) >= 0 else -1.0
        if _hidden_run(hidden, (cy, cx), (sign * axis[0], sign * axis[1]), 0.87 * half, span + 2,
                       6.0 * half) >= run * width:
            return True
    ids = np.unique(components[cy_ + y0, cx_ + x0])
    hy, hx = np.nonzero(np.isin(components, ids[ids > 0]))
    if hy.size < 3:
        return False
    hlam, hvec = np.linalg.eigh(np.cov(np.stack([hy, hx]).astype(np.float64), bias=True))
    if hlam[1] < 1.25**2 * max(float(hlam[0]), 1.0 / 12.0):
        return False  # (a round hidden piece has no axis to continue)
    tilt = float(np.degrees(np.arccos(min(1.0, abs(float(hvec[:, 1] @ axis))))))
    off = abs((hy.mean() - cy) * axis[1] - (hx.mean() - cx) * axis[0]) / width
    return tilt <= angle and off <= offset


def _hidden_run(hidden: np.ndarray, centre: tuple[float, float], direction: tuple[float, float], start: float,
                lead: float, far: float) -> int:
    """How many hidden pixels the ray from ``centre`` along ``direction`` (a unit vector) meets, one pixel at a
    time for ``far`` pixels beyond ``start``: before the first hidden pixel, the unhidden ones within ``lead`` are
    passed over and two more may follow; the walk ends at the third unhidden pixel in a row (or the image's
    edge)."""
    h, w = hidden.shape
    found = missed = 0
    for t in np.arange(0.0, far, 1.0):
        y = int(round(centre[0] + direction[0] * (start + t)))
        x = int(round(centre[1] + direction[1] * (start + t)))
        if not (0 <= y < h and 0 <= x < w):
            break
        if hidden[y, x]:
            found += 1
            missed = 0
        elif found == 0 and t <= lead:
            continue
        else:
            missed += 1
            if missed > 2:
                break
    return found


def _smooth_patches(grained: np.ndarray, hs: np.ndarray, *, grow: float, smooth: float, contrast: float,
                    max_region: float, widen: int = 2, edge_solidity: float = 0.0,
                    thin: tuple[float, float, float] | None = None, only_thin: bool = False) -> np.ndarray:
    """``hs`` with the smooth patches (``grained < smooth``) attached to its pieces, enclosed, on a ground
    at least ``contrast`` more grained; each taken patch is widened by ``widen`` pixels (the grain
    window blurs its rim). With ``edge_solidity``, a patch may reach the image's edge if :func:`_cut_object`
    (with ``thin``) allows it. With ``only_thin``, only patches that are thin and straight (``thin``) are taken."""
    from scipy import ndimage as ndi

    sh, sw = hs.shape
    comp, _ = ndi.label((grained < smooth) & ~hs)  # 0: not smooth, or hidden (a hidden part joins no patches)
    out = hs.copy()
    taken: set[int] = set()
    for s, (ys, xs), count, _, _ in _attached(comp, hs, taken, grow=grow, max_region=max_region, reach=2 + widen,
                                        background=0, edge=edge_solidity > 0):
        r = max(2, round(0.25 * float(np.sqrt(count))))
        cy0, cy1 = max(0, ys.start - r - widen), min(sh, ys.stop + r + widen)
        cx0, cx1 = max(0, xs.start - r - widen), min(sw, xs.stop + r + widen)
        own = comp[cy0:cy1, cx0:cx1] == s
        patch = dilate(own, widen)
        ring = dilate(patch, r) & ~patch & ~hs[cy0:cy1, cx0:cx1]
        g = grained[cy0:cy1, cx0:cx1]
        if not ring.any() or float(g[ring].mean() - g[own].mean()) < contrast:
            continue
        if only_thin and not (thin is not None and straight(own, thin[0], thin[2])):
            continue
        if (ys.start == 0 or xs.start == 0 or ys.stop == sh or xs.stop == sw) and not _cut_object(
                own, (cy0, cy1, cx0, cx1), (sh, sw), edge_solidity, thin):
            continue
        out[cy0:cy1, cx0:cx1] |= patch
        taken.add(s)
    return out
