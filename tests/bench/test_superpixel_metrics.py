"""Superpixel metrics against hand-computed answers (veil.bench.metrics; bench/superpixels.py uses them)."""

from __future__ import annotations

import numpy as np
import pytest

from veil.bench.metrics import (
    achievable_segmentation_accuracy,
    boundary_recall,
    label_boundaries,
    superpixel_metrics,
    undersegmentation_error,
)
from veil.errors import InvalidParameterError

# ground truth: left half 0, right half 1 (8×8)
GT = np.repeat([[0] * 4 + [1] * 4], 8, axis=0)


def test_perfect_superpixels():
    assert boundary_recall(GT, GT) == 1.0
    assert undersegmentation_error(GT, GT) == 0.0
    assert achievable_segmentation_accuracy(GT, GT) == 1.0


def test_relabelled_and_oversegmented_superpixels_are_still_perfect():
    quads = GT * 2 + (np.arange(8)[:, None] >= 4)  # each half cut in two: 4 superpixels
    assert undersegmentation_error(quads + 7, GT) == 0.0
    assert achievable_segmentation_accuracy(quads, GT) == 1.0
    assert boundary_recall(quads, GT) == 1.0


def test_one_superpixel_over_two_segments():
    one = np.zeros_like(GT)
    assert boundary_recall(one, GT) == 0.0
    # the superpixel leaks 32 pixels out of each half: min(32, 32) + min(32, 32) over 64
    assert undersegmentation_error(one, GT) == 1.0
    assert achievable_segmentation_accuracy(one, GT) == 0.5


def test_shifted_boundary_counts_within_tolerance_only():
    shifted = np.repeat([[0] * 5 + [1] * 3], 8, axis=0)  # boundary one column right
    # GT boundary pixels sit in column 3, the superpixel boundary in column 4: 1 px apart
    assert boundary_recall(shifted, GT, tolerance=1.0) == 1.0
    assert boundary_recall(shifted, GT, tolerance=0.5) == 0.0
    # superpixel 0 holds 32 pixels of GT 0 and 8 of GT 1: min(32, 8) + min(8, 32) = 16 leak
    assert undersegmentation_error(shifted, GT) == pytest.approx(16 / 64)
    assert achievable_segmentation_accuracy(shifted, GT) == pytest.approx((32 + 24) / 64)


def test_no_ground_truth_boundary_is_full_recall():
    assert boundary_recall(GT, np.zeros_like(GT)) == 1.0


def test_label_boundaries_marks_right_and_lower_neighbours():
    b = label_boundaries(np.array([[0, 1], [0, 0]]))
    assert b.tolist() == [[True, True], [False, False]]


def test_averaged_over_several_ground_truths():
    one = np.zeros_like(GT)
    br, ue, asa = superpixel_metrics(GT, [GT, one])
    assert (br, ue, asa) == (1.0, 0.0, 1.0)
    br, ue, asa = superpixel_metrics(one, [GT, one])
    assert (br, ue, asa) == (0.5, 0.5, 0.75)


def test_errors_show_what_was_received():
    with pytest.raises(InvalidParameterError, match=r"shape \(8, 7\).*shape \(8, 8\)"):
        boundary_recall(GT[:, :7], GT)
    with pytest.raises(InvalidParameterError, match="dtype float64"):
        undersegmentation_error(GT.astype(float), GT)
    with pytest.raises(InvalidParameterError, match="at least one"):
        superpixel_metrics(GT, [])
