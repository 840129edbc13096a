"""The documentation's links: every relative link of README.md and docs/*.md names a file that exists, and
every ``#anchor`` a heading of that file (GitHub's rule for heading ids), so that moving a section or a file
cannot leave a reader at a dead link."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
# [text](target) and ![alt](target); the target ends at whitespace or the closing parenthesis
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _outside_code(text: str) -> list[str]:
    """The lines of ``text`` outside fenced code blocks, with inline code spans blanked."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            out.append(re.sub(r"`[^`]*`", "", line))
    return out


def slug(heading: str) -> str:
    """GitHub's id of a heading: lower case, punctuation dropped (letters, digits, ``-``, ``_`` and spaces
    kept), each space a hyphen.

    >>> slug("Extent (`bench/extent.py`)")
    'extent-benchextentpy'
    >>> slug("#12 at a glance")
    '12-at-a-glance'
    """
    text = heading.strip().lower()
    kept = "".join(c for c in text if c in "-_ " or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading id of ``page`` (a repeated heading's later ids get ``-1``, ``-2``, … as on GitHub)."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        m = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(page: Path) -> list[tuple[int, str]]:
    """``(line number among the lines outside code, target)`` of each relative link of ``page``."""
    found = []
    for i, line in enumerate(_outside_code(page.read_text(encoding="utf-8")), 1):
        for target in _LINK.findall(line):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # (http:, https:, mailto: are not checked)
                found.append((i, target))
    return found


def test_the_pages_have_links_to_check() -> None:
    # (a pattern that matched nothing would make the test below pass on any text)
    assert len(PAGES) >= 10
    assert sum(len(links(p)) for p in PAGES) > 50
    assert "extent-benchextentpy" in anchors(ROOT / "docs" / "benchmarks.md")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    broken = []
    for line, target in links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{line}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{line}: {target} (no heading with that id)")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_a_broken_link_and_a_broken_anchor_are_found(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title: one\n\n[ok](#title-one) [gone](#nope) [file](missing.md) `[code](x.md)`\n"
                    "```\n[fenced](y.md)\n```\n", encoding="utf-8")
    assert links(page) == [(3, "#title-one"), (3, "#nope"), (3, "missing.md")]
    assert anchors(page) == {"title-one"}
