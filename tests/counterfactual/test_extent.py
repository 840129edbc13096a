"""Extents: known answers for a two-part object and a thin object, and the contracts of every entry."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import planted
from veil import SafeguardConfig, Safeguarder
from veil.counterfactual import EXTENTS, extend, stylize
from veil.counterfactual.extent import (
    REASONS,
    ExtentOutcome,
    light_views,
    logit,
    minimal,
    object_extent,
    tile_boxes,
)
from veil.counterfactual.regions import regions_mask
from veil.errors import InvalidParameterError, UnknownNameError

SPARK = np.array([255, 220, 0], np.float32)
BODY = np.array([30, 30, 40], np.float32)


def bomb(size: int = 96) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A smooth background with a dark disc (the body) and a small yellow square touching it (the spark)."""
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.stack([90 + 60 * xx / size, 140 - 40 * yy / size, 120 + 0 * xx], axis=-1)
    body = (yy - 56) ** 2 + (xx - 48) ** 2 <= 18**2
    spark = np.zeros((size, size), bool)
    spark[33:40, 45:52] = True  # overlaps the top of the body
    img[body] = BODY
    img[spark] = SPARK
    return img.astype(np.uint8), body, spark


class PartModel:
    """A tiny linear model on colour evidence that keys on the spark: logit = 12·spark + 3·body − 6.

    ``spark`` and ``body`` are the visible shares (pixels near each colour over the counts in
    the clean image), so hiding the spark alone flips it (logit −3) while the body, a quarter
    of the evidence, is what a person still sees.
    """

    name = "parts"
    labels = ("safe", "unsafe")
    unsafe_labels = ("unsafe",)
    threshold = 0.5
    config: dict[str, Any] = {}

    def __init__(self) -> None:
        img, body, spark = bomb()
        self.ref = (float(spark.sum()), float(body.sum()))

    def parts(self, im: np.ndarray) -> tuple[float, float]:
        """How much of the spark and of the body is in sight (0–1 each)."""
        f = np.asarray(im, np.float32)
        near = [np.linalg.norm(f - c, axis=-1) < 40 for c in (SPARK, BODY)]
        return (min(1.0, near[0].sum() / self.ref[0] * 96 * 96 / near[0].size),
                min(1.0, near[1].sum() / self.ref[1] * 96 * 96 / near[1].size))

    def logits(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return np.array([12 * s + 3 * b - 6 for s, b in map(self.parts, images)])

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        p = 1 / (1 + np.exp(-self.logits(images)))
        return np.stack([1 - p, p], axis=1)

    def unsafe_score(self, proba: np.ndarray) -> np.ndarray:
        return np.asarray(proba)[:, 1]


def bomb_labels(body: np.ndarray, spark: np.ndarray) -> np.ndarray:
    """Background quadrants 0–3, the body 4, the spark 5."""
    size = body.shape[0]
    yy, xx = np.mgrid[0:size, 0:size]
    labels = (yy >= size // 2) * 2 + (xx >= size // 2)
    labels[body] = 4
    labels[spark] = 5
    return labels.astype(np.int32)


def scorer(model: PartModel):
    return lambda imgs: model.unsafe_score(model.predict_proba(imgs))[:, None]


def test_two_part_object_minimal_hides_the_part_object_hides_both():
    model = PartModel()
    img, body, spark = bomb()
    labels = bomb_labels(body, spark)
    styled = stylize(img, "fill")
    before = img.copy()
    mini = extend(img, styled, labels, (5,), scorer(model), [0.5], "minimal")
    assert mini.selected == (5,) and mini.reasons == ("counterfactual",)
    full = extend(img, styled, labels, (5,), scorer(model), [0.5], "object")
    assert full.selected == (5, 4)
    assert full.reasons == ("counterfactual", "closure")
    assert full.n_evaluated > 0
    np.testing.assert_array_equal(img, before)  # input untouched
    # the delivered image is safe with the margin
    hidden = np.isin(full.labels, full.selected)
    delivered = np.where(hidden[..., None], styled, img)
    assert model.logits([delivered])[0] <= -1.0


def test_two_part_object_end_to_end():
    model = PartModel()
    img, body, spark = bomb()
    truth = body | spark
    out = {}
    for extent in ("minimal", "object"):
        # fill: a blurred dark disc is still dark to this colour model
        cfg = SafeguardConfig(models=(model,), attribution="occlusion", segmentation="felzenszwalb",
                              segmentation_options={"min_size": 20, "scale": 100}, style="fill",
                              extent=extent, rationale=None)
        res = Safeguarder(cfg, classifiers=[model]).run(img)
        assert res.counterfactual_found and not res.fail_closed
        assert all(m.unsafe_score <= m.threshold for m in res.models_after)
        assert res.settings["extent"] == extent
        assert res.regions[0].reason in ("counterfactual", "split")
        out[extent] = (res.mask & truth).sum() / truth.sum()
    assert out["minimal"] < 0.3  # the part only
    assert out["object"] >= 0.9  # the whole object


BLADE = np.array([200, 40, 200], np.float32)


class BladeModel:
    """A second classifier that sees only a magenta bar (the blade): logit = 12·blade − 6, blind to the bomb."""

    def __init__(self, blade: np.ndarray) -> None:
        self.n = float(blade.sum())

    def logits(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return np.array([12 * (np.linalg.norm(np.asarray(im, np.float32) - BLADE, axis=-1) < 40).sum() / self.n - 6
                         for im in images])


def test_with_two_classifiers_each_keeps_the_other_from_stopping_short():
    # the bomb model keys on the spark and the blade model on the blade; the counterfactual hides both keys.
    # With the spark hidden, the bomb model's logit is -3 (its body in sight) while the blade model's is -6:
    # closure must weigh the worst model, the bomb model, and hide the body; an extent that read only the
    # blade model would stop at the counterfactual
    img, body, spark = bomb()
    blade = np.zeros_like(body)
    blade[76:82, 6:40] = True
    img[blade] = BLADE
    labels = bomb_labels(body, spark)
    labels[blade] = 6
    bomb_model, blade_model = PartModel(), BladeModel(blade)

    def score(imgs: Sequence[np.ndarray]) -> np.ndarray:  # (N, 2) unsafe scores, as the pipeline passes them
        z = np.stack([bomb_model.logits(imgs), blade_model.logits(imgs)], axis=1)
        return 1 / (1 + np.exp(-z))

    styled = stylize(img, "fill")
    assert (score([img])[0] > 0.5).all()  # both flag the image
    kw: dict[str, Any] = {"complete": "none", "tiles": 0}
    out = extend(img, styled, labels, (5, 6), score, [0.5, 0.5], "object", **kw)
    assert set(out.selected) == {4, 5, 6}  # the bomb's body too, nothing of the ground
    assert dict(zip(out.selected, out.reasons, strict=True)) == {5: "counterfactual", 6: "counterfactual",
                                                                  4: "closure"}
    delivered = np.where(np.isin(out.labels, out.selected)[..., None], styled, img)
    assert (logit(score([delivered])[0]) <= -1.0).all()  # every classifier safe, with the margin
    alone = extend(img, styled, labels, (5, 6), lambda ims: score(ims)[:, 1:], [0.5], "object", **kw)
    assert set(alone.selected) == {5, 6}  # (the blade model alone has nothing more to find)


def thin_object(size: int = 128) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A 3-px vertical bar across a broad band of (almost) its own colour, merged with it."""
    rng = np.random.default_rng(0)
    img = rng.uniform(40, 220, size=(size, size, 3))  # textured background
    band = np.zeros((size, size), bool)
    band[40:88] = True
    bar = np.zeros((size, size), bool)
    bar[10:118, 60:63] = True
    img[band] = (150, 150, 150) + rng.normal(0, 3, size=(int(band.sum()), 3))
    img[bar] = (156, 156, 150)
    cell = 16
    yy, xx = np.mgrid[0:size, 0:size]
    grid = (yy // cell) * (size // cell) + xx // cell
    segments = np.where(bar, grid + (size // cell) ** 2, grid).astype(np.int32)  # superpixels follow the bar
    merged = np.where(band | bar, 1, 0).astype(np.int32)  # the colour merge joined bar and band
    return img.astype(np.uint8), bar, band, merged, segments


def test_thin_object_over_its_own_colour_stays_within_a_bound():
    img, bar, band, merged, segments = thin_object()

    def score(imgs: list[np.ndarray]) -> np.ndarray:
        # keys on the bar: the share of its pixels left as they were
        vis = [float(np.mean(np.all(np.abs(im[bar].astype(int) - img[bar].astype(int)) < 3, axis=-1)))
               for im in imgs]
        return (1 / (1 + np.exp(-(10 * np.array(vis) - 5))))[:, None]

    from scipy.ndimage import gaussian_filter

    attribution = gaussian_filter(bar.astype(np.float32), 3)
    attribution /= attribution.max()
    styled = stylize(img, "fill")
    mini = extend(img, styled, merged, (1,), score, [0.5], "minimal")
    assert np.isin(mini.labels, mini.selected).sum() > 10 * bar.sum()  # the band came along
    full = extend(img, styled, merged, (1,), score, [0.5], "object", attribution=attribution, segments=segments)
    hidden = np.isin(full.labels, full.selected)
    assert hidden[bar].mean() >= 0.9
    assert hidden.sum() <= 2.0 * bar.sum()
    assert "split" in full.reasons


@pytest.fixture
def planted_image() -> tuple[np.ndarray, np.ndarray]:
    return planted(np.random.default_rng(101), 96)


@pytest.mark.parametrize("extent", EXTENTS.names())
def test_every_extent_delivers_a_verified_safe_image(planted_classifier, planted_image, extent):
    img, truth = planted_image
    cfg = SafeguardConfig(models=(planted_classifier,), attribution="gradcam", segmentation="slic",
                          segmentation_options={"n_segments": 64}, extent=extent, rationale=None)
    res = Safeguarder(cfg, classifiers=[planted_classifier]).run(img)
    assert res.unsafe and res.counterfactual_found and not res.fail_closed
    assert all(m.unsafe_score <= m.threshold for m in res.models_after)
    # what was re-classified is what is delivered: untouched outside the mask
    np.testing.assert_array_equal(res.image[~res.mask], img[~res.mask])
    assert res.depth == len(res.regions) >= 1
    assert {r.reason for r in res.regions} <= {"counterfactual", "split", "margin", "closure", "tile"}
    got = np.zeros_like(res.mask)
    for r in res.regions:
        got |= res.segments == r.id
    np.testing.assert_array_equal(got, res.mask)


@pytest.mark.parametrize("extent", EXTENTS.names())
def test_every_extent_fails_closed_when_the_delivered_image_is_unsafe(planted_classifier, planted_image,
                                                                       extent, monkeypatch):
    img, _ = planted_image
    sg = Safeguarder(SafeguardConfig(models=(planted_classifier,), attribution="gradcam", segmentation="slic",
                                     segmentation_options={"n_segments": 64}, extent=extent, rationale=None),
                     classifiers=[planted_classifier])
    real = Safeguarder.classify
    calls = {"n": 0}

    def classify(self, images, *, detect=True):  # the second verdict on the whole image (the delivered one) says unsafe
        calls["n"] += images[0].shape == img.shape  # (not a verdict on a tile of the second look)
        out = real(self, images, detect=detect)
        if calls["n"] == 2 and images[0].shape == img.shape:
            for mo in out[0]:
                mo.unsafe = True
        return out

    monkeypatch.setattr(Safeguarder, "classify", classify)
    res = sg.run(img)
    assert res.fail_closed and res.mask.all() and np.ptp(res.image) == 0


@pytest.mark.parametrize("extent", EXTENTS.names())
def test_every_extent_fails_closed_when_scoring_breaks(planted_classifier, planted_image, extent, monkeypatch):
    img, _ = planted_image
    sg = Safeguarder(SafeguardConfig(models=(planted_classifier,), attribution="gradcam", segmentation="slic",
                                     segmentation_options={"n_segments": 64}, extent=extent, rationale=None),
                     classifiers=[planted_classifier])
    real = Safeguarder.unsafe_scores
    search_done = {"flag": False}

    def scores(self, images):
        if search_done["flag"]:
            raise RuntimeError("model crashed")
        out = real(self, images)
        search_done["flag"] = bool((out <= self.thresholds).all(axis=1).any())
        return out

    monkeypatch.setattr(Safeguarder, "unsafe_scores", scores)
    res = sg.run(img)
    if extent == "minimal":  # classifies nothing after the search
        assert res.counterfactual_found and not res.fail_closed
    else:
        assert res.fail_closed and res.mask.all() and "model crashed" in (res.error or "")


class ContextModel(PartModel):
    """The body counts only next to the spark: 12·spark + 4·spark·body − 6 logits."""

    def logits(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return np.array([12 * s + 4 * s * b - 6 for s, b in map(self.parts, images)])


def test_closure_on_the_original_image_finds_evidence_that_needs_the_key_part():
    model = ContextModel()
    img, body, spark = bomb()
    labels = bomb_labels(body, spark)
    styled = stylize(img, "fill")
    # with the spark hidden the body carries nothing: closure on the delivered image leaves it
    delivered = extend(img, styled, labels, (5,), scorer(model), [0.5], "object", margin=0, complete="none")
    assert delivered.selected == (5,)
    # with the spark in sight hiding the body costs 4 logits: closure on the original takes it
    original = extend(img, styled, labels, (5,), scorer(model), [0.5], "object", margin=0, closure_on="original",
                      complete="none")
    assert original.selected == (5, 4)
    assert original.reasons == ("counterfactual", "closure")


def test_the_complete_step_takes_a_body_beyond_three_times_the_hidden_spark():
    """The body carries no evidence once the spark is hidden, so only the class-agnostic complete step can take
    it; it lies beyond a box three times the spark's size, inside the default box of five (since 2026-12-04)."""
    model = ContextModel()
    img, body, spark = bomb()
    labels = bomb_labels(body, spark)
    styled = stylize(img, "fill")
    hidden = {}
    for grow in (None, 3.0):
        out = extend(img, styled, labels, (5,), scorer(model), [0.5], "object", margin=0,
                     **({} if grow is None else {"complete_grow": grow}))
        mask = np.isin(out.labels, out.selected)
        hidden[grow] = (mask[body].mean(), mask[spark].mean(), mask.sum() / (body | spark).sum())
        assert set(out.reasons) <= {"counterfactual", "object"}
    assert hidden[3.0][0] < 0.05 and hidden[3.0][1] == 1.0  # the box of before: the spark only
    assert hidden[None][0] > 0.95 and hidden[None][1] == 1.0  # the default: the body too
    assert hidden[None][2] < 1.2  # and not much around it


def test_extent_options_are_validated():
    img, body, spark = bomb()
    labels = bomb_labels(body, spark)
    styled = stylize(img, "fill")
    with pytest.raises(InvalidParameterError, match="margin"):
        object_extent(img, styled, labels, (5,), scorer(PartModel()), np.array([0.5]), margin=-1)
    with pytest.raises(InvalidParameterError, match="closure_on"):
        object_extent(img, styled, labels, (5,), scorer(PartModel()), np.array([0.5]), closure_on="both")
    with pytest.raises(InvalidParameterError, match="max_fraction"):
        object_extent(img, styled, labels, (5,), scorer(PartModel()), np.array([0.5]), max_fraction=2)
    # every option is checked before any work, bools and floats where counts are meant included
    for bad in ({"views": "yes"}, {"trim": 1}, {"rounds": -1}, {"max_steps": 2.0}, {"batch_size": 0},
                {"complete_expand": True}, {"tiles": 3.0}, {"margin": float("nan")}, {"work_size": 16},
                {"complete_denoise": "median"}, {"complete_bridge": None}, {"group_delta": -1}, {"attr_ratio": "x"},
                {"complete_stable": 2}):
        with pytest.raises(InvalidParameterError, match=f"^{next(iter(bad))} must be"):
            object_extent(img, styled, labels, (5,), scorer(PartModel()), np.array([0.5]), **bad)
    with pytest.raises(InvalidParameterError, match="selected region ids"):
        minimal(img, styled, labels, (9,), scorer(PartModel()), np.array([0.5]))
    with pytest.raises(InvalidParameterError, match="labels"):
        minimal(img, styled, labels[:5], (1,), scorer(PartModel()), np.array([0.5]))
    with pytest.raises(UnknownNameError, match="valid names: minimal, object"):
        SafeguardConfig(extent="largest")


def test_helpers():
    assert float(logit(0.5)) == 0.0
    assert np.isfinite(logit(np.array([0.0, 1.0]))).all()
    views = light_views(np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3))
    assert len(views) == 5 and all(v.shape == (20, 30, 3) for v in views)
    np.testing.assert_array_equal(views[1], views[0][:, ::-1])


@pytest.mark.parametrize("extent", EXTENTS.names())
def test_scan_records_the_extent_and_why_each_region_is_hidden(planted_classifier, monkeypatch, tmp_path, extent):
    import json

    from PIL import Image
    from typer.testing import CliRunner

    from veil.classify import CLASSIFIERS
    from veil.cli import app

    monkeypatch.setitem(CLASSIFIERS._items, "planted", lambda **kw: planted_classifier)
    img, _ = planted(np.random.default_rng(101), 96)
    Image.fromarray(img).save(tmp_path / "unsafe.png")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["scan", str(tmp_path / "unsafe.png"), "--out", str(out), "--model", "planted",
                                   "--segmentation", "slic", "-p", "segmentation.n_segments=64",
                                   "--extent", extent])
    assert res.exit_code == 0, res.output
    rec = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    assert rec["extent"] == extent and rec["counterfactual_found"]
    assert len(rec["regions"]) == rec["depth"] >= 1
    assert all(r["reason"] in REASONS for r in rec["regions"])
    if extent == "minimal":
        assert {r["reason"] for r in rec["regions"]} == {"counterfactual"}
    html = (out / "report.html").read_text()
    assert f"Extent: <b>{extent}</b>" in html and "hidden regions by reason" in html


def test_unknown_extent_is_a_clear_cli_error(tmp_path):
    from typer.testing import CliRunner

    from veil.cli import app

    res = CliRunner().invoke(app, ["scan", str(tmp_path), "--out", str(tmp_path / "o"), "--extent", "largest"])
    assert res.exit_code == 2 and "valid names: minimal, object" in res.output


def test_object_extent_recovers_what_the_minimal_counterfactual_leaves(planted_classifier):
    # coarse watershed regions: the search stops once most of the patch is hidden; closure takes
    # the touching regions that still carry evidence
    recalls: dict[str, list[float]] = {"minimal": [], "object": []}
    for extent in recalls:
        sg = Safeguarder(SafeguardConfig(models=(planted_classifier,), attribution="gradcam",
                                         segmentation="watershed", extent=extent, rationale=None),
                         classifiers=[planted_classifier])
        for i in range(4):
            img, truth = planted(np.random.default_rng(100 + i), 96)
            res = sg.run(img)
            assert res.counterfactual_found
            recalls[extent].append(float((res.mask & truth).sum() / truth.sum()))
    assert all(o >= m - 1e-9 for o, m in zip(recalls["object"], recalls["minimal"], strict=True))
    assert np.mean(recalls["object"]) > np.mean(recalls["minimal"])


class BigBombModel(ContextModel):
    """:class:`ContextModel` on a larger canvas, whose body is no region of the label map."""

    def __init__(self, img: np.ndarray, body: np.ndarray, spark: np.ndarray) -> None:
        self.ref = (float(spark.sum()), float(body.sum()))
        self.size = img.shape[0] * img.shape[1]

    def parts(self, im: np.ndarray) -> tuple[float, float]:
        f = np.asarray(im, np.float32)
        near = [np.linalg.norm(f - c, axis=-1) < 40 for c in (SPARK, BODY)]
        return tuple(min(1.0, k.sum() / r * self.size / k.size) for k, r in zip(near, self.ref, strict=True))


def big_bomb(size: int = 192) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The bomb on a 192-px textured canvas; labels: four quadrants (the body split among them) and a
    superpixel-sized square around the spark (4) that also takes the body's top and some background."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.stack([90 + 60 * xx / size, 140 - 40 * yy / size, 120 + 0 * xx], axis=-1) + rng.normal(0, 6, (size, size, 3))
    body = (yy - 110) ** 2 + (xx - 100) ** 2 <= 20**2
    spark = np.zeros((size, size), bool)
    spark[84:93, 96:105] = True
    img[body] = BODY
    img[spark] = SPARK
    labels = ((yy >= 100) * 2 + (xx >= 100)).astype(np.int32)
    labels[78:98, 90:110] = 4
    return np.clip(img, 0, 255).astype(np.uint8), body, spark, labels


def test_complete_grabcut_hides_the_body_no_region_holds():
    img, body, spark, labels = big_bomb()
    model = BigBombModel(img, body, spark)
    styled = stylize(img, "fill")
    plain = extend(img, styled, labels, (4,), scorer(model), [0.5], "object", complete="none")
    assert plain.selected == (4,)  # the body carries nothing once the spark is hidden, and is no region
    full = extend(img, styled, labels, (4,), scorer(model), [0.5], "object", complete="grabcut")
    assert full.selected[0] == 4 and set(full.reasons[1:]) == {"object"} and len(full.selected) > 1
    hidden = np.isin(full.labels, full.selected)
    assert (hidden & body).sum() >= 0.9 * body.sum()
    # the body and a ring of 15 % of its size around it (its outline hidden), not the quadrants
    assert (hidden & ~body & (labels != 4)).sum() <= 1.0 * body.sum()
    assert model.logits([np.where(hidden[..., None], styled, img)])[0] <= 0
    with pytest.raises(InvalidParameterError, match="complete"):
        extend(img, styled, labels, (4,), scorer(model), [0.5], "object", complete="sam")
    with pytest.raises(InvalidParameterError, match="complete_dilate"):
        extend(img, styled, labels, (4,), scorer(model), [0.5], "object", complete="grabcut", complete_dilate=-1)


def test_complete_figures_hides_the_body_no_region_holds():
    """The same bomb: the body is an enclosed, contrasting segment attached to the hidden spark square."""
    img, body, spark, labels = big_bomb()
    model = BigBombModel(img, body, spark)
    styled = stylize(img, "fill")
    full = extend(img, styled, labels, (4,), scorer(model), [0.5], "object", complete="figures")
    default = extend(img, styled, labels, (4,), scorer(model), [0.5], "object")  # figures is the default
    assert default.selected == full.selected and np.array_equal(default.labels, full.labels)
    assert full.selected[0] == 4 and set(full.reasons[1:]) == {"object"} and len(full.selected) > 1
    hidden = np.isin(full.labels, full.selected)
    assert (hidden & body).sum() >= 0.9 * body.sum()
    assert (hidden & ~body & (labels != 4)).sum() <= 0.5 * body.sum()  # the textured background stays
    assert model.logits([np.where(hidden[..., None], styled, img)])[0] <= 0


def test_complete_max_figure_leaves_a_large_figure_in_sight_and_a_large_body_too():
    """The big bomb with a blue panel of 9 % of the image beside the hidden spark square (a jacket beside a
    blade): an enclosed, contrasting segment under the figure search's own 10 % bound. By default the complete
    step hides it with the body; with ``complete_max_figure=0.06`` (opt-in) it hides the body and leaves the
    panel in sight, unless half of what is already hidden is larger (``complete_max_figure_relative``). The
    price, and why it is opt-in: the body of :func:`bomb`, 11 % of its image, which the model keys off once
    the spark is hidden, is no figure any more; its inside is hidden only as a hole within its outline's
    segment, and the outline stays in sight."""
    img, body, spark, labels = big_bomb()
    panel = np.zeros(body.shape, bool)
    panel[30:78, 20:88] = True  # 3,264 pixels, 8.9 % of the image, two pixels left of the square (90:110)
    assert 0.06 < panel.mean() < 0.1
    blue = np.array([40, 60, 220]) + np.random.default_rng(6).normal(0, 6, (int(panel.sum()), 3))  # grained as the
    img[panel] = np.clip(blue, 0, 255).astype(np.uint8)  # ground, so a colour figure, not a smooth patch
    model = BigBombModel(img, body, spark)
    styled = stylize(img, "fill")
    default = extend(img, styled, labels, (4,), scorer(model), [0.5], "object")
    hidden = np.isin(default.labels, default.selected)
    assert hidden[body].mean() >= 0.9 and hidden[panel].mean() >= 0.9
    bounded = extend(img, styled, labels, (4,), scorer(model), [0.5], "object", complete_max_figure=0.06,
                     complete_max_figure_relative=0.5)
    hidden = np.isin(bounded.labels, bounded.selected)
    assert hidden[body].mean() >= 0.9 and "object" in bounded.reasons
    assert hidden[panel].mean() <= 0.1
    assert model.logits([np.where(hidden[..., None], styled, img)])[0] <= 0
    # the relative term: when that share of what is hidden reaches the 10 % bound, the panel is a figure again
    relative = extend(img, styled, labels, (4,), scorer(model), [0.5], "object", complete_max_figure=0.06,
                      complete_max_figure_relative=20.0)
    assert np.isin(relative.labels, relative.selected)[panel].mean() >= 0.9
    # the price: a body of 11 % of the image behind a spark of 0.5 %
    from scipy import ndimage as ndi

    small, sbody, sspark = bomb()
    rim = sbody & ~ndi.binary_erosion(sbody, iterations=2)
    left = {}
    for bound in (0.1, 0.06):
        o = extend(small, stylize(small, "fill"), bomb_labels(sbody, sspark), (5,), scorer(ContextModel()), [0.5],
                   "object", margin=0, complete_max_figure=bound, complete_max_figure_relative=0.5)
        left[bound] = sbody & ~np.isin(o.labels, o.selected)
    assert sbody.mean() > 0.1 and left[0.1].sum() == 0
    assert left[0.06].sum() > 0.05 * sbody.sum() and not (left[0.06] & ~rim).any()  # its outline, in sight
    for bad in ({"complete_max_figure": 0}, {"complete_max_figure": 0.2}, {"complete_max_figure_relative": -1},
                {"complete_max_figure": float("nan")}):
        with pytest.raises(InvalidParameterError, match=next(iter(bad))):
            extend(img, styled, labels, (4,), scorer(model), [0.5], "object", **bad)


def test_the_finer_cut_frees_a_body_the_coarse_cut_joined_to_a_ground_of_its_own_tone():
    """:func:`big_bomb` over a dark ground of nearly the body's tone that runs to the image's bottom edge: the
    coarse cut (scale 400) joins the body to the ground, so no figure holds the body; the finer cut (on by
    default since 2026-12-05) frees it (smooth patches off: the flat body would be one)."""
    img, body, spark, labels = big_bomb()
    yy, _ = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    ground = (yy >= 122) & ~body
    grained = img.astype(np.float64)
    grained[ground] = BODY + 8 + np.random.default_rng(7).normal(0, 4, (int(ground.sum()), 3))
    img = np.clip(grained, 0, 255).astype(np.uint8)
    model = BigBombModel(img, body, spark)
    styled = stylize(img, "fill")
    on = extend(img, styled, labels, (4,), scorer(model), [0.5], "object", complete_smooth=0)
    off = extend(img, styled, labels, (4,), scorer(model), [0.5], "object", complete_smooth=0, complete_fine=0)
    assert np.isin(off.labels, off.selected)[body].mean() < 0.2
    hidden = np.isin(on.labels, on.selected)
    assert hidden[body].mean() > 0.8 and "object" in on.reasons
    assert hidden[ground].mean() < 0.05  # the ground it was joined to stays in sight
    assert (hidden & ~body & ~ground & (labels != 4)).sum() <= 0.5 * body.sum()
    assert model.logits([np.where(hidden[..., None], styled, img)])[0] <= 0


def test_work_composes_a_region_lost_at_the_working_size():
    # a completed piece too small to survive the downscale to the working size must not crash the
    # extent (it did: an IndexError that failed the image closed)
    from veil.counterfactual.extent import _Work

    img = np.zeros((8, 8, 3), np.uint8)
    styled = np.full((8, 8, 3), 255, np.uint8)
    labels = np.zeros((8, 8), np.int64)
    labels[4:, :] = 1
    work = _Work(img, styled, labels, lambda ims: np.zeros((len(ims), 1)), np.zeros(1), False)
    out = work.compose([1, 7])
    np.testing.assert_array_equal(out[4:], styled[4:])
    np.testing.assert_array_equal(out[:4], img[:4])


def test_securing_takes_a_hidden_region_lost_at_the_working_size():
    """The regions that win the verdict back are looked for next to what is hidden, which may hold a piece
    too small to survive the working size (id 7 here): no IndexError, the touching region that helps."""
    from veil.counterfactual.extent import _secure, _Work

    img = np.zeros((8, 8, 3), np.uint8)
    img[:, 6:] = 200  # region 2 holds the evidence left
    styled = np.full((8, 8, 3), 90, np.uint8)
    labels = np.zeros((8, 8), np.int64)
    labels[4:, :6] = 1
    labels[:, 6:] = 2

    def score(ims: list[np.ndarray]) -> np.ndarray:  # unsafe while the bright column is in sight
        return np.array([[0.9 if (im[:, 6:] == 200).any() else 0.1] for im in ims])

    work = _Work(img, styled, labels, score, logit(np.array([0.5])), False)
    full = labels.copy()
    full[0, 0] = 7
    assert _secure(work, full, [1, 7], img, styled, limit=0.0, views=False, steps=2, max_region=1.0,
                   max_fraction=1.0) == [2]
    assert _secure(work, full, [1, 7], img, styled, limit=0.0, views=False, steps=2, max_region=0.2,
                   max_fraction=1.0) is None  # (region 2 is a quarter of the image)


def test_complete_fills_a_hole_in_what_is_hidden():
    """A sliver of the object seen through a hole of the mask (the demo mark's white bar, once) is hidden too."""
    rng = np.random.default_rng(3)
    img = np.clip(rng.normal(120, 8, (96, 96, 3)), 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[0:96, 0:96]
    disc = (yy - 48) ** 2 + (xx - 48) ** 2 <= 20**2
    hole = (abs(yy - 48) <= 3) & (abs(xx - 48) <= 3)
    img[disc] = (215, 25, 30)
    img[hole] = (250, 250, 250)
    labels = np.where(disc & ~hole, 1, 0).astype(np.int32)
    labels[hole] = 2
    styled = stylize(img, "fill")

    def safe(images):  # hiding the ring already makes the image safe; nothing else carries evidence
        return np.zeros((len(images), 1))

    plain = extend(img, styled, labels, (1,), safe, [0.5], "object", complete="none")
    assert plain.selected == (1,)
    full = extend(img, styled, labels, (1,), safe, [0.5], "object")
    hidden = np.isin(full.labels, full.selected)
    assert hidden[hole].all() and "object" in full.reasons
    assert not hidden[~disc].any()  # the background around the disc stays


def test_complete_hides_a_smooth_blade_on_a_grained_band_of_its_own_colour():
    """The handle is all the model needs; the blade, the band's colour but smooth, is a smooth patch on it."""
    rng = np.random.default_rng(4)
    img = np.clip(rng.normal(110, 10, (120, 160, 3)), 0, 255)
    img[40:80] = np.clip(np.array([185, 188, 196]) + rng.normal(0, 6, (40, 160, 1)), 0, 255)  # the band
    blade = np.zeros((120, 160), bool)
    blade[54:66, 50:105] = True  # within the box three times the handle's size
    img[blade] = (185, 188, 196)
    img[52:68, 30:50] = (70, 40, 20)  # the handle
    img = img.astype(np.uint8)
    labels = np.zeros((120, 160), np.int32)
    labels[40:80] = 1  # the band and the blade: one region, as a colour merge would make it
    labels[52:68, 30:50] = 2
    styled = stylize(img, "fill")

    def safe(images):  # hiding the handle already makes the image safe
        return np.zeros((len(images), 1))

    colour_only = extend(img, styled, labels, (2,), safe, [0.5], "object", complete_smooth=0)
    assert not np.isin(colour_only.labels, colour_only.selected)[blade].mean() > 0.5
    full = extend(img, styled, labels, (2,), safe, [0.5], "object")
    hidden = np.isin(full.labels, full.selected)
    assert hidden[blade].mean() > 0.9 and "object" in full.reasons
    assert (hidden & ~blade & (labels != 2)).sum() <= 1.0 * blade.sum()  # the blade, not the band
    with pytest.raises(InvalidParameterError, match="complete_smooth"):
        extend(img, styled, labels, (2,), safe, [0.5], "object", complete_smooth=-1)
    with pytest.raises(InvalidParameterError, match="complete_through"):
        extend(img, styled, labels, (2,), safe, [0.5], "object", complete_through=float("nan"))
    for bad in (0, 2.5, True):
        with pytest.raises(InvalidParameterError, match="complete_rounds"):
            extend(img, styled, labels, (2,), safe, [0.5], "object", complete_rounds=bad)


def test_complete_hides_a_smooth_blade_cut_by_the_frame_unless_told_to_keep_off_the_edge():
    """As above, but the blade runs off the right edge of the picture: by default it is taken (thin and
    straight, meeting the frame on one side); with ``complete_edge_solidity=0`` it stays in sight. (A short
    smooth blade is not: the grain window leaves its patch's rim ragged, solidity about 0.8, and it is not
    ten times longer than wide; docs/extent-history.md.)"""
    rng = np.random.default_rng(5)
    img = np.clip(rng.normal(110, 10, (120, 160, 3)), 0, 255)
    img[40:80] = np.clip(np.array([185, 188, 196]) + rng.normal(0, 6, (40, 160, 1)), 0, 255)  # the band
    blade = np.zeros((120, 160), bool)
    blade[55:65, 40:] = True  # from the handle to the right edge, 12 times longer than wide
    img[blade] = (185, 188, 196)
    img[52:68, 10:40] = (70, 40, 20)  # the handle
    img = img.astype(np.uint8)
    labels = np.zeros((120, 160), np.int32)
    labels[40:80] = 1
    labels[52:68, 10:40] = 2
    styled = stylize(img, "fill")

    def safe(images):
        return np.zeros((len(images), 1))

    off = extend(img, styled, labels, (2,), safe, [0.5], "object", complete_edge_solidity=0)
    assert np.isin(off.labels, off.selected)[blade].mean() < 0.5
    full = extend(img, styled, labels, (2,), safe, [0.5], "object")
    hidden = np.isin(full.labels, full.selected)
    assert hidden[blade].mean() > 0.9 and "object" in full.reasons
    assert (hidden & ~blade & (labels != 2)).sum() <= 1.0 * blade.sum()  # the blade, not the band


@pytest.mark.parametrize("shape", [(1, 50), (50, 1), (2, 1000), (33, 1000), (8, 8), (70, 300)])
def test_object_extent_on_strips_and_tiny_images(shape):
    """Odd shapes (a one-pixel strip, a working copy one pixel high) go through every step: no crash."""
    rng = np.random.default_rng(1)
    h, w = shape
    img = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    labels = ((np.arange(h)[:, None] * 3 // h) * 3 + np.arange(w)[None, :] * 3 // w).astype(np.int32)
    styled = stylize(img, "blur")

    def score(images):  # unsafe while the image keeps its noise
        return np.array([[float(np.asarray(im, np.float64).std() > 60)] for im in images])

    crops: list[tuple[int, ...]] = []

    def look(crop: np.ndarray) -> tuple[np.ndarray | None, int]:  # (no counterfactual in any tile)
        crops.append(crop.shape)
        return None, 1

    out = extend(img, styled, labels, (0,), score, [0.5], "object", segments=labels,
                 attribution=rng.random((h, w)), look=look)
    assert out.selected and len(out.reasons) == len(out.selected) and out.labels.shape == (h, w)
    assert set(out.reasons) <= {"counterfactual", "split", "closure", "margin", "object", "tile"}
    assert all(min(c[:2]) >= 32 for c in crops)  # no tile under 32 pixels is looked at
    fraction = inspect.signature(object_extent).parameters["tile_fraction"].default
    assert bool(crops) == (round(min(shape) * fraction) >= 32)  # (the default tiles' side)


STEP_ORDER = ("split", "closure", "margin", "trim", "complete", "prune", "look")


def counts_follow_the_trace(out: ExtentOutcome) -> set[str]:
    """Checks that ``evaluated_by_step`` charges each classification to the step that asked for it, against the
    trace's running count (``evaluated``) where a step ends with an entry: the split entry ends the split step, the
    margin entry the margin step, the first complete entry the complete step (a second complete step runs under
    prune). Returns the steps that classified anything."""
    by = out.evaluated_by_step
    assert sum(by.values()) == out.n_evaluated and set(by) <= set(STEP_ORDER) and all(v > 0 for v in by.values())

    def upto(step: str) -> int:
        return sum(by.get(s, 0) for s in STEP_ORDER[: STEP_ORDER.index(step) + 1])

    first: dict[str, dict[str, Any]] = {}
    for t in out.trace:
        first.setdefault(t["step"], t)
    for step in ("split", "margin", "complete"):
        if step in first:
            assert first[step]["evaluated"] == upto(step), (step, first[step]["evaluated"], by)
    if "prune" in first:
        assert upto("complete") <= first["prune"]["evaluated"] <= upto("prune")
    return set(by)


def test_the_object_extent_classifies_each_candidate_once():
    """Closure and margin weigh many of the same candidates (and the image itself is the first of its
    light views): each composition is classified once, and ``n_evaluated`` counts what was classified."""
    import hashlib

    model = PartModel()
    img, body, spark = bomb()
    labels = bomb_labels(body, spark)
    styled = stylize(img, "fill")
    seen: list[str] = []

    def score(imgs: Sequence[np.ndarray]) -> np.ndarray:
        seen.extend(hashlib.sha1(np.ascontiguousarray(i).tobytes()).hexdigest() + str(i.shape) for i in imgs)
        return scorer(model)(imgs)

    out = extend(img, styled, labels, (5,), score, [0.5], "object")
    assert out.selected[:2] == (5, 4)
    assert len(seen) == out.n_evaluated > 0
    assert len(set(seen)) == len(seen)
    assert counts_follow_the_trace(out) >= {"closure", "margin"}


def outlined_bomb() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`big_bomb` with a 3-px outline around the body, the spark moved up to touch the outline (top
    at row 87) and not the body, and the spark's label square no longer reaching the body."""
    img, body, spark, labels = big_bomb()
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    outline = ((yy - 110) ** 2 + (xx - 100) ** 2 <= 23**2) & ~body
    img[outline] = (75, 75, 80)  # between the body and the canvas: no figure by itself
    img[spark] = img[0, 0]
    spark = np.zeros_like(spark)
    spark[78:88, 96:105] = True
    img[spark] = SPARK
    labels[labels == 4] = 0
    labels[74:88, 90:110] = 4
    return img, body, spark, labels, outline


def test_complete_hides_a_body_behind_its_outline():
    """The bomb's body drawn with a 3-px outline, the hidden spark touching the outline only: the body is
    attached to nothing hidden, but the outline is a rim, and the complete step looks through it
    (smooth patches off: the flat body on the grained canvas would be one)."""
    img, body, spark, labels, outline = outlined_bomb()
    model = BigBombModel(img, body, spark)
    styled = stylize(img, "fill")
    off = extend(img, styled, labels, (4,), scorer(model), [0.5], "object", complete_smooth=0, complete_through=0,
                 complete_rounds=1)
    on = extend(img, styled, labels, (4,), scorer(model), [0.5], "object", complete_smooth=0)
    assert np.isin(off.labels, off.selected)[body].mean() < 0.1
    hidden = np.isin(on.labels, on.selected)
    assert hidden[body].mean() > 0.95 and "object" in on.reasons
    assert (hidden & ~body & ~outline & (labels != 4)).sum() <= 0.5 * body.sum()  # not the canvas around
    assert model.logits([np.where(hidden[..., None], styled, img)])[0] <= 0


class MarginLosingModel(BigBombModel):
    """Unsafe while the spark is in sight; safe by 3 logits without it, but by only 0.5 once the body is
    hidden too (a blurred body that the model half takes for one): the growth to the body loses the margin."""

    def logits(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return np.array([8.0 if s > 0.5 else (-0.5 if b < 0.5 else -3.0) for s, b in map(self.parts, images)])


def test_complete_keeps_a_growth_that_stays_safe_but_loses_the_margin_unless_asked_for_the_margin():
    img, body, spark, labels, _ = outlined_bomb()
    model = MarginLosingModel(img, body, spark)
    styled = stylize(img, "fill")
    kept = extend(img, styled, labels, (4,), scorer(model), [0.5], "object", complete_smooth=0)
    strict = extend(img, styled, labels, (4,), scorer(model), [0.5], "object", complete_smooth=0,
                    complete_limit="margin")
    hidden_kept, hidden_strict = (np.isin(o.labels, o.selected) for o in (kept, strict))
    assert hidden_kept[body].mean() > 0.95 and "object" in kept.reasons
    assert hidden_strict[body].mean() < 0.1
    for hidden, most in ((hidden_kept, 0.0), (hidden_strict, -1.0)):  # safe; with the margin when asked
        assert model.logits([np.where(hidden[..., None], styled, img)])[0] <= most
    with pytest.raises(InvalidParameterError, match="complete_limit"):
        extend(img, styled, labels, (4,), scorer(model), [0.5], "object", complete_limit="strict")


def test_complete_falls_back_to_the_growth_without_outlines_when_that_one_is_refused():
    """When the growth found behind outlines is refused (here: it would pass the bound on the hidden
    share), the smaller growths are tried in turn (one round, then without looking through), rather
    than nothing being added."""
    img, body, spark, labels, _ = outlined_bomb()
    img[70:88, 105:112] = (240, 240, 250)  # a bright tab beside the spark: a figure without looking through
    model = BigBombModel(img, body, spark)
    styled = stylize(img, "fill")
    kw: dict[str, Any] = {"complete_smooth": 0}
    on = extend(img, styled, labels, (4,), scorer(model), [0.5], "object", **kw)
    off = extend(img, styled, labels, (4,), scorer(model), [0.5], "object", complete_through=0, complete_rounds=1, **kw)
    one = extend(img, styled, labels, (4,), scorer(model), [0.5], "object", complete_rounds=1, **kw)
    hidden_on, hidden_one, hidden_off = (np.isin(o.labels, o.selected) for o in (on, one, off))
    assert "object" in off.reasons and hidden_off.sum() < hidden_one.sum() < hidden_on.sum()
    # each growth is refused by a bound just under it, and the next smaller one is delivered:
    # two rounds behind outlines → one round behind outlines → one round without
    for refused, expected in ((hidden_on, hidden_one), (hidden_one, hidden_off)):
        bound = float(refused.mean()) - 0.001
        fallback = extend(img, styled, labels, (4,), scorer(model), [0.5], "object", max_fraction=bound, **kw)
        np.testing.assert_array_equal(np.isin(fallback.labels, fallback.selected), expected)


class SecuringModel(BigBombModel):
    """Unsafe while the spark is in sight; safe by 3 logits without it; but once the body is hidden too, unsafe
    again (a blurred body it half takes for one) unless the magenta specks beside the spark are hidden as
    well: the growth to the body loses the verdict, and one touching region gives it back."""

    def __init__(self, img: np.ndarray, body: np.ndarray, spark: np.ndarray, specks: np.ndarray) -> None:
        super().__init__(img, body, spark)
        self.specks = float(specks.sum())

    def logits(self, images: Sequence[np.ndarray]) -> np.ndarray:
        out = []
        for im, (s, b) in zip(images, map(self.parts, images), strict=True):
            m = (np.linalg.norm(np.asarray(im, np.float32) - MAGENTA, axis=-1) < 60).sum() / self.specks
            out.append(8.0 if s > 0.5 else -3.0 if b >= 0.5 else 0.5 if m > 0.5 else -2.0)
        return np.array(out)


def test_complete_secures_a_growth_that_loses_the_verdict_with_a_touching_region():
    """Hiding the body makes the image unsafe again: rather than leave the body in sight (as before
    2026-12-04, ``complete_secure=0``), the extent adds the touching region that gives the verdict back, at most
    ``complete_secure`` of them. The specks are too small to be figures; their region touches the spark's."""
    img, body, spark, labels = big_bomb()
    img[22:80:10, 112:185:10] = MAGENTA
    img[23:80:10, 112:185:10] = MAGENTA
    labels[20:80, 110:185] = 5
    block = labels == 5
    model = SecuringModel(img, body, spark, np.all(img == MAGENTA, axis=-1))
    styled = stylize(img, "fill")
    kw: dict[str, Any] = {"complete_smooth": 0}
    before = extend(img, styled, labels, (4,), scorer(model), [0.5], "object", complete_secure=0, **kw)
    secured = extend(img, styled, labels, (4,), scorer(model), [0.5], "object", **kw)
    hidden_before, hidden = (np.isin(o.labels, o.selected) for o in (before, secured))
    assert hidden_before[body].mean() < 0.15 and not hidden_before[block].any()  # (the spark's square takes its top)
    assert hidden[body].mean() > 0.95 and hidden[block].all()
    assert {"object", "margin"} <= set(secured.reasons)
    assert (hidden & ~body & ~block & (labels != 4)).sum() <= 0.5 * body.sum()  # nothing else
    for h in (hidden_before, hidden):
        assert model.logits([np.where(h[..., None], styled, img)])[0] <= 0
    assert any(t.get("secured") == 1 for t in secured.trace if t["step"] == "complete")
    assert "complete" in counts_follow_the_trace(secured)  # (winning the verdict back is the complete step's)
    with pytest.raises(InvalidParameterError, match="complete_secure"):
        extend(img, styled, labels, (4,), scorer(model), [0.5], "object", complete_secure=-1)


class AdditiveModel:
    """A model whose unsafe logit adds up evidence over the red pixels in sight, weighted by a fixed map
    (most in the middle), so that hiding a region lowers the logit by the same amount whatever else is hidden."""

    def __init__(self, size: int = 64) -> None:
        yy, xx = np.mgrid[0:size, 0:size]
        self.w = np.exp(-((yy - size / 2) ** 2 + (xx - size / 3) ** 2) / (2 * (size / 4) ** 2))
        self.w *= 1 + 0.3 * np.random.default_rng(0).random((size, size))  # (no two regions weigh the same)

    def __call__(self, imgs: Sequence[np.ndarray]) -> np.ndarray:
        z = np.array([30 * float((self.w * (np.asarray(i)[..., 0] > 128)).sum() / self.w.sum()) - 22 for i in imgs])
        return (1 / (1 + np.exp(-z)))[:, None]


def test_the_margin_step_weighs_again_only_the_best_candidates_and_chooses_as_before():
    """With evidence that adds up, a candidate's gain does not change as others are hidden, so weighing again
    only the best few of the step before (and the new neighbours) makes the same choices from fewer
    classifications; ``rescore=0`` weighs every candidate at every step."""
    size = 64
    img = np.zeros((size, size, 3), np.uint8)
    img[..., 0] = 200  # red everywhere: evidence wherever it is in sight
    styled = np.zeros_like(img)
    yy, xx = np.mgrid[0:size, 0:size]
    labels = ((yy // 8) * 8 + xx // 8).astype(np.int32)  # an 8×8 grid of regions
    model = AdditiveModel(size)
    start = (27, 28, 35, 36)  # the middle regions (not enough for the margin by themselves)
    assert logit(model([np.where(np.isin(labels, start)[..., None], styled, img)]))[0] > -1
    kw: dict[str, Any] = {"rounds": 0, "views": False, "complete": "none", "group_delta": 0}
    every = object_extent(img, styled, labels, start, model, np.array([0.5]), rescore=0, **kw)
    lazy = object_extent(img, styled, labels, start, model, np.array([0.5]), **kw)
    assert every.selected == lazy.selected and len(lazy.selected) > len(start) + 1
    assert lazy.n_evaluated < every.n_evaluated
    hidden = np.isin(lazy.labels, lazy.selected)
    assert logit(model([np.where(hidden[..., None], styled, img)]))[0] <= -1  # the margin (1 logit) is reached


def test_the_margin_step_takes_at_most_max_steps_candidates():
    """The margin step stops after ``max_steps`` additions (six by default) even when the margin is not yet
    reached; the image it returns is still safe (the margin is a harder verdict, not the verdict)."""
    size = 64
    img = np.zeros((size, size, 3), np.uint8)
    img[..., 0] = 200
    styled = np.zeros_like(img)
    yy, xx = np.mgrid[0:size, 0:size]
    labels = ((yy // 8) * 8 + xx // 8).astype(np.int32)
    model = AdditiveModel(size)
    start = (18, 19, 20, 26, 27, 28, 34, 35, 36)  # the middle regions: safe, by less than the margin
    assert -5 < logit(model([np.where(np.isin(labels, start)[..., None], styled, img)]))[0, 0] < 0
    kw: dict[str, Any] = {"rounds": 0, "views": False, "complete": "none", "group_delta": 0, "margin": 5.0}
    counts, reached, chosen = {}, {}, {}
    for steps in (None, 1, 2, 6):
        out = object_extent(img, styled, labels, start, model, np.array([0.5]),
                            **kw, **({} if steps is None else {"max_steps": steps}))
        counts[steps], chosen[steps] = out.reasons.count("margin"), out.selected
        hidden = np.isin(out.labels, out.selected)
        reached[steps] = float(logit(model([np.where(hidden[..., None], styled, img)]))[0, 0])
    assert counts[1] == 1 and counts[2] == 2
    assert counts[6] > 2 and reached[6] <= -5  # six steps reach this margin, two do not
    assert chosen[None] == chosen[6]  # six is the default
    assert reached[6] < reached[2] < reached[1] < 0  # each step lowers the logit; the image stays safe


def _figure_search_kwargs(monkeypatch: pytest.MonkeyPatch,
                          **options: Any) -> tuple[list[dict[str, Any]], ExtentOutcome, np.ndarray]:
    """The keyword arguments each figure search of the object extent on the bomb scene was given, the outcome and
    the bomb's body."""
    import veil.segment.figures as figures

    calls: list[dict[str, Any]] = []
    real = figures.figure_growths

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(figures, "figure_growths", spy)
    img, body, spark = bomb()
    out = object_extent(img, stylize(img, "fill"), bomb_labels(body, spark), (5,), scorer(PartModel()),
                        np.array([0.5]), **options)
    return calls, out, body


@pytest.mark.parametrize("size", [96, 384, 512])
def test_the_figures_are_cut_on_a_copy_of_complete_size(size, monkeypatch):
    # the option reaches the figure search as the size of its copy, and the default is 512 pixels
    calls, out, body = _figure_search_kwargs(monkeypatch, **({} if size == 512 else {"complete_size": size}))
    assert calls and {c["size"] for c in calls} == {size}
    assert regions_mask(out.labels, list(out.selected))[body].mean() > 0.9  # (the body is hidden at every size)


@pytest.mark.parametrize("bridge", [None, True, False])
def test_the_bridge_through_mostly_hidden_segments_reaches_the_figure_search(bridge, monkeypatch):
    # on by default (veil.segment.figures has its known answer); False gives the complete step of before
    calls, out, body = _figure_search_kwargs(monkeypatch, **({} if bridge is None else {"complete_bridge": bridge}))
    assert calls and {c["bridge"] for c in calls} == {bridge is not False}
    assert regions_mask(out.labels, list(out.selected))[body].mean() > 0.9  # (the body touches the spark: either way)


def test_the_photograph_options_reach_the_figure_search(monkeypatch):
    # the defaults since 2026-12-07 (veil.segment.figures has their known answers), and each can be set
    calls, out, body = _figure_search_kwargs(monkeypatch)
    assert calls and all((c["noise_floor"], c["faint"], c["faint_elongation"], c["faint_ragged"], c["denoise"])
                         == (0.02, 4.0, 3.0, 1.35, "auto") for c in calls)
    assert regions_mask(out.labels, list(out.selected))[body].mean() > 0.9
    calls, out, body = _figure_search_kwargs(monkeypatch, complete_noise_floor=0.0, complete_faint=0.0,
                                             complete_denoise="meanshift")
    assert calls and all((c["noise_floor"], c["faint"], c["denoise"]) == (0.0, 0.0, "meanshift") for c in calls)
    assert regions_mask(out.labels, list(out.selected))[body].mean() > 0.9  # (a flat drawn body: found either way)


def test_the_cut_again_reaches_the_figure_search(monkeypatch):
    # on by default since 2026-12-07 (tests/segment/test_figures.py: `every`'s known answer, and when `fine_again`
    # cuts)
    calls, out, body = _figure_search_kwargs(monkeypatch)
    assert calls and all((c["fine_again"], c["fine_again_contrast"]) == (100.0, 15.0) for c in calls)
    calls, out, body = _figure_search_kwargs(monkeypatch, complete_fine_again=0.0, complete_fine_again_contrast=20.0)
    assert calls and all((c["fine_again"], c["fine_again_contrast"]) == (0.0, 20.0) for c in calls)
    assert regions_mask(out.labels, list(out.selected))[body].mean() > 0.9


@pytest.mark.parametrize(("option", "name", "default", "other"), [
    ("complete_aligned", "aligned", 5.0, 0.0),          # on since 2026-12-07 15:00; 0 turns it off
    ("complete_aligned_gap", "aligned_gap", 0.02, 0.0),  # since 19:30; 0: the pieces must touch the growth
    ("complete_aligned_run", "aligned_run", 5.0, 0.0),   # since 21:45; 0: the hidden piece must have the axis
    ("complete_fine_every", "fine_every", True, False),  # since 17:15; False: only large or framed segments
])
def test_the_later_figure_options_reach_the_figure_search(monkeypatch, option, name, default, other):
    # tests/segment/test_figures.py has their known answers; the bomb's drawn body is found either way
    for kw, value in (({}, default), ({option: other}, other)):
        calls, out, body = _figure_search_kwargs(monkeypatch, **kw)
        assert calls and all(type(c[name]) is type(value) and c[name] == value for c in calls)
        assert regions_mask(out.labels, list(out.selected))[body].mean() > 0.9


@pytest.mark.parametrize("bad", [{"rescore": -1}, {"rescore": True}, {"rescore": 1.5}, {"complete_fine": -1.0}, {"margin_area": -1.0},
                                 {"complete_fine_contrast": float("nan")}, {"complete_evidence": 1.0},
                                 {"complete_evidence": -0.5}, {"complete_evidence_relative": -1.0},
                                 {"complete_fine_solidity": -0.1}, {"complete_fine_solidity": 2.0},
                                 {"complete_compact_contrast": -1.0}, {"complete_fine_thin": 0.5},
                                 {"complete_fine_thin": float("nan")}, {"complete_fine_edge": "yes"},
                                 {"complete_edge_solidity": -0.1}, {"complete_later_solidity": 1.5},
                                 {"complete_later_solidity": float("nan")}, {"complete_thin_window": 1},
                                 {"complete_thin_window": -3}, {"complete_thin_window": 2.5},
                                 {"complete_evidence_solidity": 1.5}, {"complete_evidence_solidity": float("nan")},
                                 {"complete_through_solidity": -0.1}, {"complete_through_solidity": float("nan")},
                                 {"complete_size": 16}, {"complete_size": 300.5}, {"complete_size": True},
                                 {"complete_bridge": "no"}, {"complete_bridge": 1},
                                 {"complete_noise_floor": 1.0}, {"complete_noise_floor": -0.1},
                                 {"complete_faint": -1.0}, {"complete_faint_elongation": 0.5},
                                 {"complete_faint_ragged": float("nan")}, {"complete_denoise": "median"},
                                 {"complete_fine_again": -1.0}, {"complete_fine_again_contrast": float("inf")},
                                 {"complete_aligned": 0.5}, {"complete_aligned": float("nan")},
                                 {"complete_fine_every": 1}, {"complete_fine_every": "yes"},
                                 {"complete_aligned_gap": -0.1}, {"complete_aligned_gap": 0.5},
                                 {"complete_aligned_gap": float("nan")}, {"complete_aligned_run": -1.0},
                                 {"complete_aligned_run": float("nan")}, {"complete_aligned_run": True}])
def test_rescore_and_the_finer_cut_are_validated(bad):
    img, body, spark = bomb()
    with pytest.raises(InvalidParameterError, match=next(iter(bad)).split("_contrast")[0]):
        object_extent(img, stylize(img, "fill"), bomb_labels(body, spark), (5,), scorer(PartModel()), np.array([0.5]),
                      **bad)


def test_the_margin_step_takes_the_most_evidence_or_the_most_for_the_area_it_hides():
    """Two neighbours each give the margin: a wide block with more evidence in all, and a small one with
    more evidence per pixel. The margin step hides the wide one by default, the small one with
    ``margin_area=1`` (the most logit per share of the image hidden)."""
    size = 64
    img = np.zeros((size, size, 3), np.uint8)
    img[..., 0] = 200
    styled = np.zeros_like(img)
    labels = np.full((size, size), 3, np.int32)  # 3: the rest
    labels[24:40, 24:40] = 0  # the counterfactual
    labels[:, :24] = 1  # a wide block beside it
    labels[24:40, 40:48] = 2  # a small block beside it
    weights = np.array([5.0, 1.0, 8.0, 0.2])[labels]

    def model(imgs: Sequence[np.ndarray]) -> np.ndarray:
        frac = np.array([float((weights * (np.asarray(i)[..., 0] > 128)).sum() / weights.sum()) for i in imgs])
        return (1 / (1 + np.exp(-(30 * frac - 21.5))))[:, None]

    kw: dict[str, Any] = {"rounds": 0, "views": False, "complete": "none", "group_delta": 0, "max_region": 0.5}
    assert -1 < logit(model([np.where((labels == 0)[..., None], styled, img)]))[0] <= 0
    per_area = object_extent(img, styled, labels, (0,), model, np.array([0.5]), margin_area=1, **kw)
    largest = object_extent(img, styled, labels, (0,), model, np.array([0.5]), **kw)
    assert per_area.selected == (0, 2) and per_area.reasons == ("counterfactual", "margin")
    assert largest.selected == (0, 1)
    for out in (per_area, largest):  # both reach the margin
        hidden = np.isin(out.labels, out.selected)
        assert logit(model([np.where(hidden[..., None], styled, img)]))[0] <= -1


RED = np.array([220, 30, 30], np.float32)
MAGENTA = np.array([230, 40, 230], np.float32)


def two_objects(size: int = 96) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A grey gradient with a red block (the object the search hid) and a small magenta one far from it."""
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.stack([100 + 40 * xx / size, 110 + 0 * xx, 120 - 30 * yy / size], axis=-1)
    first = (yy >= 8) & (yy < 24) & (xx >= 8) & (xx < 24)
    second = (yy >= 70) & (yy < 78) & (xx >= 74) & (xx < 82)
    img[first], img[second] = RED, MAGENTA
    labels = ((yy >= size // 2) * 2 + (xx >= size // 2)).astype(np.int32)  # quadrants 0–3
    labels[first] = 4
    return img.astype(np.uint8), labels, first, second


class ZoomModel:
    """Keys on the red block in the whole image; the small magenta one counts only in a crop at most
    60 px on a side (a classifier that sees a small object at twice the size, not in the whole image)."""

    def __init__(self, first: np.ndarray, second: np.ndarray, *, spoil: bool = False) -> None:
        self.n = (float(first.sum()), float(second.sum()))
        self.spoil = spoil  # hiding the magenta block makes the whole image unsafe (a model gone odd)

    def __call__(self, imgs: Sequence[np.ndarray]) -> np.ndarray:
        out = []
        for im in imgs:
            f = np.asarray(im, np.float32)
            red = (np.linalg.norm(f - RED, axis=-1) < 40).sum() / self.n[0]
            mag = (np.linalg.norm(f - MAGENTA, axis=-1) < 40).sum() / self.n[1]
            z = 8 * red - 4 + (8 * mag if max(f.shape[:2]) <= 60 else 0)
            if self.spoil and max(f.shape[:2]) > 60 and mag < 0.5:
                z = 4.0
            out.append(1 / (1 + np.exp(-z)))
        return np.array(out)[:, None]


def magenta_look(calls: list[np.ndarray], *, found: bool = True):
    """A stand-in for the pipeline's run on a crop: it hides the crop's magenta pixels."""
    def look(crop: np.ndarray) -> tuple[np.ndarray | None, int]:
        calls.append(crop)
        if not found:
            return None, 1
        return np.linalg.norm(crop.astype(np.float32) - MAGENTA, axis=-1) < 40, 1
    return look


def test_the_second_look_hides_an_object_seen_only_in_a_tile():
    img, labels, first, second = two_objects()
    styled = stylize(img, "fill")
    model = ZoomModel(first, second)
    kw: dict[str, Any] = {"complete": "none", "views": False, "rounds": 0}
    assert model([np.where(first[..., None], styled, img)])[0, 0] < 0.5  # the whole image is safe already
    calls: list[np.ndarray] = []
    out = object_extent(img, styled, labels, (4,), model, np.array([0.5]), look=magenta_look(calls), **kw)
    hidden = np.isin(out.labels, out.selected)
    assert hidden[first].all() and hidden[second].all()  # both objects
    assert hidden.sum() == first.sum() + second.sum()  # and nothing else
    assert set(out.reasons) == {"counterfactual", "tile"} and out.reasons[0] == "counterfactual"
    side = round(96 * inspect.signature(object_extent).parameters["tile_fraction"].default)
    assert len(calls) == 1 and calls[0].shape == (side, side, 3)  # one tile, the default share of the sides
    assert side <= 60  # (small enough for ZoomModel to see the magenta block in it)
    assert [t["step"] for t in out.trace if t["step"] == "tile"] == ["tile"]
    # the tiles classified and the run on the tile (1 image, as this stand-in says) are the second look's
    first_round = len(tile_boxes((96, 96), *(inspect.signature(object_extent).parameters[k].default
                                            for k in ("tiles", "tile_fraction"))))
    assert out.evaluated_by_step["look"] >= first_round + len(calls)
    assert sum(out.evaluated_by_step.values()) == out.n_evaluated
    # no look (the minimal pipeline, a direct call) or no tiles: the magenta block stays in sight
    for opts in ({}, {"look": magenta_look([]), "tiles": 0}):
        plain = object_extent(img, styled, labels, (4,), model, np.array([0.5]), **kw, **opts)
        assert not np.isin(plain.labels, plain.selected)[second].any()
        assert "look" not in plain.evaluated_by_step
    assert "look" not in inspect.signature(minimal).parameters


def test_the_second_look_hides_the_whole_tile_when_its_run_finds_nothing_and_never_spoils_the_verdict():
    img, labels, first, second = two_objects()
    styled = stylize(img, "fill")
    kw: dict[str, Any] = {"complete": "none", "views": False, "rounds": 0}
    out = object_extent(img, styled, labels, (4,), ZoomModel(first, second), np.array([0.5]),
                        look=magenta_look([], found=False), **kw)
    hidden = np.isin(out.labels, out.selected)
    y, x, th, tw = tile_boxes((96, 96), *(inspect.signature(object_extent).parameters[k].default
                                          for k in ("tiles", "tile_fraction")))[-1]
    assert (y + th, x + tw) == (96, 96) and y > 24 and x > 24  # (the bottom-right tile, clear of the first block)
    assert hidden[second].all() and hidden[y:, x:].all()  # the worst tile, the bottom-right one, whole
    assert hidden.sum() == first.sum() + th * tw
    spoiled = object_extent(img, styled, labels, (4,), ZoomModel(first, second, spoil=True), np.array([0.5]),
                            look=magenta_look([]), **kw)
    assert spoiled.selected == (4,)  # hiding it would make the whole image unsafe: not added
    assert any(t.get("refused") for t in spoiled.trace)


@pytest.mark.parametrize("bad", [{"tiles": 1}, {"tiles": -2}, {"tile_rounds": 1.5}, {"tile_fraction": 1.0},
                                 {"tile_fraction": 0.0}])
def test_the_second_look_is_validated(bad):
    img, body, spark = bomb()
    with pytest.raises(InvalidParameterError, match=next(iter(bad))):
        object_extent(img, stylize(img, "fill"), bomb_labels(body, spark), (5,), scorer(PartModel()), np.array([0.5]),
                      **bad)


def test_the_pipeline_gives_the_object_extent_its_second_look(planted_classifier, planted_image, monkeypatch):
    """The object extent gets a look that safeguards a crop on its own; minimal gets none."""
    img, truth = planted_image
    cfg = SafeguardConfig(models=(planted_classifier,), attribution="gradcam", segmentation="slic",
                          segmentation_options={"n_segments": 64}, rationale=None)
    sg = Safeguarder(cfg, classifiers=[planted_classifier])
    mask, n = sg._look(img)  # the planted image as a crop: its run hides the checkerboard
    assert mask is not None and mask.shape == truth.shape and n > 1
    assert (mask & truth).sum() >= 0.5 * truth.sum()
    safe_crop = img[~truth.any(axis=1)][:40]  # rows without the checkerboard
    assert planted_classifier.unsafe_score(planted_classifier.predict_proba([safe_crop]))[0] <= 0.5
    empty, n = sg._look(np.ascontiguousarray(safe_crop))
    assert empty is not None and not empty.any() and n == 1
    import veil.pipeline as pipeline

    given: dict[str, list[Any]] = {}
    real = pipeline.extend

    def spy(*args: Any, **kwargs: Any) -> Any:  # (a run on a tile gets no look of its own)
        given.setdefault(args[6], []).append(kwargs.get("look"))
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "extend", spy)
    for extent in ("object", "minimal"):
        Safeguarder(SafeguardConfig(**{**cfg.to_dict(), "models": (planted_classifier,), "extent": extent}),
                    classifiers=[planted_classifier]).run(img)
    assert callable(given["object"][0]) and given["minimal"] == [None]


def test_closure_weighs_a_touching_region_with_its_colour_group_or_on_its_own():
    """A red object (the counterfactual, region 27 of an 8×8 grid) beside a red band (column 4) whose piece next
    to it (28) still carries evidence. The band is a colour group (``group_delta=12``) of 8 superpixels, more
    than ``group_members`` (4): ground, so by default closure weighs the piece on its own and hides it and none
    of the band's far pieces, each too weak alone, as with ``group_delta=0``; with ``group_members=0`` it weighs
    the whole band together with the piece and hides it all."""
    size = 64
    yy, xx = np.mgrid[0:size, 0:size]
    labels = ((yy // 8) * 8 + xx // 8).astype(np.int32)
    band = xx // 8 == 4
    img = np.full((size, size, 3), 120, np.uint8)
    img[band | (labels == 27)] = (220, 30, 30)
    styled = np.zeros_like(img)
    weight = np.where(labels == 27, 10.0, np.where(labels == 28, 4.0, np.where(band, 0.3, 0.0)))

    def model(imgs: Sequence[np.ndarray]) -> np.ndarray:  # evidence: the weighted red pixels in sight
        z = np.array([float((weight * (np.asarray(i)[..., 0] > 128)).sum()) / 64 - 10.5 for i in imgs])
        return (1 / (1 + np.exp(-z)))[:, None]

    without_27 = np.where((labels == 27)[..., None], styled, img)
    assert logit(model([img]))[0] > 0 >= logit(model([without_27]))[0]  # the counterfactual alone makes it safe
    kw: dict[str, Any] = {"margin": 0.0, "views": False, "complete": "none"}
    alone = object_extent(img, styled, labels, (27,), model, np.array([0.5]), group_delta=0.0, **kw)
    assert alone.selected == (27, 28) and alone.reasons == ("counterfactual", "closure")
    default = object_extent(img, styled, labels, (27,), model, np.array([0.5]), **kw)
    assert default.selected == (27, 28) and default.reasons == ("counterfactual", "closure")
    grouped = object_extent(img, styled, labels, (27,), model, np.array([0.5]), group_members=0, **kw)
    far = set(np.unique(labels[band]).tolist()) - {28}
    assert set(grouped.selected) == {27, 28} | far and len(far) == 7
    assert set(grouped.reasons[1:]) == {"closure"}
    for bad in (-1, 2.5, True):
        with pytest.raises(InvalidParameterError, match="group_members"):
            object_extent(img, styled, labels, (27,), model, np.array([0.5]), group_members=bad, **kw)


def test_closure_weighs_an_object_cut_into_a_few_superpixels_as_one():
    """The rest of a red object cut into three superpixels (28–30, a row beside the hidden counterfactual 27) is
    a colour group of 3, within ``group_members``: each piece alone lowers the logit by 0.3, under closure's 0.5,
    and together by 0.9, so closure hides all three by default; weighed one at a time (``group_delta=0``, or a
    bound of 2 superpixels) it hides none of them."""
    size = 64
    yy, xx = np.mgrid[0:size, 0:size]
    labels = ((yy // 8) * 8 + xx // 8).astype(np.int32)
    rest = np.isin(labels, (28, 29, 30))
    img = np.full((size, size, 3), 120, np.uint8)
    img[rest | (labels == 27)] = (220, 30, 30)
    styled = np.zeros_like(img)
    weight = np.where(labels == 27, 10.0, np.where(rest, 0.3, 0.0))

    def model(imgs: Sequence[np.ndarray]) -> np.ndarray:  # evidence: the weighted red pixels in sight
        z = np.array([float((weight * (np.asarray(i)[..., 0] > 128)).sum()) / 64 - 9.5 for i in imgs])
        return (1 / (1 + np.exp(-z)))[:, None]

    without_27 = np.where((labels == 27)[..., None], styled, img)
    assert logit(model([img]))[0] > 0 >= logit(model([without_27]))[0]
    kw: dict[str, Any] = {"margin": 0.0, "views": False, "complete": "none"}
    default = object_extent(img, styled, labels, (27,), model, np.array([0.5]), **kw)
    assert set(default.selected) == {27, 28, 29, 30}
    assert default.reasons == ("counterfactual", "closure", "closure", "closure")
    for opts in ({"group_delta": 0.0}, {"group_members": 2}):
        assert object_extent(img, styled, labels, (27,), model, np.array([0.5]), **kw, **opts).selected == (27,)


def test_complete_with_evidence_leaves_a_figure_the_attribution_does_not_reach():
    """The big bomb with a blue square attached to the hidden spark square: both are enclosed, contrasting
    colour figures (the evidence test does not apply to smooth patches), so without ``complete_evidence``
    the complete step hides both; by default (the attribution on the bomb) it hides the body and leaves
    the square in sight, and the image stays safe."""
    img, body, spark, labels = big_bomb()
    blue = np.array([40, 60, 220]) + np.random.default_rng(6).normal(0, 6, (19, 18, 3))  # grained as the ground,
    img[60:79, 108:126] = np.clip(blue, 0, 255).astype(np.uint8)  # so no smooth patch: a figure touching the square
    square = np.zeros(body.shape, bool)
    square[60:78, 110:126] = True
    model = BigBombModel(img, body, spark)
    styled = stylize(img, "fill")
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    attribution = np.exp(-((yy - 130) ** 2 + (xx - 100) ** 2) / (2 * 15.0**2))  # on the bomb, its lower half
    kw: dict[str, Any] = {"attribution": attribution}
    plain = extend(img, styled, labels, (4,), scorer(model), [0.5], "object", complete_evidence=0, **kw)
    hidden = np.isin(plain.labels, plain.selected)
    assert (hidden & body).sum() >= 0.9 * body.sum() and (hidden & square).sum() >= 0.9 * square.sum()
    weighed = extend(img, styled, labels, (4,), scorer(model), [0.5], "object", **kw)  # 0.8, relative 0.75
    hidden = np.isin(weighed.labels, weighed.selected)
    assert (hidden & body).sum() >= 0.9 * body.sum()
    assert (hidden & square).sum() <= 0.1 * square.sum()
    assert model.logits([np.where(hidden[..., None], styled, img)])[0] <= 0


def broad_map_scene() -> tuple[PartModel, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """The bomb with one large region holding the whole image, whose superpixels are the background quadrants,
    the body and the spark, under a broad map (two background quadrants above the spark): the model, image,
    styled image, spark, superpixels, regions and the extent's keywords (the split step alone)."""
    model = PartModel()
    img, body, spark = bomb()
    segments = bomb_labels(body, spark)
    att = np.select([segments == 0, segments == 1, segments == 5, segments == 4], [1.0, 0.9, 0.8, 0.1], 0.0)
    # (the prefix hides over half the image, so the wide-prefix ranking is off here: the next tests turn it on)
    kw: dict[str, Any] = dict(attribution=att, segments=segments, rounds=0, margin=0.0, views=False,
                              complete="none", tiles=0, split_cut_area=0.0)
    return model, img, stylize(img, "fill"), spark, segments, np.zeros_like(segments), kw


def hidden(out: Any) -> np.ndarray:
    return np.isin(out.labels, out.selected)


def test_split_refine_drops_the_pieces_a_broad_map_put_before_the_key_part():
    """One large region holds the whole image; its superpixels are the background quadrants, the body
    and the spark. The map is broad: two background quadrants above the spark. The split step keeps
    the attribution-ordered prefix that flips the model (two quadrants and the spark); ``split_refine``
    drops the quadrants again, since the image stays safe without them."""
    model, img, styled, spark, segments, labels, kw = broad_map_scene()

    plain = object_extent(img, styled, labels, (0,), scorer(model), np.array([0.5]), **kw)
    assert set(plain.reasons) == {"split"}
    np.testing.assert_array_equal(hidden(plain), np.isin(segments, [0, 1, 5]))
    refined = object_extent(img, styled, labels, (0,), scorer(model), np.array([0.5]), split_refine=1.0, **kw)
    np.testing.assert_array_equal(hidden(refined), spark)
    assert refined.reasons == ("split",)
    assert model.logits([np.where(hidden(refined)[..., None], styled, img)])[0] <= 0  # still safe
    # a quantile under the quadrants' attribution leaves them: only pieces under it may go
    low = object_extent(img, styled, labels, (0,), scorer(model), np.array([0.5]), split_refine=0.2, **kw)
    np.testing.assert_array_equal(hidden(low), hidden(plain))
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(InvalidParameterError, match="split_refine"):
            object_extent(img, styled, labels, (0,), scorer(model), np.array([0.5]), split_refine=bad, **kw)


def test_split_rerank_ranks_a_long_prefix_by_each_piece_s_own_evidence():
    """The scene of the test above: the attribution-ordered prefix is three pieces (two background quadrants
    and the spark). Over ``split_rerank`` pieces, each is hidden on its own and ranked by its logit drop:
    the spark alone flips the model, and that prefix hides less, so it is kept. At or under the bound (and
    with 0, the default: off) the attribution prefix stands."""
    model, img, styled, spark, segments, labels, kw = broad_map_scene()

    prefix = np.isin(segments, [0, 1, 5])
    np.testing.assert_array_equal(  # (off by default)
        hidden(object_extent(img, styled, labels, (0,), scorer(model), np.array([0.5]), **kw)), prefix)
    for bound in (0, 3, 4):
        out = object_extent(img, styled, labels, (0,), scorer(model), np.array([0.5]), split_rerank=bound, **kw)
        np.testing.assert_array_equal(hidden(out), prefix)
    ranked = object_extent(img, styled, labels, (0,), scorer(model), np.array([0.5]), split_rerank=2, **kw)
    np.testing.assert_array_equal(hidden(ranked), spark)
    assert ranked.reasons == ("split",)
    assert ranked.n_evaluated > object_extent(img, styled, labels, (0,), scorer(model), np.array([0.5]),
                                              split_rerank=3, **kw).n_evaluated  # (one classification a piece)
    assert model.logits([np.where(hidden(ranked)[..., None], styled, img)])[0] <= 0  # still safe
    for bad in (-1, 1.5, True):
        with pytest.raises(InvalidParameterError, match="split_rerank"):
            object_extent(img, styled, labels, (0,), scorer(model), np.array([0.5]), split_rerank=bad, **kw)


def test_split_cut_area_cuts_a_wide_prefix_down_however_few_its_pieces():
    """The same scene: the attribution prefix is only three pieces, but two of them are background quadrants,
    so it hides a large share of the image. ``split_cut_area`` (by default 0.15) cuts the prefix down when
    it hides more than that share (chunks shown again while the image stays safe: the spark alone is kept);
    a prefix under it stands."""
    model, img, styled, spark, segments, labels, kw = broad_map_scene()
    del kw["split_cut_area"]
    prefix = np.isin(segments, [0, 1, 5])
    share = float((prefix & ~spark).mean())  # what the prefix hides besides the spark
    assert share > 0.3
    default = object_extent(img, styled, labels, (0,), scorer(model), np.array([0.5]), **kw)  # 0.15
    np.testing.assert_array_equal(hidden(default), spark)
    wide = object_extent(img, styled, labels, (0,), scorer(model), np.array([0.5]), split_cut_area=0.3, **kw)
    np.testing.assert_array_equal(hidden(wide), spark)
    assert model.logits([np.where(hidden(wide)[..., None], styled, img)])[0] <= 0  # still safe
    under = object_extent(img, styled, labels, (0,), scorer(model), np.array([0.5]),
                          split_cut_area=min(1.0, float(prefix.mean()) + 0.05), **kw)
    np.testing.assert_array_equal(hidden(under), prefix)
    off = object_extent(img, styled, labels, (0,), scorer(model), np.array([0.5]), split_cut_area=0.0, **kw)
    np.testing.assert_array_equal(hidden(off), prefix)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(InvalidParameterError, match="split_cut_area"):
            object_extent(img, styled, labels, (0,), scorer(model), np.array([0.5]), split_cut_area=bad, **kw)


def test_a_wide_prefix_of_hundreds_of_superpixels_is_cut_down_within_the_budget():
    """One region holds the image, cut into 576 superpixels of 4 × 4 pixels; the map is broad, every
    background superpixel above the spark's, so the attribution prefix is the whole image. The split step
    cuts it down to under a tenth of the image, most of the spark still hidden and the image safe, with at
    most ``SHRINK_BUDGET`` more images classified, where ranking each superpixel alone would cost 576."""
    from veil.counterfactual.extent import SHRINK_BUDGET

    model = PartModel()
    img, body, spark = bomb()
    yy, xx = np.mgrid[0:96, 0:96]
    segments = (yy // 4) * 24 + xx // 4
    att = np.where(spark, 0.1, 1.0)
    kw: dict[str, Any] = dict(attribution=att, segments=segments, rounds=0, margin=0.0, views=False,
                              complete="none", tiles=0)
    labels = np.zeros_like(segments)
    styled = stylize(img, "fill")
    plain = object_extent(img, styled, labels, (0,), scorer(model), np.array([0.5]), split_cut_area=0.0, **kw)
    assert hidden(plain).mean() > 0.95
    cut = object_extent(img, styled, labels, (0,), scorer(model), np.array([0.5]), **kw)
    assert model.logits([np.where(hidden(cut)[..., None], styled, img)])[0] <= 0  # still safe
    assert hidden(cut).mean() < 0.1 and (hidden(cut) & spark).sum() >= 0.5 * spark.sum()  # (what flips it)
    assert cut.n_evaluated <= plain.n_evaluated + SHRINK_BUDGET


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), h=st.integers(1, 40), w=st.integers(1, 40), fill=st.floats(0.1, 0.9),
       max_region=st.sampled_from([0.01, 0.1, 1.0]))
def test_holes_are_the_pieces_scipy_fills(seed, h, w, fill, max_region):
    from scipy import ndimage as ndi

    from veil.counterfactual.extent import _holes

    mask = np.random.default_rng(seed).random((h, w)) < fill
    expected = ndi.binary_fill_holes(mask) & ~mask
    lab, n = ndi.label(expected)
    small = np.bincount(lab.ravel(), minlength=n + 1) <= max_region * mask.size
    small[0] = False
    np.testing.assert_array_equal(_holes(mask, max_region), small[lab])


def test_prune_shows_again_the_split_pieces_the_verdict_no_longer_needs_once_the_object_is_hidden():
    """The broad-map scene: the split step keeps two background quadrants and the spark, and the complete
    step hides the body. Once the body is hidden the quadrants carry nothing the verdict needs, and the
    prune step shows them again; the spark and the body stay hidden and the image stays safe. With
    ``prune=0`` (before 2026-12-05) the quadrants stay hidden, four times the object's area."""
    model, img, styled, spark, segments, labels, kw = broad_map_scene()
    kw.update(complete="figures", complete_evidence=0.0, max_fraction=1.0)
    body = segments == 4

    before = object_extent(img, styled, labels, (0,), scorer(model), np.array([0.5]), prune=0, **kw)
    assert hidden(before)[segments <= 1].all()  # both quadrants
    assert "prune" not in [t["step"] for t in before.trace]
    out = object_extent(img, styled, labels, (0,), scorer(model), np.array([0.5]), **kw)
    h = hidden(out)
    assert h[spark].all() and h[body].mean() >= 0.95
    assert not h[segments <= 1].any()  # the quadrants are in sight again
    assert h.sum() <= 1.25 * (spark | body).sum() < hidden(before).sum() / 4
    assert [t["dropped"] for t in out.trace if t["step"] == "prune"] == [2]
    assert "split" in out.reasons and "object" in out.reasons  # the spark's piece is kept
    assert counts_follow_the_trace(out) >= {"split", "complete", "prune"}
    assert "prune" not in counts_follow_the_trace(before)
    assert model.logits([np.where(h[..., None], styled, img)])[0] <= 0


def test_prune_keeps_a_piece_that_carries_evidence_of_its_own():
    """The scene above, with a model that also gives a little evidence (half a logit) to what it sees of the
    first quadrant: showing that quadrant again would raise the logit by more than ``prune_gain``, so it stays
    hidden; the second quadrant goes. With ``prune_gain`` over half a logit both go."""
    model, img, styled, spark, segments, labels, kw = broad_map_scene()
    kw.update(complete="figures", complete_evidence=0.0, max_fraction=1.0)
    quadrant = segments == 0

    def score(imgs: list[np.ndarray]) -> np.ndarray:
        seen = np.array([float(np.mean(np.all(im[quadrant] == img[quadrant], axis=-1))) for im in imgs])
        return (1 / (1 + np.exp(-(model.logits(imgs) + 0.5 * seen))))[:, None]

    out = object_extent(img, styled, labels, (0,), score, np.array([0.5]), **kw)
    assert hidden(out)[quadrant].all() and not hidden(out)[segments == 1].any()
    loose = object_extent(img, styled, labels, (0,), score, np.array([0.5]), prune_gain=1.0, **kw)
    assert not hidden(loose)[segments <= 1].any()


@pytest.mark.parametrize("bad", [{"prune": -1}, {"prune": True}, {"prune": 1.5}, {"prune_from": "split"}, {"prune_from": 3},
                                 {"prune_from": ["split", "object"]}, {"prune_gain": -0.1},
                                 {"prune_gain": float("nan")}])
def test_prune_options_are_validated(bad):
    img, body, spark = bomb()
    with pytest.raises(InvalidParameterError, match=next(iter(bad))):
        object_extent(img, stylize(img, "fill"), bomb_labels(body, spark), (5,), scorer(PartModel()),
                      np.array([0.5]), **bad)


def _pool_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """An 8 × 8 grid of superpixels: a red object cut into a 2 × 2 block (18, 19, 26, 27, the counterfactual) and
    one touching piece of it (28), among grey ground; the image, the style (black), the labels, and the
    evidence weight of each pixel (the block 2.5, the piece 1, the ground 0)."""
    size = 64
    yy, xx = np.mgrid[0:size, 0:size]
    labels = ((yy // 8) * 8 + xx // 8).astype(np.int32)
    block = np.isin(labels, (18, 19, 26, 27))
    img = np.full((size, size, 3), 120, np.uint8)
    img[block | (labels == 28)] = (220, 30, 30)
    weight = np.where(block, 2.5, np.where(labels == 28, 1.0, 0.0))
    return img, np.zeros_like(img), labels, weight


def _red_evidence(imgs: Sequence[np.ndarray], weight: np.ndarray) -> np.ndarray:
    """The weighted red pixels in sight, as a logit."""
    return np.array([float((weight * (np.asarray(i)[..., 0] > 128)).sum()) / 64 - 10.5 for i in imgs])


def test_closure_pool_weighs_candidates_in_pools_and_hides_the_same():
    """:func:`_pool_scene`: the piece 28 still carries evidence (it lowers the logit by 1 when hidden). Weighed in
    pools of 4 (group testing, opt-in), closure hides the same piece as weighed one by one, and classifies fewer
    images: the pools without it cost one image each."""
    img, styled, labels, weight = _pool_scene()

    def model(imgs: Sequence[np.ndarray]) -> np.ndarray:
        return (1 / (1 + np.exp(-_red_evidence(imgs, weight))))[:, None]

    kw: dict[str, Any] = {"margin": 0.0, "views": False, "complete": "none", "tiles": 0}
    one = object_extent(img, styled, labels, (18, 19, 26, 27), model, np.array([0.5]), **kw)  # (the default: 0)
    pooled = object_extent(img, styled, labels, (18, 19, 26, 27), model, np.array([0.5]), closure_pool=4, **kw)
    assert one.selected == pooled.selected == (18, 19, 26, 27, 28)
    assert one.reasons == pooled.reasons == ("counterfactual",) * 4 + ("closure",)
    assert pooled.n_evaluated < one.n_evaluated
    for bad in (-1, 2.5, True):
        with pytest.raises(InvalidParameterError, match="closure_pool"):
            object_extent(img, styled, labels, (18,), model, np.array([0.5]), closure_pool=bad, **kw)


def test_closure_pool_misses_a_candidate_whose_pool_raises_the_logit():
    """The limit of the pools, as documented: :func:`_pool_scene`, but hiding the grey piece 25 (a black patch where
    the model reads evidence) raises the logit by 2. 25 shares a pool with 28, so the pool gains 1 − 2 < 0.5 and
    28, which gains 1 alone, is not weighed: closure one by one hides it, in pools it does not (the image is safe
    either way, as the counterfactual made it)."""
    img, styled, labels, weight = _pool_scene()
    raiser = labels == 25

    def model(imgs: Sequence[np.ndarray]) -> np.ndarray:
        black = np.array([float((np.asarray(i)[raiser].max(axis=-1) < 20).mean()) for i in imgs])
        return (1 / (1 + np.exp(-(_red_evidence(imgs, weight) + 2.0 * black))))[:, None]

    kw: dict[str, Any] = {"margin": 0.0, "views": False, "complete": "none", "tiles": 0}
    one = object_extent(img, styled, labels, (18, 19, 26, 27), model, np.array([0.5]), **kw)
    pooled = object_extent(img, styled, labels, (18, 19, 26, 27), model, np.array([0.5]), closure_pool=4, **kw)
    assert 28 in one.selected and 25 not in one.selected
    assert pooled.selected == (18, 19, 26, 27) and pooled.reasons == ("counterfactual",) * 4


def test_closure_pool_is_not_used_when_attribution_can_take_a_weak_candidate():
    """With ``attr_ratio`` a candidate as attended to as the counterfactual is taken on any gain, however small, so a
    pool's gain under ``min_gain`` says nothing about it: :func:`_pool_scene` with the piece 28 worth only 0.3 of
    a logit but as attended to as the block is taken with pools as without."""
    img, styled, labels, weight = _pool_scene()
    weight = np.where(labels == 28, 0.3, weight)
    attribution = np.isin(labels, (18, 19, 26, 27, 28)).astype(np.float32)

    def model(imgs: Sequence[np.ndarray]) -> np.ndarray:
        return (1 / (1 + np.exp(-(_red_evidence(imgs, weight) + 0.7))))[:, None]

    kw: dict[str, Any] = {"margin": 0.0, "views": False, "complete": "none", "tiles": 0, "attr_ratio": 0.5,
                          "attribution": attribution}
    for pool in (0, 4):
        out = object_extent(img, styled, labels, (18, 19, 26, 27), model, np.array([0.5]), closure_pool=pool, **kw)
        assert out.selected == (18, 19, 26, 27, 28), pool
    without = object_extent(img, styled, labels, (18, 19, 26, 27), model, np.array([0.5]),
                            **{**kw, "attr_ratio": 0.0})
    assert without.selected == (18, 19, 26, 27)  # (0.3 is under min_gain: only attention takes it)
