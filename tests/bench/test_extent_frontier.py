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
