"""``bench/extent_baseline.py``: the default extent timed against the pipeline issue #12 was filed against."""

from __future__ import annotations

import pytest

from tests.bench.conftest import bench_script


@pytest.fixture(scope="module")
def baseline():
    return bench_script("extent_baseline")


def _row(i, secs, *, found=True, recall=1.0, ratio=1.0):
    return {"id": i, "seconds": secs, "found": found, "fail_closed": not found, "recall": recall, "ratio": ratio}


def test_summary_compares_on_the_images_every_pipeline_flagged(baseline):
    runs = {
        "baseline": [[_row("a", 1.0), _row("b", 3.0), _row("c", 100.0)], [_row("a", 1.0), _row("b", 3.0)]],
        "minimal": [[_row("a", 0.5), _row("b", 0.5)], [_row("a", 0.5), _row("b", 1.5)]],
        "object": [[_row("a", 2.0, recall=0.4, ratio=3.0), _row("b", 2.0, found=False, recall=1.0, ratio=50.0)],
                   [_row("a", 2.0), _row("b", 2.0)]],
    }
    rows = {r["pipeline"]: r for r in baseline.summarize(runs)}
    # "c" was flagged by the baseline only: left out everywhere, so its 100 s do not count
    assert {r["images"] for r in rows.values()} == {2}
    assert rows["baseline"]["seconds"] == pytest.approx(2.0)
    assert rows["minimal"]["seconds_per_pass"] == pytest.approx([0.5, 1.0])
    assert rows["minimal"]["seconds"] == pytest.approx(0.75)
    assert rows["object"]["vs_baseline"] == pytest.approx(1.0)
    assert rows["object"]["vs_minimal"] == pytest.approx(2.0 / 0.75)
    # quality from the first pass, over the images where a counterfactual was found (fully obscured: not one)
    assert rows["object"]["found"] == 1
    assert rows["object"]["recall"] == pytest.approx(0.4) and rows["object"]["recall_50"] == 0.0
    assert rows["object"]["ratio_mean"] == pytest.approx(3.0)
    line = baseline.table("resnet18", [rows["object"]])[0]
    assert line.startswith("| resnet18 | object | 2 | 2.00 / 2.00 | 2.00 | 1.00× | 2.67× | 1 | 0.400 | 0 % |")
    assert baseline.HEADER.count("|---") == line.count(" | ") + 1


def test_a_baseline_that_is_no_veil_checkout_is_a_clear_error(baseline, tmp_path, capsys):
    with pytest.raises(SystemExit):
        baseline.main(["--baseline", str(tmp_path)])
    assert "no src/veil/pipeline.py" in capsys.readouterr().err


def test_paired_needs_two_cpus(baseline, tmp_path, capsys, monkeypatch):
    (tmp_path / "src" / "veil").mkdir(parents=True)
    (tmp_path / "src" / "veil" / "pipeline.py").write_text("")
    monkeypatch.setattr(baseline.os, "sched_getaffinity", lambda pid: {3})
    with pytest.raises(SystemExit):
        baseline.main(["--baseline", str(tmp_path), "--paired"])
    assert "--paired needs two CPUs" in capsys.readouterr().err


def test_every_card_of_a_joined_pair_must_exist(baseline, tmp_path, capsys):
    (tmp_path / "src" / "veil").mkdir(parents=True)
    (tmp_path / "src" / "veil" / "pipeline.py").write_text("")
    card = tmp_path / "a" / "model.json"
    card.parent.mkdir()
    card.write_text("{}")
    with pytest.raises(SystemExit):  # (the first card exists, the second does not: named, before any timing)
        baseline.main(["--baseline", str(tmp_path), "--archs", f"{card}+{tmp_path / 'b' / 'model.json'}"])
    err = capsys.readouterr().err
    assert f"no card {tmp_path / 'b' / 'model.json'}" in err and "--arch " in err


@pytest.mark.parametrize(("bad", "why"), [("{tiles: 0}", "--extent-options is not JSON"),
                                         ("[1, 2]", "--extent-options must be a JSON object")])
def test_extent_options_must_be_a_json_object(baseline, tmp_path, capsys, bad, why):
    (tmp_path / "src" / "veil").mkdir(parents=True)
    (tmp_path / "src" / "veil" / "pipeline.py").write_text("")
    with pytest.raises(SystemExit):  # (before any card is looked for, any image drawn or any pipeline timed)
        baseline.main(["--baseline", str(tmp_path), "--extent-options", bad])
    assert why in capsys.readouterr().err


@pytest.mark.parametrize(("archs", "why"), [("+", "no card named in '+'"),
                                           ("A+A", "must have different names")])
def test_a_joined_pair_needs_cards_with_names_of_their_own(baseline, tmp_path, capsys, archs, why):
    (tmp_path / "src" / "veil").mkdir(parents=True)
    (tmp_path / "src" / "veil" / "pipeline.py").write_text("")
    card = tmp_path / "a" / "model.json"
    card.parent.mkdir()
    card.write_text("{}")
    with pytest.raises(SystemExit):
        baseline.main(["--baseline", str(tmp_path), "--archs", archs.replace("A", str(card))])
    assert why in capsys.readouterr().err


@pytest.mark.parametrize("photo", [False, True])
def test_photo_times_the_photographic_images(baseline, tmp_path, monkeypatch, photo):
    # --photo draws run --photo's images; stopped once they are drawn, before any pipeline is timed
    import sys
    import types

    (tmp_path / "src" / "veil").mkdir(parents=True)
    (tmp_path / "src" / "veil" / "pipeline.py").write_text("")
    card = tmp_path / "a" / "model.json"
    card.parent.mkdir()
    card.write_text("{}")
    asked: list[dict] = []

    def benchmark_set(seed, n, **kw):
        asked.append({"seed": seed, "n": n, **kw})
        raise SystemExit(0)

    fake = types.SimpleNamespace(card_path=lambda arch: card, card_name=lambda arch: "a", benchmark_set=benchmark_set)
    monkeypatch.setitem(sys.modules, "extent", fake)
    with pytest.raises(SystemExit):
        baseline.main(["--baseline", str(tmp_path), "--archs", "a", "--seeds", "7", "--n", "3",
                       *(["--photo"] if photo else [])])
    assert asked == [{"seed": 7, "n": 3, "family": "objects", "photo": photo}]
