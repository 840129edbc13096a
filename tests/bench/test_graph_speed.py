"""bench/graph_speed.py: the comparison counts differing label maps and reports both timings."""

from __future__ import annotations

import numpy as np

from tests.bench.conftest import bench_script


def test_compare_finds_the_same_labels_and_times_both() -> None:
    mod = bench_script("graph_speed")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 56, 3)).astype(np.uint8) for _ in range(2)]
    images[1][10:30, 10:40] = (250, 20, 20)
    rows = mod.compare(images, repeats=2)
    assert [r["scale"] for r in rows] == [400.0, 200.0]
    assert all(r["differ"] == 0 and r["differ_plain"] == 0 and r["images"] == 2 for r in rows)
    assert all(float(r["skimage_ms"]) > 0 and float(r["veil_ms"]) > 0 for r in rows)
    text = mod.table(rows)
    assert text.count("\n") == 3 and "| scale 400 | 2 |" in text


def test_main_fails_when_a_label_map_differs(monkeypatch) -> None:
    mod = bench_script("graph_speed")
    monkeypatch.setattr(mod, "load", lambda split, n, size: [np.zeros((8, 8, 3), np.uint8)])
    assert mod.main(["--n", "1", "--repeats", "1"]) == 0
    monkeypatch.setattr(mod, "felzenszwalb_labels", lambda img, **kw: np.ones(img.shape[:2], np.int64))
    assert mod.main(["--n", "1", "--repeats", "1"]) == 1


def test_the_reference_sort_is_stable_only_while_open() -> None:
    mod = bench_script("graph_speed")
    plain = np.argsort
    w = np.array([0.5, 0.1, 0.5, 0.1] * 20)
    with mod.stable_numpy_sort():
        np.testing.assert_array_equal(np.argsort(w), plain(w, kind="stable"))
    assert np.argsort is plain
