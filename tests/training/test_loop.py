"""veil.training.loop.fit and veil.training.cards: a linear model whose training is known exactly."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from veil.errors import InvalidParameterError
from veil.training.cards import write_card, write_json_atomic
from veil.training.loop import check_checkpoint, fit, new_loop_state, optimizer_step

X = torch.tensor(np.random.default_rng(0).normal(size=(24, 3)), dtype=torch.float32)
Y = X @ torch.tensor([1.0, -2.0, 0.5])


class Run:
    """A seeded least-squares run whose model, optimizer and loop state can be checkpointed."""

    def __init__(self, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.w = torch.nn.Parameter(torch.zeros(3))
        self.opt = torch.optim.SGD([self.w], lr=0.05, momentum=0.9)
        self.seed = seed
        self.evals: list[int] = []

    def batches(self, epoch: int, start: int):
        order = np.random.default_rng([self.seed, epoch]).permutation(len(X))
        for b in range(start * 4, len(X), 4):
            yield order[b : b + 4]

    def step(self, idx, st):
        loss = ((X[idx] @ self.w - Y[idx]) ** 2).mean()
        return {"loss": optimizer_step(loss, self.opt, [self.w], step=st["step"], lr=0.05) * len(idx),
                "n": float(len(idx))}

    def evaluate(self, epoch, sums, seconds):
        self.evals.append(epoch)
        with torch.no_grad():
            val = float(((X @ self.w - Y) ** 2).mean())
        return {"train_loss": sums["loss"] / sums["n"], "val_loss": val, "score": -val}

    def save(self, path: Path):
        def _save(st):
            torch.save({"w": self.w.detach().clone(), "opt": self.opt.state_dict(), "state": st}, path)
        return _save

    def restore(self, path: Path) -> dict:
        ckpt = torch.load(path, weights_only=False)
        with torch.no_grad():
            self.w.copy_(ckpt["w"])
        self.opt.load_state_dict(ckpt["opt"])
        return ckpt["state"]


def test_fit_runs_epochs_steps_and_evaluations():
    run = Run()
    state, why = fit(run.step, run.batches, epochs=3, steps_per_epoch=6, evaluate=run.evaluate)
    assert (state["epoch"], state["step"], why, state["finished"]) == (3, 18, "reached epochs", True)
    assert run.evals == [1, 2, 3] and [h["epoch"] for h in state["history"]] == [1, 2, 3]
    vals = [h["val_loss"] for h in state["history"]]
    assert "score" not in state["history"][0] and state["best_epoch"] == 1 + int(np.argmin(vals))
    assert state["history"][-1]["val_loss"] < state["history"][0]["val_loss"] < float((Y**2).mean())


@pytest.mark.parametrize("stop_at", [5, 9])  # inside an epoch (mid-epoch checkpoint) and after one
def test_resumed_run_equals_uninterrupted_run(tmp_path, stop_at):
    straight = Run()
    s_state, _ = fit(straight.step, straight.batches, epochs=3, steps_per_epoch=6, evaluate=straight.evaluate)

    ckpt = tmp_path / "run.ckpt"
    first = Run()
    st, why = fit(first.step, first.batches, epochs=3, steps_per_epoch=6, evaluate=first.evaluate,
                  save=first.save(ckpt), save_every=1, total_steps=stop_at)
    assert st["step"] == stop_at and why == f"reached total_steps={stop_at}"
    second = Run()
    with torch.no_grad():
        second.w.fill_(5.0)  # everything must come from the checkpoint
    restored = second.restore(ckpt)
    assert restored["step"] == stop_at
    r_state, why = fit(second.step, second.batches, epochs=3, steps_per_epoch=6, evaluate=second.evaluate,
                       state=restored, save=second.save(ckpt))
    assert why == "reached epochs" and r_state["step"] == 18
    torch.testing.assert_close(second.w.detach(), straight.w.detach(), rtol=0, atol=0)
    assert [h["val_loss"] for h in r_state["history"]] == [h["val_loss"] for h in s_state["history"]]


def test_finished_run_reopens_only_when_its_limit_rises():
    run = Run()
    state, _ = fit(run.step, run.batches, epochs=1, steps_per_epoch=6, evaluate=run.evaluate)
    state, why = fit(run.step, run.batches, epochs=1, steps_per_epoch=6, state=state, evaluate=run.evaluate)
    assert state["step"] == 6 and why == "reached epochs"  # nothing more to do
    state, why = fit(run.step, run.batches, epochs=2, steps_per_epoch=6, state=state, evaluate=run.evaluate)
    assert state["step"] == 12 and state["epoch"] == 2


def test_early_stopping_stops_and_respects_warm_up():
    run = Run()

    def flat(epoch, sums, seconds):
        return {"score": 1.0, "tiebreak": 0.0}  # never improves after epoch 1

    state, why = fit(run.step, run.batches, epochs=10, steps_per_epoch=6, evaluate=flat, patience=2,
                     monitor="val accuracy")
    assert state["epoch"] == 3 and why == "early stop: no better val accuracy for 2 epochs"
    stopped = dict(state)
    state, why = fit(run.step, run.batches, epochs=20, steps_per_epoch=6, evaluate=flat, patience=2,
                     state=state, monitor="val accuracy")
    assert state["epoch"] == stopped["epoch"] and why.startswith("early stop")  # stays stopped
    run = Run()
    state, _ = fit(run.step, run.batches, epochs=10, steps_per_epoch=6, evaluate=flat, patience=2,
                   patience_after_step=30)  # epochs ending at steps 6..30 are warm-up
    assert state["epoch"] == 7


@pytest.mark.parametrize(("keep_within", "saved_at", "kept"), [
    (None, [1, 2], 2),  # only a better score saves
    (0.03, [1, 2, 3, 5], 5),  # later epochs within 0.03 of the best (0.9) save too; 0.7 does not
])
def test_keep_within_keeps_the_latest_epoch_as_good_as_the_best(keep_within, saved_at, kept):
    scores = iter([0.5, 0.9, 0.88, 0.7, 0.89])
    run, saved = Run(), []

    def evaluate(epoch, sums, seconds):
        return {"score": next(scores)}

    state, _ = fit(run.step, run.batches, epochs=5, steps_per_epoch=6, evaluate=evaluate, patience=10,
                   on_improve=lambda st: saved.append(st["epoch"] + 1),
                   keep_within=None if keep_within is None else (lambda best: keep_within))
    assert saved == saved_at and state["kept_epoch"] == kept
    # the best score, its epoch and the early-stopping count do not depend on keep_within
    assert state["best_epoch"] == 2 and state["best_score"] == 0.9 and state["bad_epochs"] == 3


def test_a_checkpoint_without_kept_epoch_keeps_its_best_epoch():
    old = {k: v for k, v in new_loop_state().items() if k != "kept_epoch"}
    old.update(epoch=3, step=18, best_epoch=2, best_score=0.9, finished=True, stop_reason="reached epochs")
    state, _ = fit(Run().step, Run().batches, epochs=3, steps_per_epoch=6, state=old)
    assert state["kept_epoch"] == 2


def test_max_steps_cuts_the_epoch_short_and_improvement_hook_runs():
    run, saved = Run(), []
    state, why = fit(run.step, run.batches, epochs=3, steps_per_epoch=6, evaluate=run.evaluate, max_steps=4,
                     on_improve=lambda st: saved.append(st["epoch"] + 1))
    assert why == "max_steps=4 reached" and state["epoch"] == 1 and state["step"] == 4
    assert state["history"][0]["cut_short"] and saved == [1] and not state["finished"]


def test_fit_rejects_bad_options():
    run = Run()
    with pytest.raises(InvalidParameterError, match="epochs and steps_per_epoch"):
        fit(run.step, run.batches, epochs=0, steps_per_epoch=6)
    with pytest.raises(InvalidParameterError, match="patience needs an evaluate"):
        fit(run.step, run.batches, epochs=1, steps_per_epoch=6, patience=2)
    assert new_loop_state()["history"] == []


def test_check_checkpoint_names_what_differs():
    check_checkpoint({"lr": 0.1, "seed": 0}, {"lr": 0.1, "seed": 0}, "a.ckpt")
    with pytest.raises(InvalidParameterError, match=r"differs in \['lr'\].*--no-resume"):
        check_checkpoint({"lr": 0.1, "seed": 0}, {"lr": 0.2, "seed": 0}, "a.ckpt")
    with pytest.raises(InvalidParameterError, match=r"differs in \['seed'\]"):
        check_checkpoint(None, {"seed": 0}, "a.ckpt")


def test_write_card_is_atomic_and_validated(tmp_path, monkeypatch):
    path = tmp_path / "m.json"
    card = write_card(path, {"type": "demo", "labels": ["a", "b"]}, metrics={"test": {"accuracy": 0.5}},
                      training={"steps": 2}, started=0.0)
    assert json.loads(path.read_text()) == card and card["training"]["steps"] == 2
    assert card["training"]["wall_time_this_call_s"] > 0 and card["metrics"]["test"]["accuracy"] == 0.5

    def refuse(c, p):
        raise InvalidParameterError(f"{p}: bad card")

    with pytest.raises(InvalidParameterError, match="bad card"):
        write_card(path, {"type": "other"}, validate=refuse)
    with pytest.raises(InvalidParameterError, match="not JSON-serialisable"):
        write_card(path, {"type": "demo", "bad": object()})
    # a failed write (the rename) leaves the old file whole and no temporary file behind
    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_json_atomic(path, {"type": "new"})
    assert json.loads(path.read_text()) == card and sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]
