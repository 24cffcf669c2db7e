"""`credits refund USER SPEND_KEY [--amount N]`: give a spend's (or a captured hold's) credits back,
by the same rules as `POST /refunds`."""

from __future__ import annotations

import argparse
from typing import TextIO

from shared.spending import holds_service
from shared.spending.refunds import DEFAULT_DESCRIPTION, RefundRequest

from ..common import EXIT_OK, add_command, add_user_argument
from ..output import emit_json, write_table


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 1 <= value <= 1_000_000_000:
        raise argparse.ArgumentTypeError("the amount must be 1 to 1,000,000,000")
    return value


def add_parser(subparsers):
    p = add_command(subparsers, "refund", help="give a spend's credits back (all that remains, or --amount)")
    add_user_argument(p)
    p.add_argument("spend_key", metavar="SPEND_KEY", help="the idempotency key the spend was made with (or a hold id)")
    p.add_argument("--amount", type=_positive, help="how many credits (default: all that remains unrefunded)")
    p.add_argument("--description", default=DEFAULT_DESCRIPTION)
    p.add_argument("--idempotency-key", help="makes the refund safe to repeat")
    return p


def run(args, out: TextIO, err: TextIO) -> int:
    request = RefundRequest(args.user_id, args.spend_key, args.amount, args.description, args.idempotency_key)
    result = holds_service.refund(request)
    if args.json:
        emit_json(out, {**result.body, "replayed": result.replayed})
    else:
        body = result.body
        write_table(out, ["field", "value"], [
            ["refunded", body["amount"]], ["refunded_total", body["refunded_total"]],
            ["refundable", body["refundable"]], ["balance", body["balance"]["balance"]],
        ])
    return EXIT_OK
