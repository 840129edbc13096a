"""What the CLI shells share: one error exit, help and choices generated from the registries."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from veil.cli import app
from veil.cli_common import fail, registry_names
from veil.segment import SEGMENTERS

runner = CliRunner()


def _plain(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─]", " ", text))


def test_fail_prints_one_line_and_exits_2(capsys):
    with pytest.raises(typer.Exit) as info:
        fail(ValueError("labels must be one of [sexual, violence], got [spam]"))
    assert info.value.exit_code == 2
    err = capsys.readouterr().err
    # brackets in the message are text, not Rich markup
    assert err.strip() == "error: labels must be one of [sexual, violence], got [spam]"


def test_registry_names_come_from_the_registries():
    names = registry_names()
    assert names["segmentation"] == ", ".join(SEGMENTERS.names())
    assert names["merge_defaults"] == "12 for bass and bass_guided"
    for kind in ("attribution", "search", "style", "extent", "rationale", "attack", "classifier", "card_format"):
        assert names[kind], kind


@pytest.mark.parametrize("argv", [["scan", "--help"], ["explain", "--help"], ["bench", "obfuscation", "--help"]])
def test_help_lists_registered_names_without_placeholders(argv):
    result = runner.invoke(app, argv, terminal_width=400)
    assert result.exit_code == 0, result.output
    text = _plain(result.output)
    assert not any("{" + key + "}" in text for key in registry_names()), text
    if argv[0] != "explain":
        for name in SEGMENTERS.names():
            assert name in text
    else:
        assert "grounded, openai, transformers" in text


def test_every_shell_reports_a_user_error_the_same_way(tmp_path):
    result = runner.invoke(app, ["train-moderator", str(tmp_path / "missing.jsonl"), "--base-model",
                                 str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("error: ")
