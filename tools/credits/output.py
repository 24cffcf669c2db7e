"""What the commands print: plain-text tables, JSON, and a progress bar on stderr."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from typing import Any, Optional, Sequence, TextIO


def _is_number(cell: str) -> bool:
    """Counts, percentages and the `-` of an empty figure are right-aligned."""
    return cell == "-" or cell.lstrip("-").rstrip("%").replace(".", "", 1).replace(",", "").isdigit()


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table: columns padded to their widest cell, numbers right-aligned."""
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if _is_number(cell) else cell.ljust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()

    return "\n".join([line(list(headers)), "  ".join("-" * w for w in widths)] + [line(row) for row in cells])


def write_table(out: TextIO, headers: Sequence[str], rows: Sequence[Sequence[Any]], end: str = "\n") -> None:
    out.write(render_table(headers, rows) + end)


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
