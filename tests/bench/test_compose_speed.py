"""bench/compose_speed.py: both tables from the photos, and a failure when an array differs."""

from __future__ import annotations

from tests.bench.conftest import bench_script, fake_bsds


def test_prints_both_tables_and_equal_arrays(tmp_path, capsys) -> None:
    mod = bench_script("compose_speed")
    assert mod.main(["--bsds", str(fake_bsds(tmp_path, (48, 72), seed=1)), "--photos", "2", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "arrays equal: True" in out
    assert "| 1 | " in out and "| 5 | " in out and "| 20 | " in out
    assert "| 2 BSDS500 test photos |" in out


def test_fails_when_composing_from_labels_differs(tmp_path, monkeypatch, capsys) -> None:
    import veil.counterfactual.styles as styles

    mod = bench_script("compose_speed")
    real = styles.apply_labels

    def off_by_one(image, styled, labels, hide):
        out = real(image, styled, labels, hide)
        out[0, 0, 0] ^= 1
        return out

    monkeypatch.setattr(styles, "apply_labels", off_by_one)
    assert mod.main(["--bsds", str(fake_bsds(tmp_path, (48, 72), seed=1)), "--photos", "2", "--repeats", "1"]) == 1
    assert "arrays equal: False" in capsys.readouterr().out


def test_fails_when_the_remembered_lab_differs(tmp_path, monkeypatch, capsys) -> None:
    from veil.segment import bass

    mod = bench_script("compose_speed")
    real = bass._lab
    monkeypatch.setattr(bass, "_lab", lambda image: real(image) + 1e-9)
    assert mod.main(["--bsds", str(fake_bsds(tmp_path, (48, 72), seed=1)), "--photos", "1", "--repeats", "1"]) == 1
