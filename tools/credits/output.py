"""What the commands print: plain-text tables, JSON, and a progress bar on stderr."""

from __future__ import annotations

import json
import textwrap
from datetime import date, datetime, timezone
from typing import Any, Optional, Sequence, TextIO


WIDTH = 100
ELLIPSIS = "…"
_GAP = "  "
# A text column is not narrowed below this (or its header), so what is left stays readable.
_MIN_TEXT = 10
# A wrapped column loses nothing, so it keeps more room: a narrow one would be a tall column.
_MIN_WRAPPED = 30


def _is_number(cell: str) -> bool:
    """Counts, percentages and the `-` of an empty figure are right-aligned."""
    return cell == "-" or cell.lstrip("-+").rstrip("%").replace(".", "", 1).replace(",", "").isdigit()


def _cut(cell: str, width: int) -> str:
    return cell if len(cell) <= width else cell[: max(width - 1, 0)] + ELLIPSIS


def _wrap(cell: str, width: int) -> list[str]:
    lines = textwrap.wrap(cell, width, break_long_words=True, break_on_hyphens=False) or [""]
    return lines


def _fit(natural: list[int], floors: list[int], order: list[int], width: int) -> list[int]:
    """Column widths within `width`: the widest of a group's columns narrowed a character at a
    time, each down to its floor, then the next group's; columns in no group keep their width."""
    widths = list(natural)
    excess = sum(widths) + len(_GAP) * (len(widths) - 1) - width
    for group in order:
        while excess > 0:
            room = [i for i in group if widths[i] > floors[i]]
            if not room:
                break
            widest = max(room, key=lambda i: widths[i])
            widths[widest] -= 1
            excess -= 1
    return widths


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], wrap: Sequence[str] = (),
                 width: int = WIDTH, keep: Sequence[str] = ()) -> str:
    """A plain-text table of at most `width` characters a line: numbers right-aligned; when too
    wide, the widest text columns are narrowed: those named in `wrap` wrap onto more lines, the
    others are cut with an ellipsis. Number columns, and the columns named in `keep` (times,
    names an operator types back), are never narrowed.
    A header may span lines ("monthly\\ngranted"); header lines are aligned at the bottom."""
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    head = [h.split("\n") for h in headers]
    depth = max((len(h) for h in head), default=1)
    head = [[""] * (depth - len(h)) + h for h in head]
    natural = [max(len(line) for line in h) for h in head]
    numeric = [bool(cells) for _ in headers]
    for row in cells:
        for i, cell in enumerate(row):
            natural[i] = max(natural[i], len(cell))
            numeric[i] = numeric[i] and (cell == "" or _is_number(cell))
    names = [h.replace("\n", " ").strip() for h in headers]
    wrapped = [i for i, name in enumerate(names) if name in wrap]
    kept = [i for i, name in enumerate(names) if name in keep]
    others = [i for i in range(len(headers)) if i not in wrapped and i not in kept and not numeric[i]]
    floors = [min(natural[i], max(_MIN_WRAPPED if i in wrapped else _MIN_TEXT, max(len(line) for line in head[i])))
              for i in range(len(headers))]
    # The widest text column is narrowed first, so the long ones end up sharing the room.
    widths = _fit(natural, floors, [wrapped + others], width)
    # Still too wide: text columns go below their floor (the header is cut too) rather than
    # a line passing the width.
    widths = _fit(widths, [widths[i] if numeric[i] or i in kept else 1 for i in range(len(widths))],
                  [wrapped + others], width)

    def line(row: Sequence[str]) -> str:
        return _GAP.join(
            cell.rjust(widths[i]) if numeric[i] and cell else cell.ljust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()

    out = [line([_cut(h[level], widths[i]) for i, h in enumerate(head)]) for level in range(depth)]
    out.append(_GAP.join("-" * w for w in widths))
    for row in cells:
        parts = [_wrap(cell, widths[i]) if i in wrapped else [_cut(cell, widths[i])] for i, cell in enumerate(row)]
        for level in range(max(len(p) for p in parts)):
            out.append(line([p[level] if level < len(p) else "" for p in parts]))
    return "\n".join(out)


def write_table(out: TextIO, headers: Sequence[str], rows: Sequence[Sequence[Any]], end: str = "\n",
                wrap: Sequence[str] = (), keep: Sequence[str] = ()) -> None:
    out.write(render_table(headers, rows, wrap=wrap, keep=keep) + end)


def _plain(value: Any) -> Any:
    """What JSON cannot hold as it is: a timestamp (Firestore's included) as ISO 8601 UTC with `Z`."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def emit_json(out: TextIO, value: Any) -> None:
    out.write(json.dumps(value, indent=2, default=_plain, ensure_ascii=False) + "\n")


class Progress:
    """A progress bar on stderr: redrawn in place on a terminal, a line per step otherwise."""

    def __init__(self, stream: TextIO, label: str, total: Optional[int], enabled: bool = True) -> None:
        self.stream, self.label, self.total, self.enabled = stream, label, total, enabled
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.drawn = False

    def update(self, done: int, detail: str = "") -> None:
        if not self.enabled:
            return
        if self.total:
            fraction = min(done / self.total, 1.0)
            bar = "#" * int(fraction * 30)
            text = f"{self.label} [{bar:<30}] {done}/{self.total} {fraction:6.1%} {detail}".rstrip()
        else:
            text = f"{self.label} {done} {detail}".rstrip()
        if self.tty:
            self.stream.write("\r\x1b[2K" + text)
            self.drawn = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.drawn:
            self.stream.write("\n")
            self.stream.flush()
