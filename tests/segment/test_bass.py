"""BASS superpixels: connectivity, determinism, adaptivity, guidance (synthetic images)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from veil.errors import InvalidParameterError
from veil.segment import SEGMENTERS, segment
from veil.segment.bass import _SIMPLE, _connected


def assert_valid(labels: np.ndarray, shape: tuple[int, int]) -> None:
    """int32, H×W, labels 0..n-1 all used, every label one 4-connected region."""
    assert labels.dtype == np.int32
    assert labels.shape == shape
    n = int(labels.max()) + 1
    assert labels.min() == 0
    assert np.array_equal(np.unique(labels), np.arange(n))
    four = ndimage.generate_binary_structure(2, 1)
    objects = ndimage.find_objects(labels + 1)
    for lab, sl in enumerate(objects):
        _, n_parts = ndimage.label(labels[sl] == lab, structure=four)
        assert n_parts == 1, f"label {lab} has {n_parts} 4-connected parts"


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _images() -> dict[str, np.ndarray]:
    rng = _rng(1)
    yy, xx = np.mgrid[:48, :64]
    stripes = np.where((xx // 2) % 2 == 0, 255, 0).astype(np.uint8)
    checker = np.where(((xx + yy) % 2) == 0, 255, 0).astype(np.uint8)
    checker4 = np.where(((xx // 4 + yy // 4) % 2) == 0, 230, 20).astype(np.uint8)
    gray = (rng.random((48, 64)) * 40 + 100).astype(np.uint8)
    return {
        "random": (rng.random((48, 64, 3)) * 255).astype(np.uint8),
        "stripes": np.repeat(stripes[:, :, None], 3, axis=2),
        "hstripes": np.repeat(stripes.T[:48, :48, None], 3, axis=2),
        "checkerboard": np.repeat(checker[:, :, None], 3, axis=2),
        "checker4": np.repeat(checker4[:, :, None], 3, axis=2),
        "single_colour": np.full((48, 64, 3), (12, 200, 99), np.uint8),
        "grayscale": np.repeat(gray[:, :, None], 3, axis=2),
        "row": (rng.random((1, 57, 3)) * 255).astype(np.uint8),
        "column": (rng.random((61, 1, 3)) * 255).astype(np.uint8),
        "pixel": np.array([[[1, 2, 3]]], np.uint8),
        "two_by_two": (rng.random((2, 2, 3)) * 255).astype(np.uint8),
    }


IMAGES = _images()


def test_registered() -> None:
    assert "bass" in SEGMENTERS
    assert "bass_guided" in SEGMENTERS


@pytest.mark.parametrize("name", sorted(IMAGES))
@pytest.mark.parametrize("inference", ["em", "gibbs"])
def test_connected_labels(name: str, inference: str) -> None:
    img = IMAGES[name]
    labels = segment(img, "bass", n_segments=12, inference=inference, rng=3)
    assert_valid(labels, img.shape[:2])


@pytest.mark.parametrize("n_segments", [1, 5, 40, 400])
def test_connected_many_counts(n_segments: int) -> None:
    img = IMAGES["random"]
    labels = segment(img, "bass", n_segments=n_segments, split_merge_every=2, alpha=50.0)
    assert_valid(labels, img.shape[:2])


def test_guided_connected_and_sp_size() -> None:
    img = IMAGES["checker4"]
    attr = np.zeros(img.shape[:2], np.float32)
    attr[10:30, 5:40] = 1.0
    labels = segment(img, "bass_guided", attribution=attr, sp_size=6)
    assert_valid(labels, img.shape[:2])


@pytest.mark.parametrize("inference", ["em", "gibbs"])
def test_deterministic_for_a_seed(inference: str) -> None:
    img = IMAGES["random"]
    a = segment(img, "bass", n_segments=20, inference=inference, rng=7)
    b = segment(img, "bass", n_segments=20, inference=inference, rng=np.random.default_rng(7))
    c = segment(img, "bass", n_segments=20, inference=inference, rng=7)
    assert np.array_equal(a, c)
    if inference == "em":  # hard EM does not use randomness at all
        assert np.array_equal(a, b)


def test_gibbs_seeds_differ() -> None:
    img = _noisy_quadrants()
    a = segment(img, "bass", n_segments=30, inference="gibbs", rng=1)
    b = segment(img, "bass", n_segments=30, inference="gibbs", rng=2)
    assert not np.array_equal(a, b)


def test_input_unchanged() -> None:
    img = IMAGES["random"].copy()
    attr = _rng(5).random(img.shape[:2]).astype(np.float32)
    img0, attr0 = img.copy(), attr.copy()
    segment(img, "bass", n_segments=10)
    segment(img, "bass_guided", attribution=attr, n_segments=10)
    assert np.array_equal(img, img0)
    assert np.array_equal(attr, attr0)


def _noisy_quadrants() -> np.ndarray:
    rng = _rng(2)
    img = np.zeros((64, 64, 3), np.float64)
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)]
    for i, col in enumerate(colours):
        y, x = divmod(i, 2)
        img[32 * y:32 * (y + 1), 32 * x:32 * (x + 1)] = col
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_boundaries_follow_quadrants() -> None:
    img = _noisy_quadrants()
    labels = segment(img, "bass", n_segments=16)
    truth = (np.arange(64)[:, None] // 32) * 2 + np.arange(64)[None, :] // 32
    # every superpixel lies (almost) inside one quadrant
    purity = 0
    for lab in range(labels.max() + 1):
        purity += np.bincount(truth[labels == lab], minlength=4).max()
    assert purity / truth.size > 0.97


def test_adaptive_count() -> None:
    """A flat half gets fewer superpixels than a textured half."""
    rng = _rng(3)
    img = np.full((64, 128, 3), 128, np.uint8)
    blocks = rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)
    img[:, 64:] = np.kron(blocks, np.ones((8, 8, 1), np.uint8))
    labels = segment(img, "bass", n_segments=64)
    assert_valid(labels, img.shape[:2])
    left = len(np.unique(labels[:, :60]))
    right = len(np.unique(labels[:, 68:]))
    assert left * 2 < right


def test_label_range_int32() -> None:
    labels = segment(IMAGES["random"], "bass", n_segments=30)
    assert labels.dtype == np.int32
    assert labels.min() == 0 and labels.max() + 1 == len(np.unique(labels))


def _blob_outline_score(labels: np.ndarray, mask: np.ndarray) -> float:
    """Share of pixels right when each superpixel is called blob by majority (best-case cover)."""
    right = 0
    for lab in range(labels.max() + 1):
        inside = mask[labels == lab]
        right += max(inside.sum(), inside.size - inside.sum())
    return right / mask.size


def test_guided_follows_attribution_blob() -> None:
    rng = _rng(4)
    h, w = 72, 72
    yy, xx = np.mgrid[:h, :w]
    blob = (yy - 34) ** 2 / 18.0**2 + (xx - 40) ** 2 / 13.0**2 <= 1.0
    # a faint object in texture: colour alone hardly shows the outline
    img = rng.normal(128, 18, (h, w, 3))
    img[blob] += 8
    img = np.clip(img, 0, 255).astype(np.uint8)
    attr = ndimage.gaussian_filter(blob.astype(np.float32), 1.0)
    attr = (attr / attr.max()).astype(np.float32)
    plain = segment(img, "bass", attribution=attr, n_segments=20)
    plain_no_attr = segment(img, "bass", n_segments=20)
    guided = segment(img, "bass_guided", attribution=attr, n_segments=20)
    assert np.array_equal(plain, plain_no_attr)  # plain bass ignores attribution
    assert not np.array_equal(plain, guided)
    assert_valid(guided, (h, w))
    assert _blob_outline_score(guided, blob) > _blob_outline_score(plain, blob) + 0.03
    assert _blob_outline_score(guided, blob) > 0.95


def test_simple_point_table() -> None:
    # isolated pixel, full ring, and an end of a line are removable; a bridge is not
    assert _SIMPLE[0] and _SIMPLE[255] and _SIMPLE[1 << 0]
    assert not _SIMPLE[(1 << 0) | (1 << 4)]  # N and S only: removing splits the label
    assert _SIMPLE[(1 << 0) | (1 << 1) | (1 << 2)]  # N, NE, E: still joined via NE
    assert not _SIMPLE[(1 << 0) | (1 << 2)]  # N and E without NE


def test_connected_helper_splits_and_merges() -> None:
    labels = np.zeros((5, 6), np.int32)
    labels[:, 3:] = 1
    labels[0, 0] = 1  # a one-pixel fragment of label 1 far from its body
    out = _connected(labels, 1)
    assert_valid(out, labels.shape)
    assert out.max() + 1 == 3
    out = _connected(labels, 2)  # the fragment is merged into its neighbour
    assert_valid(out, labels.shape)
    assert out.max() + 1 == 2


@pytest.mark.parametrize(
    "options",
    [
        {"inference": "vb"},
        {"n_segments": 0},
        {"n_segments": 2.5},
        {"sp_size": -1},
        {"alpha": 0},
        {"beta": -1},
        {"color_std": 0},
        {"iterations": -1},
        {"split_merge_every": -2},
    ],
)
def test_bad_options(options: dict) -> None:
    with pytest.raises(InvalidParameterError):
        segment(IMAGES["random"], "bass", **options)


def test_guided_needs_attribution() -> None:
    with pytest.raises(InvalidParameterError, match="attribution"):
        segment(IMAGES["random"], "bass_guided")


def test_direct_call_rejects_bad_image() -> None:
    from veil.segment.bass import bass

    with pytest.raises(InvalidParameterError, match="uint8"):
        bass(np.zeros((4, 4), np.float32))


def test_guided_is_finer_where_attribution_is_high() -> None:
    rng = _rng(6)
    blocks = rng.integers(0, 256, (12, 12, 3)).astype(np.uint8)
    img = np.kron(blocks, np.ones((8, 8, 1), np.uint8))  # 96×96 of 8-px colour blocks
    img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    attr = np.zeros(img.shape[:2], np.float32)
    attr[:, :48] = 1.0
    plain = segment(img, "bass", n_segments=16)
    guided = segment(img, "bass_guided", attribution=attr, n_segments=16)
    assert_valid(guided, img.shape[:2])
    assert len(np.unique(guided[:, :40])) > len(np.unique(plain[:, :40]))


def _estep_scanning_every_pixel(feat, labels, mu_c, inv_var, mu_s, icov, logdet, logw, beta):
    """The hard-EM E-step as it was written before it skipped interior pixels: every pixel of each of the
    four phases is tested for a 4-neighbour of another label (a plain-Python reference)."""
    from veil.segment import bass as b

    h, w, _ = feat.shape
    moved = 0
    for phase in range(4):
        for y in range(phase // 2, h, 2):
            for x in range(phase % 2, w, 2):
                cur = labels[y, x]
                cand = []
                for qy, qx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                    if 0 <= qy < h and 0 <= qx < w and labels[qy, qx] != cur and labels[qy, qx] not in cand:
                        cand.append(int(labels[qy, qx]))
                if not cand:
                    continue
                mask = sum(1 << i for i in range(8) if 0 <= y + b._RING_DY[i] < h and 0 <= x + b._RING_DX[i] < w
                           and labels[y + b._RING_DY[i], x + b._RING_DX[i]] == cur)
                if not _SIMPLE[mask]:
                    continue
                cand.append(int(cur))
                scores = []
                for lab in cand:
                    ndiff = sum(1 for i in range(8) if 0 <= y + b._RING_DY[i] < h and 0 <= x + b._RING_DX[i] < w
                                and labels[y + b._RING_DY[i], x + b._RING_DX[i]] != lab)
                    scores.append(b._score(feat, y, x, lab, mu_c, inv_var, mu_s, icov, logdet, logw, beta * ndiff))
                bi = int(np.argmax(scores))  # (the first best, as the kernel's strict >)
                if scores[bi] <= scores[-1]:
                    bi = len(cand) - 1  # ties keep the current label
                if cand[bi] != cur:
                    labels[y, x] = cand[bi]
                    moved += 1
    return moved


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_estep_skipping_interior_pixels_moves_the_same_pixels_as_a_full_scan(seed: int) -> None:
    # the kernel skips pixels with no 4-neighbour of another label, and marks the neighbours of each pixel
    # that moves; that must move exactly the pixels a scan of every pixel would, phase after phase
    from veil.segment import bass as b

    rng = _rng(seed)
    img = (rng.random((30, 40, 3)) * 255).astype(np.uint8)
    img[5:20, 8:30] = (230, 40, 40)
    feat = np.ascontiguousarray(b._lab(img))
    labels = b._connected(b._hex_grid(30, 40, 30.0), 1)
    k = int(labels.max()) + 1
    inv_var = np.full(3, 1.0 / 0.003)
    pc = np.full(k, 30.0)
    total = 0
    for _ in range(4):
        cnt, s_sp, ss_sp, s_c, _ = b._stats(feat, labels, k)
        mu_c, mu_s, icov, logdet, logw = b._mstep(cnt, s_sp, ss_sp, s_c, pc, 1.0 / inv_var, False, 1.0)
        ours, theirs = labels.copy(), labels.copy()
        moved = b._estep(feat, ours, mu_c, inv_var, mu_s, icov, logdet, logw, 0.5, _SIMPLE, False)
        ref_moved = _estep_scanning_every_pixel(feat, theirs, mu_c, inv_var, mu_s, icov, logdet, logw, 0.5)
        np.testing.assert_array_equal(ours, theirs)
        assert moved == ref_moved
        total += moved
        labels = ours
    assert total > 0  # (pixels did move: the comparison is not of two untouched maps)


def test_statistics_without_colour_squares_are_the_same_sums() -> None:
    # the E-M loop asks for the statistics without the colour squares (only split and merge read them):
    # the other sums must be the very same numbers, and they must be the per-label sums
    from veil.segment import bass as b

    rng = _rng(3)
    img = (rng.random((37, 51, 3)) * 255).astype(np.uint8)
    feat = np.ascontiguousarray(b._lab(img))
    labels = b._connected(b._hex_grid(37, 51, 40.0), 1)
    k = int(labels.max()) + 1
    full = b._stats(feat, labels, k, True)
    lean = b._stats(feat, labels, k, False)
    for a, c in zip(full[:4], lean[:4], strict=True):
        np.testing.assert_array_equal(a, c)
    assert lean[4].shape == (k, 0) and full[4].shape == (k, 3)
    np.testing.assert_allclose(full[4], np.stack([np.bincount(labels.ravel(), weights=(feat[..., ch] ** 2).ravel(),
                                                              minlength=k) for ch in range(3)], axis=1))
    np.testing.assert_allclose(lean[3], np.stack([np.bincount(labels.ravel(), weights=feat[..., ch].ravel(),
                                                              minlength=k) for ch in range(3)], axis=1))
    np.testing.assert_array_equal(lean[0], np.bincount(labels.ravel(), minlength=k))


def test_rgb_to_lab_matches_scikit_image_on_every_colour():
    # the fast conversion the colour merge and the figure search use gives scikit-image's numbers, for all
    # 256³ sRGB colours (as one 4096 × 4096 image)
    from skimage.color import rgb2lab

    from veil.segment.bass import rgb_to_lab

    v = np.arange(256, dtype=np.uint8)
    every = np.stack(np.meshgrid(v, v, v, indexing="ij"), -1).reshape(4096, 4096, 3)
    assert np.abs(rgb_to_lab(every) - rgb2lab(every)).max() < 1e-9


def test_rgb_to_lab_refuses_what_is_not_rgb_uint8():
    from veil.segment.bass import rgb_to_lab

    for bad in (np.zeros((4, 4, 3)), np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8)):
        with pytest.raises(InvalidParameterError, match="uint8"):
            rgb_to_lab(bad)


def test_lab_of_the_image_just_converted_is_remembered_and_equal():
    # the colour merge converts the image BASS has just segmented: the second conversion is the first's array,
    # and any other pixels (one channel of one pixel apart, another size) get their own conversion
    from veil.segment import bass as b

    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    other = img.copy()
    other[7, 9, 2] ^= 1
    fresh = b._rgb_to_lab(img, b._SRGB_LINEAR)
    first = b._lab(img)
    assert b._lab(img.copy()) is first  # (the same pixels in another array)
    np.testing.assert_array_equal(first, fresh)
    np.testing.assert_array_equal(b._lab(other), b._rgb_to_lab(other, b._SRGB_LINEAR))
    np.testing.assert_array_equal(b._lab(img[:20]), fresh[:20])
    np.testing.assert_array_equal(b._lab(img), fresh)
    img[0, 0] = 255 - img[0, 0]  # (the caller's array changed after the conversion: converted again)
    np.testing.assert_array_equal(b._lab(img), b._rgb_to_lab(img, b._SRGB_LINEAR))
    scaled = b.rgb_to_lab(img)
    scaled[:] = 0  # (what rgb_to_lab hands out is the caller's to write)
    np.testing.assert_array_equal(b.rgb_to_lab(img), b._rgb_to_lab(img, b._SRGB_LINEAR) * 100.0)


def test_lab_memo_is_per_thread_and_skips_large_images(monkeypatch):
    import threading

    from veil.segment import bass as b

    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)
    mine = b._lab(img)
    seen = {}
    t = threading.Thread(target=lambda: seen.update(lab=b._lab(img), last=b._LAST.image is not None))
    t.start()
    t.join()
    assert seen["lab"] is not mine and seen["last"]  # (the other thread converted it for itself)
    np.testing.assert_array_equal(seen["lab"], mine)
    monkeypatch.setattr(b, "LAB_MEMO_PIXELS", 100)
    big = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    first = b._lab(big)
    assert b._lab(big) is not first  # (over the bound: never kept)
    assert b._LAST.image is not None and b._LAST.image.shape == img.shape  # (the last small one stays)
