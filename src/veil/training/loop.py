"""Pieces of the training loop every trainer shares."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from veil.errors import InvalidParameterError

__all__ = ["optimizer_step"]


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
