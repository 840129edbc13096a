"""veil.train: a tiny planted-patch dataset that a tiny network learns in a few steps."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import torch_threads
from veil.errors import InvalidParameterError, ModelLoadError, VeilError
from veil.train import (
    AUGMENTATIONS,
    Item,
    TrainingWarning,
    _ImageDataset,
    _keeps_last_batch,
    _noise_margin,
    _one_cycle_lr,
    default_unsafe_labels,
    evaluate,
    find_lr,
    load_items,
    split_items,
    train,
    training_warnings,
)

ARCH = "test_resnet"  # timm's ~0.4 M-parameter test network
FAST = dict(arch=ARCH, input_size=32, batch_size=8, lr=3e-3, progress=False, seed=0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _image(rng: np.random.Generator, patch: bool) -> np.ndarray:
    img = rng.integers(40, 140, size=(32, 32, 3)).astype(np.uint8)
    if patch:  # the "unsafe" content: a saturated red square somewhere
        y, x = rng.integers(0, 20, size=2)
        img[y : y + 12, x : x + 12] = (230, 20, 20)
    return img


def _write_folder(root: Path, n: int = 20, classes=("safe", "unsafe"), seed: int = 0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(_image(rng, c != classes[0])).save(root / c / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return _write_folder(tmp_path_factory.mktemp("data") / "imgs")


@pytest.fixture(scope="module")
def trained(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "model.json"
    with torch_threads(1):
        card = train(folder, out=out, epochs=4, patience=None, **FAST)
    return out, card


# ---------------------------------------------------------------------------------------------
def test_training_writes_a_complete_card(trained):
    out, card = trained
    for key in ("arch", "weights", "labels", "unsafe_labels", "input_size", "mean", "std"):
        assert key in card
    assert card["arch"] == ARCH and card["source"] == "timm"
    assert card["labels"] == ["safe", "unsafe"] and card["unsafe_labels"] == ["unsafe"]
    assert card["input_size"] == 32
    assert (out.parent / card["weights"]).is_file()
    assert (out.parent / card["split"]["file"]).is_file()
    assert out.with_suffix(".ckpt").is_file()
    assert json.loads(out.read_text())["labels"] == card["labels"]
    assert card["split"]["seed"] == 0 and card["split"]["sizes"] == {"train": 32, "val": 4, "test": 4}
    for s in ("val", "test"):
        m = card["metrics"][s]
        assert {"accuracy", "precision", "recall", "f1", "n"} <= set(m)
    assert card["training"]["epochs_completed"] == 4


def test_card_records_speed_and_recipe(trained):
    """Images per second and seconds per epoch are in every history entry and summarised in the card."""
    _, card = trained
    tr = card["training"]
    for h in tr["history"]:
        assert h["seconds"] > 0 and h["train_seconds"] > 0 and h["images_per_second"] > 0
        assert h["train_seconds"] <= h["seconds"]
        # 32 training images (batch 8, none dropped) in train_seconds
        # train_seconds is rounded to 10 ms, which bounds how far the product may stray from 32
        assert abs(h["images_per_second"] * h["train_seconds"] - 32) <= 0.005 * h["images_per_second"] + 0.1
    assert tr["seconds_per_epoch"] == pytest.approx(np.mean([h["seconds"] for h in tr["history"]]), abs=0.01)
    assert tr["images_per_second"] > 0
    assert tr["augment"] == "flip" and tr["augmentation"] == AUGMENTATIONS["flip"]
    assert tr["warmup"] == 0.3 and tr["cached_in_memory"] is True
    assert isinstance(tr["warnings"], list)


def test_loss_falls(trained):
    _, card = trained
    hist = card["training"]["history"]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert card["training"]["best_val_accuracy"] >= 0.75


def test_bf16_training_learns_and_saves_float32_weights(folder, tmp_path):
    """bfloat16 autocast trains as well on this task; the saved state_dict stays float32."""
    card = train(folder, out=tmp_path / "bf16.json", epochs=4, patience=None, precision="bf16", **FAST)
    assert card["training"]["precision"] == "bf16"
    hist = card["training"]["history"]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert card["training"]["best_val_accuracy"] >= 0.75
    state = torch.load(tmp_path / card["weights"], weights_only=True)
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float32}
    assert all(v.is_contiguous() for v in state.values())


def test_card_loads_as_classifier(trained):
    from veil.classify import load_classifier

    out, card = trained
    clf = load_classifier(str(out))
    assert tuple(clf.labels) == ("safe", "unsafe")
    rng = np.random.default_rng(5)
    proba = clf.predict_proba([_image(rng, False), _image(rng, True)])
    assert proba.shape == (2, 2)


def test_evaluate_reproduces_recorded_metrics(trained, folder):
    out, card = trained
    for split in ("test", "val"):
        got = evaluate(out, folder, split=split)
        assert got["accuracy"] == pytest.approx(card["metrics"][split]["accuracy"])
        assert got["f1"] == pytest.approx(card["metrics"][split]["f1"])
        assert got["n"] == card["metrics"][split]["n"]


def test_evaluate_errors(trained, folder, tmp_path):
    out, _ = trained
    with pytest.raises(InvalidParameterError, match="split"):
        evaluate(out, folder, split="holdout")
    with pytest.raises(InvalidParameterError, match="do not exist"):
        evaluate(out, tmp_path)  # the split's files are not there


# ---------------------------------------------------------------------------------------------
def test_resume_continues_from_saved_epoch(folder, tmp_path):
    out = tmp_path / "m.json"
    first = train(folder, out=out, epochs=3, max_steps=2, patience=None, **FAST)
    assert first["training"]["epochs_completed"] == 1
    assert first["training"]["steps"] == 2
    assert first["training"]["history"][0]["cut_short"]
    second = train(folder, out=out, epochs=2, patience=None, **FAST)
    assert second["training"]["resumed_from_epoch"] == 1
    assert second["training"]["epochs_completed"] == 2
    assert [h["epoch"] for h in second["training"]["history"]] == [1, 2]
    assert second["training"]["steps"] == 2 + 4  # 32 train images / batch 8
    # finished run: rerunning does no more work
    third = train(folder, out=out, epochs=2, patience=None, **FAST)
    assert third["training"]["steps"] == second["training"]["steps"]
    # asking for more epochs trains on
    more = train(folder, out=out, epochs=3, patience=None, **FAST)
    assert more["training"]["epochs_completed"] == 3 and more["training"]["steps"] == 2 + 4 + 4
    # --no-resume starts over
    fresh = train(folder, out=out, epochs=1, resume=False, max_steps=1, patience=None, **FAST)
    assert fresh["training"]["resumed_from_epoch"] is None and fresh["training"]["steps"] == 1


def test_resumed_run_matches_uninterrupted_run(folder, tmp_path):
    straight = train(folder, out=tmp_path / "a.json", epochs=2, patience=None, **FAST)
    train(folder, out=tmp_path / "b.json", epochs=2, max_steps=4, patience=None, **FAST)  # "interrupted"
    resumed = train(folder, out=tmp_path / "b.json", epochs=2, patience=None, **FAST)
    assert resumed["training"]["resumed_from_epoch"] == 1
    a = [h["train_loss"] for h in straight["training"]["history"]]
    b = [h["train_loss"] for h in resumed["training"]["history"]]
    assert b == pytest.approx(a, rel=1e-4)
    wa = torch.load(tmp_path / "a.pt", weights_only=True)
    wb = torch.load(tmp_path / "b.pt", weights_only=True)
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)


def test_resume_refuses_a_different_run(folder, tmp_path):
    out = tmp_path / "m.json"
    train(folder, out=out, epochs=1, max_steps=1, **FAST)
    with pytest.raises(InvalidParameterError, match="different run"):
        train(folder, out=out, epochs=2, max_steps=1, **{**FAST, "input_size": 40})
    with pytest.raises(InvalidParameterError, match=r"different run \(differs in \['batch_size'\]\)"):
        train(folder, out=out, epochs=2, max_steps=1, **{**FAST, "batch_size": 4})


# ---------------------------------------------------------------------------------------------
def _manifest_rows(folder: Path, with_split: bool) -> list[dict]:
    rows = []
    for p in sorted(folder.rglob("*.png")):
        i = int(p.stem)
        row = {"image": p.relative_to(folder).as_posix(), "label": p.parent.name}
        if with_split:
            row["split"] = "val" if i % 5 == 0 else "test" if i % 5 == 1 else "train"
        rows.append(row)
    return rows


def test_csv_manifest_with_given_split(folder, tmp_path):
    manifest = folder / "manifest_split.csv"
    rows = _manifest_rows(folder, with_split=True)
    with open(manifest, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["image", "label", "split"])
        w.writeheader()
        w.writerows(rows)
    card = train(manifest, out=tmp_path / "m.json", epochs=1, max_steps=1, **FAST)
    assert card["split"]["given"] is True
    assert card["split"]["sizes"] == {"train": 24, "val": 8, "test": 8}
    got = evaluate(tmp_path / "m.json", manifest)
    assert got["accuracy"] == pytest.approx(card["metrics"]["test"]["accuracy"])
    manifest.unlink()


def test_jsonl_manifest_with_custom_labels(folder, tmp_path):
    manifest = folder / "manifest.jsonl"
    rows = _manifest_rows(folder, with_split=False)
    for r in rows:
        r["label"] = {"safe": "benign", "unsafe": "weapon"}[r["label"]]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    card = train(manifest, out=tmp_path / "m.json", epochs=1, max_steps=1, **FAST)
    assert card["labels"] == ["benign", "weapon"] and card["unsafe_labels"] == ["weapon"]
    assert card["split"]["given"] is False
    manifest.unlink()


def test_explicit_unsafe_labels_and_sampler_balance(tmp_path):
    data = _write_folder(tmp_path / "d", n=10, classes=("cats", "dogs"))
    card = train(data, out=tmp_path / "m.json", epochs=1, max_steps=1, unsafe_labels=["dogs"],
                 balance="sampler", num_workers=1, **FAST)
    assert card["unsafe_labels"] == ["dogs"]
    with pytest.raises(InvalidParameterError, match="cannot tell"):
        train(data, out=tmp_path / "m2.json", epochs=1, **FAST)  # no label looks safe
    with pytest.raises(InvalidParameterError, match="subset"):
        train(data, out=tmp_path / "m3.json", epochs=1, unsafe_labels=["birds"], **FAST)


def test_default_unsafe_labels():
    assert default_unsafe_labels(["safe", "unsafe"]) == ["unsafe"]
    assert default_unsafe_labels(["Neutral", "porn", "gore"]) == ["porn", "gore"]
    assert default_unsafe_labels(["normal_scene", "weapon"]) == ["weapon"]
    with pytest.raises(InvalidParameterError):
        default_unsafe_labels(["safe", "neutral"])


def test_split_is_seeded_and_stratified():
    items = [Item(f"{c}/{i:03d}.png", c) for c in ("a", "b") for i in range(30)] + [
        Item(f"c/{i}.png", "c") for i in range(5)
    ]
    s0, s1, s2 = split_items(items, seed=0), split_items(items, seed=0), split_items(items, seed=1)
    assert s0 == s1 and s0 != s2
    for part in ("val", "test"):
        labels = [it.label for it in s0[part]]
        assert labels.count("a") == 3 and labels.count("b") == 3 and labels.count("c") == 1
    assert sum(len(v) for v in s0.values()) == len(items)
    with pytest.raises(InvalidParameterError, match="splits"):
        split_items(items, (0.5, 0.2, 0.2))


# ---------------------------------------------------------------------------------------------
def test_bad_data_errors(tmp_path, folder):
    with pytest.raises(InvalidParameterError, match="does not exist"):
        load_items(tmp_path / "missing")
    one = _write_folder(tmp_path / "one", n=3, classes=("unsafe",))
    with pytest.raises(InvalidParameterError, match="only one class"):
        load_items(one)
    (tmp_path / "flat").mkdir()
    with pytest.raises(InvalidParameterError, match="no class sub-folders"):
        load_items(tmp_path / "flat")
    bad = tmp_path / "bad.csv"
    bad.write_text("path,class\na.png,safe\n")
    with pytest.raises(InvalidParameterError, match=r"lacks column\(s\) \['image', 'label'\]"):
        load_items(bad)
    bad_split = tmp_path / "bad_split.csv"
    bad_split.write_text("image,label,split\na.png,safe,holdout\nb.png,unsafe,train\n")
    with pytest.raises(InvalidParameterError, match="holdout"):
        load_items(bad_split)
    missing_files = tmp_path / "missing_files.csv"
    missing_files.write_text("image,label\na.png,safe\nb.png,unsafe\nc.png,unsafe\n")
    with pytest.raises(InvalidParameterError, match="do not exist"):
        train(missing_files, out=tmp_path / "m.json", **FAST)
    with pytest.raises(InvalidParameterError, match="epochs"):
        train(folder, out=tmp_path / "m.json", **{**FAST, "arch": ARCH}, epochs=0)
    with pytest.raises(ModelLoadError, match="unknown architecture"):
        train(folder, out=tmp_path / "m.json", **{**FAST, "arch": "no_such_net"})
    with pytest.raises(ModelLoadError, match="do not exist"):
        train(folder, out=tmp_path / "m.json", pretrained=tmp_path / "nope.pt", **FAST)
    with pytest.raises(InvalidParameterError, match="precision"):
        train(folder, out=tmp_path / "m.json", precision="fp8", **FAST)
    # every error is a VeilError and a ValueError
    assert issubclass(InvalidParameterError, VeilError) and issubclass(InvalidParameterError, ValueError)


def test_fine_tunes_from_local_state_dict(folder, tmp_path):
    from veil.classify.arch import build_model

    donor = build_model(ARCH, 5)  # different head size: must be replaced, the rest loaded
    torch.save(donor.state_dict(), tmp_path / "donor.pt")
    card = train(folder, out=tmp_path / "m.json", epochs=1, max_steps=1,
                 pretrained=tmp_path / "donor.pt", **FAST)
    info = card["training"]["pretrained"]
    assert info["loaded"] > 0 and info["skipped"]  # the 5-way head was skipped
    assert card["training"]["lr"] == 3e-3


# ---------------------------------------------------------------------------------------------
def test_cli_train(folder, tmp_path):
    import typer
    from typer.testing import CliRunner

    from veil.cli_train import register

    app = typer.Typer()
    register(app)

    @app.command("noop")  # a second command so that Typer keeps `train` as a sub-command
    def noop() -> None:  # pragma: no cover
        pass

    runner = CliRunner()
    out = tmp_path / "cli.json"
    res = runner.invoke(app, ["train", str(folder), "--arch", ARCH, "--out", str(out), "--input-size",
                              "32", "--epochs", "1", "--max-steps", "1", "--batch-size", "8",
                              "--unsafe-labels", "unsafe", "--no-progress", "--no-resume"])
    assert res.exit_code == 0, res.output
    assert "test:" in res.output and json.loads(out.read_text())["unsafe_labels"] == ["unsafe"]
    res = runner.invoke(app, ["train", str(tmp_path / "missing"), "--out", str(out)])
    assert res.exit_code == 2
    assert "does not exist" in res.output and "Traceback" not in res.output


def test_card_in_veil_scan_reproduces_recorded_test_accuracy(trained, folder, tmp_path):
    """The trained card loads in `veil scan`; its verdicts on the test split give the card's accuracy."""
    from typer.testing import CliRunner

    from veil.cli import app

    out, card = trained
    split = json.loads(out.with_suffix(".split.json").read_text())
    files = [str(folder / rel) for rel, _ in split["test"]]
    truth = {str(folder / rel): label for rel, label in split["test"]}
    res = CliRunner().invoke(app, ["scan", *files, "--model", str(out), "--out", str(tmp_path / "scan"),
                                   "--rationale", "none", "--no-overlays", "--no-report"])
    assert res.exit_code == 0, res.output
    records = [json.loads(x) for x in (tmp_path / "scan" / "results.jsonl").read_text().splitlines()]
    assert len(records) == len(files) and all(r["error"] is None for r in records)
    unsafe_labels = set(card["unsafe_labels"])
    correct = [r["unsafe"] == (truth[r["path"]] in unsafe_labels) for r in records]
    assert np.mean(correct) == pytest.approx(card["metrics"]["test"]["accuracy"])


# ---------------------------------------------------------------------------------------------
# defaults that let small objects be learnt (issue #17)
# ---------------------------------------------------------------------------------------------
def test_default_recipe():
    import inspect

    params = inspect.signature(train).parameters
    assert params["batch_size"].default == 64 and params["augment"].default == "flip"
    assert params["warmup"].default == 0.3 and params["lr"].default is None


def test_one_cycle_lr_warms_up_then_anneals():
    total, warm, peak = 100, 30, 2e-3
    lrs = [_one_cycle_lr(s, total, warm, peak) for s in range(total)]
    assert lrs[0] == pytest.approx(peak / 25)
    assert max(lrs) == pytest.approx(peak) and int(np.argmax(lrs)) == warm
    assert all(a < b for a, b in zip(lrs[:warm], lrs[1 : warm + 1], strict=True))  # rises
    assert all(a >= b for a, b in zip(lrs[warm:], lrs[warm + 1 :], strict=False))  # then falls
    assert _one_cycle_lr(total, total, warm, peak) == pytest.approx(peak / 100)
    assert _one_cycle_lr(0, total, 0, peak) == pytest.approx(peak)  # no warm-up: starts at the peak


def test_noise_margin_is_one_standard_error_of_the_validation_accuracy():
    assert _noise_margin(100)(0.9) == pytest.approx(0.03)
    assert _noise_margin(400)(0.5) == pytest.approx(0.025)
    assert _noise_margin(100)(1.0) == pytest.approx(0.01)  # at least one image
    assert _noise_margin(0)(0.5) == pytest.approx(1.0)  # guarded, not a division by zero


def test_card_keeps_the_latest_epoch_within_the_noise_of_the_best(trained):
    """kept_epoch is the last epoch whose val accuracy is within one standard error of the best so far,
    and the saved weights are that epoch's."""
    out, card = trained
    tr = card["training"]
    n_val = card["split"]["sizes"]["val"]
    best, expected = -1.0, 0
    for h in tr["history"]:
        acc = h["val_accuracy"]
        if acc > best + 1e-9:
            best, expected = acc, h["epoch"]
        elif acc >= best - _noise_margin(n_val)(best) - 1e-9:
            expected = h["epoch"]
    assert tr["kept_epoch"] == expected and 1 <= tr["kept_epoch"] <= tr["epochs_completed"]
    weights = torch.load(out.parent / card["weights"], weights_only=True)
    last = torch.load(out.with_suffix(".ckpt"), weights_only=False)["model"]
    same = all(torch.equal(weights[k], last[k].contiguous()) for k in weights)
    assert same == (tr["kept_epoch"] == tr["epochs_completed"])


def test_last_batch_is_kept_from_half_a_batch():
    assert _keeps_last_batch(800, 64) and _keeps_last_batch(768, 64) and _keeps_last_batch(20, 64)
    assert not _keeps_last_batch(790, 64)  # 22 left over: fewer than 32


@pytest.mark.parametrize(("batch_size", "steps", "kept"), [(12, 3, True), (10, 3, False)])
def test_steps_per_epoch_count_the_kept_last_batch(folder, tmp_path, batch_size, steps, kept):
    """32 training images: batches of 12 end with 8 (kept: 3 steps), of 10 with 2 (dropped: 3 steps)."""
    card = train(folder, out=tmp_path / "m.json", epochs=1, patience=None, **{**FAST, "batch_size": batch_size})
    assert card["training"]["steps"] == steps and card["training"]["last_batch_kept"] is kept
    assert card["training"]["history"][0]["images_per_second"] * card["training"]["history"][0]["train_seconds"] \
        == pytest.approx(32 if kept else 30, abs=0.01 * card["training"]["history"][0]["images_per_second"] + 0.2)


def _corner_object_image() -> np.ndarray:
    img = np.full((48, 64, 3), 90, np.uint8)
    img[2:8, 2:8] = (250, 10, 10)  # a small object (1 % of the image) in a corner
    return img


def test_default_augmentation_keeps_a_small_corner_object(tmp_path):
    """'flip' never crops: every draw still shows the whole object; 'crop' cuts some draws."""
    from PIL import Image

    (tmp_path / "unsafe").mkdir()
    Image.fromarray(_corner_object_image()).save(tmp_path / "unsafe" / "a.png")
    items = [Item("unsafe/a.png", "unsafe")]
    torch.manual_seed(0)
    mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    flip = _ImageDataset(tmp_path, items, {"unsafe": 0}, 32, mean, std, "flip")
    crop = _ImageDataset(tmp_path, items, {"unsafe": 0}, 32, mean, std, "crop")
    plain = _ImageDataset(tmp_path, items, {"unsafe": 0}, 32, mean, std, "none")[0][0]

    def red_pixels(t: torch.Tensor) -> int:
        return int(((t[0] > 0.8) & (t[1] < 0.2)).sum())

    full = red_pixels(plain)
    assert full > 0
    flips = [flip[0][0] for _ in range(40)]
    assert all(torch.equal(t, plain) or torch.equal(t, plain.flip(-1)) for t in flips)
    assert any(torch.equal(t, plain.flip(-1)) for t in flips)
    assert min(red_pixels(crop[0][0]) for _ in range(40)) < full  # the old default loses pixels


def test_hide_and_seek_greys_out_whole_grid_patches_and_keeps_the_label(tmp_path):
    """'hide' greys out grid patches (the normalisation mean, so 0 after it) and keeps the rest and the label."""
    from PIL import Image

    (tmp_path / "unsafe").mkdir()
    Image.fromarray(_corner_object_image()).save(tmp_path / "unsafe" / "a.png")
    items = [Item("unsafe/a.png", "unsafe")]
    mean, std = (0.2, 0.4, 0.6), (0.5, 0.5, 0.5)
    plain = _ImageDataset(tmp_path, items, {"unsafe": 0}, 32, mean, std, "none")[0][0]
    hide = _ImageDataset(tmp_path, items, {"unsafe": 0}, 32, mean, std, "hide")
    torch.manual_seed(0)
    shares = []
    for _ in range(60):
        t, label = hide[0]
        assert label == 0
        if not (torch.equal(t, plain) or torch.equal(t, plain.flip(-1))):
            same = torch.isclose(t, plain, atol=1e-6).all(0) | torch.isclose(t, plain.flip(-1), atol=1e-6).all(0)
            grey = (t.abs() < 1e-6).all(0)
            assert bool((same | grey).all())  # every pixel is kept or hidden, nothing else
            # hidden pixels come in whole patches of a 4, 8 or 16 grid: some grid tiles them exactly
            assert any(all(bool(grey[i * 32 // g:(i + 1) * 32 // g, j * 32 // g:(j + 1) * 32 // g].all())
                           or not bool(grey[i * 32 // g:(i + 1) * 32 // g, j * 32 // g:(j + 1) * 32 // g].any())
                           for i in range(g) for j in range(g)) for g in (4, 8, 16))
        shares.append(float((t.abs() < 1e-6).all(0).float().mean()))
    shares_t = torch.tensor(shares)
    assert 0.15 < float((shares_t == 0).float().mean()) < 0.45  # one draw in four hides nothing (or by chance)
    assert 0.25 < float(shares_t[shares_t > 0].mean()) < 0.75  # about half of the patches otherwise


def test_hide_and_seek_options():
    from veil.training.classifier import HideAndSeek

    t = torch.rand(3, 16, 16)
    assert torch.equal(HideAndSeek((0.0, 0.0, 0.0), p=0.0)(t), t)
    assert torch.equal(HideAndSeek((0.1, 0.2, 0.3), p=1.0, grids=(4,))(t)[:, 0, 0], torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(InvalidParameterError, match="p must"):
        HideAndSeek((0.0, 0.0, 0.0), p=1.5)
    with pytest.raises(InvalidParameterError, match="grids"):
        HideAndSeek((0.0, 0.0, 0.0), grids=())


def test_cached_images_match_decoded_ones(folder):
    _, items = load_items(folder)
    items = items[:6]
    args = (folder, items, {"safe": 0, "unsafe": 1}, 24, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "none")
    cached, decoded = _ImageDataset(*args, cache=True), _ImageDataset(*args, cache=False)
    assert cached.cached is not None and cached.cached.dtype == torch.uint8
    for i in range(len(items)):
        torch.testing.assert_close(cached[i][0], decoded[i][0], atol=0.5 / 255 / 0.25 + 1e-6, rtol=0)
        assert cached[i][1] == decoded[i][1]


def test_training_warnings():
    rising = [{"val_accuracy": a} for a in (0.5, 0.52, 0.58, 0.62, 0.66, 0.69, 0.71)]
    (msg,) = training_warnings(rising, chance=0.5)
    assert "rose from 0.58 to 0.71 in the last 4 epochs" in msg and "--epochs 14" in msg
    assert training_warnings(rising, chance=0.5, finished_by_epochs=False) == []  # early-stopped: not rising
    plateau = [{"val_accuracy": a} for a in (0.6, 0.9, 0.95, 0.96, 0.96, 0.96)]
    assert training_warnings(plateau, chance=0.5) == []
    (msg,) = training_warnings([{"val_accuracy": a} for a in (0.5, 0.53, 0.52)], chance=0.5)
    assert "near chance (best 0.53" in msg and "--find-lr" in msg
    # chance is the majority share: 0.8 accuracy on 80/20 data is chance too
    assert "near chance" in training_warnings([{"val_accuracy": 0.8}], chance=0.8)[0]
    assert training_warnings([], chance=0.5) == []


def test_run_near_chance_warns_and_records_it(folder, tmp_path):
    with pytest.warns(TrainingWarning, match="near chance"):
        card = train(folder, out=tmp_path / "m.json", epochs=1, patience=None, **{**FAST, "lr": 1e-9})
    assert "near chance" in card["training"]["warnings"][0]


def test_patience_does_not_count_warm_up_epochs(folder, tmp_path):
    """With patience 1 and (almost) no learning, a run still outlasts its warm-up before stopping."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrainingWarning)  # near chance, as intended here
        card = train(folder, out=tmp_path / "m.json", epochs=5, patience=1, warmup=0.5, bn_batches=0,
                     **{**FAST, "lr": 1e-9})
    # 4 steps per epoch, 20 steps, warm-up 10: epochs 1-2 end inside it and are never "bad"
    assert card["training"]["epochs_completed"] >= 3


def test_bad_recipe_options(folder, tmp_path):
    with pytest.raises(InvalidParameterError, match=r"augment must be one of \['crop', 'flip', 'hide', 'none'\]"):
        train(folder, out=tmp_path / "m.json", augment="mixup", **FAST)
    with pytest.raises(InvalidParameterError, match="warmup"):
        train(folder, out=tmp_path / "m.json", warmup=1.0, **FAST)
    with pytest.raises(InvalidParameterError, match="cache_mb"):
        train(folder, out=tmp_path / "m.json", cache_mb=-1, **FAST)


# ---------------------------------------------------------------------------------------------
def test_find_lr(folder, tmp_path):
    res = find_lr(folder, arch=ARCH, input_size=32, batch_size=8, num_steps=12, start_lr=1e-5, end_lr=1.0,
                  progress=False, plot=tmp_path / "lr.png")
    lrs = res["lrs"]
    assert lrs[0] == pytest.approx(1e-5) and all(a < b for a, b in zip(lrs, lrs[1:], strict=False))
    assert len(res["losses"]) == len(res["smoothed"]) == len(lrs)
    if not res["stopped_early"]:
        assert len(lrs) == 12 and lrs[-1] == pytest.approx(1.0)
    i_min = int(np.argmin(res["smoothed"]))
    assert res["min_loss_lr"] == pytest.approx(lrs[i_min])
    assert res["suggested_lr"] == pytest.approx(lrs[i_min] / 10, rel=0.05)
    assert (tmp_path / "lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InvalidParameterError, match="start_lr"):
        find_lr(folder, arch=ARCH, start_lr=1.0, end_lr=0.1, progress=False)


def test_find_lr_stops_when_the_loss_diverges(folder):
    res = find_lr(folder, arch=ARCH, input_size=32, batch_size=8, num_steps=40, start_lr=1e-3, end_lr=1e4,
                  progress=False)
    assert res["stopped_early"] and len(res["lrs"]) < 40
    assert res["suggested_lr"] < 1e4 / 10


def test_cli_find_lr(folder, tmp_path):
    import typer
    from typer.testing import CliRunner

    from veil.cli_train import register

    app = typer.Typer()
    register(app)

    @app.command("noop")
    def noop() -> None:  # pragma: no cover
        pass

    res = CliRunner().invoke(app, ["train", str(folder), "--arch", ARCH, "--input-size", "32", "--batch-size",
                                   "8", "--find-lr", "--find-lr-steps", "8", "--no-progress",
                                   "--out", str(tmp_path / "never.json")])
    assert res.exit_code == 0, res.output
    assert "suggested --lr" in res.output and "smoothed loss" in res.output
    assert not (tmp_path / "never.json").exists()  # a range test trains no card
