"""train-vlm: a few Q-Former-only steps on a tiny InstructBLIP lower the loss."""

from __future__ import annotations

import json

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from tests.rationale import build_tiny_instructblip, make_result, model_output  # noqa: E402
from veil.errors import InvalidParameterError  # noqa: E402
from veil.image import save_image  # noqa: E402
from veil.rationale import build_control  # noqa: E402
from veil.rationale.train_vlm import encode_example, load_examples, train_vlm  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    model_dir = build_tiny_instructblip(root / "model", init_std=0.2)
    rng = np.random.default_rng(0)
    (root / "imgs").mkdir()
    control = build_control(
        make_result([model_output("nsfw", {"neutral": 0.05, "porn": 0.95}, ["porn"])])
    )
    lines = []
    for i in range(4):
        save_image(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8), root / "imgs" / f"{i}.png")
        rec = {"image": f"imgs/{i}.png", "answer": "a person stands in a room"}
        if i % 2:
            rec["instruction"] = "Question: What are the people doing?\nAnswer:"
        else:
            rec.update(question="What are the people doing?", control=control)
        lines.append(json.dumps(rec))
    data = root / "data.jsonl"
    data.write_text("\n".join(lines) + "\n")
    return root, model_dir, data


def test_loss_on_answer_tokens_only(setup):
    _, model_dir, _ = setup
    proc = transformers.AutoProcessor.from_pretrained(model_dir, local_files_only=True)
    cfg = transformers.AutoConfig.from_pretrained(model_dir, local_files_only=True)
    enc = encode_example(proc, cfg, "Question: Why?\nAnswer:", "a person")
    answer = proc.tokenizer(" a person", add_special_tokens=False)["input_ids"] + [proc.tokenizer.eos_token_id]
    n_lab = sum(lbl != -100 for lbl in enc["labels"])
    assert n_lab == len(answer)
    assert enc["labels"][-n_lab:] == answer == enc["input_ids"][-n_lab:]
    assert enc["input_ids"][:4] == [cfg.image_token_index] * 4
    assert len(enc["labels"]) == len(enc["input_ids"])


def test_conditioned_instruction_built_from_control(setup):
    _, _, data = setup
    ex = load_examples(data)
    assert "the image contains sexually explicit content" in ex[0]["prompt"]
    assert "the image contains sexually explicit content" in ex[0]["qformer"]
    assert ex[1]["prompt"] == "Question: What are the people doing?\nAnswer:"


def test_few_steps_lower_the_loss_and_only_qformer_changes(setup):
    root, model_dir, data = setup
    out = root / "out"
    report = train_vlm(data, model_dir=model_dir, out=out, epochs=20, lr=3e-3, max_steps=8,
                       batch_size=4, seed=0, device="cpu")
    assert report["steps"] == 8
    losses = report["losses"]
    assert np.mean(losses[-2:]) < np.mean(losses[:2]) - 0.1
    assert report["trainable_parameters"] > 0 and report["frozen_parameters"] > 0
    assert json.loads((out / "train_vlm.json").read_text())["steps"] == 8

    before = transformers.InstructBlipForConditionalGeneration.from_pretrained(model_dir, local_files_only=True)
    after = transformers.InstructBlipForConditionalGeneration.from_pretrained(out, local_files_only=True)
    sb, sa = before.state_dict(), after.state_dict()
    changed = {k for k in sb if not torch.equal(sb[k], sa[k])}
    assert changed and all(k.startswith(("qformer.", "query_tokens")) for k in changed)
    # the saved folder is usable by the rationale backend
    from veil.rationale import load_backend

    assert load_backend("transformers", path=out, device="cpu").family == "instructblip"

    again = train_vlm(data, model_dir=model_dir, out=root / "again", epochs=20, lr=3e-3,
                      max_steps=2, batch_size=4, seed=0, device="cpu")
    assert again["losses"] == losses[:2]  # seeded


def test_bad_data(tmp_path, setup):
    _, model_dir, _ = setup
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "missing.png", "answer": "x", "question": "q?"}\n')
    with pytest.raises(InvalidParameterError, match="bad.jsonl:1: image"):
        train_vlm(bad, model_dir=model_dir, out=tmp_path / "o")
    bad.write_text("not json\n")
    with pytest.raises(InvalidParameterError, match="not valid JSON"):
        load_examples(bad)
    with pytest.raises(InvalidParameterError, match="max_steps"):
        train_vlm(bad, model_dir=model_dir, out=tmp_path / "o", max_steps=0)


def test_cli_train_vlm(setup):
    from typer.testing import CliRunner

    from veil.cli import app

    root, model_dir, data = setup
    res = CliRunner().invoke(app, ["train-vlm", str(data), "--model-dir", str(model_dir),
                                   "--out", str(root / "cli"), "--max-steps", "1", "--lr", "1e-4",
                                   "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout[res.stdout.index("{"):])["steps"] == 1
    assert (root / "cli" / "config.json").is_file()
