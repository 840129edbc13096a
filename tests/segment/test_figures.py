"""Known answers for veil.segment.figures.attached_figures."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veil.errors import InvalidParameterError
from veil.segment.figures import (
    _figures,
    _finer_figures,
    _solid_at_least,
    _solidity,
    aligned_pieces,
    attached_figures,
    cut_by_frame,
    figure_growths,
    grain,
    straight,
)
from veil.segment.seeded import dilate


def _canvas(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(90, 130, (160, 200, 3)).astype(np.uint8)  # grey texture


def test_a_part_of_another_colour_attached_to_the_seed_is_taken_and_the_background_is_not():
    img = _canvas()
    img[76:84, 30:50] = (60, 35, 20)  # handle (the seed)
    img[77:83, 50:100] = (200, 205, 215)  # blade, 6 px wide
    img[20:50, 150:180] = (20, 20, 20)  # a contrasting figure that does not touch the seed
    seed = np.zeros(img.shape[:2], bool)
    seed[76:84, 30:50] = True
    out = attached_figures(img, seed)
    assert out[seed].all()
    assert out[77:83, 50:100].mean() > 0.9
    assert not out[20:50, 150:180].any()
    assert (out & ~seed).sum() <= 2 * 6 * 50  # the blade (and its soft edge), not the texture around it


def test_figures_must_be_enclosed_near_the_piece_and_contrast():
    img = _canvas(1)
    img[76:84, 30:50] = (60, 35, 20)
    img[77:83, 50:190] = (200, 205, 215)  # a bar reaching far beyond 3x the seed's size
    seed = np.zeros(img.shape[:2], bool)
    seed[76:84, 30:50] = True
    small_box = attached_figures(img, seed, grow=3.0) & ~seed
    assert not small_box[:, 120:].any()  # a segment reaching beyond the box is not a part
    large_box = attached_figures(img, seed, grow=8.0) & ~seed
    assert large_box.sum() > small_box.sum() + 100 and large_box[77:83, 120:].any()  # a larger box takes it
    # a segment of the background's own colour does not stand out: nothing is added
    flat = _canvas(2)
    flat[76:84, 30:50] = (60, 35, 20)
    assert not (attached_figures(flat, seed) & ~seed).any()
    # a region that reaches the image's edge is background
    edge = _canvas(3)
    edge[76:84, 30:50] = (60, 35, 20)
    edge[60:100, 0:30] = (200, 205, 215)
    assert not (attached_figures(edge, seed) & ~seed)[:, :30].any()


def test_large_images_are_segmented_at_size_and_the_mask_scaled_back():
    img = np.kron(_canvas(4), np.ones((4, 4, 1), np.uint8))  # 640 x 800
    img[304:336, 120:200] = (60, 35, 20)
    img[308:332, 200:400] = (200, 205, 215)
    seed = np.zeros(img.shape[:2], bool)
    seed[304:336, 120:200] = True
    out = attached_figures(img, seed, size=200)
    assert out.shape == seed.shape and out[seed].all()
    assert out[310:330, 205:395].mean() > 0.9


def test_empty_seed_and_bad_input():
    img = _canvas()
    empty = np.zeros(img.shape[:2], bool)
    out = attached_figures(img, empty)
    assert not out.any() and out is not empty
    with pytest.raises(InvalidParameterError, match="uint8"):
        attached_figures(img.astype(np.float32), empty)
    with pytest.raises(InvalidParameterError, match="shape"):
        attached_figures(img, empty[:10])
    for kw, match in (({"grow": 0}, "grow"), ({"scale": float("nan")}, "scale"), ({"contrast": -1}, "contrast"),
                      ({"max_region": 0}, "max_region"), ({"size": 16}, "size"), ({"smooth": -1}, "smooth"),
                      ({"texture_contrast": float("inf")}, "texture_contrast"),
                      ({"texture_window": 1}, "texture_window"), ({"thin_window": 1}, "thin_window"),
                      ({"thin_window": -3}, "thin_window"), ({"through": -0.1}, "through")):
        with pytest.raises(InvalidParameterError, match=match):
            attached_figures(img, empty, **kw)


def _blade_on_its_band(seed_: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    img = _canvas(seed_)
    rng = np.random.default_rng(seed_ + 100)
    band = np.clip(np.array([180, 185, 195], np.float32) + rng.normal(0, 6, (40, 200, 1)), 0, 255)
    img[60:100] = band.astype(np.uint8)  # a grained band of the blade's own colour, edge to edge
    img[74:86, 50:110] = (180, 185, 195)  # the blade: the band's colour, smooth, 12 px wide
    img[72:88, 30:50] = (60, 35, 20)  # the handle (the seed)
    seed = np.zeros(img.shape[:2], bool)
    seed[72:88, 30:50] = True
    blade = np.zeros_like(seed)
    blade[74:86, 50:110] = True
    return img, seed, blade


@pytest.mark.parametrize("seed_", [0, 1, 2, 3])
def test_a_smooth_part_on_a_grained_ground_of_its_own_colour_is_taken_as_a_smooth_patch(seed_):
    img, seed, blade = _blade_on_its_band(seed_)
    by_colour = attached_figures(img, seed, smooth=0)
    assert by_colour[blade].mean() < 0.5  # one segment with the band, which reaches the edge
    out = attached_figures(img, seed)
    assert out[blade].mean() > 0.8
    added = out & ~seed
    assert added.sum() <= 2 * blade.sum()  # the blade, not the band
    assert not added[60:100, 130:].any()


@pytest.mark.parametrize("seed_", [0, 1, 2, 3])
def test_a_smooth_hidden_part_does_not_join_a_smooth_patch_to_the_smooth_ground_beyond_it(seed_):
    # The handle (hidden, smooth) reaches out of the band into a smooth sky that runs to the image's edge.
    # Joined through the handle, blade and sky would be one smooth patch reaching the edge: no figure.
    img, seed, blade = _blade_on_its_band(seed_)
    img[:60] = (120, 160, 220)  # a smooth sky above the band, edge to edge
    img[52:88, 30:50] = (60, 35, 20)  # a longer handle, from the sky into the band
    seed[:] = False
    seed[52:88, 30:50] = True
    out = attached_figures(img, seed)
    assert out[blade].mean() > 0.8
    added = out & ~seed
    assert not added[:50].any()  # not the sky
    assert added.sum() <= 2 * blade.sum()


@pytest.mark.parametrize("seed_", [0, 1, 2, 3])
def test_the_tapering_tip_of_a_smooth_blade_on_its_band_is_found_on_the_narrower_grain_window(seed_):
    # A smooth blade 7 px wide at the guard, tapering to a point over 70 px, on a grained band of its own colour.
    # The 5-px grain window spreads the band's grain over its narrowing tip; on the 3-px window's map the tip is
    # smooth too, thin and straight, and is taken.
    from PIL import Image, ImageDraw

    img, _, _ = _blade_on_its_band(seed_)
    rng = np.random.default_rng(seed_ + 100)
    img[60:100] = np.clip(np.array([180, 185, 195], np.float32) + rng.normal(0, 6, (40, 200, 1)), 0, 255).astype(np.uint8)
    drawn = Image.new("L", (200, 160), 0)
    ImageDraw.Draw(drawn).polygon([(50, 76.5), (120, 80), (50, 83.5)], fill=255)
    blade = np.asarray(drawn) > 127
    img[blade] = (180, 185, 195)
    img[74:86, 20:50] = (60, 35, 20)  # the handle (the seed)
    seed = np.zeros(img.shape[:2], bool)
    seed[74:86, 20:50] = True
    kw = {"fine_thin": 10.0, "edge_solidity": 0.9, "grow": 5.0}
    assert attached_figures(img, seed, thin_window=0, **kw)[blade].mean() < 0.7
    out = attached_figures(img, seed, **kw)
    assert out[blade].mean() > 0.85
    added = out & ~seed
    assert added.sum() <= 2 * blade.sum()  # the blade (and its widened rim), not the band
    assert not added[60:72].any() and not added[88:100].any()
    # without the thin test (fine_thin 0) the narrower window's map is not read
    assert attached_figures(img, seed, edge_solidity=0.9, grow=5.0)[blade].mean() < 0.7


def test_the_narrower_grain_window_takes_no_compact_smooth_patch():
    # A compact smooth square on a grained band, too small for the 5-px window, is smooth on the 3-px one;
    # it is not thin and straight, so it is not taken from there.
    rng = np.random.default_rng(7)
    img = np.clip(np.array([180, 185, 195], np.float32) + rng.normal(0, 6, (160, 200, 1)), 0, 255).astype(np.uint8)
    img[76:80, 50:54] = (180, 185, 195)  # a 4-px smooth square beside the seed
    img[70:86, 30:50] = (60, 35, 20)
    seed = np.zeros(img.shape[:2], bool)
    seed[70:86, 30:50] = True
    out = attached_figures(img, seed, fine_thin=10.0)
    assert not (out & ~seed).any()


def test_grain_is_zero_on_smooth_surfaces_and_clean_edges():
    img = _canvas(5)
    img[40:120, 40:160] = (200, 30, 30)  # a smooth red block with clean edges
    t = grain(img)
    assert t.shape == img.shape[:2] and t.dtype == np.float32
    assert float(t[44:116, 44:156].max()) == 0.0  # inside, and up to the block's edge
    assert float(t[:30].mean()) > 3.0  # the grey texture around it
    assert float(grain(img, 3, clip=1.0).max()) <= 1.0


def test_a_smooth_ground_gives_no_smooth_patch():
    img = np.full((160, 200, 3), 120, np.uint8)  # smooth everywhere: no grain to stand out from
    img[72:88, 30:50] = (60, 35, 20)
    img[74:86, 50:110] = (124, 120, 118)  # smooth and of nearly the ground's colour
    seed = np.zeros(img.shape[:2], bool)
    seed[72:88, 30:50] = True
    assert not (attached_figures(img, seed) & ~seed).any()


@pytest.mark.parametrize("seed", range(4))
def test_a_body_behind_its_outline_is_taken_through_the_rim(seed):
    """A dark disc inside a lighter 3-px outline; the hidden spark touches the outline, not the disc. The
    outline is a rim (low solidity), so the disc behind it is a candidate too; without looking through
    rims (``through=0``) the disc is not attached to anything hidden and stays in sight. (Smooth patches
    are off: the flat disc on the grained canvas would be one.)"""
    from scipy import ndimage as ndi
    from skimage.draw import disk

    img = _canvas(seed)
    rr, cc = disk((76, 100), 22)
    img[rr, cc] = (170, 170, 175)  # the outline...
    rr, cc = disk((76, 100), 19)
    img[rr, cc] = (35, 35, 40)  # ...around the body
    img[40:55, 93:107] = (250, 200, 40)  # the spark (the seed), touching the outline only
    seed_mask = np.zeros(img.shape[:2], bool)
    seed_mask[40:55, 93:107] = True
    body = np.zeros_like(seed_mask)
    rr, cc = disk((76, 100), 18)
    body[rr, cc] = True
    outline = np.zeros_like(seed_mask)
    rr, cc = disk((76, 100), 23)
    outline[rr, cc] = True
    without = attached_figures(img, seed_mask, through=0, smooth=0) & ~seed_mask
    with_rims = attached_figures(img, seed_mask, smooth=0) & ~seed_mask
    assert without[body].mean() < 0.1
    assert with_rims[body].mean() > 0.8
    # (the one-pixel bands the segmentation leaves along the disc's edge are enclosed: the extent fills them)
    assert ndi.binary_fill_holes(with_rims | seed_mask)[body].mean() > 0.97
    assert (with_rims & ~outline).sum() <= 0.1 * body.sum()  # the texture around stays in sight


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_behind_a_rim_only_solid_figures_are_taken_with_a_through_solidity(seed):
    """A dark body inside its outline, and a thin light line running from the hidden spark to a ragged blue comb
    (a piece of ground beyond an edge of the ground). Looked through, the outline gives the body and the line
    gives the comb; with ``through_solidity`` 0.85 the body (solid) is still taken and the comb (ragged) is not.
    Without looking through, neither is attached."""
    from skimage.draw import disk

    img = _canvas(seed)
    img[disk((76, 100), 22)] = (170, 170, 175)  # the outline...
    img[disk((76, 100), 19)] = (35, 35, 40)  # ...around the body
    img[40:55, 93:107] = (250, 200, 40)  # the spark (the seed)
    img[46:48, 50:93] = (175, 175, 180)  # a thin light line from the spark
    img[43:46, 52:88] = (30, 40, 140)  # a ragged blue comb lying on it, teeth up
    for x in range(52, 88, 6):
        img[22:43, x : x + 2] = (30, 40, 140)
    seed_mask = np.zeros(img.shape[:2], bool)
    seed_mask[40:55, 93:107] = True
    comb = (img == (30, 40, 140)).all(axis=2)
    body = np.zeros_like(seed_mask)
    body[disk((76, 100), 18)] = True
    kw = {"smooth": 0, "grow": 5.0}
    closed = attached_figures(img, seed_mask, through=0, **kw)
    assert closed[body].mean() < 0.1 and closed[comb].mean() < 0.2
    looked = attached_figures(img, seed_mask, **kw)
    assert looked[body].mean() > 0.8 and looked[comb].mean() > 0.9
    solid = attached_figures(img, seed_mask, through_solidity=0.85, **kw)
    assert solid[body].mean() > 0.8
    assert solid[comb].mean() < 0.2
    with pytest.raises(InvalidParameterError, match="through_solidity"):
        attached_figures(img, seed_mask, through_solidity=1.5, **kw)



def _spark_cap_body(seed: int) -> tuple[np.ndarray, ...]:
    """A small spark (the seed), a compact cap touching it and a large dark body touching the cap only."""
    from skimage.draw import disk

    img = _canvas(seed)
    spark = np.zeros(img.shape[:2], bool)
    spark[40:48, 96:104] = True
    img[spark] = (250, 200, 40)
    cap = np.zeros_like(spark)
    cap[48:64, 92:108] = True
    img[cap] = (170, 40, 40)
    body = np.zeros_like(spark)
    rr, cc = disk((90, 100), 26)
    body[rr, cc] = True
    body &= ~cap
    img[body] = (30, 30, 35)
    return img, spark, cap, body


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_later_rounds_follow_the_object_part_by_part(seed):
    """A small hidden spark, a compact cap touching it and a large body touching the cap only, reaching
    far beyond the box around the spark: one round takes the cap, a second (from the cap) the body."""
    from scipy import ndimage as ndi

    img, spark, cap, body = _spark_cap_body(seed)
    one = attached_figures(img, spark, smooth=0) & ~spark
    two = attached_figures(img, spark, smooth=0, rounds=2) & ~spark
    assert one[cap].mean() > 0.7 and one[body].mean() < 0.1
    assert two[cap].mean() > 0.7 and two[body].mean() > 0.9
    # the texture around stays in sight (but for the bands the segmentation leaves along the edges)
    near = ndi.binary_dilation(spark | cap | body, iterations=2)
    assert (two & ~near).sum() <= 0.01 * body.sum()
    five = attached_figures(img, spark, smooth=0, rounds=5)  # more rounds: nothing further is a figure
    assert five[two].all() and (five & ~near).sum() <= 0.01 * body.sum()


@pytest.mark.parametrize("rounds", [0, -1, 1.5, True])
def test_rounds_must_be_a_positive_integer(rounds):
    img = _canvas()
    with pytest.raises(InvalidParameterError, match="rounds"):
        attached_figures(img, np.zeros(img.shape[:2], bool), rounds=rounds)


def test_each_try_and_switch_is_checked_before_any_work():
    img = _canvas()
    empty = np.zeros(img.shape[:2], bool)  # (an empty seed returns at once, after the checks)
    for tries, match in (([(0.35, 1, True)], "fine must be"), ([(0.35, 1, "x")], "fine must be"),
                         ([(-1.0, 1)], "through must be"), ([(0.35, 2.0)], "rounds must be"),
                         ([(0.35,)], "each try"), ([0.35], "each try")):
        with pytest.raises(InvalidParameterError, match=match):
            next(figure_growths(img, empty, tries))
    for name in ("fine_edge", "bridge", "fine_every"):
        with pytest.raises(InvalidParameterError, match=f"{name} must be True or False"):
            next(figure_growths(img, empty, [(0.35, 1)], **{name: 1}))
    assert not next(figure_growths(img, empty, [(0.35, 1, 200)])).any()  # an int is a number


def _joined_body_scene() -> tuple[np.ndarray, ...]:
    """A coarse cut where a body (a disc) is one segment with a pole running to the bottom edge, a finer cut
    where they are apart, the hidden spark above the body, and a wide background segment cut finer too."""
    h, w = 120, 160
    yy, xx = np.mgrid[:h, :w]
    body = (yy - 60) ** 2 + (xx - 80) ** 2 < 10**2
    pole = (np.abs(xx - 80) < 3) & (yy >= 60) & ~body
    spark = (np.abs(yy - 46) < 4) & (np.abs(xx - 80) < 4)
    lab = np.zeros((h, w, 3))
    lab[...] = (70, 0, 0)  # a light ground
    lab[body | pole] = (25, 2, -4)  # the body and pole are dark; the spark is bright yellow
    lab[spark] = (90, -5, 80)
    coarse = np.zeros((h, w), np.int64)  # 0: the ground
    coarse[body | pole] = 1
    coarse[spark] = 2
    coarse[:, 120:] = 3  # another large segment, on the right, reaching the edges
    fine = np.zeros((h, w), np.int64)
    fine[body] = 1
    fine[pole] = 2
    fine[spark] = 3
    fine[:, 120:] = 4
    fine[50:60, 125:135] = 5  # a piece of the right segment: it does not touch the growth
    return lab, coarse, fine, spark, body, pole


def test_a_finer_cut_takes_a_body_the_coarse_cut_joined_to_a_pole_running_to_the_edge():
    lab, coarse, fine, spark, body, pole = _joined_body_scene()
    out = _finer_figures(coarse, fine, lab, spark, grow=3.0, contrast=20.0, max_region=0.1, through=0.35)
    assert out[spark].all() and out[body].all()
    assert not out[pole].any()  # it reaches the image's edge: not a figure
    assert not out[:, 120:].any()  # only segments touching what was found are cut again
    # a body that does not stand out from its ring by the contrast is not taken
    assert not _finer_figures(coarse, fine, lab, spark, grow=3.0, contrast=90.0, max_region=0.1,
                              through=0.35)[body].any()
    # an enclosed coarse segment (not too large, off the edge) is the coarse cut's business: not cut again
    enclosed = coarse.copy()
    enclosed[pole] = 0
    assert not _finer_figures(enclosed, fine, lab, spark, grow=3.0, contrast=20.0, max_region=0.1,
                              through=0.35)[body].any()


def test_a_least_solidity_keeps_the_compact_pieces_of_the_finer_cut_and_drops_the_ragged_ones():
    """The finer cut also frees a ragged piece of the ground touching the spark (a cross of thin bars, as a
    textured ground breaks up); it stands out as much as the body. With ``solidity`` only the body is taken."""
    lab, coarse, fine, spark, body, pole = _joined_body_scene()
    cross = np.zeros_like(spark)
    cross[45:48, 60:76] = True  # a bar reaching the spark from the left, and one across it
    cross[36:56, 66:69] = True
    lab[cross] = (40, 60, 0)
    fine[cross] = 6
    anything = _finer_figures(coarse, fine, lab, spark, grow=3.0, contrast=20.0, max_region=0.1, through=0.35)
    assert anything[cross].all() and anything[body].all()
    compact = _finer_figures(coarse, fine, lab, spark, grow=3.0, contrast=20.0, max_region=0.1, through=0.35,
                             solidity=0.9)
    assert compact[body].all() and not compact[cross].any()
    assert np.array_equal(compact, anything & ~cross)


def test_a_compact_segment_needs_less_contrast_than_a_ragged_one():
    """A dark disc on a dark ground (7 CIELAB units apart) attached to the hidden spark, and a ragged cross of
    the same tone attached on its other side: under the 10 units of contrast neither is a figure; with
    ``compact=(5, 0.9)`` the disc is, and the cross is still not."""
    h, w = 120, 160
    yy, xx = np.mgrid[:h, :w]
    body = (yy - 60) ** 2 + (xx - 80) ** 2 < 10**2
    spark = (np.abs(yy - 46) < 4) & (np.abs(xx - 80) < 4)
    cross = np.zeros((h, w), bool)
    cross[45:48, 60:77] = True
    cross[36:56, 66:69] = True
    lab = np.zeros((h, w, 3))
    lab[...] = (30, 0, 0)
    lab[body | cross] = (37, 0, 0)
    lab[spark] = (90, -5, 80)
    seg = np.zeros((h, w), np.int64)
    seg[body], seg[spark], seg[cross] = 1, 2, 3
    kw = {"grow": 3.0, "contrast": 10.0, "max_region": 0.1}
    plain = _figures(seg, lab, spark, **kw)
    assert not plain[body].any() and not plain[cross].any()
    compact = _figures(seg, lab, spark, compact=(5.0, 0.9), **kw)
    assert compact[body].all() and not compact[cross].any()
    assert np.array_equal(compact, spark | body)
    assert not _figures(seg, lab, spark, compact=(8.0, 0.9), **kw)[body].any()  # 7 units: under 8
    # with the contrast test off, every enclosed segment is taken, compact or not
    assert _figures(seg, lab, spark, **{**kw, "contrast": 0.0}, compact=(5.0, 0.9))[cross].all()


def _diagonal_strip(h: int, w: int, x0: int, x1: int, y0: float, slope: float, width: int) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    for x in range(x0, x1):
        y = int(y0 + slope * (x - x0))
        mask[y : y + width, x] = True
    return mask


def test_a_thin_straight_piece_of_the_finer_cut_is_taken_under_the_least_solidity():
    """A blade four pixels wide runs diagonally from the hidden handle over a light ground, and the coarse cut
    joins it to that ground (one segment reaching the edge). The finer cut frees it, but its stepped edges give
    it a solidity of about 0.8, so ``solidity=0.9`` drops it; ``thin`` takes it back. A piece as long, as
    contrasting and as attached, but with a ragged outline (teeth along one side), stays out, and so does the
    blade when it stands out by less than the thin pieces' contrast."""
    h, w = 120, 160
    handle = np.zeros((h, w), bool)
    handle[20:32, 20:32] = True
    blade = _diagonal_strip(h, w, 32, 88, 26, 0.75, 4) & ~handle
    comb = _diagonal_strip(h, w, 32, 88, 17, -0.15, 4) & ~handle
    for x in range(34, 88, 2):  # teeth
        y = int(17 - 0.15 * (x - 32))
        comb[y + 4 : y + 8, x] = True
    comb &= ~blade
    assert _solidity(blade) < 0.85 and straight(blade, 10, 32) and not straight(comb, 10, 32)
    lab = np.zeros((h, w, 3))
    lab[...] = (80, 0, 0)
    lab[handle] = (30, 20, 20)
    lab[blade | comb] = (60, 0, 0)  # 20 units under the ground
    coarse = np.ones((h, w), np.int64)  # the ground, blade and comb: one segment reaching the edges
    coarse[handle] = 2
    fine = np.zeros((h, w), np.int64)
    fine[blade], fine[comb], fine[handle] = 1, 2, 3
    kw = {"grow": 5.0, "contrast": 5.0, "max_region": 0.1, "through": 0.35}
    anything = _finer_figures(coarse, fine, lab, handle, **kw)
    assert anything[blade].all() and anything[comb].all()
    solid = _finer_figures(coarse, fine, lab, handle, solidity=0.9, **kw)
    assert not solid[blade].any() and not solid[comb].any()
    thin = _finer_figures(coarse, fine, lab, handle, solidity=0.9, thin=(10.0, 10.0, 32.0), **kw)
    assert np.array_equal(thin, handle | blade)
    assert not _finer_figures(coarse, fine, lab, handle, solidity=0.9, thin=(10.0, 25.0, 32.0), **kw)[blade].any()
    assert not _finer_figures(coarse, fine, lab, handle, solidity=0.9, thin=(30.0, 10.0, 32.0), **kw)[blade].any()


def test_a_faint_thin_straight_segment_is_taken_and_a_faint_compact_or_fainter_one_is_not():
    """A blade four pixels wide runs from the hidden handle over a road of nearly its colour (7 CIELAB units):
    under the figures' 10 units it is no figure; with ``faint=(4, 3, 32, 1.35)`` it is, being thin and straight.
    A compact blob as faint, attached on the handle's other side, stays out (not straight), and so does the blade
    when it stands out by only 3 units."""
    h, w = 120, 160
    handle = np.zeros((h, w), bool)
    handle[20:32, 40:52] = True
    blade = _diagonal_strip(h, w, 52, 104, 26, 0.6, 4) & ~handle
    blob = np.zeros((h, w), bool)
    blob[18:34, 26:40] = True
    lab = np.zeros((h, w, 3))
    lab[...] = (70, 0, 0)
    lab[handle] = (30, 20, 20)
    lab[blade | blob] = (77, 0, 0)
    seg = np.zeros((h, w), np.int64)
    seg[handle], seg[blade], seg[blob] = 1, 2, 3
    kw = {"grow": 5.0, "contrast": 10.0, "max_region": 0.1}
    assert not (_figures(seg, lab, handle, **kw) & ~handle).any()
    faint = _figures(seg, lab, handle, faint=(4.0, 3.0, 32.0, 1.35), **kw)
    assert np.array_equal(faint, handle | blade)
    assert not _figures(seg, lab, handle, faint=(8.0, 3.0, 32.0, 1.35), **kw)[blade].any()  # 7 units: under 8
    lab[blade] = (73, 0, 0)
    assert not _figures(seg, lab, handle, faint=(4.0, 3.0, 32.0, 1.35), **kw)[blade].any()  # 3 units


def test_straight_s_ragged_bar_lets_a_rougher_outline_pass():
    strip = _diagonal_strip(60, 120, 10, 110, 5, 0.4, 5)
    rough = strip.copy()
    for x in range(12, 108, 2):  # notches along one side (a grained surface's ragged segment)
        rough[int(5 + 0.4 * (x - 10)) + 5 : int(5 + 0.4 * (x - 10)) + 7, x] = True
    assert straight(strip, 3, 32) and not straight(rough, 3, 32)
    assert straight(rough, 3, 32, 1.35)


def _noisy_blade_on_its_band(seed_: int, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    img, seed, blade = _blade_on_its_band(seed_)
    noise = np.random.default_rng(seed_ + 200).normal(0, sigma, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8), seed, blade


@pytest.mark.parametrize("seed_", [0, 1, 2])
def test_a_noise_floor_finds_the_smooth_patch_a_camera_s_noise_hides(seed_):
    """The blade on its band, with a sensor's noise (sigma 2) over the whole picture: every pixel is now grained
    above the bare smooth bar, so no smooth patch is found; with the bar raised by the grain of the image's
    flattest 2 %, the blade is a smooth patch again. On the drawn picture (no noise) that floor is 0 and the
    growth is the same."""
    img, seed, blade = _noisy_blade_on_its_band(seed_, 2.0)
    kw = {"smooth": 0.5, "grow": 5.0}
    assert next(figure_growths(img, seed, [(0.0, 1)], **kw))[blade].mean() < 0.5
    out = next(figure_growths(img, seed, [(0.0, 1)], noise_floor=0.02, **kw))
    assert out[blade].mean() > 0.8
    assert (out & ~seed).sum() <= 2 * blade.sum()  # the blade, not the band
    clean, seed, _ = _blade_on_its_band(seed_)
    clean[:30] = (120, 160, 220)  # (a drawing: a flat sky, a tenth of the picture)
    drawn: dict = {}
    grown = next(figure_growths(clean, seed, [(0.0, 1)], noise_floor=0.02, scene=drawn, **kw))
    assert float(np.quantile(drawn["grained"], 0.02)) == 0.0
    assert np.array_equal(grown, next(figure_growths(clean, seed, [(0.0, 1)], **kw)))


def test_meanshift_cuts_a_filtered_copy_and_none_the_copy_as_it_is():
    from veil.segment.seeded import working_copy

    img = _canvas()  # (a grained ground, which the filter flattens)
    img[76:84, 30:50] = (60, 35, 20)
    img[77:83, 50:100] = (200, 205, 215)
    seed = np.zeros(img.shape[:2], bool)
    seed[76:84, 30:50] = True
    for denoise in ("meanshift", "none"):
        scene: dict = {}
        out = next(figure_growths(img, seed, [(0.35, 1)], denoise=denoise, grow=5.0, scene=scene))
        assert np.array_equal(scene["small"], working_copy(img, seed, 384)[0]) == (denoise == "none")
        assert out[77:83, 50:100].mean() > 0.9 and not out[:40].any()  # (the blade either way, not the ground)


def test_faint_reaches_the_figure_search_of_figure_growths():
    """A blade 10 px wide of nearly the colour of a smooth ground (about 6 CIELAB units), attached to the hidden
    handle: not a figure under the 10 units, taken with ``faint=4`` (its core: the cut leaves one-pixel bands along
    its edges); a blade of 2 units is not."""
    from veil.segment.bass import rgb_to_lab

    def scene(colour: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        img = np.full((120, 160, 3), 150, np.uint8)
        img[:, 150:] = (90, 120, 160)
        img[50:62, 20:40] = (60, 35, 20)  # the handle (the seed)
        img[51:61, 40:100] = colour
        blade = np.zeros(img.shape[:2], bool)
        blade[51:61, 40:100] = True
        return img, blade, np.pad(np.ones((12, 20), bool), ((50, 58), (20, 120)))

    img, blade, seed = scene((162, 158, 150))
    lab = rgb_to_lab(img)
    assert 4 < float(np.linalg.norm(lab[blade].mean(0) - lab[0, 0])) < 10
    kw = {"grow": 5.0, "smooth": 0.0}
    assert not (next(figure_growths(img, seed, [(0.35, 1)], **kw)) & blade).any()
    out = next(figure_growths(img, seed, [(0.35, 1)], faint=4.0, **kw))
    assert out[blade].mean() > 0.7 and not (out & ~blade & ~seed).any()
    img, blade, seed = scene((156, 153, 150))  # (about 2 units)
    assert not (next(figure_growths(img, seed, [(0.35, 1)], faint=4.0, **kw)) & blade).any()


def test_auto_cuts_a_mean_shift_copy_of_a_noisy_image_only():
    """``denoise="auto"``: a drawing of flat colours (its flattest 2 % not grained at all) is cut as it is, and
    grows as with ``"none"``; the same drawing under a camera's noise is cut from a mean-shift filtered copy."""
    from veil.segment.figures import NOISY
    from veil.segment.seeded import working_copy

    yy, xx = np.mgrid[0:120, 0:160]
    img = np.stack([60 + xx // 2, 90 + yy // 2, 120 + 0 * xx], axis=2).astype(np.uint8)  # a smooth ground
    img[50:60, 20:40] = (60, 35, 20)  # the handle (the seed)
    img[51:59, 40:100] = (200, 205, 215)  # the blade
    seed = np.zeros(img.shape[:2], bool)
    seed[50:60, 20:40] = True
    drawn: dict = {}
    out = next(figure_growths(img, seed, [(0.35, 1)], denoise="auto", scene=drawn, grow=5.0))
    assert np.array_equal(drawn["small"], working_copy(img, seed, 384)[0])  # (not filtered)
    assert np.array_equal(out, next(figure_growths(img, seed, [(0.35, 1)], denoise="none", grow=5.0)))
    assert out[51:59, 40:100].mean() > 0.9
    noisy_img = np.clip(img + np.random.default_rng(0).normal(0, 3, img.shape), 0, 255).astype(np.uint8)
    noisy: dict = {}
    out = next(figure_growths(noisy_img, seed, [(0.35, 1)], denoise="auto", scene=noisy, grow=5.0))
    assert float(np.quantile(noisy["grained"], 0.02)) > NOISY
    assert not np.array_equal(noisy["small"], working_copy(noisy_img, seed, 384)[0])  # (filtered)
    assert out[51:59, 40:100].mean() > 0.9


@pytest.mark.parametrize("bad", [{"noise_floor": 1.0}, {"noise_floor": float("nan")}, {"faint": -1.0},
                                 {"faint_elongation": 0.5}, {"faint_ragged": 0.9}, {"denoise": "median"},
                                 {"fine_again": -1.0}, {"fine_again_contrast": float("nan")}, {"aligned": 0.5},
                                 {"aligned": float("inf")}, {"aligned_gap": -0.01}, {"aligned_gap": 0.3},
                                 {"aligned_gap": float("nan")}, {"aligned_gap": "0.02"}, {"aligned_run": -1.0},
                                 {"aligned_run": float("nan")}, {"aligned_run": True}])
def test_the_photograph_parameters_are_checked(bad):
    img = _canvas()
    with pytest.raises(InvalidParameterError, match=next(iter(bad))):  # (each message names its parameter)
        next(figure_growths(img, np.zeros(img.shape[:2], bool), [(0.0, 1)], **bad))


@pytest.mark.parametrize(("shape", "expected"), [("strip", True), ("square", False), ("line", False),
                                                 ("short", False), ("dot", False)])
def test_straight_asks_for_a_long_thin_strip_wider_than_a_band(shape, expected):
    h, w = 80, 120
    mask = {"strip": _diagonal_strip(h, w, 10, 110, 5, 0.5, 4),  # 100 pixels long, 4 wide
            "square": np.pad(np.ones((30, 30), bool), ((10, 40), (10, 80))),
            "line": _diagonal_strip(h, w, 10, 110, 5, 0.5, 1),  # a one-pixel band
            "short": _diagonal_strip(h, w, 10, 30, 5, 0.5, 4),  # 20 pixels long
            "dot": np.pad(np.ones((1, 2), bool), ((3, 3), (3, 3)))}[shape]
    assert straight(mask, 8, 32) is expected


def test_with_edge_a_piece_of_the_finer_cut_may_reach_the_image_s_edge():
    """A bomb cut by the frame: its body is a half disc at the right edge, joined by the coarse cut to the ground
    (one segment running to the edge). The finer cut frees the body, but it reaches the edge, so it is no figure;
    with ``edge`` it is taken. The ground's own piece stays out (too large), and so does a ragged piece at the
    edge under the least solidity."""
    h, w = 120, 160
    yy, xx = np.mgrid[:h, :w]
    spark = (np.abs(yy - 44) < 4) & (np.abs(xx - 144) < 4)
    cross = np.zeros((h, w), bool)  # a ragged piece at the edge, attached to the spark from above
    cross[30:40, 142:145] = True
    cross[33:36, 140:160] = True
    body = ((yy - 50) ** 2 + (xx - 159) ** 2 < 12**2) & ~spark & ~cross
    lab = np.zeros((h, w, 3))
    lab[...] = (70, 0, 0)
    lab[body | cross] = (25, 2, -4)
    lab[spark] = (90, -5, 80)
    coarse = np.ones((h, w), np.int64)  # the ground, the body and the cross: one segment
    coarse[spark] = 2
    fine = np.zeros((h, w), np.int64)
    fine[body], fine[cross], fine[spark] = 1, 2, 3
    kw = {"grow": 5.0, "contrast": 5.0, "max_region": 0.1, "through": 0.35, "solidity": 0.9}
    assert not _finer_figures(coarse, fine, lab, spark, **kw)[body].any()
    out = _finer_figures(coarse, fine, lab, spark, edge=True, **kw)
    assert np.array_equal(out, spark | body)


def test_every_cuts_finer_an_enclosed_touching_segment_and_figure_growths_asks_for_it_with_fine_every(monkeypatch):
    """With ``every`` the finer cut also looks into a touching segment that is neither too large nor on the edge (a
    body joined to a piece of its ground, too ragged to be a figure): its body piece is taken, the piece of ground
    that made it ragged is not. ``figure_growths(fine_every=True)`` asks the first finer cut for it; by default not."""
    lab, coarse, fine, spark, body, pole = _joined_body_scene()
    enclosed = coarse.copy()
    enclosed[pole & (np.mgrid[:120, :160][0] > 100)] = 0  # the pole stops short of the edge: an enclosed segment
    kw: dict[str, Any] = {"grow": 3.0, "contrast": 20.0, "max_region": 0.1, "through": 0.35}
    assert not _finer_figures(enclosed, fine, lab, spark, **kw)[body].any()
    out = _finer_figures(enclosed, fine, lab, spark, every=True, **kw)
    assert out[body].all() and not (out & pole).any()

    import veil.segment.figures as figures

    seen: list[bool] = []
    real = figures._finer_figures

    def spy(*args: Any, **kwargs: Any) -> np.ndarray:
        seen.append(bool(kwargs.get("every", False)))
        return real(*args, **kwargs)

    monkeypatch.setattr(figures, "_finer_figures", spy)
    img = _canvas()
    seed_mask = np.zeros(img.shape[:2], bool)
    seed_mask[40:48, 60:70] = True
    for every in (False, True):
        seen.clear()
        next(figures.figure_growths(img, seed_mask, [(0.35, 1, 200.0)], fine_every=every))
        assert seen and seen[0] is every  # the first finer cut (the third cut, if any, always looks into every one)
    with pytest.raises(InvalidParameterError, match="fine_every"):
        next(figures.figure_growths(img, seed_mask, [(0.35, 1, 200.0)], fine_every=1))


def test_the_finer_cut_is_made_only_when_a_touching_segment_needs_it():
    lab, coarse, fine, spark, body, pole = _joined_body_scene()
    calls = []

    def cut():
        calls.append(1)
        return fine

    out = _finer_figures(coarse, cut, lab, spark, grow=3.0, contrast=20.0, max_region=0.1, through=0.35)
    assert calls == [1] and out[body].all()  # (a function gives what the array gives)
    ring = np.zeros_like(spark)
    ring[38:55, 72:89] = True
    enclosed = coarse.copy()
    enclosed[ring & ~spark] = 5  # the spark sits in a small segment off the edge: nothing to cut finer
    again = _finer_figures(enclosed, cut, lab, spark, grow=3.0, contrast=20.0, max_region=0.1, through=0.35)
    assert calls == [1]  # not called again
    assert np.array_equal(again, spark)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_finer_cut_only_adds_to_the_growth_and_is_off_by_default(seed):
    img = _canvas(seed)
    img[40:120, 60:140] = (40, 40, 45)  # a large dark block running into a strip to the edge
    img[120:, 95:105] = (40, 40, 45)
    img[30:40, 95:105] = (250, 220, 40)  # the seed above it
    seed_mask = np.zeros(img.shape[:2], bool)
    seed_mask[30:40, 95:105] = True
    plain, finer = figure_growths(img, seed_mask, [(0.35, 2), (0.35, 2, 200.0)])
    assert np.array_equal(plain, attached_figures(img, seed_mask, rounds=2))  # fine=0: as before
    assert np.array_equal(finer, finer | plain)  # the finer cut only adds


def test_a_scene_kept_between_calls_cuts_the_image_once_and_grows_as_without_it(monkeypatch):
    """The object extent grows twice on one image (the complete step, and again after the prune step): with a
    ``scene`` dict kept between the calls, the image is cut once, and each growth is the one made without it."""
    import veil.segment.graph as graph_mod

    img = _canvas(0)
    img[40:120, 60:140] = (40, 40, 45)
    img[120:, 95:105] = (40, 40, 45)
    img[30:40, 95:105] = (250, 220, 40)
    first = np.zeros(img.shape[:2], bool)
    first[30:40, 95:105] = True
    second = np.zeros(img.shape[:2], bool)
    second[60:70, 10:20] = True
    tries = [(0.35, 2, 200.0), (0.35, 1)]
    alone = [list(figure_growths(img, m, tries)) for m in (first, second)]
    made: list[int] = []
    real = graph_mod.felzenszwalb_graph
    monkeypatch.setattr(graph_mod, "felzenszwalb_graph", lambda *a, **k: made.append(1) or real(*a, **k))
    scene: dict = {}
    kept = [list(figure_growths(img, m, tries, scene=scene)) for m in (first, second)]
    assert made == [1]
    for a, b in zip(alone, kept, strict=True):
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    list(figure_growths(img[:100], first[:100], tries, scene=scene))  # another image: cut again
    assert made == [1, 1]


@pytest.mark.parametrize("bad", [{"fine": -1.0}, {"fine": float("nan")}, {"fine_contrast": -5.0},
                                 {"fine_solidity": 1.5}, {"fine_solidity": float("nan")},
                                 {"compact_contrast": -1.0}, {"compact_solidity": 2.0},
                                 {"fine_thin": 0.5}, {"fine_thin": float("inf")}])
def test_the_finer_cut_parameters_are_checked(bad):
    img = _canvas()
    with pytest.raises(InvalidParameterError, match=next(iter(bad))):
        attached_figures(img, np.zeros(img.shape[:2], bool), **bad)


def test_with_a_weight_only_the_figures_the_weight_favours_are_taken():
    img = _canvas(5)
    img[76:84, 30:50] = (60, 35, 20)  # handle (the seed)
    img[77:83, 50:100] = (200, 205, 215)  # blade, attached to the right
    img[60:76, 32:48] = (30, 90, 200)  # a blue figure, attached above
    seed = np.zeros(img.shape[:2], bool)
    seed[76:84, 30:50] = True
    both = attached_figures(img, seed, smooth=0)
    assert both[78:82, 55:95].mean() > 0.9 and both[62:74, 34:46].mean() > 0.9  # unweighted: both are figures
    # attention falling off with the distance from the handle's and the blade's row: its top 5 % covers them
    weight = np.repeat(-np.abs(np.arange(160, dtype=np.float32) - 80)[:, None], 200, axis=1)
    out = attached_figures(img, seed, smooth=0, weight=weight, min_weight=0.95)
    assert out[78:82, 55:95].mean() > 0.9  # the blade is taken
    assert not out[62:72, 34:46].any()  # the figure it paid no attention to is not
    # off (min_weight 0) or without a weight: the same as unweighted
    assert np.array_equal(attached_figures(img, seed, smooth=0, weight=weight), both)
    assert np.array_equal(attached_figures(img, seed, smooth=0, min_weight=0.95), both)


def test_an_exempt_solidity_takes_a_solid_contrasting_figure_the_weight_left_out_and_no_ragged_one():
    """A bomb: a small bright spark (the seed, where the weight is) attached to a dark round body far from the
    weight; beside the spark, a ragged dark figure (a comb) as little weighted. Under the weight bars neither is
    taken; with ``exempt_solidity`` 0.95 the body is (solid and contrasting), the comb is not."""
    from skimage.draw import disk

    img = _canvas(9)
    img[disk((100, 100), 25, shape=img.shape[:2])] = (25, 25, 30)  # the body
    img[68:76, 96:104] = (250, 220, 60)  # the spark (the seed), touching the body's top
    img[70:74, 56:96] = (30, 40, 140)  # a ragged blue comb attached to the spark's left, teeth up
    for x in range(56, 96, 5):
        img[52:70, x : x + 2] = (30, 40, 140)
    seed = np.zeros(img.shape[:2], bool)
    seed[68:76, 96:104] = True
    body = np.zeros_like(seed)
    body[disk((100, 100), 22, shape=img.shape[:2])] = True
    body &= np.arange(160)[:, None] > 80  # (its lower part, clear of the spark)
    comb = (img == (30, 40, 140)).all(axis=2)
    yy, xx = np.mgrid[:160, :200]
    weight = np.exp(-np.hypot(yy - 72, xx - 100) / 6).astype(np.float32)  # the attention on the spark
    kw = {"smooth": 0, "grow": 8.0, "weight": weight, "min_weight": 0.99}
    unweighted = attached_figures(img, seed, smooth=0, grow=8.0)
    assert unweighted[body].mean() > 0.9 and unweighted[comb].mean() > 0.5  # both are figures by colour
    out = attached_figures(img, seed, **kw)
    assert not out[body].any() and not out[comb].any()
    exempt = attached_figures(img, seed, exempt_solidity=0.95, **kw)
    assert exempt[body].mean() > 0.9
    assert not exempt[comb].any()
    with pytest.raises(InvalidParameterError, match="exempt_solidity"):
        attached_figures(img, seed, exempt_solidity=1.5, **kw)


@pytest.mark.parametrize("bad", [{"min_weight": 1.0}, {"min_weight": -0.1}, {"min_weight": float("nan")},
                                 {"weight": np.zeros((3, 3)), "min_weight": 0.5}])
def test_the_weight_parameters_are_checked(bad):
    img = _canvas(6)
    seed = np.zeros(img.shape[:2], bool)
    seed[76:84, 30:50] = True
    with pytest.raises(InvalidParameterError):
        attached_figures(img, seed, **bad)


def test_a_relative_weight_keeps_the_rest_of_an_object_the_weight_holds_little_of():
    """A second object far from where the weight is: its part attached to the seed is under the image's
    quantile, but about as weighted as the seed piece it is attached to, so ``relative_weight`` 0.9 takes it."""
    img = _canvas(7)
    img[76:84, 30:50] = (60, 35, 20)  # first handle (seed) and blade, where the weight is
    img[77:83, 50:100] = (200, 205, 215)
    img[130:138, 30:50] = (60, 35, 20)  # second handle (seed) and blade, far from it
    img[131:137, 50:100] = (200, 205, 215)
    seed = np.zeros(img.shape[:2], bool)
    seed[76:84, 30:50] = True
    seed[130:138, 30:50] = True
    weight = np.repeat(np.exp(-np.abs(np.arange(160, dtype=np.float32) - 80) / 10)[:, None], 200, axis=1)
    quantile_only = attached_figures(img, seed, smooth=0, weight=weight, min_weight=0.95)
    assert quantile_only[78:82, 55:95].mean() > 0.9 and not quantile_only[132:136, 55:95].any()
    relative = attached_figures(img, seed, smooth=0, weight=weight, min_weight=0.95, relative_weight=0.9)
    assert relative[78:82, 55:95].mean() > 0.9 and relative[132:136, 55:95].mean() > 0.9
    with pytest.raises(InvalidParameterError):
        attached_figures(img, seed, weight=weight, min_weight=0.5, relative_weight=-1.0)


def test_the_relative_weight_reads_each_piece_s_own_weight():
    """Three objects, each a handle (a seed piece) and a blade as weighted as it: with ``relative_weight``
    every blade is weighed against its own handle, so all three are taken whatever the image's quantile."""
    img = _canvas(8)
    seed = np.zeros(img.shape[:2], bool)
    for y in (16, 76, 130):
        img[y : y + 8, 30:50] = (60, 35, 20)
        img[y + 1 : y + 7, 50:100] = (200, 205, 215)
        seed[y : y + 8, 30:50] = True
    weight = np.repeat(np.exp(-np.abs(np.arange(160, dtype=np.float32) - 80) / 10)[:, None], 200, axis=1)
    weight = np.maximum(weight, 1e-3)  # (flat far from the middle row, as an attribution map's floor)
    out = attached_figures(img, seed, smooth=0, weight=weight, min_weight=0.95, relative_weight=0.9)
    for y in (16, 76, 130):
        assert out[y + 2 : y + 6, 55:95].mean() > 0.9


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), h=st.integers(1, 24), w=st.integers(1, 24),
       kind=st.sampled_from(["noise", "disc", "rect", "ring", "line", "empty"]),
       least=st.sampled_from([0.0, 0.35, 0.5, 0.785, 0.9, 1.0]))
def test_the_box_shortcut_answers_as_the_hull(seed, h, w, kind, least):
    # _solid_at_least skips the convex hull when the bounding box answers; it must answer as the hull does
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.5, 12)
    mask = {"noise": rng.random((h, w)) < rng.uniform(0.1, 0.9),
            "disc": (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r,
            "rect": (yy >= min(cy, h - 1) // 2) & (xx >= min(cx, w - 1) // 2),
            "ring": np.abs(np.hypot(yy - cy, xx - cx) - r) < 1,
            "line": np.abs((yy - cy) * 0.6 - (xx - cx) * 0.8) < 0.7,
            "empty": np.zeros((h, w), bool)}[kind]
    with warnings.catch_warnings():  # (scikit-image warns that an empty mask has no hull)
        warnings.simplefilter("ignore", UserWarning)
        hull = _solidity(mask) >= least
    assert _solid_at_least(mask, least) == hull


def _later_round_scene() -> tuple[np.ndarray, ...]:
    """Explicit segments for :func:`_figures`: a ground (1) running to the edges, the hidden piece (2), and
    touching it a solid square (3), a ragged U of 8-px bars (4) and an L of 2-px strokes (5), each standing out."""
    h, w = 120, 160
    seg = np.ones((h, w), np.int64)
    hs = np.zeros((h, w), bool)
    hs[50:70, 60:80] = True
    seg[hs] = 2
    seg[50:70, 80:100] = 3  # the square, right of the piece
    u = np.zeros((h, w), bool)  # the U, left of the piece: solidity about a half
    u[34:86, 52:60] = True
    u[34:42, 28:60] = True
    u[78:86, 28:60] = True
    seg[u] = 4
    seg[70:72, 62:78] = 5  # the band, an L of 2-px strokes under the piece (a thin curve: ragged, but a rim)
    seg[70:90, 76:78] = 5
    lab = np.zeros((h, w, 3))
    lab[...] = (70, 0, 0)
    lab[seg == 3] = (30, 10, 10)
    lab[u] = (40, -30, 30)
    lab[seg == 5] = (20, 0, 0)
    return seg, lab, hs


def test_a_later_round_s_least_solidity_refuses_ragged_figures_but_not_rims():
    seg, lab, hs = _later_round_scene()
    kw = {"grow": 5.0, "contrast": 10.0, "max_region": 0.5}
    every = _figures(seg, lab, hs, **kw)
    assert every[seg == 3].all() and every[seg == 4].all() and every[seg == 5].all()
    solid = _figures(seg, lab, hs, solidity=0.9, rim=2.0, **kw)
    assert solid[seg == 3].all() and solid[seg == 5].all()  # the square, and the band (a rim)
    assert not solid[seg == 4].any()  # the ragged U stays in sight
    no_rim = _figures(seg, lab, hs, solidity=0.9, **kw)
    assert not no_rim[seg == 5].any() and no_rim[seg == 3].all()


def test_with_a_later_solidity_the_body_is_still_followed_and_a_ragged_figure_beside_it_is_not():
    """Through :func:`figure_growths`: the cap (first round) and the solid body (second round) are taken with
    ``later_solidity`` or without; a ragged U attached only to the body (third round) is taken without it and
    refused with it."""
    img, spark, cap, body = _spark_cap_body(5)
    ragged = np.zeros_like(spark)  # a U of 12-px bars touching the body only (solidity 0.66)
    ragged[66:114, 127:139] = True
    ragged[66:78, 127:165] = True
    ragged[102:114, 127:165] = True
    img[ragged] = (40, 160, 60)
    plain, solid = figure_growths(img, spark, [(0.35, 3)], smooth=0), figure_growths(
        img, spark, [(0.35, 3)], smooth=0, later_solidity=0.9)
    plain_out, solid_out = next(plain), next(solid)
    assert plain_out[cap].mean() > 0.7 and plain_out[body].mean() > 0.9 and plain_out[ragged].mean() > 0.9
    assert solid_out[cap].mean() > 0.7 and solid_out[body].mean() > 0.9
    assert solid_out[ragged].mean() < 0.3  # (the cut splits off a solid sliver along the body)


def test_with_an_edge_solidity_a_solid_figure_may_reach_the_frame_and_a_ragged_one_may_not():
    """A bomb cut by the frame: a half disc at the right edge touching the hidden spark, and a ragged piece at
    the edge touching it too. Without ``edge_solidity`` neither is enclosed; with it the half disc is taken."""
    h, w = 120, 160
    yy, xx = np.mgrid[:h, :w]
    seg = np.ones((h, w), np.int64)
    spark = (np.abs(yy - 40) < 4) & (np.abs(xx - 150) < 4)
    seg[spark] = 2
    body = ((yy - 52) ** 2 + (xx - 159) ** 2 < 15**2) & ~spark
    seg[body] = 3
    cross = np.zeros((h, w), bool)  # ragged, at the edge, above the spark
    cross[20:36, 146:149] = True
    cross[24:27, 135:160] = True
    seg[cross] = 4
    lab = np.zeros((h, w, 3))
    lab[...] = (70, 0, 0)
    lab[body | cross] = (25, 2, -4)
    lab[spark] = (90, -5, 80)
    kw = {"grow": 5.0, "contrast": 10.0, "max_region": 0.1}
    assert np.array_equal(_figures(seg, lab, spark, **kw), spark)
    out = _figures(seg, lab, spark, edge_solidity=0.9, **kw)
    assert np.array_equal(out, spark | body)


@pytest.mark.parametrize("seed_", [0, 1])
def test_with_an_edge_solidity_a_smooth_blade_cut_by_the_frame_is_taken(seed_):
    img, seed, blade = _blade_on_its_band(seed_)
    img[74:86, 50:] = (180, 185, 195)  # the blade runs on to the right edge
    blade[74:86, 50:] = True
    assert attached_figures(img, seed, grow=8.0, fine_thin=10.0)[blade].mean() < 0.5  # a patch reaching the edge
    # (the grain window leaves the patch's ends ragged, solidity about 0.8: it is taken as thin and straight)
    assert attached_figures(img, seed, grow=8.0, edge_solidity=0.9)[blade].mean() < 0.5
    out = attached_figures(img, seed, grow=8.0, edge_solidity=0.9, fine_thin=10.0)
    assert out[blade].mean() > 0.8
    assert (out & ~seed).sum() <= 2 * blade.sum()  # the blade, not the band


@pytest.mark.parametrize("bad", [{"edge_solidity": -0.1}, {"edge_solidity": 1.5}, {"later_solidity": 2.0},
                                 {"later_solidity": float("nan")}])
def test_the_edge_and_later_solidities_are_checked(bad):
    img = _canvas()
    with pytest.raises(InvalidParameterError, match=next(iter(bad))):
        attached_figures(img, np.zeros(img.shape[:2], bool), **bad)


@pytest.mark.parametrize(("shape", "expected"), [("half disc", True), ("blade", True), ("corner", False),
                                                 ("strip", False), ("inside", False), ("across", False)])
def test_cut_by_frame_asks_for_one_side_reached_into(shape, expected):
    h, w = 60, 80
    yy, xx = np.mgrid[:h, :w]
    mask = {"half disc": (yy - 30) ** 2 + (xx - 79) ** 2 < 12**2,  # a disc cut by the right edge
            "blade": (np.abs(yy - 20) < 3) & (xx >= 30),  # a bar running off the right edge
            "corner": (yy < 25) & (xx > 50),  # a convex piece of ground in the top-right corner
            "strip": xx >= 74,  # a strip along the right edge
            "inside": (yy - 30) ** 2 + (xx - 40) ** 2 < 12**2,  # off the edge
            "across": np.abs(yy - 30) < 4}[shape]  # a band from the left edge to the right
    assert cut_by_frame(mask, (0, h, 0, w), (h, w)) is expected
    # a crop away from the frame never reaches it
    assert cut_by_frame(mask, (10, h + 10, 10, w + 10), (h + 40, w + 40)) is False



@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 40), w=st.integers(1, 40),
       density=st.floats(0.0, 0.3), iterations=st.integers(0, 9), strided=st.booleans())
def test_dilate_is_scipys_binary_dilation(seed, h, w, density, iterations, strided):
    """The figure search's dilation (OpenCV) gives scipy's array: the 4-connected cross, nothing beyond the
    border, ``iterations`` 0 as scipy reads it (until nothing changes), and on a strided view too."""
    from scipy import ndimage as ndi

    mask = np.random.default_rng(seed).random((h, 2 * w if strided else w)) < density
    if strided:
        mask = mask[:, ::2]  # (not contiguous, as the crops the search dilates can be)
    got = dilate(mask, iterations)
    assert got.dtype == bool and np.array_equal(got, ndi.binary_dilation(mask, iterations=iterations))


def test_a_bridge_reaches_a_body_beyond_the_unhidden_end_of_a_segment_the_seed_mostly_covers():
    img = _canvas(4)
    img[77:83, 40:100] = (250, 170, 30)  # a fuse, one segment
    img[65:95, 100:130] = (25, 25, 30)  # the body at its far end
    seed = np.zeros(img.shape[:2], bool)
    seed[76:84, 38:80] = True  # the spark's end hidden with two thirds of the fuse: its last 20 pixels in sight
    plain = attached_figures(img, seed) & ~seed
    assert not plain[65:95, 100:130].any()  # the body is 20 pixels from the seed: not attached
    bridged = attached_figures(img, seed, bridge=True) & ~seed
    assert bridged[65:95, 100:130].mean() > 0.9  # through the fuse's segment, the body is reached
    assert not bridged[:60].any() and not bridged[100:].any()  # and the ground around it is not taken
    # a segment the seed covers less than half of is no bridge
    short = np.zeros(img.shape[:2], bool)
    short[76:84, 38:60] = True  # a third of the fuse
    assert (attached_figures(img, short, bridge=True) & ~short)[65:95, 100:130].mean() < 0.1  # (its soft edge at most)


def test_every_looks_into_a_touching_segment_the_first_cut_left_as_no_figure():
    """A bomb's body and a stretch of dark ground are one segment of the first cut: small and off the image's edge,
    so the finer cut is not asked for it (it is no figure only because it is ragged). With ``every`` its pieces are
    looked at: the round body is taken, the ragged ground piece beside it is not (under the least solidity)."""
    h, w = 120, 160
    yy, xx = np.mgrid[:h, :w]
    spark = (np.abs(yy - 40) < 4) & (np.abs(xx - 80) < 4)
    body = ((yy - 58) ** 2 + (xx - 80) ** 2 < 14**2) & ~spark
    ground = np.zeros((h, w), bool)  # a ragged dark stretch joined to the body
    ground[54:62, 94:130] = True
    ground[62:80, 118:122] = True
    ground &= ~body
    lab = np.zeros((h, w, 3))
    lab[...] = (70, 0, 0)
    lab[body] = (25, 2, -4)
    lab[ground] = (45, 0, 0)
    lab[spark] = (90, -5, 80)
    coarse = np.ones((h, w), np.int64)
    coarse[spark], coarse[body | ground] = 2, 3
    fine = coarse.copy()
    fine[ground] = 4
    kw = {"grow": 5.0, "contrast": 15.0, "max_region": 0.1, "through": 0.35, "solidity": 0.9}
    assert np.array_equal(_finer_figures(coarse, fine, lab, spark, **kw), spark)  # (not too large, off the edge)
    out = _finer_figures(coarse, fine, lab, spark, every=True, **kw)
    assert np.array_equal(out, spark | body)


def test_fine_again_cuts_again_only_an_image_cut_from_the_mean_shift_copy():
    """``fine_again`` cuts the finer cut's pieces again only on a scene cut from the mean-shift copy: on a copy cut
    as it is, nothing changes and no third cut is made; on a filtered one the third cut is made, and what a call
    grows does not depend on what an earlier call on the same scene cut; a ``fine_again`` not finer than the try's
    ``fine`` makes no third cut."""
    rng = np.random.default_rng(0)
    h, w = 160, 200
    yy, xx = np.mgrid[:h, :w]
    img = np.zeros((h, w, 3))
    img[...] = (90, 80, 70)
    img[:, :60] = (150, 160, 170)
    img[(yy - 90) ** 2 + (xx - 120) ** 2 < 20**2] = (60, 50, 40)
    spark = (np.abs(yy - 70) < 5) & (np.abs(xx - 120) < 5)
    img[spark] = (250, 200, 40)
    img = np.clip(img + rng.normal(0, 8, (h, w, 1)), 0, 255).astype(np.uint8)
    kw = {"grow": 5.0, "smooth": 0.0, "fine_solidity": 0.9, "fine_contrast": 5.0}
    tries = [(0.35, 2, 200.0)]
    plain: dict = {}
    out = next(figure_growths(img, spark, tries, denoise="none", fine_again=100.0, scene=plain, **kw))
    assert np.array_equal(out, next(figure_growths(img, spark, tries, denoise="none", **kw)))
    assert not plain["denoised"] and set(plain["finer"]) == {200.0}  # (the finer cut, not the third)
    filtered: dict = {}
    next(figure_growths(img, spark, tries, denoise="meanshift", fine_again=100.0, scene=filtered, **kw))
    assert filtered["denoised"] and set(filtered["finer"]) == {200.0, 100.0}
    off: dict = {}
    alone = next(figure_growths(img, spark, tries, denoise="meanshift", scene=off, **kw))
    assert set(off["finer"]) == {200.0}
    coarser: dict = {}
    out = next(figure_growths(img, spark, tries, denoise="meanshift", fine_again=300.0, scene=coarser, **kw))
    assert set(coarser["finer"]) == {200.0} and np.array_equal(out, alone)
    first = next(figure_growths(img, spark, tries, denoise="meanshift", fine_again=100.0, **kw))
    used: dict = {}  # (a scene an earlier call with another seed, and no finer cut, has cut already)
    other = np.zeros_like(spark)
    other[5:10, 5:10] = True
    next(figure_growths(img, other, [(0.35, 1, 0.0)], denoise="meanshift", fine_again=100.0, scene=used, **kw))
    assert not used["finer"]
    assert np.array_equal(next(figure_growths(img, spark, tries, denoise="meanshift", fine_again=100.0, scene=used,
                                              **kw)), first)


def _bar(shape: tuple[int, int], y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


@pytest.mark.parametrize(("case", "taken"), [
    ("along", True),        # a hidden bar, the piece continuing it: a blade beyond its handle
    ("crosswise", False),   # a hidden bar across the piece's axis at its end
    ("beside", False),      # a hidden bar parallel to the piece, its end touching, off the piece's axis
    ("round", False),       # a hidden disc: no axis to continue
    ("side-on", False),     # the hidden bar touches the piece along its side, not at its end
    ("ragged", False),      # a piece in line but with a toothed outline
    ("framed", False),      # a piece in line running to the image's edge
    ("short", False),       # a piece in line, less than five times longer than wide
])
def test_aligned_pieces_take_only_a_thin_straight_piece_continuing_the_hidden_piece(case, taken):
    shape = (80, 140)
    pieces = np.zeros(shape, np.int64)
    piece = _bar(shape, 38, 43, 50, 110)          # 5 px wide, 60 px long, its left end at x = 50
    hidden = _bar(shape, 37, 44, 20, 50)          # 7 px wide, 30 px long, ending at x = 50
    if case == "crosswise":
        hidden = _bar(shape, 15, 65, 42, 50)
    elif case == "beside":                        # (its end's upper corner within reach of the piece's end)
        piece = _bar(shape, 31, 36, 50, 110)
        hidden = _bar(shape, 22, 30, 10, 51)
    elif case == "round":
        yy, xx = np.mgrid[: shape[0], : shape[1]]
        hidden = (yy - 40) ** 2 + (xx - 37) ** 2 <= 13**2
    elif case == "side-on":
        hidden = _bar(shape, 43, 50, 60, 100)
    elif case == "ragged":
        for x in range(52, 108, 4):
            piece[43:46, x : x + 2] = True
    elif case == "framed":
        piece = _bar(shape, 38, 43, 50, 140)
    elif case == "short":
        piece = _bar(shape, 38, 43, 50, 66)
    pieces[piece] = 1
    pieces[~piece & ~hidden] = 2                  # the ground: one large piece
    out = aligned_pieces(pieces, hidden, elongation=5, length=10, max_region=0.5)
    assert np.array_equal(out, hidden | piece) if taken else np.array_equal(out, hidden)
    # a piece that touches the hidden mask is weighed by what it touches, whatever the gap
    assert np.array_equal(aligned_pieces(pieces, hidden, elongation=5, length=10, max_region=0.5, gap=6), out)


def test_aligned_pieces_ask_each_of_their_tests():
    """Each case passes every test of :func:`aligned_pieces` but one; with that one relaxed it is taken."""
    shape = (80, 140)
    piece = _bar(shape, 38, 43, 50, 110)
    handle = _bar(shape, 37, 44, 20, 50)

    def run(hidden: np.ndarray, **kw: float) -> bool:
        pieces = np.zeros(shape, np.int64)
        pieces[piece] = 1
        pieces[~piece & ~hidden] = 2
        return bool(aligned_pieces(pieces, hidden, elongation=5, length=10, **{"max_region": 0.5, **kw})[
            piece & ~hidden].all())

    # end-on: two hidden bars along the piece's sides, joined behind it: aligned with it, centred on its axis,
    # but touching it along its length
    sides = _bar(shape, 31, 37, 20, 100) | _bar(shape, 44, 50, 20, 100) | _bar(shape, 31, 50, 20, 26)
    assert not run(sides) and run(sides, end=0.0)
    # not mostly hidden: the handle, and a hidden stretch over 60 % of the piece that touches nothing else
    covered = handle | _bar(shape, 38, 43, 74, 110)
    assert not bool(aligned_pieces(np.where(piece, 1, 2), covered, elongation=5, length=10, max_region=0.5)[
        38:43, 50:74].any())
    # at most max_region of the image (the piece is 2.7 % of it)
    assert not run(handle, max_region=0.02) and run(handle, max_region=0.03)


@pytest.mark.parametrize(("case", "gap", "taken"), [
    ("guard", 0, False),        # a guard between the hidden handle and the piece: nothing touches
    ("guard", 6, True),         # ... taken across a gap of 6 (the guard is 6 pixels wide)
    ("guard", 4, False),        # ... not across a gap of 4
    ("far", 6, False),          # the hidden handle 20 pixels short of the piece
    ("crosswise", 6, False),    # a hidden bar across the piece's axis, beyond the guard
    ("beside", 6, False),       # a hidden bar parallel to the piece, 4 pixels off its side at its end, off its axis
])
def test_aligned_pieces_reach_across_a_gap_only_within_gap(case, gap, taken):
    shape = (80, 140)
    pieces = np.zeros(shape, np.int64)
    piece = _bar(shape, 38, 43, 50, 110)
    guard = _bar(shape, 30, 51, 44, 50)           # not hidden: its own piece, 6 pixels wide, across the axis
    hidden = {"guard": _bar(shape, 37, 44, 14, 44), "far": _bar(shape, 37, 44, 4, 30),
              "crosswise": _bar(shape, 18, 63, 36, 44), "beside": _bar(shape, 29, 34, 10, 50)}[case]
    if case in ("crosswise", "beside"):  # (within the gap's reach of the piece, not touching it: the axis tests refuse)
        assert (dilate(piece, 8) & hidden).any() and not (dilate(piece, 2) & hidden).any()
    pieces[piece] = 1
    pieces[guard] = 3
    pieces[~piece & ~guard & ~hidden] = 2
    out = aligned_pieces(pieces, hidden, elongation=5, length=10, max_region=0.5, gap=gap)
    assert np.array_equal(out, hidden | piece) if taken else np.array_equal(out, hidden)
    assert not (out & guard & ~hidden).any()       # (the guard is no thin piece continuing the axis)


def test_aligned_pieces_weigh_a_piece_by_what_it_touches_first_so_a_gap_takes_nothing_away():
    """A piece touching its hidden handle end-on, with a hidden bar along its side 5 pixels off: within a gap of 6
    the bar's pixels make the contact side-on, but the piece is weighed first by what it touches, and taken."""
    shape = (80, 140)
    piece = _bar(shape, 38, 43, 50, 110)
    hidden = _bar(shape, 37, 44, 20, 50) | _bar(shape, 48, 53, 60, 100)
    pieces = np.where(piece, 1, 2)
    pieces[hidden] = 3
    for gap in (0, 6):
        assert aligned_pieces(pieces, hidden, elongation=5, length=10, max_region=0.5, gap=gap)[piece].all()


@pytest.mark.parametrize(("case", "plain", "with_run"), [
    ("handle", True, True),        # a hidden bar along the piece: taken either way
    ("guarded", False, True),      # the handle hidden with a crosswise guard and a patch of ground beside it: one
                                   # component with no axis along the piece, yet the piece's axis runs down it
    ("disc-large", False, True),   # a hidden disc 27 pixels across: the axis runs 27 pixels through it, over 5 widths
    ("disc-small", False, False),  # ... 11 pixels across: under 5 widths (the piece's width is 2.9 pixels)
    ("beside", False, False),      # a hidden bar touching the piece's end below its axis: the axis runs past it
    ("mirrored", False, True),     # "guarded" mirrored left to right: the walk goes the other way
    ("crossbar", False, False),    # a hidden bar across the axis, 6 pixels thick: the axis leaves it at once
])
def test_aligned_pieces_with_run_follow_the_pieces_axis_down_the_hidden_mask(case, plain, with_run):
    """With ``run``, a piece end-on to the hidden mask is taken when its axis, carried on beyond its touching end,
    runs through hidden pixels for ``run`` of its widths, whatever the shape of the hidden component; without it,
    that component must be elongated along the piece's axis."""
    shape = (90, 140)
    piece = _bar(shape, 38, 43, 50, 110)          # 5 px wide (a width of 2.9 as measured), its left end at x = 50
    handle = _bar(shape, 37, 44, 20, 50)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    hidden = {"handle": handle, "guarded": handle | _bar(shape, 28, 53, 46, 50) | _bar(shape, 44, 80, 8, 44),
              "disc-large": (yy - 40) ** 2 + (xx - 37) ** 2 <= 13**2,
              "disc-small": (yy - 40) ** 2 + (xx - 45) ** 2 <= 5**2,
              "beside": _bar(shape, 42, 52, 10, 50), "crossbar": _bar(shape, 15, 65, 44, 50)}.get(case)
    if case == "mirrored":
        piece = _bar(shape, 38, 43, 30, 90)
        hidden = (_bar(shape, 37, 44, 20, 50) | _bar(shape, 28, 53, 46, 50) | _bar(shape, 44, 80, 8, 44))[:, ::-1]
    pieces = np.where(piece, 1, 2)
    pieces[hidden & ~piece] = 3

    def taken(**kw: float) -> bool:
        return bool(aligned_pieces(pieces, hidden, elongation=5, length=10, max_region=0.5, **kw)[piece & ~hidden].all())

    assert taken() is plain and taken(run=5.0) is with_run
    if case == "disc-large":  # (27 pixels of run: taken at 9 widths, not at 10)
        assert taken(run=9.0) and not taken(run=10.0)


def test_the_walk_down_the_hidden_mask_passes_a_short_lead_and_two_pixel_holes_only():
    """``_hidden_run`` (``aligned_pieces``' ``run``): before the first hidden pixel, the unhidden ones within ``lead``
    and two more are passed over; after it, a hole of two pixels is crossed and one of three ends the walk."""
    from veil.segment.figures import _hidden_run

    row = np.zeros((5, 100), bool)

    def walk(hidden_xs: list[int], lead: float = 2.0) -> int:
        row[:] = False
        row[2, hidden_xs] = True
        return _hidden_run(row, (2.0, 0.0), (0.0, 1.0), 0.0, lead, 50.0)

    assert walk(list(range(0, 20))) == 20
    assert walk(list(range(0, 8)) + list(range(10, 20))) == 18   # a hole of 2: crossed
    assert walk(list(range(0, 8)) + list(range(11, 20))) == 8    # a hole of 3: the walk ends
    assert walk(list(range(5, 20))) == 15                         # 5 unhidden first: lead 2 (x 0-2) and 2 more
    assert walk(list(range(6, 20))) == 0                          # 6: too many
    assert walk(list(range(6, 20)), lead=3.0) == 14
    assert walk(list(range(0, 80))) == 50                         # at most `far` pixels
    assert walk(list(range(0, 80))) == 50 and _hidden_run(row, (2.0, 60.0), (0.0, 1.0), 0.0, 2.0, 50.0) == 20
    assert _hidden_run(row, (2.0, 0.0), (0.0, -1.0), 0.0, 2.0, 50.0) == 1  # (the image's edge ends the walk)


def test_aligned_pieces_leave_an_empty_mask_alone_and_check_their_label_map():
    shape = (60, 120)
    pieces = np.zeros(shape, np.int64)
    pieces[28:33, 40:100] = 1
    empty = np.zeros(shape, bool)
    assert np.array_equal(aligned_pieces(pieces, empty, elongation=5, length=10), empty)
    small = np.zeros(shape, np.uint8)             # (a narrow dtype: label 255 + 1 must not wrap to 0)
    small[28:33, 40:100] = 255
    hidden = _bar(shape, 27, 34, 10, 40)
    assert aligned_pieces(small, hidden, elongation=5, length=10, max_region=0.5)[30, 70]
    for bad in (pieces[:, :-1], pieces.astype(float), pieces - 2):
        with pytest.raises(InvalidParameterError, match="label map"):
            aligned_pieces(bad, hidden, elongation=5, length=10)
    for kw in ({"gap": -1}, {"gap": 1.5}, {"gap": True}, {"reach": -2}, {"reach": 0}):
        with pytest.raises(InvalidParameterError, match=f"{next(iter(kw))} must be an integer"):
            aligned_pieces(pieces, hidden, elongation=5, length=10, **kw)
    for bad in (-1.0, float("nan"), float("inf"), True, "5"):
        with pytest.raises(InvalidParameterError, match="run must be"):
            aligned_pieces(pieces, hidden, elongation=5, length=10, run=bad)
    for kw in ({"elongation": 0.5}, {"length": -1}, {"max_region": 0}, {"ragged": float("nan")}, {"end": -0.1},
               {"angle": 91}, {"offset": True}):
        with pytest.raises(InvalidParameterError, match=f"^{next(iter(kw))} must be"):
            aligned_pieces(pieces, hidden, **{"elongation": 5, "length": 10, **kw})


def _grey_blade(seed_of: Any, outline_from: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A blade of the ground's own grey (rows 56-64, columns 60-149 of a 120 x 200 image), told from it by a faint
    outline from column ``outline_from`` on, a dark seed ``seed_of(yy, xx)``, all grained: the image, the blade and
    the seed."""
    rng = np.random.default_rng(0)
    h, w = 120, 200
    yy, xx = np.mgrid[:h, :w]
    img = np.full((h, w, 3), 128.0)
    blade = (np.abs(yy - 60) <= 4) & (xx >= 60) & (xx < 150)
    img[(np.abs(yy - 60) <= 5) & (xx >= outline_from) & (xx < 151) & ~blade] = (108, 108, 108)  # the outline
    seed = seed_of(yy, xx)
    img[seed] = (90, 40, 20)
    img = np.clip(img + rng.normal(0, 6, (h, w, 1)), 0, 255).astype(np.uint8)
    return img, blade, seed


@pytest.mark.parametrize("gap", [0.0, 0.02, 0.05])
def test_aligned_gap_takes_a_blade_beyond_a_collar_of_ground_between_it_and_its_hidden_handle(gap):
    """A blade of the ground's grey beyond 6 pixels of ground (a collar, a guard the growth did not take) from its
    hidden handle, on a 200-pixel copy: ``aligned`` alone does not reach it; with ``aligned_gap`` 0.05 (10 pixels)
    it is taken, and at 0.02 (4 pixels) not."""
    img, blade, seed = _grey_blade(lambda yy, xx: (np.abs(yy - 60) <= 5) & (xx >= 30) & (xx < 53),  # 6 px short
                                   outline_from=59)                                                 # (all round)
    kw = {"grow": 5.0, "smooth": 0.0, "fine_solidity": 0.9, "fine_thin": 10.0, "fine_contrast": 5.0, "size": 200}
    out = next(figure_growths(img, seed, [(0.35, 2, 200.0)], aligned=5.0, aligned_gap=gap, **kw))
    if gap == 0.05:
        assert out[blade].mean() > 0.9
        assert (out & ~seed & ~dilate(blade, 2)).sum() <= 0.02 * blade.sum()  # (the blade and its outline only)
    else:
        assert out[blade].mean() < 0.1


@pytest.mark.parametrize("seed_shape", ["handle", "crosswise", "round"])
def test_aligned_takes_a_blade_of_its_grounds_own_colour_beyond_its_hidden_handle(seed_shape):
    """A blade of the ground's own grey, told from it by a faint outline only: no contrast test takes it; with
    ``aligned`` the finer cut's blade piece is taken beyond a hidden handle along its axis, not beyond a hidden bar
    across it or a hidden disc."""
    img, blade, seed = _grey_blade(lambda yy, xx: {"handle": (np.abs(yy - 60) <= 5) & (xx >= 30) & (xx < 60),
                                                   "crosswise": (np.abs(yy - 60) <= 25) & (xx >= 50) & (xx < 60),
                                                   "round": (yy - 60) ** 2 + (xx - 47) ** 2 <= 13**2}[seed_shape])
    kw = {"grow": 5.0, "smooth": 0.0, "fine_solidity": 0.9, "fine_thin": 10.0, "fine_contrast": 5.0}
    tries = [(0.35, 2, 200.0)]
    without = next(figure_growths(img, seed, tries, **kw))
    assert without[blade].mean() < 0.1
    out = next(figure_growths(img, seed, tries, aligned=5.0, **kw))
    if seed_shape == "handle":
        assert out[blade].mean() > 0.9
        assert (out & ~seed & ~dilate(blade, 2)).sum() <= 0.02 * blade.sum()  # (the blade and its outline)
        # only a try with the finer cut looks for such pieces
        assert np.array_equal(next(figure_growths(img, seed, [(0.35, 2, 0.0)], aligned=5.0, **kw)),
                              next(figure_growths(img, seed, [(0.35, 2, 0.0)], **kw)))
    else:
        assert np.array_equal(out, without)


def test_aligned_run_takes_a_blade_beyond_a_handle_hidden_with_its_crosswise_guard():
    """The blade of the test above, its handle hidden together with a crosswise guard twice as large: the hidden
    component's axis runs across the blade, so ``aligned`` alone refuses it; with ``aligned_run`` the blade's axis,
    carried on, runs 40 pixels through the guard and the handle (about 6 widths of its piece, which holds the
    outline: 6.9 pixels as measured), and it is taken at 5, not at 7."""
    img, blade, seed = _grey_blade(lambda yy, xx: ((np.abs(yy - 60) <= 5) & (xx >= 20) & (xx < 50))
                                   | ((np.abs(yy - 60) <= 25) & (xx >= 50) & (xx < 60)))
    kw = {"grow": 5.0, "smooth": 0.0, "fine_solidity": 0.9, "fine_thin": 10.0, "fine_contrast": 5.0, "aligned": 5.0}
    tries = [(0.35, 2, 200.0)]
    assert next(figure_growths(img, seed, tries, **kw))[blade].mean() < 0.1
    out = next(figure_growths(img, seed, tries, aligned_run=5.0, **kw))
    assert out[blade].mean() > 0.9
    assert (out & ~seed & ~dilate(blade, 2)).sum() <= 0.02 * blade.sum()  # (the blade and its outline only)
    assert next(figure_growths(img, seed, tries, aligned_run=7.0, **kw))[blade].mean() < 0.1  # (not 7 widths)
