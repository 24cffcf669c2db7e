"""`credits history USER`: a user's transactions, newest first, a page at a time."""

from __future__ import annotations

from typing import TextIO

from shared.common import errors
from shared.spending import service as spending

from ..common import EXIT_OK, add_command, add_user_argument
from ..output import emit_json, write_table


def add_parser(subparsers):
    p = add_command(subparsers, "history", help="a user's transactions, newest first, a page at a time")
    add_user_argument(p)
    p.add_argument("--limit", type=int, default=20, help="records per page, 1 to 100 (default 20)")
    p.add_argument("--page-token", help="the token printed under the previous page")
    return p


def run(args, out: TextIO, err: TextIO) -> int:
    if not 1 <= args.limit <= 100:
        raise errors.InvalidRequest(
            "--limit must be from 1 to 100",
            fields=[{"field": "limit", "problem": "must be from 1 to 100"}])
    page = spending.history(args.user_id, args.limit, args.page_token)
    if args.json:
        emit_json(out, page)
        return EXIT_OK
    # The table fits 100 columns: whole times to the second and whole types (never cut), no
    # transaction ids (both are in --json); descriptions wrap, sources are cut.
    rows = [
        [_second(t["created_at"]), t["type"], t["pool"], t["amount"], t["description"], t["source"]]
        for t in page["transactions"]
    ]
    write_table(out, ["created_at (UTC)", "type", "pool", "amount", "description", "source"], rows,
                wrap=["description"], keep=["created_at (UTC)", "type"])
    if page["next_page_token"]:
        out.write(f"\nmore: credits history {args.user_id} --limit {args.limit} --page-token {page['next_page_token']}\n")
    return EXIT_OK


def _second(created_at) -> str:
    """`2026-03-01T09:00:00.123456Z` as `2026-03-01 09:00:00`."""
    text = str(created_at)
    return text[:19].replace("T", " ") if len(text) >= 19 else text
