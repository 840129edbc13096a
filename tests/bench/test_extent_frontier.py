"""``bench/extent.py frontier``: recall against area for the rows of several ``run --json`` files."""

from __future__ import annotations

import argparse
import json

import pytest


@pytest.fixture
def bench(extent_bench):
    return extent_bench


def _row(model: str, extent: str, recall: float, ratio: float, segmentation: str = "bass") -> dict:
    return {"model": model, "extent": extent, "segmentation": segmentation, "recall": recall, "recall_50": recall,
            "ratio_mean": ratio,
            "ratio_median": ratio / 2, "seconds": 1.0, "per_image": []}


def test_each_variant_is_labelled_by_its_options_and_plotted(bench, tmp_path, capsys):
    old = {"command": "python bench/extent.py run --archs resnet18 --extents minimal object --json a.json",
           "rows": [_row("resnet18", "minimal", 0.3, 2.5), _row("resnet18", "object", 0.85, 3.0)]}
    new = {"command": 'python bench/extent.py run --extent-options {"complete_rounds": 1} --json b.json',
           "rows": [_row("resnet18", "minimal", 0.3, 2.5), _row("resnet18", "object", 0.8, 2.4),
                    _row("x/model.json", "object", 0.7, 1.9), _row("resnet18", "object", 0.6, 1.5, "slic")]}
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(old))
    b.write_text(json.dumps(new))
    out = tmp_path / "f.png"
    bench.frontier_cmd(argparse.Namespace(runs=[a, b], labels=None, title=None, out=out))
    table = capsys.readouterr().out
    assert out.stat().st_size > 10_000
    assert "| resnet18 | object (default) | 0.850 |" in table
    assert '| resnet18 | object {"complete_rounds": 1} | 0.800 |' in table
    assert table.count("| resnet18 | minimal |") == 1  # the same minimal row of both files, once
    assert "| x | object" in table  # a card path is named by its folder
    assert '| resnet18 | object {"complete_rounds": 1} [slic] | 0.600 |' in table  # another segmentation apart


def test_a_file_without_rows_is_a_clear_error(bench, tmp_path):
    empty = tmp_path / "e.json"
    empty.write_text(json.dumps({"command": "python bench/extent.py run", "rows": []}))
    with pytest.raises(SystemExit, match="no rows"):
        bench.frontier_cmd(argparse.Namespace(runs=[empty], labels=None, title=None, out=tmp_path / "f.png"))


def test_time_adds_a_panel_of_recall_against_seconds(bench, tmp_path, capsys):
    from PIL import Image

    run = {"command": "python bench/extent.py run --archs resnet18 --extents minimal object --json a.json",
           "rows": [_row("resnet18", "minimal", 0.3, 2.5), _row("resnet18", "object", 0.85, 3.0)]}
    a = tmp_path / "a.json"
    a.write_text(json.dumps(run))
    plain, timed = tmp_path / "plain.png", tmp_path / "timed.png"
    bench.frontier_cmd(argparse.Namespace(runs=[a], labels=None, title=None, out=plain))
    bench.frontier_cmd(argparse.Namespace(runs=[a], labels=None, title=None, out=timed, time=True))
    capsys.readouterr()
    (pw, ph), (tw, th) = Image.open(plain).size, Image.open(timed).size
    assert ph == th and tw > 1.25 * pw  # one more panel, as wide as the others


def test_recall_survival_is_the_share_of_images_at_or_over_each_recall(bench):
    import numpy as np

    rec = [0.0, 0.2, 0.5, 0.5, 0.95, 1.0]
    at = np.array([0.0, 0.1, 0.5, 0.51, 0.9, 1.0, 1.01])
    assert bench.recall_survival(rec, at).tolist() == pytest.approx([1.0, 5 / 6, 4 / 6, 2 / 6, 2 / 6, 1 / 6, 0.0])
    # the share at 0.5 is the table's "recall ≥ 0.5" column
    assert bench.recall_survival(rec, np.array([0.5]))[0] == pytest.approx(np.mean(np.array(rec) >= 0.5))
    assert np.isnan(bench.recall_survival([], at)).all()  # no images: no share, not a made-up one


def test_minimal_and_the_default_of_one_segmentation_share_a_colour(bench):
    key = bench._pair_key
    assert key("minimal / slic") == key("object / slic") == "slic"  # (`run --plot`'s names, model stripped)
    assert key("minimal [slic]") == key("object (default) [slic]") != key("object (default)")
    assert key("minimal") == key("object (default)") == ""
    assert key('object {"complete_rounds": 1}') == 'object {"complete_rounds": 1}'  # (another variant: its own)


def test_recall_plot_draws_one_panel_per_model_from_the_rows_per_image(bench, tmp_path, capsys):
    from PIL import Image

    def row(model: str, extent: str, recalls: list[float]) -> dict:
        r = _row(model, extent, float(sum(recalls) / len(recalls)), 2.0)
        r["per_image"] = [{"found": True, "recall": x} for x in recalls] + [{"found": False}]
        return r

    one = {"command": "python bench/extent.py run --archs resnet18 --extents minimal object --json a.json",
           "rows": [row("resnet18", "minimal", [0.1, 0.4]), row("resnet18", "object", [0.9, 1.0])]}
    two = {"command": "python bench/extent.py run --archs mobilenet_v3_small --extents object --json b.json",
           "rows": [row("mobilenet_v3_small", "object", [0.5, 0.99])]}
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(one))
    b.write_text(json.dumps(two))
    single, double = tmp_path / "one.png", tmp_path / "two.png"
    bench.frontier_cmd(argparse.Namespace(runs=[a], labels=None, title=None, out=tmp_path / "f1.png",
                                          recall_plot=single))
    bench.frontier_cmd(argparse.Namespace(runs=[a, b], labels=None, title=None, out=tmp_path / "f2.png",
                                          recall_plot=double))
    assert f"wrote {double}" in capsys.readouterr().out
    (sw, sh), (dw, dh) = Image.open(single).size, Image.open(double).size
    assert sh == dh and dw > 1.8 * sw  # a panel per model, side by side
