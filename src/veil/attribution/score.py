"""The unsafe score as a one-output ``torch.nn.Module``, for libraries that want a model.

Kept apart from :mod:`veil.attribution.cam` because it subclasses ``torch.nn.Module``: the
registry imports ``cam`` without torch, and this module only when a CAM method runs.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["UnsafeScoreModule"]

#: Log-odds above this are clipped before ``exp`` so that the odds stay finite in float32.
_MAX_LOG_ODDS = 80.0


class UnsafeScoreModule(torch.nn.Module):
    """``x ↦ classifier.torch_unsafe_score(x)[:, None]``: one output, the unsafe log-odds.

    With ``odds=True`` the output is ``exp(log-odds)`` instead: Ablation-CAM weighs
    a channel by ``(s - s_ablated) / s``, which needs ``s > 0``; on the odds this is
    ``1 - exp(-Δ)`` with ``Δ`` the drop in log-odds, monotone in ``Δ`` whatever its sign.
    """

    def __init__(self, classifier: Any, *, odds: bool = False) -> None:
        super().__init__()
        self.net = classifier.torch_module()  # registered so the library finds devices and layers
        self._score = classifier.torch_unsafe_score
        self.odds = odds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = self._score(x)
        if self.odds:
            score = torch.exp(score.clamp(max=_MAX_LOG_ODDS))
        return score[:, None]
