"""`credits report --from DATE --to DATE`: pool usage per UTC day, as a table, JSON, CSV or a PNG chart."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TextIO

from shared.common import errors
from shared.operations import usage
from shared.operations.usage_rules import usage_totals

from .. import report_render as render
from ..common import EXIT_OK, add_command, parse_date
from ..output import emit_json, render_table

MAX_REPORT_DAYS = 3660


def add_parser(subparsers):
    p = add_command(
        subparsers,
        "report",
        help="pool usage per day: granted, spent, expired, spend share",
        description=(
            "Per UTC day and pool: credits granted (subscription, add-on, promo and positive adjustments, "
            "net of pack refunds and disputes), "
            "spent (less refunds), expired (monthly_expired) and other (migrations, negative adjustments), "
            "and each pool's share of the day's spending. Both dates are included."
        ),
    )
    p.add_argument("--from", dest="start", required=True, type=parse_date, metavar="DATE", help="first day, YYYY-MM-DD")
    p.add_argument("--to", dest="end", type=parse_date, metavar="DATE", help="last day, YYYY-MM-DD (default today, UTC)")
    p.add_argument("--format", choices=["table", "csv", "png"], default="table", help="default table")
    p.add_argument("--output", metavar="FILE", help="write to FILE (required for png)")
    return p


def run(args, out: TextIO, err: TextIO) -> int:
    start, end = args.start, args.end or datetime.now(timezone.utc).date()
    if end < start:
        raise errors.InvalidRequest("--to is before --from", fields=[{"field": "to", "problem": "is before --from"}])
    if (end - start).days + 1 > MAX_REPORT_DAYS:
        raise errors.InvalidRequest(
            f"a report covers at most {MAX_REPORT_DAYS} days",
            fields=[{"field": "from", "problem": f"more than {MAX_REPORT_DAYS} days before --to"}])
    if args.format == "png" and not args.output:
        raise errors.InvalidRequest(
            "--format png needs --output FILE",
            fields=[{"field": "output", "problem": "required with --format png"}])

    days = usage.usage(start, end)
    rows = [day.as_dict() for day in days]
    total = usage_totals(days, start).as_dict()
    total["date"] = "total"
    if args.format == "png":
        render.to_png(days, args.output, f"Credit pool usage {start} to {end} (UTC)")
        err.write(f"wrote {args.output}\n")
        return EXIT_OK
    if args.format == "csv":
        _print(args, out, err, render.to_csv(rows), newline="")
        return EXIT_OK
    if args.json:
        emit_json(out, {"from": start.isoformat(), "to": end.isoformat(), "days": rows, "total": total})
        return EXIT_OK
    headers, cells = render.table_rows(rows + [total])
    _print(args, out, err, render_table(headers, cells) + "\n")
    return EXIT_OK


def _print(args, out: TextIO, err: TextIO, text: str, newline: str | None = None) -> None:
    """To --output FILE if given (saying so on stderr), else to stdout."""
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline=newline) as handle:
            handle.write(text)
        err.write(f"wrote {args.output}\n")
    else:
        out.write(text)
