"""``veil scan`` end to end: outputs, per-item errors, safe-by-default report."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import planted
from veil.classify import CLASSIFIERS
from veil.cli import app, parse_floats, parse_params
from veil.errors import InvalidParameterError
from veil.output import RECORD_KEYS

runner = CliRunner()


@pytest.fixture()
def registered(planted_classifier, monkeypatch):
    monkeypatch.setitem(CLASSIFIERS._items, "planted", lambda **kw: planted_classifier)
    return "planted"


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    unsafe, _ = planted(np.random.default_rng(1), 96)
    safe, _ = planted(np.random.default_rng(2), 96, unsafe=False)
    Image.fromarray(unsafe).save(root / "unsafe.png")
    Image.fromarray(safe).save(root / "sub" / "safe.png")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (root / "empty.jpg").write_bytes(b"")
    # a PNG whose header claims 100,000 × 100,000 pixels (a decompression bomb)
    import io

    buf = io.BytesIO()
    Image.new("1", (1, 1)).save(buf, format="PNG")
    bomb = bytearray(buf.getvalue())
    bomb[16:24] = (100_000).to_bytes(4, "big") * 2
    bomb[29:33] = zlib.crc32(bytes(bomb[12:29])).to_bytes(4, "big")  # keep the header valid
    (root / "huge.png").write_bytes(bytes(bomb))
    jpeg = io.BytesIO()
    Image.fromarray(safe).save(jpeg, format="JPEG")
    (root / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    return root


def read_records(out: Path) -> dict[str, dict]:
    lines = (out / "results.jsonl").read_text().splitlines()
    return {Path(json.loads(x)["path"]).name: json.loads(x) for x in lines}


def test_scan_writes_everything_and_survives_bad_inputs(registered, photos, tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(app, ["scan", str(photos), "--out", str(out), "--model", registered,
                              "--segmentation", "felzenszwalb"])
    assert res.exit_code == 0, res.output
    recs = read_records(out)
    assert set(recs) == {"unsafe.png", "safe.png", "broken.png", "empty.jpg", "huge.png", "truncated.jpg"}
    for rec in recs.values():
        assert all(k in rec for k in RECORD_KEYS)

    bad = recs["broken.png"]
    assert bad["error"] and bad["output"] is None and bad["mask"] is None
    assert "empty" in recs["empty.jpg"]["error"]
    assert "limit" in recs["huge.png"]["error"]
    assert recs["truncated.jpg"]["error"] and recs["truncated.jpg"]["output"] is None

    u = recs["unsafe.png"]
    assert u["unsafe"] and u["counterfactual_found"] and not u["fail_closed"] and u["error"] is None
    assert u["depth"] >= 1 and 0 < u["obfuscated_fraction"] < 0.5
    assert u["scores_after"]["unsafe"] <= 0.5 < u["scores"]["unsafe"]
    delivered = np.asarray(Image.open(out / u["output"]))
    mask = np.asarray(Image.open(out / u["mask"]))
    assert mask.shape == delivered.shape[:2] == (96, 96)
    assert set(np.unique(mask)) <= {0, 255}
    assert abs((mask == 255).mean() - u["obfuscated_fraction"]) < 1e-6
    assert (out / u["overlays"]["attribution"]).is_file()

    s = recs["safe.png"]
    assert not s["unsafe"] and s["depth"] is None and s["obfuscated_fraction"] == 0
    # safe images are delivered as exactly the judged pixels, re-encoded (never the raw file)
    np.testing.assert_array_equal(np.asarray(Image.open(out / s["output"])),
                                  np.asarray(Image.open(photos / "sub" / "safe.png").convert("RGB")))

    html = (out / "report.html").read_text()
    assert "unsafe · obfuscated" in html and "broken.png" in html
    # the report never points at a raw input image
    assert str(photos) + "/unsafe.png\"" not in html
    assert f'src="{u["output"]}"' in html


def test_report_never_embeds_raw_unsafe_image(registered, photos, tmp_path):
    out = tmp_path / "out"
    runner.invoke(app, ["scan", str(photos / "unsafe.png"), "--out", str(out), "--model", registered])
    html = (out / "report.html").read_text()
    srcs = [part.split('"')[0] for part in html.split('src="')[1:]]
    assert srcs and all(s.startswith(("images/", "overlays/")) for s in srcs)
    raw = np.asarray(Image.open(photos / "unsafe.png"))
    for s in srcs:
        shown = np.asarray(Image.open(out / s).convert("RGB"))
        assert not np.array_equal(shown, raw)


def test_user_errors_exit_2(tmp_path):
    res = runner.invoke(app, ["scan", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "no such file" in res.output
    res = runner.invoke(app, ["scan", str(tmp_path), "--out", str(tmp_path / "o"), "--segmentation", "zzz"])
    assert res.exit_code == 2 and "valid names" in res.output
    res = runner.invoke(app, ["scan", str(tmp_path), "--out", str(tmp_path / "o"), "--model", "missing.json"])
    assert res.exit_code == 2


def test_list_shows_registries():
    res = runner.invoke(app, ["list"])
    assert res.exit_code == 0
    for word in ("nudenet", "fullgrad", "slic", "greedy", "blur"):
        assert word in res.output


def test_parse_params():
    assert parse_params(["segmentation.n_segments=50", "style.colour=[1,2,3]", "search.top=x"]) == {
        "attribution": {}, "segmentation": {"n_segments": 50}, "search": {"top": "x"},
        "extent": {}, "style": {"colour": [1, 2, 3]}, "rationale": {},
    }
    with pytest.raises(InvalidParameterError, match="STAGE.NAME=VALUE"):
        parse_params(["nonsense"])


def test_parse_floats():
    assert parse_floats("30", "--coarser") == (30.0,)
    assert parse_floats("30,60.5", "--coarser") == (30.0, 60.5)
    assert parse_floats("none", "--coarser") == () == parse_floats("", "--coarser")
    with pytest.raises(InvalidParameterError, match="--coarser"):
        parse_floats("thirty", "--coarser")


def test_pipeline_config_takes_every_stage_option():
    from veil.cli_common import pipeline_config

    cfg = pipeline_config(
        model=["nudenet"], attribution="occlusion", segmentation="slic", merge=None, segment_size=0, coarser="none",
        search_size=512, search="greedy", style="fill", extent="object", max_depth=4, threshold=0.3, batch_size=2,
        seed=7, rationale="none", max_pixels=1000,
        param=["extent.margin=2", "segmentation.n_segments=50", "style.colour=[1,2,3]"])
    assert cfg.extent_options == {"margin": 2} and cfg.segmentation_options == {"n_segments": 50}
    assert cfg.style_options == {"colour": [1, 2, 3]} and cfg.rationale is None and cfg.segment_size is None
    assert cfg.coarser == () and cfg.search_size == 512 and cfg.threshold == 0.3 and cfg.seed == 7


def test_serve_and_scan_share_the_pipeline_options():
    """veil serve takes veil scan's pipeline options, with the same help (names from the registries)."""

    def options(name: str) -> dict[str, str]:
        cmd = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
        cmd.format_help(cmd.context_class(cmd), cmd.context_class(cmd).make_formatter())  # fills {registry}
        return {str(p.name): str(getattr(p, "help", "")) for p in cmd.params}

    scan, serve = options("scan"), options("serve")
    shared = ["model", "attribution", "segmentation", "merge", "segment_size", "coarser", "search_size", "search",
              "style", "extent", "max_depth", "threshold", "batch_size", "seed", "param", "rationale", "max_pixels"]
    for name in shared:
        assert serve[name] == scan[name], name
    assert "fullgrad" in serve["attribution"] and "bass" in serve["segmentation"] and "{" not in serve["search"]
