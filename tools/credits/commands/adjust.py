"""`credits adjust USER`: a correction to one pool by hand, recorded as an `adjustment`."""

from __future__ import annotations

import os
from typing import TextIO

from shared.operations import adjustments

from ..common import EXIT_OK, add_command, add_user_argument, login
from ..output import emit_json, write_table


def add_parser(subparsers):
    p = add_command(
        subparsers,
        "adjust",
        help="correct a pool by hand (an `adjustment` transaction)",
        description=(
            "Add (positive --amount) or remove (negative --amount) credits in one pool, recorded as an "
            "`adjustment` transaction with the operator and reason, and an audit document in "
            "credit_adjustments. A pool never goes below zero. The same --idempotency-key again changes nothing."
        ),
    )
    add_user_argument(p)
    p.add_argument("--pool", required=True, choices=["monthly", "permanent"])
    p.add_argument("--amount", required=True, type=int, help="signed number of credits, not 0 (use --amount=-50 to remove)")
    p.add_argument("--reason", required=True, help="why, for the record (1 to 400 characters)")
    p.add_argument(
        "--operator",
        default=os.environ.get("CREDITS_OPERATOR") or login(),
        help="who is adjusting (default: $CREDITS_OPERATOR, else your login name)",
    )
    p.add_argument("--idempotency-key", help="makes a re-run (after a timeout, say) change nothing")
    return p


def run(args, out: TextIO, err: TextIO) -> int:
    result = adjustments.adjust(
        args.user_id, args.pool, args.amount, args.reason, args.operator, idempotency_key=args.idempotency_key
    )
    if args.json:
        emit_json(out, result.as_dict())
        return EXIT_OK
    t, b = result.transaction, result.balance
    verb = "already applied (same idempotency key); nothing changed" if result.replayed else "applied"
    out.write(f"adjustment {result.adjustment_id} {verb}\n")
    write_table(
        out,
        ["transaction_id", "pool", "amount", "description"],
        [[t["transaction_id"], t["pool"], t["amount"], t["description"]]],
        end="\n\n",
        wrap=["description"],
    )
    write_table(
        out,
        ["credits_monthly", "credits_permanent", "balance"],
        [[b["credits_monthly"], b["credits_permanent"], b["balance"]]],
    )
    return EXIT_OK
