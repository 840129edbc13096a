"""train-vlm checkpoints and resumes in veil.training.loop.fit: a resumed run equals an uninterrupted one."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from tests.rationale.test_train_vlm import setup  # noqa: E402,F401  (the module fixture)
from veil.errors import InvalidParameterError  # noqa: E402
from veil.rationale.train_vlm import train_vlm  # noqa: E402


def test_resumed_run_equals_uninterrupted_run(setup):  # noqa: F811
    root, model_dir, data = setup
    opts = dict(model_dir=model_dir, epochs=3, lr=3e-3, batch_size=3, seed=0, device="cpu", progress=False)
    straight = train_vlm(data, out=root / "straight", **opts)
    assert straight["steps"] == 6 and straight["resumed_from"] is None  # 4 examples, batch 3: 2 steps an epoch
    assert not (root / "straight" / "checkpoint.pt").exists()  # no checkpoint unless asked for

    out = root / "interrupted"
    first = train_vlm(data, out=out, max_steps=3, save_every=1, **opts)  # stops inside epoch 2
    assert first["steps"] == 3 and (out / "checkpoint.pt").is_file()
    resumed = train_vlm(data, out=out, save_every=1, resume=True, **opts)
    assert resumed["resumed_from"] == 3 and resumed["steps"] == 6
    assert resumed["losses"] == pytest.approx(straight["losses"], rel=1e-5)

    with pytest.raises(InvalidParameterError, match=r"differs in \['lr'\].*no-resume"):
        train_vlm(data, out=out, resume=True, **{**opts, "lr": 1e-3})
    with pytest.raises(InvalidParameterError, match="save_every"):
        train_vlm(data, out=out, save_every=0, **opts)


def test_cli_train_vlm_checkpoints_and_resumes(setup):  # noqa: F811
    import json

    from typer.testing import CliRunner

    from veil.cli import app

    root, model_dir, data = setup
    args = ["train-vlm", str(data), "--model-dir", str(model_dir), "--out", str(root / "cli-resume"),
            "--lr", "1e-4", "--device", "cpu", "--save-every", "1", "--epochs", "2"]
    res = CliRunner().invoke(app, [*args, "--max-steps", "1"])
    assert res.exit_code == 0, res.output
    assert (root / "cli-resume" / "checkpoint.pt").is_file()
    res = CliRunner().invoke(app, [*args, "--max-steps", "2", "--resume"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout[res.stdout.index("{"):])
    assert report["resumed_from"] == 1 and report["steps"] == 2
