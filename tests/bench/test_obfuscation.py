"""The obfuscation benchmark on planted-patch images whose ground-truth mask is known."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.conftest import planted
from veil.bench.datasets import load_dataset
from veil.bench.obfuscation import (
    MaskScores,
    evaluate_obfuscation,
    mask_scores,
    obfuscation_configs,
)
from veil.errors import InvalidParameterError, UnknownNameError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_mask_scores_and_configs():
    p = np.zeros((4, 4), bool)
    p[:2] = True
    assert mask_scores(p, p) == MaskScores(1.0, 1.0, 1.0)
    assert mask_scores(np.zeros((4, 4), bool), p).precision == 0.0
    with pytest.raises(InvalidParameterError, match="same shape"):
        mask_scores(p, p[:2])
    assert len(obfuscation_configs(["a", "b"], ["x", "y"], ["g", "c", "s"])) == 6
    with pytest.raises(InvalidParameterError):
        obfuscation_configs([], ["x"], ["g"])


@pytest.fixture(scope="module")
def planted_manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    rng = np.random.default_rng(5)
    lines = ["image,label,mask"]
    for i in range(4):
        unsafe = i < 3
        img, mask = planted(rng, 96, patch=28, unsafe=unsafe)
        Image.fromarray(img).save(root / f"{i}.png")
        m = ""
        if unsafe:
            Image.fromarray(mask.astype(np.uint8) * 255).save(root / f"{i}_mask.png")
            m = f"{i}_mask.png"
        lines.append(f"{i}.png,{int(unsafe)},{m}")
    (root / "broken.png").write_bytes(b"nope")
    lines.append("broken.png,1,")
    (root / "m.csv").write_text("\n".join(lines) + "\n")
    return root / "m.csv"


def test_obfuscation_grid_finds_the_patch(planted_classifier, planted_manifest):
    ds = load_dataset(planted_manifest)
    steps = []
    rows, bad = evaluate_obfuscation(ds, [planted_classifier], attributions=["occlusion"],
                                     segmentations=["slic"], searches=["greedy", "subset"],
                                     max_depth=6, on_image=steps.append)
    assert [r["table"] for r in rows] == ["grid", "search"]
    assert [b["id"] for b in bad] == ["broken.png"]
    assert sum(steps) == 2 * 3
    r = rows[0]
    assert r["n"] == 3 and r["n_flagged"] >= 2
    assert r["cf_rate"] >= 0.5 and r["delivered_safe_rate"] >= r["cf_rate"] - 1e-9
    assert r["recall"] > 0.5 and 0 < r["iou"] <= 1 and r["precision"] > 0.2
    assert r["depth"] >= 1 and 0 < r["obfuscated_fraction"] < 0.6 and r["seconds_per_image"] > 0


def test_unknown_method_fails_before_work(planted_classifier, planted_manifest):
    ds = load_dataset(planted_manifest)
    with pytest.raises(UnknownNameError, match="valid names"):
        evaluate_obfuscation(ds, [planted_classifier], attributions=["nope"])


def test_benchmark_obfuscation_assembles_the_report(planted_classifier, planted_manifest):
    from veil.bench.obfuscation import benchmark_obfuscation

    ds = load_dataset(planted_manifest)
    report = benchmark_obfuscation(ds, [planted_classifier], attributions=["occlusion"], segmentations=["slic"],
                                   max_depth=4, command="veil bench obfuscation …")
    assert list(report) == ["title", "command", "dataset", "classifiers", "unreadable", "obfuscation", "settings"]
    assert report["command"] == "veil bench obfuscation …"
    assert report["dataset"] == ds.summary()
    assert report["classifiers"][0]["name"] == planted_classifier.name
    assert report["settings"]["attributions"] == ["occlusion"] and report["settings"]["max_depth"] == 4
    assert len(report["obfuscation"]) == 1
    assert [u["id"] for u in report["unreadable"]] == ["broken.png"]  # the fixture's undecodable file


def test_benchmark_obfuscation_names_an_unknown_option(planted_classifier, planted_manifest):
    from veil.bench.obfuscation import benchmark_obfuscation

    with pytest.raises(InvalidParameterError, match="max_dept"):
        benchmark_obfuscation(load_dataset(planted_manifest), [planted_classifier], max_dept=3)
