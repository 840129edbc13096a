"""Build torchvision / timm classification architectures by name, without downloading weights."""

from __future__ import annotations

from typing import Any

from veil.errors import ModelLoadError


def build_model(arch: str, num_classes: int, *, source: str | None = None, **kwargs: Any) -> Any:
    """Instantiate ``arch`` with a fresh ``num_classes`` head and random weights.

    ``source`` is ``"torchvision"``, ``"timm"`` or None (torchvision first, then timm).
    Weights are never fetched: load a local ``state_dict`` afterwards.

    Examples
    --------
    >>> m = build_model("resnet18", 2)
    >>> m.fc.out_features
    2
    """
    if source not in (None, "torchvision", "timm"):
        raise ModelLoadError(f"source must be 'torchvision', 'timm' or None, got {source!r}")
    errors: list[str] = []
    if source in (None, "torchvision"):
        import torchvision

        if arch in torchvision.models.list_models():
            return torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **kwargs)
        errors.append("torchvision")
    if source in (None, "timm"):
        import timm

        if timm.is_model(arch):
            return timm.create_model(arch, pretrained=False, num_classes=num_classes, **kwargs)
        errors.append("timm")
    raise ModelLoadError(
        f"unknown architecture {arch!r} (looked in {' and '.join(errors)}); "
        "use a name from torchvision.models.list_models() or timm.list_models()"
    )
