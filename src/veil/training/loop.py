"""The one training loop of every trainer: steps, epochs, evaluation, early stopping, checkpoints.

:func:`fit` runs it; a trainer keeps only what is specific to its model: how a batch is made
(``batches``), what one step does (``step``), what an epoch's evaluation measures
(``evaluate``) and what a checkpoint holds (``save``). :func:`check_checkpoint` is the one
check that a checkpoint belongs to the run asked for.

Resume rule (every trainer)
---------------------------
With ``resume=True`` (the default of ``veil train``, ``train-moderator``) a trainer whose
checkpoint exists restores the model, the optimizer and the loop state saved with it, after
:func:`check_checkpoint` has confirmed that the settings that shape the run (data, model,
batch size, learning rate, seed, …) are the same; otherwise it stops with an error that names
the settings that differ and says ``--no-resume``. :func:`fit` then continues at the saved
step, inside the saved epoch, so a resumed run takes the same steps as an uninterrupted one.
A run that finished at a limit (its ``epochs``, or ``total_steps``) goes on when that limit is
raised; a run stopped early (``patience``) stays stopped. ``resume=False`` starts over.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from veil.errors import InvalidParameterError

__all__ = ["check_checkpoint", "fit", "new_loop_state", "optimizer_step"]


def optimizer_step(loss: Any, optimizer: Any, parameters: Iterable[Any], *, step: int, lr: float,
                   clip: float = 1.0) -> float:
    """One optimisation step on ``loss``: backward, clip the gradient norm, step; returns the loss.

    A non-finite loss stops training with an error naming the step and the learning rate
    (the usual cause), instead of silently filling the weights with NaN.

    Examples
    --------
    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = torch.optim.SGD([w], lr=0.1)
    >>> optimizer_step((w ** 2).sum(), opt, [w], step=0, lr=0.1)
    1.0
    >>> round(w.item(), 3)  # the gradient 2 clipped to norm 1
    0.9
    """
    import torch

    if not torch.isfinite(loss):
        raise InvalidParameterError(f"loss became {float(loss.detach())} at step {step}; lower lr (now {lr})")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(parameters, clip)
    optimizer.step()
    return round(float(loss.detach()), 6)


def new_loop_state() -> dict[str, Any]:
    """The loop's counters at the start of a run (what :func:`fit` updates and a checkpoint saves).

    ``epoch``: epochs completed; ``batch``: batches done in the current epoch; ``step``: optimizer
    steps in all; ``best_score`` / ``best_tiebreak`` / ``best_epoch``: the best evaluation;
    ``kept_epoch``: the epoch whose weights ``on_improve`` saved last (the best, or with
    ``keep_within`` a later one as good up to the margin); ``bad_epochs``: evaluations since it; ``finished`` / ``stop_reason``; ``elapsed_s``: training
    time summed over calls; ``history``: one record per epoch.

    Examples
    --------
    >>> new_loop_state()["step"], new_loop_state()["finished"]
    (0, False)
    """
    return {"epoch": 0, "batch": 0, "step": 0, "best_score": -math.inf, "best_tiebreak": math.inf,
            "best_epoch": 0, "kept_epoch": 0, "bad_epochs": 0, "history": [], "finished": False, "stop_reason": None,
            "elapsed_s": 0.0}


def check_checkpoint(saved: Mapping[str, Any] | None, config: Mapping[str, Any], where: str) -> None:
    """Refuse to resume from a checkpoint whose run ``config`` differs from this run's.

    Raises
    ------
    InvalidParameterError
        Naming the checkpoint, the settings that differ and the way out (``--no-resume``).

    Examples
    --------
    >>> check_checkpoint({"lr": 0.1, "seed": 0}, {"lr": 0.1, "seed": 0}, "m.ckpt")
    >>> check_checkpoint({"lr": 0.1}, {"lr": 0.2}, "m.ckpt")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    veil.errors.InvalidParameterError: checkpoint 'm.ckpt' belongs to a different run (differs in ['lr']); ...
    """
    saved = dict(saved or {})
    if saved == dict(config):
        return
    diff = sorted(k for k in {*config, *saved} if saved.get(k) != config.get(k))
    raise InvalidParameterError(
        f"checkpoint {where!r} belongs to a different run (differs in {diff}); delete it, use another "
        "output, or pass resume=False (--no-resume) to start over"
    )


def fit(
    step: Callable[[Any, dict[str, Any]], Mapping[str, float]],
    batches: Callable[[int, int], Iterable[Any]],
    *,
    epochs: int,
    steps_per_epoch: int,
    state: dict[str, Any] | None = None,
    evaluate: Callable[[int, Mapping[str, float], float], dict[str, Any]] | None = None,
    monitor: str = "score",
    on_improve: Callable[[dict[str, Any]], None] | None = None,
    keep_within: Callable[[float], float] | None = None,
    patience: int | None = None,
    patience_after_step: int = 0,
    save: Callable[[dict[str, Any]], None] | None = None,
    save_every: int | None = None,
    max_steps: int | None = None,
    total_steps: int | None = None,
    progress: Any = None,
    name: str = "train",
    describe: Callable[[Mapping[str, float], float], str] | None = None,
    report: Callable[[dict[str, Any], dict[str, Any]], str] | None = None,
) -> tuple[dict[str, Any], str | None]:
    """Run (or resume) a training loop; returns the loop state and why this call stopped.

    Each epoch ``e`` (from 1) draws its batches from ``batches(e, start)`` (``start``: batches
    of that epoch already done, when a checkpoint was saved inside it) and calls
    ``step(batch, state)`` on each; ``step`` returns numbers (sums over the batch, e.g. the
    loss times the batch size and the count) that are added up over the epoch. At the end of
    an epoch ``evaluate(epoch, sums, train_seconds)`` returns the epoch's history record; its
    ``"score"`` (higher is better; ties broken by a lower ``"tiebreak"``; both taken out of the
    record) decides whether the epoch is the best so far (``on_improve(state)`` then saves the
    weights) and early stopping. With ``keep_within``, an epoch that is not better but scores within
    ``keep_within(best_score)`` of the best is *kept* too (``on_improve`` is called and
    ``state["kept_epoch"]`` set; the best score and early stopping are unchanged), so the weights
    saved are those of the latest epoch as good as the best up to that margin. ``patience`` evaluations without a better one stop the run, counted only
    once ``state["step"]`` exceeds ``patience_after_step`` (a warm-up). ``save(state)`` writes
    a checkpoint after every epoch, every ``save_every`` steps and when the run stops.

    Parameters
    ----------
    step, batches, evaluate, on_improve, save
        The trainer's model-specific parts (see above).
    epochs, steps_per_epoch : int
        Length of the run.
    state : dict, optional
        The loop state restored from a checkpoint (default :func:`new_loop_state`); it is
        updated in place. A run finished at its ``epochs`` or ``total_steps`` limit reopens
        when the limit is now higher; one stopped early stays stopped.
    keep_within : callable, optional
        The margin (a function of the best score, e.g. one standard error of an accuracy)
        within which a later epoch replaces the best one's saved weights.
    monitor : str
        What the score is, for the early-stopping reason (``"val accuracy"``).
    max_steps : int, optional
        Steps in this call; the epoch is then cut short, evaluated, counted and checkpointed
        (``veil train --max-steps``).
    total_steps : int, optional
        Steps of the whole run; reaching it finishes the run (inside an epoch, too).
    progress : rich.progress.Progress, optional
        From :func:`veil.training.progress.make_progress`; ``describe(sums, seconds)`` writes
        the bar's info, ``report(record, state)`` a console line per evaluated epoch.
    name : str
        The bar's label.

    Returns
    -------
    state : dict
        The loop state (as saved in the last checkpoint).
    stop_reason : str or None
        ``"reached epochs"``, ``"early stop: …"``, ``"max_steps=N reached"`` or the saved reason.

    Examples
    --------
    >>> seen = []
    >>> state, why = fit(lambda b, s: {"n": 1.0}, lambda e, start: range(start, 3), epochs=2,
    ...                  steps_per_epoch=3, evaluate=lambda e, sums, t: seen.append(sums["n"]) or {})
    >>> state["step"], state["epoch"], why, seen
    (6, 2, 'reached epochs', [3.0, 3.0])
    """
    if int(epochs) < 1 or int(steps_per_epoch) < 1:
        raise InvalidParameterError(f"epochs and steps_per_epoch must be at least 1, got {epochs} and {steps_per_epoch}")
    if patience is not None and evaluate is None:
        raise InvalidParameterError("patience needs an evaluate function that returns a 'score'")
    st = new_loop_state() if state is None else state
    st.setdefault("kept_epoch", st.get("best_epoch", 0))  # a checkpoint from before kept_epoch existed
    for key, value in new_loop_state().items():
        st.setdefault(key, value)
    reason = st.get("stop_reason")
    if st["finished"] and (reason == "reached epochs" and epochs > st["epoch"]
                           or str(reason).startswith("reached total_steps")
                           and (total_steps is None or total_steps > st["step"])):
        st["finished"] = False  # asked for more than the finished run had
    limit = int(epochs) * int(steps_per_epoch)
    if total_steps is not None:
        limit = min(limit, int(total_steps))
    task = progress.add_task(name, total=limit, completed=min(st["step"], limit), info="") if progress else None
    steps_this_call = 0
    stop_reason: str | None = reason
    while not st["finished"] and st["epoch"] < epochs and st["step"] < limit:
        epoch = st["epoch"] + 1
        t_epoch = time.monotonic()
        sums: dict[str, float] = {}
        cut_short = capped = exhausted = False
        for batch in batches(epoch, int(st["batch"])):
            for k, v in step(batch, st).items():
                sums[k] = sums.get(k, 0.0) + v
            st["step"] += 1
            st["batch"] += 1
            steps_this_call += 1
            if task is not None:
                progress.update(task, advance=1, info=describe(sums, time.monotonic() - t_epoch) if describe else "")
            capped = st["step"] >= limit
            cut_short = max_steps is not None and steps_this_call >= max_steps
            if capped or cut_short or st["batch"] >= steps_per_epoch:
                break
            if save is not None and save_every and st["step"] % save_every == 0:
                save(st)
        else:  # fewer batches than steps_per_epoch: the epoch is over all the same
            exhausted = True
        train_s = time.monotonic() - t_epoch
        epoch_over = st["batch"] >= steps_per_epoch or cut_short or exhausted
        if epoch_over:
            _end_epoch(st, epoch, sums, train_s, cut_short, evaluate=evaluate, on_improve=on_improve,
                       patience_after_step=patience_after_step, keep_within=keep_within)
            if patience is not None and st["bad_epochs"] >= patience:
                st["finished"], stop_reason = True, f"early stop: no better {monitor} for {patience} epochs"
            elif epoch >= epochs:
                st["finished"], stop_reason = True, "reached epochs"
        if not st["finished"] and capped:
            st["finished"], stop_reason = True, f"reached total_steps={limit}"
        st["elapsed_s"] = float(st["elapsed_s"]) + time.monotonic() - t_epoch
        if epoch_over:
            st["history"][-1]["seconds"] = round(time.monotonic() - t_epoch, 2)
        st["stop_reason"] = stop_reason
        if save is not None:
            save(st)
        if epoch_over and report is not None and progress is not None and not getattr(progress, "disable", False):
            progress.console.print(report(st["history"][-1], st), highlight=False)
        if cut_short:
            stop_reason = f"max_steps={max_steps} reached"
            break
    return st, stop_reason


def _end_epoch(st: dict[str, Any], epoch: int, sums: Mapping[str, float], train_s: float, cut_short: bool, *,
               evaluate: Callable[[int, Mapping[str, float], float], dict[str, Any]] | None,
               on_improve: Callable[[dict[str, Any]], None] | None, patience_after_step: int,
               keep_within: Callable[[float], float] | None = None) -> dict[str, Any]:
    """Evaluate a finished (or cut-short) epoch, track the best one and append the history record."""
    record: dict[str, Any] = {"epoch": epoch, "steps": st["step"]}
    record.update(evaluate(epoch, sums, train_s) if evaluate is not None else {})
    if "score" in record:
        score = float(record.pop("score"))
        tie = float(record.pop("tiebreak", 0.0))
        improved = (score > st["best_score"] + 1e-9
                    or (abs(score - st["best_score"]) <= 1e-9 and tie < st["best_tiebreak"]))
        if improved:
            st.update(best_score=score, best_tiebreak=tie, best_epoch=epoch, kept_epoch=epoch, bad_epochs=0)
            if on_improve is not None:
                on_improve(st)
        else:
            if keep_within is not None and score >= st["best_score"] - keep_within(st["best_score"]) - 1e-9:
                st["kept_epoch"] = epoch  # as good as the best within the margin, and later
                if on_improve is not None:
                    on_improve(st)
            if st["step"] > patience_after_step:  # a plateau while the lr still rises is no reason to stop
                st["bad_epochs"] += 1
    record["cut_short"] = cut_short
    st["epoch"] = epoch
    st["batch"] = 0
    st["history"].append(record)
    return record
