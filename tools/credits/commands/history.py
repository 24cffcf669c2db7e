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
    rows = [
        [t["created_at"], t["type"], t["pool"], t["amount"], t["description"], t["source"], t["transaction_id"]]
        for t in page["transactions"]
    ]
    write_table(out, ["created_at", "type", "pool", "amount", "description", "source", "transaction_id"], rows)
    if page["next_page_token"]:
        out.write(f"\nmore: credits history {args.user_id} --limit {args.limit} --page-token {page['next_page_token']}\n")
    return EXIT_OK
