"""Obfuscation benchmark: the safeguarding pipeline over a dataset with ground-truth masks.

For each configuration (attribution × segmentation with the first search strategy,
then every search strategy at the first attribution / segmentation — the layout of
the paper's Tables 3 and 4 and of ``bench/cse.py``) the pipeline runs on every
unsafe sample the classifiers flag, and reports:

``cf_rate``             share with a counterfactual found (the delivered image re-classified safe),
``depth``               mean number of regions obfuscated (over found),
``obfuscated_fraction`` mean obfuscated share of the image (over found),
``precision`` / ``recall`` / ``iou``  of the obfuscated pixels against the ground-truth
                        mask (over found, samples with a mask only),
``delivered_safe_rate`` share of delivered images (fail-closed ones included) that an
                        independent re-classification calls safe,
``seconds_per_image``   wall-clock seconds of the pipeline per image.

Examples
--------
>>> rows = evaluate_obfuscation(ds, [clf], attributions=["occlusion"], segmentations=["slic"])  # doctest: +SKIP
>>> rows[0]["cf_rate"]  # doctest: +SKIP
0.9
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from veil.bench.datasets import BenchDataset
from veil.classify.base import Classifier
from veil.errors import InvalidImageError, InvalidParameterError

__all__ = ["MaskScores", "benchmark_obfuscation", "evaluate_obfuscation", "mask_scores", "obfuscation_configs"]


@dataclass(frozen=True)
class MaskScores:
    """Precision, recall and IoU of a predicted mask against the truth."""

    precision: float
    recall: float
    iou: float


def mask_scores(predicted: np.ndarray, truth: np.ndarray) -> MaskScores:
    """Pixel precision, recall and IoU of boolean masks of the same shape.

    Examples
    --------
    >>> p = np.zeros((4, 4), bool); p[:2] = True
    >>> t = np.zeros((4, 4), bool); t[:, :2] = True
    >>> mask_scores(p, t)
    MaskScores(precision=0.5, recall=0.5, iou=0.3333333333333333)
    """
    p, t = np.asarray(predicted, bool), np.asarray(truth, bool)
    if p.shape != t.shape:
        raise InvalidParameterError(f"predicted (shape {p.shape}) must have the same shape as truth (shape {t.shape})")
    inter = float((p & t).sum())
    union = float((p | t).sum())
    return MaskScores(inter / max(float(p.sum()), 1.0), inter / max(float(t.sum()), 1.0),
                      inter / union if union else 0.0)


def obfuscation_configs(attributions: Sequence[str], segmentations: Sequence[str],
                        searches: Sequence[str]) -> list[tuple[str, str, str, str]]:
    """``(table, attribution, segmentation, search)`` cells: the grid, then the search comparison.

    Examples
    --------
    >>> obfuscation_configs(["a", "b"], ["s"], ["greedy", "csra"])
    [('grid', 'a', 's', 'greedy'), ('grid', 'b', 's', 'greedy'), ('search', 'a', 's', 'csra')]
    """
    if not attributions or not segmentations or not searches:
        raise InvalidParameterError("attributions, segmentations and searches each need at least one name")
    cells = [("grid", a, s, searches[0]) for a in attributions for s in segmentations]
    cells += [("search", attributions[0], segmentations[0], q) for q in searches[1:]]
    return cells


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def evaluate_obfuscation(
    dataset: BenchDataset,
    classifiers: Sequence[Classifier],
    *,
    attributions: Sequence[str] = ("fullgrad",),
    segmentations: Sequence[str] = ("slic",),
    searches: Sequence[str] = ("greedy",),
    style: str = "blur",
    max_depth: int = 10,
    seed: int | None = 0,
    on_image: Callable[[int], None] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Run the pipeline for each configuration of :func:`obfuscation_configs` over the unsafe samples.

    Parameters
    ----------
    dataset : BenchDataset
        Safe samples are skipped; masks (``Sample.mask_path``) give precision / recall / IoU.
    classifiers : sequence of Classifier
        Run together, as ``veil scan`` does.
    attributions, segmentations, searches : sequences of str
        Registry names (``veil list``).
    style, max_depth, seed
        As in :class:`~veil.pipeline.SafeguardConfig`.
    on_image : callable, optional
        Called with 1 after each (configuration, image) run.

    Returns
    -------
    rows : list of dict
        One per configuration: ``{table, attribution, segmentation, search, n, n_flagged,
        cf_rate, depth, obfuscated_fraction, gt_fraction, precision, recall, iou,
        delivered_safe_rate, seconds_per_image, n_evaluated}``.
    unreadable : list of dict
        ``{"id", "error"}`` for images or masks that could not be decoded.
    """
    from veil.pipeline import SafeguardConfig, Safeguarder

    cells = obfuscation_configs(attributions, segmentations, searches)
    configs = [SafeguardConfig(models=tuple(classifiers), attribution=a, segmentation=s, search=q,
                               style=style, max_depth=max_depth, seed=seed, rationale=None)
               for _, a, s, q in cells]  # validates every name before any work
    unreadable: list[dict[str, str]] = []
    items: list[tuple[str, np.ndarray, np.ndarray | None]] = []
    for sample in dataset:
        if sample.label != 1:
            continue
        try:
            img = sample.load()
            mask = sample.load_mask(img.shape[:2])
        except (InvalidImageError, OSError) as exc:
            unreadable.append({"id": sample.id, "error": str(exc)})
            continue
        items.append((sample.id, img, mask))

    rows: list[dict[str, Any]] = []
    for (table, att, seg, srch), cfg in zip(cells, configs, strict=True):
        sg = Safeguarder(cfg, classifiers=list(classifiers))
        flagged = found = delivered_safe = 0
        depth: list[float] = []
        area: list[float] = []
        gt: list[float] = []
        prec: list[float] = []
        rec: list[float] = []
        iou: list[float] = []
        secs: list[float] = []
        n_eval: list[float] = []
        for _id, img, truth in items:
            t = time.perf_counter()
            res = sg.run(img)
            secs.append(time.perf_counter() - t)
            if on_image is not None:
                on_image(1)
            if not res.unsafe:
                continue
            flagged += 1
            n_eval.append(res.n_evaluated)
            # the pipeline has already classified the delivered image (also when it failed closed)
            after = res.models_after
            delivered_safe += int(bool(after) and not any(mo.unsafe for mo in after))
            if res.counterfactual_found:
                found += 1
                depth.append(float(res.depth or 0))
                area.append(res.obfuscated_fraction)
                if truth is not None:
                    m = mask_scores(res.mask, truth)
                    gt.append(float(truth.mean()))
                    prec.append(m.precision)
                    rec.append(m.recall)
                    iou.append(m.iou)
        rows.append({
            "table": table, "attribution": att, "segmentation": seg, "search": srch, "style": style,
            "classifiers": [c.name for c in classifiers], "n": len(items), "n_flagged": flagged,
            "cf_rate": found / flagged if flagged else None, "depth": _mean(depth),
            "obfuscated_fraction": _mean(area), "gt_fraction": _mean(gt), "precision": _mean(prec),
            "recall": _mean(rec), "iou": _mean(iou),
            "delivered_safe_rate": delivered_safe / flagged if flagged else None,
            "seconds_per_image": _mean(secs), "n_evaluated": _mean(n_eval),
        })
    return rows, unreadable


def benchmark_obfuscation(
    dataset: BenchDataset,
    classifiers: Sequence[Classifier],
    *,
    command: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """The obfuscation benchmark as a report dict (what ``veil bench obfuscation`` writes).

    Runs :func:`evaluate_obfuscation` with ``options`` (its keywords: ``attributions``,
    ``segmentations``, ``searches``, ``style``, ``max_depth``, ``seed``, ``on_image``) and adds
    the dataset summary, the classifiers (threshold and category coverage), the settings in
    effect and the ``command`` that ran it (recorded as given);
    :func:`veil.bench.report.write_report` writes it.

    Examples
    --------
    >>> report = benchmark_obfuscation(load_dataset("data/tiny"), [clf])  # doctest: +SKIP
    >>> sorted(report)  # doctest: +SKIP
    ['classifiers', 'command', 'dataset', 'obfuscation', 'settings', 'title', 'unreadable']
    """
    import inspect

    from veil.bench.metrics import classifier_coverage

    try:
        bound = inspect.signature(evaluate_obfuscation).bind(dataset, classifiers, **options)
    except TypeError as exc:
        raise InvalidParameterError(f"benchmark_obfuscation: {exc}; options are evaluate_obfuscation's "
                                    f"keywords, got {sorted(options)}") from None
    bound.apply_defaults()
    rows, unreadable = evaluate_obfuscation(*bound.args, **bound.kwargs)
    kw = bound.arguments
    return {
        "title": "Veil obfuscation benchmark",
        "command": command,
        "dataset": dataset.summary(),
        "classifiers": [{"name": c.name, "threshold": float(c.threshold),
                         "coverage": sorted(cv) if (cv := classifier_coverage(c)) else None}
                        for c in classifiers],
        "unreadable": unreadable,
        "obfuscation": rows,
        "settings": {"attributions": list(kw["attributions"]), "segmentations": list(kw["segmentations"]),
                     "searches": list(kw["searches"]), "style": kw["style"], "max_depth": kw["max_depth"],
                     "seed": kw["seed"]},
    }
