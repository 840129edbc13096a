"""What every ``veil`` command shell shares: the stderr console and the one user-error exit.

The shells (:mod:`veil.cli`, :mod:`veil.cli_train`, :mod:`veil.cli_explain`,
:mod:`veil.cli_moderator`, :mod:`veil.cli_bench`) turn a :class:`~veil.errors.VeilError` into
one line on stderr and exit code 2 through :func:`fail`, so that every command reports user
errors the same way.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from veil.errors import InvalidParameterError

if TYPE_CHECKING:
    from veil.pipeline import SafeguardConfig

__all__ = ["STAGES", "LightGroup", "RegistryHelpCommand", "err", "fail", "parse_floats", "parse_params", "pipeline_config",
           "registry_names"]

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


def _light_help_option(option: Any) -> Any:
    """Give the ``--help`` flag a pass-through coercion, so that parsing it never imports pydantic.

    Typer (0.29) coerces every parameter through a pydantic ``TypeAdapter`` built on first use,
    and it builds one for ``--help`` even when the flag is absent (value ``None``, which the
    coercion returns unchanged): that alone imports pydantic, 0.1–0.15 s of ``veil version``.
    A boolean flag's value is ``None`` or a ``bool``, which Typer's pass-through coercion
    returns as is, so the result is the same. Typers without these internals are left alone.
    """
    descriptor = getattr(option, "type_descriptor", None)
    if option is None or descriptor is None or getattr(option, "_runtime_param", False) is not None:
        return option
    if descriptor.annotation is not bool:
        return option
    try:
        from typer._coercion import PassThroughRuntimeParam
    except ImportError:  # pragma: no cover - another Typer: its own coercion applies
        return option
    option._runtime_param = PassThroughRuntimeParam(parameter_info=descriptor.parameter_info, annotation=bool)
    return option


class LightGroup(TyperGroup):
    """The ``veil`` group (and its sub-groups): ``--help`` of the group and of every command it
    resolves is parsed without importing pydantic (see :func:`_light_help_option`)."""

    def get_help_option(self, ctx: Any) -> Any:
        return _light_help_option(super().get_help_option(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            # Created now with the parent's help names (a child context inherits them) and
            # cached on the command, so the command's own parse reuses this option.
            _light_help_option(command.get_help_option(ctx))
        return command


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


# -- the pipeline's options, shared by every command that builds a Safeguarder (scan, serve) ------
#: Stages that take ``--param STAGE.NAME=VALUE`` options.
STAGES = ("attribution", "segmentation", "search", "extent", "style", "rationale")


def parse_params(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["segmentation.n_segments=50", "style.strength=0.1"]`` → per-stage option dicts.

    Examples
    --------
    >>> parse_params(["segmentation.n_segments=50", "extent.margin=2"])["extent"]
    {'margin': 2}
    """
    stages: dict[str, dict[str, Any]] = {stage: {} for stage in STAGES}
    for item in items:
        key, sep, raw = item.partition("=")
        stage, dot, name = key.partition(".")
        if not sep or not dot or stage not in stages or not name:
            raise InvalidParameterError(
                f"--param {item!r} must look like STAGE.NAME=VALUE with STAGE one of {', '.join(stages)}"
            )
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        stages[stage][name] = value
    return stages


def parse_floats(text: str, option: str) -> tuple[float, ...]:
    """``"30,60"`` → ``(30.0, 60.0)``; ``"none"`` or ``""`` → ``()``.

    Examples
    --------
    >>> parse_floats("30,60", "--coarser")
    (30.0, 60.0)
    """
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise InvalidParameterError(f"{option} takes comma-separated numbers or 'none', got {text!r}") from None


# Typer reads an option's declaration from its annotation; a command takes the pipeline's options
# as ``model: ModelOpt = ["nudenet"]`` … and hands them to :func:`pipeline_config`. Help texts name
# registries as ``{kind}`` placeholders (the command needs ``cls=RegistryHelpCommand``).
ModelOpt = Annotated[list[str], typer.Option(
    "--model", "-m",
    help="Classifier: a registered name ({classifier}) or a model card JSON ({card_format}). Repeat for several.")]
AttributionOpt = Annotated[str, typer.Option(help="Attribution method: {attribution}.")]
SegmentationOpt = Annotated[str, typer.Option(help="Segmenter: {segmentation}.")]
MergeOpt = Annotated[float | None, typer.Option(
    help="Join touching segments whose mean Lab colours differ by less than this (0: off; default "
         "{merge_defaults}, off for the others).")]
SegmentSizeOpt = Annotated[int, typer.Option(
    help="Segment on a copy whose longer side is at most this many pixels (0: full resolution).")]
CoarserOpt = Annotated[str, typer.Option(
    help="Comma-separated larger merge thresholds retried before failing closed ('none': fail closed at once).")]
SearchSizeOpt = Annotated[int, typer.Option(
    help="Attribute, segment and search on a copy whose longer side is at most this many pixels; the mask is "
         "scaled back and the full-size result re-classified (0: full resolution).")]
SearchOpt = Annotated[str, typer.Option(help="Search strategy: {search}.")]
StyleOpt = Annotated[str, typer.Option(help="Obfuscation style: {style}.")]
ExtentOpt = Annotated[str, typer.Option(
    help="How much to hide ({extent}): object (the whole object that carried the evidence, grown to the "
         "segments and smooth patches attached to it, also behind an outline, part by part, then a second look at "
         "tiles of the delivered image; -p extent.complete=none, -p extent.tiles=0 for less area) or minimal (the "
         "search's regions only, the paper's).")]
MaxDepthOpt = Annotated[int, typer.Option(help="Most regions to obfuscate before failing closed.")]
ThresholdOpt = Annotated[float | None, typer.Option(
    help="Unsafe threshold for every model (default: each model's own, 0.5).")]
BatchSizeOpt = Annotated[int, typer.Option(help="Candidate images classified per batch during the search.")]
SeedOpt = Annotated[int, typer.Option(help="Seed for randomized stages; recorded in each result.")]
ParamOpt = Annotated[list[str], typer.Option(
    "--param", "-p",
    help="Stage option STAGE.NAME=VALUE (STAGE: " + ", ".join(STAGES) + "), e.g. segmentation.n_segments=50. "
         "Repeatable.")]
RationaleOpt = Annotated[str, typer.Option(
    help="Rationale backend explaining each result: {rationale} (grounded is offline), or none.")]
MaxPixelsOpt = Annotated[int, typer.Option(help="Refuse images with more pixels (decompression-bomb guard).")]


def pipeline_config(*, model: list[str], attribution: str, segmentation: str, merge: float | None,
                    segment_size: int, coarser: str, search_size: int, search: str, style: str, extent: str,
                    max_depth: int, threshold: float | None, batch_size: int, seed: int, param: list[str],
                    rationale: str, max_pixels: int) -> SafeguardConfig:
    """The :class:`~veil.pipeline.SafeguardConfig` of the pipeline's command-line options (``0`` sizes: none)."""
    from veil.pipeline import SafeguardConfig

    stages = parse_params(param)
    return SafeguardConfig(
        models=tuple(model), attribution=attribution, segmentation=segmentation, search=search, extent=extent,
        style=style, max_depth=max_depth, threshold=threshold, batch_size=batch_size, seed=seed,
        merge=merge, segment_size=segment_size or None, coarser=parse_floats(coarser, "--coarser"),
        search_size=search_size or None, max_pixels=max_pixels,
        rationale=None if rationale.lower() == "none" else rationale,
        attribution_options=stages["attribution"], segmentation_options=stages["segmentation"],
        search_options=stages["search"], extent_options=stages["extent"], style_options=stages["style"],
        rationale_options=stages["rationale"],
    )
