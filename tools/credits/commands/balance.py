"""`credits balance USER`: a user's pools and totals, as the balance endpoint returns them, and
what the user owes (credits taken back by Stripe refunds or disputes that the pools could not cover)."""

from __future__ import annotations

from typing import TextIO

from shared.spending import service as spending

from ..common import EXIT_OK, add_command, add_user_argument
from ..output import emit_json, write_table


def add_parser(subparsers):
    p = add_command(subparsers, "balance", help="a user's pools and totals")
    add_user_argument(p)
    return p


def run(args, out: TextIO, err: TextIO) -> int:
    body = {**spending.balance(args.user_id), **spending.owed(args.user_id)}
    if args.json:
        emit_json(out, body)
    else:
        rows = [[key, "-" if value is None else value] for key, value in body.items() if key != "credits_owed_by"]
        write_table(out, ["field", "value"], rows, keep=["field"])
        if body["credits_owed_by"]:
            # The debts a row per source, in the order the next grants pay them (oldest source id first).
            out.write("\n")
            write_table(out, ["owed for", "credits"], sorted(body["credits_owed_by"].items()))
    return EXIT_OK
