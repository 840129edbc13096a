"""veil.report: the HTML page over results.jsonl records."""

from __future__ import annotations

from veil.output import error_record
from veil.report import render_report, write_report


def _rec(**kw):
    base = {"path": "a.jpg", "unsafe": False, "scores": {"safe": 0.9, "unsafe": 0.1}, "counterfactual_found": False,
            "depth": None, "obfuscated_fraction": 0.0, "scores_after": {"safe": 0.9, "unsafe": 0.1},
            "output": "images/a.png", "mask": "masks/a.png", "fail_closed": False, "error": None}
    base.update(kw)
    return base


def test_summary_counts_each_outcome():
    records = [
        _rec(),
        _rec(path="b.jpg", unsafe=True, counterfactual_found=True, depth=2, obfuscated_fraction=0.1,
             regions=[{"reason": "counterfactual"}, {"reason": "margin"}], extent="object"),
        _rec(path="c.jpg", unsafe=True, counterfactual_found=True, depth=4, obfuscated_fraction=0.3),
        _rec(path="d.jpg", unsafe=True, fail_closed=True, obfuscated_fraction=1.0, note="no counterfactual"),
        error_record("e.jpg", "cannot decode"),
    ]
    page = render_report(records, title="T", info={"models": "nudenet"})
    assert "<title>T</title>" in page and "models: nudenet" in page
    for value, label in [(5, "images"), (3, "unsafe"), (2, "minimally obfuscated"),
                         (1, "fully obscured (fail closed)"), (1, "errors"), ("3.0", "mean depth"),
                         ("20.0%", "mean obfuscated area")]:
        assert f"<b>{value}</b>{label}" in page, label
    assert page.count('class="badge safe"') == 1 and page.count('class="badge obf"') == 2
    assert page.count('class="badge closed"') == 1 and page.count('class="badge err"') == 1
    assert "1 counterfactual, 1 margin" in page and "Extent: <b>object</b>" in page


def test_text_from_records_is_escaped():
    page = render_report([_rec(path="<script>x</script>.jpg", note="a & b",
                               rationale={"text": "<b>bold</b>"})])
    assert "<script>x</script>" not in page and "&lt;script&gt;" in page
    assert "a &amp; b" in page and "&lt;b&gt;bold&lt;/b&gt;" in page


def test_only_delivered_images_are_shown():
    page = render_report([_rec(overlays={"attribution": "overlays/a_attr.png"})])
    assert 'src="images/a.png"' in page and 'src="overlays/a_attr.png"' in page
    assert "masks/a.png" not in page  # masks and raw inputs are never embedded
    assert 'src="a.jpg"' not in page


def test_empty_report_has_no_means(tmp_path):
    path = write_report([], tmp_path)
    page = path.read_text(encoding="utf-8")
    assert path.name == "report.html" and "<b>0</b>images" in page and "<b>–</b>mean depth" in page
