"""The one composition everyone calls: classify → attribute → segment → search → obfuscate.

``safeguard(image, config) -> Result`` is what the CLI, the batch engines and the
benchmarks run. :class:`Safeguarder` keeps loaded classifiers for many images.
"""

from __future__ import annotations

import inspect
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from veil.classify import Classifier, DetectorClassifier, GradientClassifier, load_classifier
from veil.classify.base import CheckedClassifier, checked_scores, scores_dict
from veil.counterfactual import (
    DEFAULT_EXTENT,
    EXTENTS,
    SEARCHES,
    STYLES,
    describe_regions,
    extend,
    fully_obscured,
    rank_regions,
    region_scores,
    regions_mask,
    search,
    stylize,
)
from veil.counterfactual.extent import ExtentOutcome
from veil.counterfactual.regions import regions_lut
from veil.counterfactual.styles import apply_labels, apply_mask
from veil.errors import ClassifierOutputError, InvalidParameterError, VeilError
from veil.image import DEFAULT_MAX_PIXELS, ImageInput, fit_within, load_image, resize
from veil.segment import SEGMENTERS, default_merge, merge_similar, resize_labels, segment
from veil.types import ModelOutput, Result

#: Longest side (pixels) at which images are segmented; larger ones are segmented on a smaller copy.
DEFAULT_SEGMENT_SIZE = 640
#: Longest side (pixels) of the working copy that attribution, segmentation and the search see;
#: larger images are searched on a smaller copy and only the final mask is scaled up, so memory
#: stays bounded (no full-resolution image per candidate). Every classifier sees images far
#: smaller than this, so the verdict on the delivered full-size image hardly differs.
DEFAULT_SEARCH_SIZE = 1024
#: Merge thresholds retried before failing closed (chosen on the seed-11 failures of bench/cse.py).
DEFAULT_COARSER = (30.0,)

#: Gradient-free attribution used for classifiers that expose no torch gradients.
FALLBACK_ATTRIBUTION = "occlusion"


@dataclass
class _Search:
    """What the search over merge levels found: the regions, on which label map, at what cost."""

    found: bool
    selected: list[int]
    labels: np.ndarray
    n_evaluated: int
    tried: list[str]


@dataclass(frozen=True)
class SafeguardConfig:
    """Settings of one safeguarding run (every CLI option of ``veil scan`` maps to a field).

    Parameters
    ----------
    models : sequence of str or Classifier
        Registry names (``"nudenet"``), model card paths, or classifier objects.
    attribution, segmentation, search, style : str
        Names from the stage registries (``veil list`` prints them).
    max_depth : int
        Most regions the search may obfuscate before failing closed.
    threshold : float or None
        Unsafe threshold for every model; None keeps each model's own (0.5 by default).
    batch_size : int
        Candidate images classified per batch during the search.
    seed : int or None
        Seed for randomized stages (segmenters that sample); recorded in the result.
    merge : float or None
        After segmentation, join touching segments whose mean Lab colours differ by less
        than this (:func:`veil.segment.merge_similar`), so a thin object cut into several
        superpixels becomes one region. 0: keep the segmenter's output. None (default):
        the segmenter's registered default (:func:`veil.segment.default_merge`: 12 for BASS, off for the others).
    segment_size : int or None
        Segmentation (and the colour merge) run on a copy whose longer side is at most this
        many pixels; the labels are scaled back to the image with nearest neighbours. Keeps a
        12-megapixel photo at about the cost of a 640-pixel one. None: full resolution.
    coarser : sequence of float
        Larger merge thresholds to retry with, in order, when no counterfactual is found
        within ``max_depth`` regions; only then is the image fully obscured. The attribution
        and segmentation are reused; ``()`` fails closed at once.
    search_size : int or None
        Attribution, segmentation and the candidate images of the search work on a copy whose
        longer side is at most this many pixels; the chosen regions' mask is scaled back up and
        the full-size delivered image is classified again. None: full resolution.
    combine : {"max", "mean"}
        How the attribution maps of several unsafe models are merged.
    extent : str
        How much to hide once a counterfactual is found (:mod:`veil.counterfactual.extent`):
        ``"object"`` (default) the whole object that carried the evidence, ``"minimal"`` the
        search's regions only (the paper's counterfactual).
    rationale : str or None
        Rationale backend that explains each result (``"grounded"``: offline, deterministic;
        None: no rationale).
    """

    models: tuple[Any, ...] = ("nudenet",)
    attribution: str = "fullgrad"
    segmentation: str = "bass"
    search: str = "greedy"
    style: str = "blur"
    max_depth: int = 10
    threshold: float | None = None
    batch_size: int = 8
    seed: int | None = 0
    merge: float | None = None
    segment_size: int | None = DEFAULT_SEGMENT_SIZE
    coarser: tuple[float, ...] = DEFAULT_COARSER
    search_size: int | None = DEFAULT_SEARCH_SIZE
    combine: str = "max"
    max_pixels: int = DEFAULT_MAX_PIXELS
    rationale: str | None = "grounded"
    extent: str = DEFAULT_EXTENT
    extent_options: dict[str, Any] = field(default_factory=dict)
    attribution_options: dict[str, Any] = field(default_factory=dict)
    segmentation_options: dict[str, Any] = field(default_factory=dict)
    search_options: dict[str, Any] = field(default_factory=dict)
    style_options: dict[str, Any] = field(default_factory=dict)
    rationale_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from veil.attribution import ATTRIBUTIONS

        if isinstance(self.models, (str, bytes)) or not isinstance(self.models, Sequence):
            object.__setattr__(self, "models", (self.models,))
        object.__setattr__(self, "models", tuple(self.models))
        if not self.models:
            raise InvalidParameterError("models must name at least one classifier")
        ATTRIBUTIONS.get(self.attribution)
        SEGMENTERS.get(self.segmentation)
        SEARCHES.get(self.search)
        STYLES.get(self.style)
        EXTENTS.get(self.extent)
        if self.max_depth < 1:
            raise InvalidParameterError(f"max_depth must be at least 1, got {self.max_depth}")
        if self.batch_size < 1:
            raise InvalidParameterError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise InvalidParameterError(f"threshold must lie in (0, 1), got {self.threshold}")
        if self.merge is not None and not (np.isfinite(self.merge) and self.merge >= 0):
            raise InvalidParameterError(f"merge must be a finite number >= 0 (or None), got {self.merge!r}")
        if self.segment_size is not None and int(self.segment_size) < 32:
            raise InvalidParameterError(f"segment_size must be at least 32 pixels (or None), got {self.segment_size!r}")
        if self.search_size is not None and int(self.search_size) < 64:
            raise InvalidParameterError(f"search_size must be at least 64 pixels (or None), got {self.search_size!r}")
        if isinstance(self.coarser, (int, float)):
            object.__setattr__(self, "coarser", (self.coarser,))
        object.__setattr__(self, "coarser", tuple(float(c) for c in self.coarser))
        if not all(np.isfinite(c) and c > 0 for c in self.coarser):
            raise InvalidParameterError(f"coarser thresholds must be positive numbers, got {self.coarser!r}")
        if self.combine not in ("max", "mean"):
            raise InvalidParameterError(f"combine must be 'max' or 'mean', got {self.combine!r}")

    @property
    def merge_threshold(self) -> float:
        """The merge threshold in effect (``merge``, or the segmenter's default)."""
        return float(self.merge if self.merge is not None else default_merge(self.segmentation))

    @property
    def merge_levels(self) -> list[float]:
        """Merge thresholds the search tries in order: ``merge_threshold``, then each larger ``coarser``."""
        first = self.merge_threshold
        return [first, *(c for c in self.coarser if c > first)]

    def to_dict(self) -> dict[str, Any]:
        d = {f: getattr(self, f) for f in self.__dataclass_fields__ if f != "models"}
        d["models"] = [m if isinstance(m, str) else getattr(m, "name", type(m).__name__) for m in self.models]
        return d


class Safeguarder:
    """Loads the classifiers once and safeguards any number of images.

    Examples
    --------
    >>> sg = Safeguarder(SafeguardConfig(models=("nudenet",)))  # doctest: +SKIP
    >>> result = sg.run("photo.jpg")  # doctest: +SKIP
    """

    def __init__(self, config: SafeguardConfig | None = None, *, classifiers: Sequence[Classifier] | None = None):
        self.config = config or SafeguardConfig()
        self.classifiers: list[Classifier] = (
            list(classifiers) if classifiers is not None else [load_classifier(m) for m in self.config.models]
        )
        names = [c.name for c in self.classifiers]
        if len(set(names)) != len(names):
            raise InvalidParameterError(f"classifier names must be unique, got {names}; set 'name' in the model cards")
        self.thresholds = np.array(
            [self.config.threshold if self.config.threshold is not None else c.threshold for c in self.classifiers],
            dtype=np.float64,
        )

    # -- stages -----------------------------------------------------------------------------
    def score_key(self, clf: Classifier, label: str) -> str:
        return label if len(self.classifiers) == 1 else f"{clf.name}/{label}"

    def _scores(self, clf: Classifier, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """One model's validated ``(N, K)`` probabilities and ``(N,)`` unsafe scores."""
        n = len(images)
        try:
            proba = checked_scores(clf.name, "probabilities", clf.predict_proba(images), (n, len(clf.labels)))
            unsafe = checked_scores(clf.name, "unsafe scores", clf.unsafe_score(proba), (n,))
        except VeilError:
            raise
        except Exception as exc:  # a model that cannot judge fails the image closed, with its name
            raise ClassifierOutputError(f"model {clf.name!r} failed: {type(exc).__name__}: {exc}") from exc
        return proba, unsafe

    def classify(self, images: Sequence[np.ndarray], *, detect: bool = True) -> list[list[ModelOutput]]:
        """Every classifier on every image: ``out[i][m]`` is model ``m``'s verdict on image ``i``.

        Scores are validated (:func:`~veil.classify.base.checked_scores`): NaN, infinite,
        out-of-range or misshapen output raises :class:`~veil.errors.ClassifierOutputError`.
        """
        per_image: list[list[ModelOutput]] = [[] for _ in images]
        for clf, thr in zip(self.classifiers, self.thresholds, strict=True):
            proba, unsafe = self._scores(clf, list(images))
            for i, img in enumerate(images):
                dets = clf.detect(img) if detect and isinstance(clf, DetectorClassifier) else []
                per_image[i].append(
                    ModelOutput(
                        name=clf.name,
                        proba=scores_dict(clf.labels, proba[i]),
                        unsafe_score=float(unsafe[i]),
                        unsafe=bool(unsafe[i] > thr),
                        threshold=float(thr),
                        unsafe_labels=tuple(clf.unsafe_labels),
                        detections=dets,
                    )
                )
        return per_image

    def flat_scores(self, outputs: list[ModelOutput]) -> dict[str, float]:
        out: dict[str, float] = {}
        for clf, mo in zip(self.classifiers, outputs, strict=True):
            for label, p in mo.proba.items():
                out[self.score_key(clf, label)] = p
        return out

    def attribute(self, image: np.ndarray, outputs: list[ModelOutput]) -> tuple[np.ndarray, list[str]]:
        """Combined attribution of the models that flagged the image, and the method used per model."""
        from veil.attribution import ATTRIBUTIONS, attribute, combine

        cfg = self.config
        maps, used = [], []
        gradient_method = ATTRIBUTIONS.get(cfg.attribution).requires_gradients
        for clf, mo in zip(self.classifiers, outputs, strict=True):
            if not mo.unsafe:
                continue
            method = cfg.attribution
            if gradient_method and not isinstance(clf, GradientClassifier):
                method = FALLBACK_ATTRIBUTION
            options = cfg.attribution_options if method == cfg.attribution else {}
            # gradient-free methods call the model themselves: give them its validated view
            target = clf if ATTRIBUTIONS.get(method).requires_gradients else CheckedClassifier(clf)
            m = attribute(image, target, method, **options)
            if not np.all(np.isfinite(m)):
                raise ClassifierOutputError(f"attribution ({method}) of model {clf.name!r} is non-finite (NaN or infinity)")
            maps.append(m)
            used.append(f"{clf.name}:{method}")
        return combine(maps, how="mean" if cfg.combine == "mean" else "max"), used

    def unsafe_scores(self, images: list[np.ndarray]) -> np.ndarray:
        """``(N, n_models)`` unsafe scores."""
        return np.stack([self._scores(clf, images)[1] for clf in self.classifiers], axis=1)

    # -- composition ------------------------------------------------------------------------
    def run(self, source: ImageInput, *, frame: int = 0) -> Result:
        """Safeguard one image (``frame``: which frame or page of a multi-frame file).

        Undecodable input raises :class:`~veil.errors.InvalidImageError`; any later failure on
        an unsafe image, and any classifier output that cannot be trusted, delivers it fully
        obscured (``fail_closed``).
        """
        cfg = self.config
        image = load_image(source, max_pixels=cfg.max_pixels, frame=frame)
        image.setflags(write=False)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        settings = cfg.to_dict()
        try:
            before = self.classify([image])[0]
        except Exception as exc:  # a model that cannot judge the image must not let it through
            return self._fail_closed(image, None, f"classification failed: {exc}", timings, settings)
        timings["classify"] = time.perf_counter() - t0
        scores = self.flat_scores(before)
        if not any(mo.unsafe for mo in before):  # delivered as it came, judged once
            result = self._result(before, before, image, np.zeros(image.shape[:2], bool), timings, settings)
            return self._explain(result, image)
        try:
            result = self._obfuscate(image, before, scores, timings, settings)
        except Exception as exc:  # fail closed on any stage failure
            kind = "" if isinstance(exc, VeilError) else f"{type(exc).__name__}: "
            return self._fail_closed(image, before, f"obfuscation failed: {kind}{exc}", timings, settings)
        broken = _broken_promise(result)
        if broken:  # a stage that claims success it did not deliver never lets the image through
            return self._fail_closed(image, before, f"obfuscation failed: {broken}", timings, settings)
        return self._explain(result, image)

    def _working_copy(self, image: np.ndarray) -> np.ndarray:
        """The image at most ``search_size`` on its longer side (the image itself when smaller)."""
        size = fit_within(image.shape, self.config.search_size)
        return image if size == image.shape[:2] else resize(image, size)

    def _segment(self, work: np.ndarray, attribution: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Superpixels of the working copy (on a copy at most ``segment_size`` on its longer side).

        Returns the image that was segmented and its label map (both at the segmentation size).
        """
        cfg = self.config
        seg_image, seg_attribution = work, attribution
        small = fit_within(work.shape, cfg.segment_size)
        if small != work.shape[:2]:
            seg_image, seg_attribution = resize(work, small), resize(attribution.astype(np.float32), small)
        segments = segment(seg_image, cfg.segmentation, attribution=seg_attribution, rng=cfg.seed,
                           **cfg.segmentation_options)
        return seg_image, segments

    def _search_levels(self, work: np.ndarray, styled: np.ndarray, seg_image: np.ndarray,
                       segments: np.ndarray, attribution: np.ndarray,
                       timings: dict[str, float]) -> _Search:
        """The counterfactual search at each merge level in turn (finer first) until one succeeds."""
        cfg = self.config
        wh, ww = work.shape[:2]
        timings["search"] = timings["merge"] = 0.0
        n_evaluated, tried = 0, []
        for level in cfg.merge_levels:
            t = time.perf_counter()
            labels = merge_similar(seg_image, segments, level) if level else segments
            if labels.shape != (wh, ww):
                labels = resize_labels(labels, (wh, ww))
            timings["merge"] += time.perf_counter() - t
            order, region_score = rank_regions(attribution, labels)
            areas = np.bincount(labels.ravel(), minlength=region_score.size) / float(labels.size)

            def evaluate(cands: list[tuple[int, ...]], labels: np.ndarray = labels) -> np.ndarray:
                return self.unsafe_scores([apply_labels(work, styled, labels, regions_lut(labels, c)) for c in cands])

            t = time.perf_counter()
            outcome = search(order.tolist(), evaluate, self.thresholds, cfg.search, max_depth=cfg.max_depth,
                             batch_size=cfg.batch_size, areas=areas, **cfg.search_options)
            timings["search"] += time.perf_counter() - t
            n_evaluated += outcome.n_evaluated
            tried.append(f"merge {level:g}" if level else "unmerged")
            if outcome.found:
                break
        timings["n_evaluated"] = n_evaluated
        return _Search(outcome.found, list(outcome.selected), labels, n_evaluated, tried)

    def _hide(self, work: np.ndarray, before: list[ModelOutput], timings: dict[str, float], *,
              look: bool) -> tuple[np.ndarray, list[str], np.ndarray, _Search, ExtentOutcome | None]:
        """Attribution, segmentation, search and extent on the working copy: what to hide.

        Returns the attribution, the methods used, the styled copy, what the search found and the
        extent's outcome (None when no counterfactual was found). With ``look``, an extent that takes
        a ``look`` keyword gets :meth:`_look` (its second look at tiles of the delivered image).
        """
        cfg = self.config
        wh, ww = work.shape[:2]
        t = time.perf_counter()
        attribution, used = self.attribute(work, before)
        timings["attribution"] = time.perf_counter() - t

        t = time.perf_counter()
        seg_image, segments = self._segment(work, attribution)
        timings["segmentation"] = time.perf_counter() - t

        styled = stylize(work, cfg.style, **cfg.style_options)
        found = self._search_levels(work, styled, seg_image, segments, attribution, timings)
        if not found.found:
            return attribution, used, styled, found, None
        t = time.perf_counter()
        fine = segments if segments.shape == (wh, ww) else resize_labels(segments, (wh, ww))
        fn = EXTENTS.get(cfg.extent)
        extra = {"look": self._look} if look and "look" in inspect.signature(fn).parameters else {}
        ext = extend(work, styled, found.labels, found.selected, self.unsafe_scores, self.thresholds, cfg.extent,
                     attribution=attribution, segments=fine, **extra, **cfg.extent_options)
        timings["extent"] = time.perf_counter() - t
        return attribution, used, styled, found, ext

    def _look(self, crop: np.ndarray) -> tuple[np.ndarray | None, int]:
        """A crop of a delivered image safeguarded on its own (no second look of its own): the mask it
        would hide (empty when no model flags the crop, None when its search finds no counterfactual)
        and the images classified."""
        before = self.classify([crop], detect=False)[0]
        if not any(mo.unsafe for mo in before):
            return np.zeros(crop.shape[:2], bool), 1
        _, _, _, found, ext = self._hide(crop, before, {}, look=False)
        if ext is None:
            return None, 1 + found.n_evaluated
        return regions_mask(ext.labels, list(ext.selected)), 1 + found.n_evaluated + ext.n_evaluated

    def _obfuscate(self, image: np.ndarray, before: list[ModelOutput], scores: dict[str, float],
                   timings: dict[str, float], settings: dict[str, Any]) -> Result:
        cfg = self.config
        h, w = image.shape[:2]
        work = self._working_copy(image)
        wh, ww = work.shape[:2]
        attribution, used, styled, found, ext = self._hide(work, before, timings, look=True)
        settings = {**settings, "attribution_used": used}
        n_evaluated, tried = found.n_evaluated, found.tried
        if ext is None:
            return self._fail_closed(
                image, before, None, timings, settings, attribution=attribution, segments=found.labels,
                n_evaluated=n_evaluated,
                note=(f"no counterfactual within {cfg.max_depth} regions ({cfg.search} search; "
                      f"{', '.join(tried)}); fully obscured"))
        note = (f"regions coarsened to {tried[-1]} after no counterfactual at {', '.join(tried[:-1])}"
                if len(tried) > 1 else None)
        n_evaluated += ext.n_evaluated
        labels, selected = ext.labels, list(ext.selected)
        mask = regions_mask(labels, selected)
        if not mask.any():
            raise ClassifierOutputError(
                f"the {cfg.search} search reported a counterfactual without any region to obfuscate")
        if (wh, ww) == (h, w):
            delivered = apply_mask(image, styled, mask)
        else:  # grounded or no rationale: nothing reads the original again, so write in place
            delivered = _deliver_large(image, styled, mask, in_place=cfg.rationale in (None, "grounded"))
        # The delivered image itself is classified again: that is the verdict we report.
        after = self.classify([delivered])[0]
        if mask.shape != (h, w):
            mask = _upscale_mask(mask, (h, w))
        if any(mo.unsafe for mo in after):
            return self._fail_closed(image, before, "delivered image still classified unsafe", timings, settings,
                                     attribution=attribution, segments=labels, n_evaluated=n_evaluated)
        regions = describe_regions(labels, selected, region_scores(attribution, labels))
        why = dict(zip(selected, ext.reasons, strict=True))
        for r in regions:
            r.reason = why[r.id]
            if (wh, ww) != (h, w):  # boxes in the delivered image's pixels
                x, y, bw, bh = r.bbox
                r.bbox = (int(x * w / ww), int(y * h / wh), max(1, round(bw * w / ww)), max(1, round(bh * h / wh)))
        return self._result(before, after, delivered, mask, timings, settings, counterfactual_found=True,
                            depth=len(selected), attribution=attribution, segments=labels, regions=regions,
                            n_evaluated=n_evaluated, note=note)

    def _result(self, before: list[ModelOutput], after: list[ModelOutput], delivered: np.ndarray,
                mask: np.ndarray, timings: dict[str, float], settings: dict[str, Any], *,
                unsafe: bool | None = None, fail_closed: bool = False, error: str | None = None,
                scores_after: dict[str, float] | None = None, **found: Any) -> Result:
        """The one place a :class:`Result` is made: verdicts before and after, the delivered image.

        ``found`` carries what the search produced (``counterfactual_found``, ``depth``,
        ``attribution``, ``segments``, ``regions``, ``n_evaluated``, ``note``).
        """
        return Result(
            unsafe=any(mo.unsafe for mo in before) if unsafe is None else unsafe,
            scores=self.flat_scores(before) if before else {}, models=before,
            counterfactual_found=found.pop("counterfactual_found", False), depth=found.pop("depth", None),
            obfuscated_fraction=float(np.asarray(mask).mean()) if mask.size else 0.0,
            scores_after=self.flat_scores(after) if scores_after is None else scores_after,
            models_after=after, fail_closed=fail_closed, error=error, image=delivered, mask=mask,
            seed=self.config.seed, timings=timings, settings=settings, **found,
        )

    def _fail_closed(self, image: np.ndarray, before: list[ModelOutput] | None, error: str | None,
                     timings: dict[str, float], settings: dict[str, Any], **found: Any) -> Result:
        """The image fully obscured, with what the search found (``attribution``, ``note``, …)."""
        delivered = fully_obscured(image)
        try:
            after = self.classify([delivered], detect=False)[0]
            scores_after = self.flat_scores(after)
        except Exception:  # noqa: BLE001 - the output is already fully obscured
            after, scores_after = [], {}
        return self._result(before or [], after, delivered, np.ones(image.shape[:2], bool), timings, settings,
                            unsafe=True if before is None else None, fail_closed=True, error=error,
                            scores_after=scores_after, **found)

    def _explain(self, result: Result, original: np.ndarray) -> Result:
        if self.config.rationale is None:
            return result
        from veil.rationale import explain

        categories = {c.name: dict(c.config.get("categories") or {}) for c in self.classifiers}
        try:
            result.rationale = explain(result, backend=self.config.rationale, categories=categories,
                                       image=original, **self.config.rationale_options)
        except Exception as exc:  # an explanation failure never withholds the safeguarded image
            kind = "" if isinstance(exc, VeilError) else f"{type(exc).__name__}: "
            result.rationale = {"text": None, "control": None, "backend": self.config.rationale,
                                "error": f"{kind}{exc}"}
        return result


def _upscale_mask(work_mask: np.ndarray, shape: tuple[int, int],
                  box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Nearest-neighbour upscaling of a boolean mask to ``shape`` (rows ``Y0:Y1``, columns
    ``X0:X1`` of it when ``box`` is given), by indexing: the only allocation is the result."""
    h, w = shape
    wh, ww = work_mask.shape
    Y0, Y1, X0, X1 = box or (0, h, 0, w)
    ys = np.arange(Y0, Y1) * wh // h
    xs = np.arange(X0, X1) * ww // w
    return work_mask[np.ix_(ys, xs)]


def _deliver_large(image: np.ndarray, styled: np.ndarray, work_mask: np.ndarray, *,
                   in_place: bool = False) -> np.ndarray:
    """The full-size delivered image from a search on a smaller working copy.

    The styled pixels come from the working copy's styled image (every style is relative to
    the image size), scaled up over the mask's bounding box only, and pasted where the mask,
    scaled up with nearest neighbours, is set: no full-size styled image or mask is made.
    With ``in_place`` the pixels are written into ``image`` itself when it owns its buffer
    (a decoded image does), saving a full-size copy; the caller must not need the original.
    """
    h, w = image.shape[:2]
    wh, ww = work_mask.shape
    ys, xs = np.nonzero(work_mask.any(axis=1))[0], np.nonzero(work_mask.any(axis=0))[0]
    y0, y1 = int(ys[0]), int(ys[-1]) + 1
    x0, x1 = int(xs[0]), int(xs[-1]) + 1
    # full-size rows/columns whose nearest working pixel lies in the box
    Y0, Y1 = -(-y0 * h // wh), -(-y1 * h // wh)
    X0, X1 = -(-x0 * w // ww), -(-x1 * w // ww)
    patch = resize(np.ascontiguousarray(styled[y0:y1, x0:x1]), (Y1 - Y0, X1 - X0))
    delivered = image if in_place and _make_writable(image) else np.array(image)
    np.copyto(delivered[Y0:Y1, X0:X1], patch, where=_upscale_mask(work_mask, (h, w), (Y0, Y1, X0, X1))[..., None])
    return delivered


def _make_writable(arr: np.ndarray) -> bool:
    try:
        arr.setflags(write=True)
    except ValueError:  # a view of read-only memory (bytes, a caller's buffer): copy instead
        return False
    return True


def _broken_promise(result: Result) -> str | None:
    """What is wrong with a result that claims more than it delivers (None when it is sound).

    The contract: an image flagged unsafe leaves either fully obscured or with a non-empty mask
    whose delivered image every model re-classified as safe; a counterfactual always has regions.
    """
    if result.fail_closed:
        return None
    obscured = bool(np.asarray(result.mask).any())
    if result.counterfactual_found and not obscured:
        return "a counterfactual was reported with an empty mask"
    if result.unsafe:
        if not obscured:
            return "an image flagged unsafe would be delivered untouched"
        if not result.models_after or any(mo.unsafe for mo in result.models_after):
            return "the delivered image was not verified safe by every model"
    return None


class ClassifierCache:
    """Loaded classifiers by spec, least recently used first out, at most ``maxsize`` of them.

    A spec is a registry name or a model card path; a card's key includes its resolved path and
    modification time, so an edited card is loaded afresh. Classifier objects are not cached:
    they are already loaded.

    Examples
    --------
    >>> cache = ClassifierCache(maxsize=2)
    >>> len(cache)
    0
    """

    def __init__(self, maxsize: int = 4) -> None:
        if int(maxsize) < 1:
            raise InvalidParameterError(f"maxsize must be at least 1, got {maxsize!r}")
        self.maxsize = int(maxsize)
        self._items: OrderedDict[tuple[str, float | None], Classifier] = OrderedDict()

    @staticmethod
    def key(spec: str) -> tuple[str, float | None]:
        path = Path(spec)
        try:
            return str(path.resolve()), path.stat().st_mtime
        except OSError:
            return spec, None  # a registry name

    def get(self, spec: str | Classifier) -> Classifier:
        """The loaded classifier for ``spec`` (loading it on a miss)."""
        if not isinstance(spec, str):
            return load_classifier(spec)
        key = self.key(spec)
        clf = self._items.get(key)
        if clf is None:
            clf = self._items[key] = load_classifier(spec)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        self._items.move_to_end(key)
        return clf

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


#: The classifiers :func:`safeguard` reuses across calls.
CLASSIFIER_CACHE = ClassifierCache(maxsize=4)


def safeguard(image: ImageInput, config: SafeguardConfig | None = None, **overrides: Any) -> Result:
    """Safeguard one image: the Python API behind ``veil scan``.

    Classifiers named by string are loaded once and reused across calls (the last few
    distinct ones are kept, :data:`CLASSIFIER_CACHE`); for many images, create one
    :class:`Safeguarder` and call :meth:`Safeguarder.run`.

    Examples
    --------
    >>> from veil import safeguard, SafeguardConfig
    >>> result = safeguard("photo.jpg", SafeguardConfig(models=("nudenet",)))  # doctest: +SKIP
    >>> result.unsafe, result.depth, result.fail_closed  # doctest: +SKIP
    """
    config = replace(config or SafeguardConfig(), **overrides) if overrides else (config or SafeguardConfig())
    classifiers = [CLASSIFIER_CACHE.get(m) for m in config.models]
    return Safeguarder(config, classifiers=classifiers).run(image)
