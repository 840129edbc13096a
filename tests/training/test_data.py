"""veil.training.data: the one manifest reader every trainer and the benchmark datasets use."""

from __future__ import annotations

import pytest

from veil.bench.datasets import DatasetError
from veil.errors import InvalidParameterError
from veil.training.data import read_csv, read_jsonl, read_manifest
from veil.training.progress import make_progress


def test_jsonl_rows_keep_their_line_numbers(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"image": "a.png", "label": "safe"}\n\n{"image": "b.png", "label": "unsafe"}\n')
    assert read_jsonl(f) == [(1, {"image": "a.png", "label": "safe"}), (3, {"image": "b.png", "label": "unsafe"})]
    assert read_manifest(f) == read_jsonl(f)


def test_csv_rows_strip_header_names_and_count_from_line_2(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text(" image , label\na.png,safe\nb.png,unsafe\n")
    assert read_csv(f) == [(2, {"image": "a.png", "label": "safe"}), (3, {"image": "b.png", "label": "unsafe"})]
    assert read_manifest(f) == read_csv(f)


@pytest.mark.parametrize("text, message", [
    ('{"a": 1}\n{not json\n', r"d.jsonl:2: not valid JSON"),
    ('[1, 2]\n', r"d.jsonl:1: expected a JSON object, got list"),
])
def test_malformed_lines_are_named(tmp_path, text, message):
    f = tmp_path / "d.jsonl"
    f.write_text(text)
    with pytest.raises(InvalidParameterError, match=message):
        read_jsonl(f)
    with pytest.raises(DatasetError, match=message):  # callers choose their error class
        read_jsonl(f, error=DatasetError)


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(InvalidParameterError, match="cannot read"):
        read_jsonl(tmp_path / "none.jsonl")
    with pytest.raises(InvalidParameterError, match="expected .jsonl or .csv, got '.txt'"):
        read_manifest(tmp_path / "d.txt")


def test_progress_disabled_still_counts():
    with make_progress(False) as p:
        task = p.add_task("train", total=3, info="")
        p.advance(task, 2)
        assert p.tasks[0].completed == 2


def test_optimizer_step_stops_on_a_non_finite_loss():
    import torch

    from veil.training.loop import optimizer_step

    w = torch.nn.Parameter(torch.tensor([1.0]))
    opt = torch.optim.SGD([w], lr=0.5)
    assert optimizer_step((w * 3).sum(), opt, [w], step=0, lr=0.5) == 3.0
    assert float(w.detach()) == pytest.approx(0.5, abs=1e-5)  # gradient 3 clipped to norm 1: 1 - 0.5 · 1
    with pytest.raises(InvalidParameterError, match=r"loss became nan at step 7; lower lr \(now 0.5\)"):
        optimizer_step(w.sum() * float("nan"), opt, [w], step=7, lr=0.5)
