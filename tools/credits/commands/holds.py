"""`credits holds list USER` (a user's open holds) and `credits holds sweep` (release every
expired hold now, page by page, the same work the scheduled sweep does)."""

from __future__ import annotations

import argparse
from typing import TextIO

from shared.spending import holds_service

from ..common import EXIT_OK, add_command, user_id_argument
from ..output import emit_json, write_table

# A run stops after this many pages, so one command never runs unbounded.
MAX_PAGES = 100


def add_parser(subparsers):
    p = add_command(subparsers, "holds", help="list a user's open holds, or release expired holds (sweep)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="a user's open holds, soonest expiry first")
    listing.add_argument("user_id", metavar="USER", type=user_id_argument)
    sweep = actions.add_parser("sweep", help="release every expired hold")
    sweep.add_argument("--limit", type=int, default=200, help="holds per page (default 200)")
    for sub in (listing, sweep):
        sub.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON instead of a table")
    return p


def run(args, out: TextIO, err: TextIO) -> int:
    if args.action == "list":
        rows = holds_service.open_holds(args.user_id)
        if args.json:
            emit_json(out, {"user_id": args.user_id, "holds": rows})
        else:
            write_table(out, ["hold_id", "amount", "expires_at", "description"],
                        [[r["hold_id"], r["amount"], r["expires_at"], r["description"]] for r in rows],
                        wrap=["description"])
        return EXIT_OK
    released = users = pages = 0
    more = True
    while more and pages < MAX_PAGES:
        page = holds_service.sweep(max(1, min(args.limit, 1000)))
        released, users, more, pages = released + page["released"], users + page["users"], page["more"], pages + 1
    body = {"released": released, "users": users, "pages": pages, "more": more}
    if args.json:
        emit_json(out, body)
    else:
        write_table(out, ["field", "value"], [[k, v] for k, v in body.items()])
    return EXIT_OK
