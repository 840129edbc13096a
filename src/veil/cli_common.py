"""What every ``veil`` command shell shares: the stderr console and the one user-error exit.

The shells (:mod:`veil.cli`, :mod:`veil.cli_train`, :mod:`veil.cli_explain`,
:mod:`veil.cli_moderator`, :mod:`veil.cli_bench`) turn a :class:`~veil.errors.VeilError` into
one line on stderr and exit code 2 through :func:`fail`, so that every command reports user
errors the same way.
"""

from __future__ import annotations

from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand

__all__ = ["RegistryHelpCommand", "err", "fail", "registry_names"]

#: Progress, status and errors go to stderr; stdout stays for data.
err = Console(stderr=True)


def fail(exc: BaseException | str) -> NoReturn:
    """Print ``error: <exc>`` as one line on stderr and exit with code 2 (a user error).

    Examples
    --------
    >>> import pytest
    >>> with pytest.raises(typer.Exit):
    ...     fail("bad value")  # doctest: +SKIP
    """
    err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def registry_names() -> dict[str, str]:
    """Comma-separated registered names per kind, for CLI help (the registries are the one source).

    Keys: ``attribution``, ``segmentation``, ``search``, ``style``, ``extent``, ``rationale``,
    ``attack``, ``classifier``, ``card_format`` and ``merge_defaults`` (the segmenters that
    register a colour merge, e.g. ``"12 for bass and bass_guided"``).
    """
    from veil.attribution import ATTRIBUTIONS
    from veil.bench.attacks import ATTACKS
    from veil.classify import CARD_FORMATS, CLASSIFIERS
    from veil.counterfactual import EXTENTS, SEARCHES, STYLES
    from veil.rationale.base import RATIONALE_BACKENDS
    from veil.segment import SEGMENTERS

    merged: dict[float, list[str]] = {}
    for name in SEGMENTERS.names():
        if SEGMENTERS.get(name).default_merge:
            merged.setdefault(SEGMENTERS.get(name).default_merge, []).append(name)
    merge_defaults = "; ".join(f"{level:g} for {' and '.join(names)}" for level, names in merged.items())
    regs: dict[str, Any] = {"attribution": ATTRIBUTIONS, "segmentation": SEGMENTERS, "search": SEARCHES,
                            "style": STYLES, "extent": EXTENTS, "rationale": RATIONALE_BACKENDS,
                            "attack": ATTACKS, "classifier": CLASSIFIERS, "card_format": CARD_FORMATS}
    out = {kind: ", ".join(reg.names()) for kind, reg in regs.items()}
    out["merge_defaults"] = merge_defaults or "none"
    return out


class RegistryHelpCommand(TyperCommand):
    """A command whose option help may name registries: ``help="Segmenter: {segmentation}."``.

    The placeholders (keys of :func:`registry_names`) are filled when help is shown, so the
    choices come from the registries and importing the CLI stays light.
    """

    _filled = False

    def _fill(self) -> None:
        if self._filled:
            return
        names = registry_names()
        for param in self.params:
            text = getattr(param, "help", None)
            if text and "{" in text:
                param.help = text.format(**names)  # type: ignore[attr-defined]
        self._filled = True

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._fill()
        super().format_help(ctx, formatter)
