"""train-moderator on a tiny random LLaVA and a tiny UnsafeBench-layout dataset (no downloads)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("transformers")
pytest.importorskip("peft")

from veil.classify import load_classifier  # noqa: E402
from veil.classify.vlm import VLMClassifier  # noqa: E402
from veil.errors import InvalidParameterError  # noqa: E402
from veil.moderator.train import load_records, train_moderator  # noqa: E402

# peft calls a transformers method deprecated in 5.x; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")

CATS = ["sexual", "violence", "hate"]
ROWS = [("unsafe", "violence"), ("safe", "violence"), ("unsafe", "sexual"), ("safe", "Hate")]


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory):
    from tests.rationale import build_tiny_llava

    return build_tiny_llava(tmp_path_factory.mktemp("llava"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("unsafebench")
    rng = np.random.default_rng(0)
    (root / "img").mkdir()
    lines = []
    for i, (label, cat) in enumerate(ROWS):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / "img" / f"{i}.png")
        lines.append({"image": f"img/{i}.png", "safety_label": label.capitalize(), "category": cat,
                      "source": "Laion5B" if i % 2 else "Lexica"})
    (root / "data.jsonl").write_text("\n".join(json.dumps(r) for r in lines), encoding="utf-8")
    with (root / "data.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(lines[0]))
        w.writeheader()
        w.writerows(lines)
    return root


def test_load_records(dataset, tmp_path):
    recs = load_records(dataset / "data.jsonl")
    assert recs == load_records(dataset / "data.csv")
    assert [r["safety_label"] for r in recs] == ["unsafe", "safe", "unsafe", "safe"]
    assert recs[0]["image"] == str(dataset / "img" / "0.png") and recs[0]["source"] == "Lexica"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "a.png", "category": "hate"}\n', encoding="utf-8")
    with pytest.raises(InvalidParameterError, match=r"bad.jsonl:1: missing \['safety_label'\]"):
        load_records(bad)
    with pytest.raises(InvalidParameterError, match="does not exist"):
        load_records(tmp_path / "nope.jsonl")


def test_train_lowers_loss_saves_card_and_resumes(llava_dir, dataset, tmp_path):
    out = tmp_path / "mod"
    opts = dict(base_model=llava_dir, out=out, categories=CATS, lr=2e-2, lora_r=4, epochs=10,
                seed=0, save_every=4, probe=6, progress=False, device="cpu")
    rep = train_moderator(dataset / "data.jsonl", max_steps=8, **opts)
    assert rep["steps"] == 8 and len(rep["losses"]) == 8 and rep["resumed_from"] is None
    assert rep["loss_after"] < rep["loss_before"]
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert (out / "checkpoint" / "state.json").is_file()
    card = json.loads((out / "moderator.json").read_text(encoding="utf-8"))
    assert card["type"] == "vlm-lora" and card["adapter"] == "adapter"
    assert card["base_model"] == str(llava_dir.resolve())
    assert list(card["categories"]) == CATS
    t = card["training"]
    assert (t["records"], t["safe"], t["unsafe"], t["steps"]) == (4, 2, 2, 8)
    assert t["sources"] == {"Laion5B": 2, "Lexica": 2}

    # resuming continues from the checkpoint with the same schedule as one long run
    rep2 = train_moderator(dataset / "data.jsonl", max_steps=12, **opts)
    assert rep2["resumed_from"] == 8 and rep2["steps"] == 12
    assert rep2["losses"][:8] == rep["losses"]
    with pytest.raises(InvalidParameterError, match="no-resume"):
        train_moderator(dataset / "data.jsonl", max_steps=12, **{**opts, "lr": 1e-3})
    rep3 = train_moderator(dataset / "data.jsonl", max_steps=2, resume=False, **{**opts, "lr": 1e-3})
    assert rep3["resumed_from"] is None and rep3["steps"] == 2

    # the adapter loads as a classifier through its card
    clf = load_classifier(str(out / "moderator.json"), device="cpu", max_new_tokens=4)
    assert isinstance(clf, VLMClassifier) and clf.labels == tuple(CATS) and clf.mode == "perspective"
    img = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    proba = clf.predict_proba([img])
    assert proba.shape == (1, 3) and np.all((proba >= 0) & (proba <= 1))
    for c in clf.last_details[0]["categories"].values():
        assert c["answers"][0]["raw"].startswith("Safety Status:")
        assert c["score_source"] == "logprobs"


def test_training_is_seeded(llava_dir, dataset, tmp_path):
    opts = dict(base_model=llava_dir, categories=CATS, lr=1e-2, lora_r=2, max_steps=3, seed=3,
                probe=0, progress=False, device="cpu")
    a = train_moderator(dataset / "data.csv", out=tmp_path / "a", **opts)
    b = train_moderator(dataset / "data.csv", out=tmp_path / "b", **opts)
    assert a["losses"] == b["losses"] and a["fingerprint"] == b["fingerprint"]


def test_train_rejects_bad_options(llava_dir, dataset, tmp_path):
    with pytest.raises(InvalidParameterError, match="lora_r"):
        train_moderator(dataset / "data.jsonl", base_model=llava_dir, out=tmp_path, lora_r=0)
    with pytest.raises(InvalidParameterError, match="lr"):
        train_moderator(dataset / "data.jsonl", base_model=llava_dir, out=tmp_path, lr=-1)


def test_load_records_parquet(dataset, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    png = (dataset / "img" / "0.png").read_bytes()
    table = pa.table({"image": [{"bytes": png, "path": None}], "safety_label": ["Unsafe"],
                      "category": ["Violence"], "source": ["Lexica"]})
    (tmp_path / "data").mkdir()
    pq.write_table(table, str(tmp_path / "data" / "train-00000.parquet"))
    recs = load_records(tmp_path / "data")
    assert recs[0]["image"] == png and recs[0]["safety_label"] == "unsafe"


def test_cli_train_moderator(llava_dir, dataset, tmp_path):
    from typer.testing import CliRunner

    from veil.cli import app

    runner = CliRunner()
    out = tmp_path / "cli"
    res = runner.invoke(app, ["train-moderator", str(dataset / "data.jsonl"), "--base-model", str(llava_dir),
                              "--out", str(out), "--max-steps", "2", "--lora-r", "2", "--seed", "1",
                              "--no-resume", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout[res.stdout.index("{"): res.stdout.rindex("}") + 1])
    assert report["steps"] == 2 and (out / "moderator.json").is_file()
    res = runner.invoke(app, ["train-moderator", str(tmp_path / "missing.jsonl"), "--base-model",
                              str(llava_dir), "--out", str(out)])
    assert res.exit_code == 2 and "does not exist" in res.output
