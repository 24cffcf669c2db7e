"""`credits reconcile`: every user's pools and totals checked against their transactions."""

from __future__ import annotations

from typing import TextIO

from shared.operations import reconciliation

from ..common import EXIT_OK, EXIT_PROBLEMS, add_command
from ..output import Progress, emit_json, write_table


def add_parser(subparsers):
    p = add_command(
        subparsers,
        "reconcile",
        help="check every user's pools and totals against their transactions",
        description=(
            "Stream every user and every transaction (ordered by user) and compare each pool, and the "
            "totals, with the records. Drift is re-checked with a consistent read of that user before it "
            "is reported. Exit code 1 if any drift is found."
        ),
    )
    p.add_argument("--page-size", type=int, default=500, help="documents read per request (default 500)")
    p.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    return p


def run(args, out: TextIO, err: TextIO) -> int:
    bar = Progress(err, "reconcile: users", None, enabled=not args.no_progress)
    report = reconciliation.reconcile(
        page_size=args.page_size,
        progress=lambda r: bar.update(r.users, f"transactions {r.transactions}"),
        progress_every=args.page_size,
    )
    bar.close()
    if args.json:
        emit_json(out, report.as_dict())
    else:
        if report.drift:
            rows = [[d.user_id, d.field, d.stored, d.ledger, d.difference, d.note] for d in report.drift]
            write_table(out, ["user_id", "field", "stored", "ledger", "difference", "note"], rows, end="\n\n",
                        wrap=["note"])
        users_with_drift = len({d.user_id for d in report.drift})
        out.write(
            f"{report.users} users, {report.transactions} transactions, {report.legacy_users} legacy (not yet migrated); "
            f"{users_with_drift} users with drift;\n{report.owing_users} users owe {report.credits_owed} credits "
            "taken back by Stripe\n"
        )
    return EXIT_PROBLEMS if report.drift else EXIT_OK
