"""Relative links and anchors in README.md, SECURITY.md and docs/*.md lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`[^`]*`")
EXTERNAL = ("http://", "https://", "mailto:")


def markdown_files() -> list[Path]:
    """The README, SECURITY.md and every Markdown file of docs/."""
    return [ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").glob("*.md"))]


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, where links and headings live."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to -."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor, with GitHub's -1, -2 for repeated headings."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(text):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = github_slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def broken_links(path: Path) -> list[str]:
    """Each relative link of ``path`` whose file or #anchor does not exist."""
    problems = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        for target in LINK.findall(INLINE_CODE.sub("", line)):
            if target.startswith(EXTERNAL):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                problems.append(f"{path.name}: {target}: no such file")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(
                linked.read_text(encoding="utf-8")
            ):
                problems.append(f"{path.name}: {target}: no such heading")
    return problems


def test_every_relative_link_and_anchor_resolves() -> None:
    """Every relative link in README.md and docs/*.md names an existing file and heading."""
    problems = [p for path in markdown_files() for p in broken_links(path)]
    assert problems == []


def test_a_broken_link_or_anchor_is_reported(tmp_path: Path) -> None:
    """A link to a missing file or a missing heading is reported; a good one is not."""
    (tmp_path / "other.md").write_text("# Other\n\n## What counts: `one`\n", encoding="utf-8")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Doc\n\n[ok](other.md#what-counts-one) [self](#doc) [web](https://x.example)\n"
        "[gone](missing.md) [nohead](other.md#nowhere)\n"
        "```sh\n[in code](missing-too.md)\n```\n",
        encoding="utf-8",
    )
    assert broken_links(doc) == [
        "doc.md: missing.md: no such file",
        "doc.md: other.md#nowhere: no such heading",
    ]


def test_github_slugs() -> None:
    """Headings become GitHub's anchors: code marks and punctuation go, spaces become -."""
    assert github_slug("HTTP ingest (`advisering serve`)") == "http-ingest-advisering-serve"
    assert github_slug("CPR numbers: what counts as one") == "cpr-numbers-what-counts-as-one"
    assert anchors("# A\n## A\n") == {"a", "a-1"}
