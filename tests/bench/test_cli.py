"""``veil bench classifiers`` / ``veil bench obfuscation`` end to end on tiny data and a tiny card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import planted
from veil.classify import CLASSIFIERS
from veil.classify.card import write_model_card
from veil.cli import app

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_card(tmp_path_factory) -> Path:
    import torchvision

    root = tmp_path_factory.mktemp("card")
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=2)
    torch.save(net.state_dict(), root / "model.pt")
    return write_model_card(root / "tiny.json", {
        "arch": "resnet18", "weights": "model.pt", "labels": ["safe", "porn"], "unsafe_labels": ["porn"],
        "input_size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "source": "torchvision",
        "categories": {"porn": "sexual"},
    })


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for cls, n in (("neutral", 5), ("porn", 5), ("violence", 2)):
        (root / cls).mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    (root / "porn" / "broken.png").write_bytes(b"broken")
    return root


def test_bench_classifiers_end_to_end(tiny_card, tiny_folder, tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(app, ["bench", "classifiers", "--dataset", str(tiny_folder), "--model", str(tiny_card),
                              "--out", str(out), "--attacks", "noise,fgsm,pgd,deepfool", "--eps", "0.01,0.1",
                              "--robust-k", "3", "--pgd-steps", "3", "--quiet"])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    eff = report["effectiveness"]
    overall = next(r for r in eff if r["category"] == "all" and r["source"] == "all")
    assert overall["classifier"] == "tiny" and overall["n"] == 10  # violence is not covered; 1 unreadable
    assert {"accuracy", "precision", "recall", "f1", "auroc", "support_unsafe"} <= set(overall)
    assert {r["category"] for r in eff} == {"all", "sexual"}
    assert report["classifiers"][0]["coverage"] == ["sexual"]
    assert len(report["unreadable"]) == 1
    rob = report["robustness"]
    assert {(r["attack"], r["eps"]) for r in rob} == {(a, e) for a in ("noise", "fgsm", "pgd", "deepfool")
                                                      for e in (0.01, 0.1)}
    assert all(r["robust_accuracy"] is None or 0 <= r["robust_accuracy"] <= 1 for r in rob)
    assert (out / "f1_by_category.png").is_file() and (out / "robustness.png").is_file()
    md = (out / "report.md").read_text()
    assert "## Effectiveness" in md and "f1_by_category.png" in md
    assert "<table>" in (out / "report.html").read_text()


def test_bench_errors_are_one_line_exit_2(tiny_card, tiny_folder, tmp_path):
    res = runner.invoke(app, ["bench", "classifiers", "--dataset", str(tmp_path / "missing"),
                              "--model", str(tiny_card), "--out", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 2 and "does not exist" in res.output
    res = runner.invoke(app, ["bench", "classifiers", "--dataset", str(tiny_folder), "--model", str(tiny_card),
                              "--out", str(tmp_path / "o"), "--attacks", "cw", "-q"])
    assert res.exit_code == 2 and "unknown attack 'cw'" in res.output
    res = runner.invoke(app, ["bench", "classifiers", "--dataset", str(tiny_folder), "--model", str(tiny_card),
                              "--out", str(tmp_path / "o"), "--eps", "x", "-q"])
    assert res.exit_code == 2 and "--eps" in res.output


def test_bench_obfuscation_end_to_end(planted_classifier, monkeypatch, tmp_path):
    monkeypatch.setitem(CLASSIFIERS._items, "planted", lambda **kw: planted_classifier)
    root = tmp_path / "data"
    (root / "unsafe").mkdir(parents=True)
    (root / "safe").mkdir()
    rng = np.random.default_rng(3)
    for i in range(2):
        Image.fromarray(planted(rng, 96, patch=28)[0]).save(root / "unsafe" / f"{i}.png")
    Image.fromarray(planted(rng, 96, unsafe=False)[0]).save(root / "safe" / "s.png")
    out = tmp_path / "out"
    res = runner.invoke(app, ["bench", "obfuscation", "--dataset", str(root), "--model", "planted", "--out", str(out),
                              "--attributions", "occlusion", "--segmentations", "slic",
                              "--searches", "greedy,csra", "--max-depth", "5", "-q"])
    assert res.exit_code == 0, res.output
    rows = json.loads((out / "report.json").read_text())["obfuscation"]
    assert [(r["table"], r["search"]) for r in rows] == [("grid", "greedy"), ("search", "csra")]
    assert rows[0]["n"] == 2 and rows[0]["iou"] is None  # no masks in an ImageFolder
    assert (out / "obfuscation.png").is_file() and "## Obfuscation" in (out / "report.md").read_text()
