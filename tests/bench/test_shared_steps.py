"""bench/shared_steps.py: the three tables, and a failure when masked selection differs from numpy's."""

from __future__ import annotations

from tests.bench.conftest import bench_script, fake_bsds


def test_prints_three_tables_from_the_photos(tmp_path, capsys) -> None:
    mod = bench_script("shared_steps")
    assert mod.main(["--bsds", str(fake_bsds(tmp_path)), "--photos", "2", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("| True |") == 2  # both sizes: the same arrays
    assert "| 2 BSDS500 photos" in out and "| 1925 |" in out
    assert "| 256 | " in out and "0.00 / 0 / 0 |" in out  # radius under 16 px: the same blur


def test_fails_when_masked_selection_differs(tmp_path, monkeypatch, capsys) -> None:
    mod = bench_script("shared_steps")
    monkeypatch.setattr(mod, "apply_mask", lambda image, styled, mask: image.copy())
    assert mod.main(["--bsds", str(fake_bsds(tmp_path)), "--photos", "1", "--repeats", "1"]) == 1
    assert "| False |" in capsys.readouterr().out
