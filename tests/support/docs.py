"""The project's documentation as tests read it: README.md and every docs/**/*.md, wherever a guide
lives now, so a test of what the docs promise keeps working when text moves between them.

Rules enforced here: a section runs from its heading to the next heading of the same or a higher
level; shell commands are read from fenced code blocks only, one logical line each (a trailing
backslash joins the next line), comments after ` # ` dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
_FENCE = re.compile(r"^\s*```")


def guide_files() -> list[Path]:
    """README.md and every Markdown file under docs/, README first."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@dataclass(frozen=True)
class Section:
    path: Path
    heading: str
    text: str


def sections(title: str) -> list[Section]:
    """Every section whose heading is `title` (case-insensitive), in any guide file."""
    found = []
    for path in guide_files():
        lines = path.read_text(encoding="utf-8").splitlines()
        fenced = False
        for index, line in enumerate(lines):
            if _FENCE.match(line):
                fenced = not fenced
            match = None if fenced else _HEADING.match(line)
            if not match or match.group(2).strip().lower() != title.lower():
                continue
            level = len(match.group(1))
            end, inner = len(lines), False
            for later in range(index + 1, len(lines)):
                if _FENCE.match(lines[later]):
                    inner = not inner
                heading = None if inner else _HEADING.match(lines[later])
                if heading and len(heading.group(1)) <= level:
                    end = later
                    break
            found.append(Section(path, match.group(2), "\n".join(lines[index:end])))
    return found


def code_blocks(text: str) -> list[str]:
    """The contents of the fenced code blocks in `text`."""
    blocks, current = [], None
    for line in text.splitlines():
        if _FENCE.match(line):
            if current is None:
                current = []
            else:
                blocks.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def shell_lines(text: str) -> list[str]:
    """Every command line of the code blocks in `text`, continuations joined, comments dropped."""
    commands = []
    for block in code_blocks(text):
        pending = ""
        for raw in block.splitlines():
            line = pending + raw.strip()
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            pending = ""
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def all_text() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in guide_files())


# `<!-- runnable -->`, or `<!-- runnable: prints "TEXT" -->` (or 'TEXT') when what the block prints must hold TEXT.
_RUNNABLE = re.compile(r"""^<!--\s*runnable(?::\s*prints\s+(?:"(?P<double>[^"]*)"|'(?P<single>[^']*)'))?\s*-->$""")


@dataclass(frozen=True)
class Runnable:
    code: str
    prints: str | None  # what its output must contain, when the guide says


def runnable_examples(text: str) -> list[Runnable]:
    """The code blocks of `text` marked runnable: the line right before the opening fence is
    `<!-- runnable -->` or `<!-- runnable: prints "TEXT" -->` (indented blocks, as in a list item,
    are dedented)."""
    found, lines = [], text.splitlines()
    for index, line in enumerate(lines[:-1]):
        marker, fence = _RUNNABLE.match(line.strip()), lines[index + 1]
        if not marker or not _FENCE.match(fence):
            continue
        indent = len(fence) - len(fence.lstrip())
        body = []
        for later in lines[index + 2:]:
            if _FENCE.match(later):
                break
            body.append(later[indent:] if later[:indent].strip() == "" else later)
        else:
            raise AssertionError(f"a runnable block is never closed: {fence!r}")
        prints = marker.group("double") if marker.group("double") is not None else marker.group("single")
        found.append(Runnable("\n".join(body), prints))
    return found


def runnable_blocks(text: str) -> list[str]:
    """The code of the runnable blocks of `text`, in order."""
    return [example.code for example in runnable_examples(text)]

def runnable_guides() -> list[Path]:
    """The guides whose runnable blocks are run against a local stack: the README's first spend, then
    the tutorial, then the how-to guides."""
    docs = ROOT / "docs"
    return [ROOT / "README.md", docs / "tutorial.md", *sorted((docs / "how-to").rglob("*.md"))]
