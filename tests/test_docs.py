"""The documentation's links: every relative link of README.md, docs/*.md and examples/**/*.md names a file
that exists, and every ``#anchor`` a heading of that file (GitHub's rule for heading ids), so that moving a
section or a file cannot leave a reader at a dead link."""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "examples").rglob("*.md")])
# [text](target) and ![alt](target); the target ends at whitespace or the closing parenthesis
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _outside_code(text: str, *, blank_spans: bool = True) -> list[tuple[int, str]]:
    """``(line number, line)`` of the lines of ``text`` outside fenced code blocks (``` or ~~~), inline code
    spans blanked (``blank_spans``)."""
    out, fence = [], ""
    for i, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^\s*(`{3,}|~{3,})", line)
        if m and (not fence or m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence)):
            fence = "" if fence else m.group(1)
            continue
        if not fence:
            out.append((i, re.sub(r"(`+).*?\1", "", line) if blank_spans else line))
    return out


def slug(heading: str) -> str:
    """GitHub's id of a heading: lower case, punctuation dropped (letters, digits, marks, ``-``, ``_`` and
    spaces kept), each space a hyphen."""
    text = heading.strip().lower()
    kept = "".join(c for c in text if c in "-_ " or unicodedata.category(c)[0] in "LNM")
    return kept.replace(" ", "-")


@cache  # (a page is read once however many links name it)
def anchors(page: Path) -> frozenset[str]:
    """Every heading id of ``page`` (a repeated heading's later ids get ``-1``, ``-2``, … as on GitHub)."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    text = page.read_text(encoding="utf-8")
    for _, line in _outside_code(text, blank_spans=False):  # (a heading's code spans count: their text is in its id)
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return frozenset(out)


def links(page: Path) -> list[tuple[int, str]]:
    """``(line number, target)`` of each relative link of ``page`` (outside code)."""
    found = []
    for i, line in _outside_code(page.read_text(encoding="utf-8")):
        for target in _LINK.findall(line):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # (http:, https:, mailto: are not checked)
                found.append((i, target))
    return found


def broken(page: Path) -> list[str]:
    """The relative links of ``page`` whose file does not exist or whose ``#anchor`` no heading of it has."""
    out = []
    for line, target in links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            out.append(f"{line}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            out.append(f"{line}: {target} (no heading with that id)")
    return out


def test_slug_follows_githubs_rule() -> None:
    assert slug("Extent (`bench/extent.py`)") == "extent-benchextentpy"
    assert slug("#12 at a glance") == "12-at-a-glance"
    assert slug("`minimal` and the default, side by side") == "minimal-and-the-default-side-by-side"
    assert slug("Speed: ours vs plain at equal settings (fullgrad / bass / greedy)") == (
        "speed-ours-vs-plain-at-equal-settings-fullgrad--bass--greedy")
    assert slug("Default classifiers (`bench/default_policy.py`)") == "default-classifiers-benchdefault_policypy"


def test_the_pages_have_links_to_check() -> None:
    # (a pattern that matched nothing would make the test below pass on any text)
    assert len(PAGES) >= 10
    assert sum(len(links(p)) for p in PAGES) > 50
    assert "extent-benchextentpy" in anchors(ROOT / "docs" / "benchmarks.md")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    bad = broken(page)
    assert not bad, f"{page.relative_to(ROOT)}: " + "; ".join(bad)


def test_a_broken_link_and_a_broken_anchor_are_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other `page`\n\n## Other `page`\n```\n# not a heading\n```\n",
                                       encoding="utf-8")
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(b"")
    page = tmp_path / "page.md"
    page.write_text("# Title: one\n\n[ok](#title-one) [gone](#nope) [file](missing.md) `[code](x.md)`\n"
                    "```\n[fenced](y.md)\n```\n"
                    "[there](other.md#other-page-1) [not there](other.md#other-page-2) ![pic](img/a.png)\n"
                    "![no pic](img/b.png) [web](https://example.com/x.md)\n", encoding="utf-8")
    assert links(page)[:3] == [(3, "#title-one"), (3, "#nope"), (3, "missing.md")]
    assert anchors(page) == {"title-one"} and anchors(tmp_path / "other.md") == {"other-page", "other-page-1"}
    assert broken(page) == ["3: #nope (no heading with that id)", "3: missing.md (no such file)",
                            "7: other.md#other-page-2 (no heading with that id)", "8: img/b.png (no such file)"]
