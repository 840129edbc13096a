"""``bench/extent.py run --by-step``: the hidden area per step of the extent, on and off the object."""

from __future__ import annotations

import argparse
import json
from types import SimpleNamespace

import numpy as np
import pytest


@pytest.fixture
def bench(extent_bench):
    return extent_bench


def test_step_shares_split_the_delivered_mask_by_reason_on_and_off_the_object(bench):
    gt = np.zeros((8, 8), bool)
    gt[2:6, 2:6] = True  # 16 pixels
    seg = np.zeros((4, 4), np.int32)  # at half size: the pipeline's working copy
    seg[1:3, 1:3] = 1  # the object itself (counterfactual)
    seg[0, :] = 2  # a row above it (closure): off the object, 16 pixels at full size
    seg[3, 3] = 3  # a region that is not hidden
    res = SimpleNamespace(segments=seg, regions=[SimpleNamespace(id=1, reason="counterfactual"),
                                                 SimpleNamespace(id=2, reason="closure")],
                          mask=np.isin(np.kron(seg, np.ones((2, 2), np.int32)), [1, 2]))
    shares = bench.step_shares(res, gt)
    assert shares == {"closure": [1.0, 0.0], "counterfactual": [1.0, 1.0]}
    rows = bench.step_rows("m", "object", [{"found": True, "steps": shares},
                                          {"found": True, "steps": {"counterfactual": [2.0, 0.5]}},
                                          {"found": False}])
    assert rows == ["| m | object | counterfactual | 2 | 1.50 | 0.750 | 0.75 |",
                    "| m | object | closure | 1 | 0.50 | 0.000 | 0.50 |"]


def test_steps_reads_run_files_prints_the_table_and_draws_the_bars(bench, tmp_path, capsys):
    per = [{"found": True, "steps": {"counterfactual": [0.5, 0.4], "object": [1.5, 0.5]}},
           {"found": True, "steps": {"counterfactual": [0.3, 0.3], "closure": [0.8, 0.0]}},
           {"found": False}]
    run = {"command": "python bench/extent.py run --archs resnet18 --json a.json",
           "rows": [{"model": "resnet18", "extent": "object", "segmentation": "bass", "per_image": per},
                    {"model": "resnet18", "extent": "minimal", "segmentation": "bass",
                     "per_image": [{"found": True, "recall": 1.0}]}]}  # (a row from before: no steps, skipped)
    path = tmp_path / "a.json"
    path.write_text(json.dumps(run))
    out = tmp_path / "steps.png"
    bench.steps_cmd(argparse.Namespace(runs=[path], out=out))
    table = capsys.readouterr().out
    assert "| resnet18 | object (default) | counterfactual | 2 | 0.40 | 0.350 | 0.05 |" in table
    assert "| resnet18 | object (default) | closure | 1 | 0.40 | 0.000 | 0.40 |" in table
    assert "| resnet18 | object (default) | object | 1 | 0.75 | 0.250 | 0.50 |" in table
    assert "minimal" not in table
    assert out.stat().st_size > 10_000
    empty = tmp_path / "b.json"
    empty.write_text(json.dumps({"command": "x", "rows": run["rows"][1:]}))
    with pytest.raises(SystemExit, match="no rows with per-step shares"):
        bench.steps_cmd(argparse.Namespace(runs=[empty], out=out))


def test_a_reason_the_step_list_does_not_know_still_gets_a_row_last(bench):
    rows = bench.step_rows("m", "object", [{"found": True, "steps": {"newstep": [0.2, 0.1], "tile": [0.4, 0.0]}}])
    assert rows == ["| m | object | tile | 1 | 0.40 | 0.000 | 0.40 |", "| m | object | newstep | 1 | 0.20 | 0.100 | 0.10 |"]


def test_distractor_rows_give_the_share_hidden_and_the_area_on_them(bench):
    per = [{"found": True, "steps": {}, "recall": 1.0, "ratio": 2.0, "distractors": 0.8, "distractor_ratio": 0.6},
           {"found": True, "steps": {}, "recall": 0.5, "ratio": 1.5, "distractors": 0.0, "distractor_ratio": 0.0},
           {"found": True, "steps": {}, "recall": 1.0, "ratio": 1.2},  # (no distractor in this image)
           {"found": False}]
    # 2 images with one; hidden 0.4 on average, half of them at least half; on them 0.6 / 3; off the object
    # (1.0 + 1.0 + 0.2) / 3
    assert bench.distractor_rows("m", "object", per) == ["| m | object | 2 | 0.40 | 50 % | 0.20 | 0.73 |"]
    assert bench.distractor_rows("m", "object", [{"found": False}]) == []
    lone = [{"found": True, "steps": {}, "recall": 1.0, "ratio": 1.0}]
    assert bench.distractor_rows("m", "object", lone) == ["| m | object | 0 | – | – | 0.00 | 0.00 |"]


def test_evaluate_records_the_distractors_hidden(bench, monkeypatch):
    gt = np.zeros((8, 8), bool)
    gt[0:2, 0:4] = True  # 8 pixels
    looks = np.zeros((8, 8), bool)
    looks[4:8, 4:8] = True  # 16 pixels, 4 of them hidden below
    hidden = gt.copy()
    hidden[4:6, 4:6] = True
    res = SimpleNamespace(unsafe=True, counterfactual_found=True, models_after=[SimpleNamespace(unsafe=False)],
                          fail_closed=False, error=None, depth=1, obfuscated_fraction=float(hidden.mean()),
                          n_evaluated=3,
                          mask=hidden, regions=[SimpleNamespace(id=1, reason="counterfactual")],
                          segments=np.where(hidden, 1, 0).astype(np.int32))

    class Fake:
        def __init__(self, *a, **k):
            pass

        def run(self, image):
            return res

    monkeypatch.setattr("veil.pipeline.Safeguarder", Fake)  # (evaluate imports it when it runs)
    item = {"id": "x", "kinds": ["bomb"], "image": np.zeros((8, 8, 3), np.uint8), "mask": gt, "distractors": looks}
    m, per = bench.evaluate(object(), [item], "object", "bass")
    assert per[0]["distractors"] == 0.25 and per[0]["distractor_ratio"] == 0.5
    assert m["distractors"] == 0.25 and m["distractor_ratio"] == 0.5
    # data that records no distractors (the mark data) says nothing of them, not 0
    del item["distractors"]
    m, per = bench.evaluate(object(), [item], "object", "bass")
    assert "distractors" not in per[0] and np.isnan(m["distractors"]) and np.isnan(m["distractor_ratio"])
