"""`credits reconcile`: every user's pools and totals, and the documents derived from their
transactions (give-back totals, holds, add-on payments), checked against their transactions."""

from __future__ import annotations

import os
from typing import TextIO

from shared.common import errors
from shared.operations import corrections, reconciliation
from shared.operations.reconcile_rules import ACCOUNT, RECORD, Drift, correction

from ..common import EXIT_OK, EXIT_PROBLEMS, add_command, login
from ..output import Progress, emit_json, write_table


def add_parser(subparsers):
    p = add_command(
        subparsers,
        "reconcile",
        help="check every user's pools, totals, refunds, holds and payments against their transactions",
        description=(
            "Stream every user and every transaction (ordered by user) and compare each pool, and the "
            "totals, with the records; and each spend's refunded totals (spend_refunds), each hold "
            "(credit_holds) and each add-on payment (stripe_payments) with the records derived from them; "
            "and that each user's records are numbered 1..n (seq) with balance_after the running pools. "
            "Each drift names its kind: account, record, sequence, spend_refunds, hold or payment "
            "(records lacking seq are numbered by credits migrate). Drift is re-checked "
            "with a consistent read of that user before it is reported. Exit code 1 if any drift is found. "
            "--fix prints, for each pool that drifted, the ledger correction that would make the records "
            "explain the stored pool (an `adjustment` record of stored - ledger; the pool is not changed); "
            "--fix --yes writes them, one commit per user, each at most once. Totals, debts and derived "
            "documents are reported, never corrected."
        ),
    )
    p.add_argument("--fix", action="store_true", help="print the ledger corrections of pool drift (writes nothing)")
    p.add_argument("--yes", action="store_true", help="with --fix: write the corrections")
    p.add_argument(
        "--operator",
        default=os.environ.get("CREDITS_OPERATOR") or login(),
        help="who corrects, for the audit (default: $CREDITS_OPERATOR, else your login name)",
    )
    p.add_argument("--page-size", type=int, default=500, help="documents read per request (default 500)")
    p.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    return p


def run(args, out: TextIO, err: TextIO) -> int:
    if args.yes and not args.fix:
        raise errors.InvalidRequest("--yes goes with --fix", fields=[{"field": "yes", "problem": "only with --fix"}])
    operator = (args.operator or "").strip()
    if args.yes and not operator:
        raise errors.InvalidRequest("no login name; pass --operator", fields=[{"field": "operator", "problem": "required"}])
    bar = Progress(err, "reconcile: users", None, enabled=not args.no_progress)
    report = reconciliation.reconcile(
        page_size=args.page_size,
        progress=lambda r: bar.update(r.users, f"transactions {r.transactions}"),
        progress_every=args.page_size,
    )
    bar.close()
    fixes = [fix for fix in (correction(d) for d in report.drift) if fix is not None] if args.fix else []
    made = corrections.correct(fixes, operator) if args.yes and fixes else []
    if args.json:
        body = report.as_dict()
        if args.fix:
            body["corrections"] = ([m.as_dict() for m in made] if args.yes
                                   else [{**fix.as_dict(), "outcome": "proposed"} for fix in fixes])
        emit_json(out, body)
    else:
        if report.drift:
            rows = [[d.user_id, _field(d), d.stored, d.ledger, d.difference, _note(d)] for d in report.drift]
            write_table(out, ["user_id", "field", "stored", "ledger", "difference", "note"], rows, end="\n\n",
                        wrap=["field", "note"])
        users_with_drift = len({d.user_id for d in report.drift})
        out.write(
            f"{report.users} users, {report.transactions} transactions, {report.legacy_users} legacy (not yet migrated); "
            f"{users_with_drift} users with drift;\n{report.owing_users} users owe {report.credits_owed} credits "
            "taken back by Stripe\n"
        )
        if args.fix:
            _print_fixes(out, fixes, made, len(report.drift) - len(fixes), args.yes)
    if args.yes:
        # Done once every drift is corrected; totals, debts and derived documents still need a person.
        fixed = sum(m.outcome in (corrections.WRITTEN, corrections.ALREADY_MADE) for m in made)
        return EXIT_OK if fixed == len(report.drift) else EXIT_PROBLEMS
    return EXIT_PROBLEMS if report.drift else EXIT_OK


def _field(drift: Drift) -> str:
    # A derived document's field is named with its kind (`hold.captured`), so the table needs no
    # column more; the user document's fields keep their own names.
    return drift.field if drift.kind in (ACCOUNT, RECORD) else f"{drift.kind}.{drift.field}"


def _note(drift: Drift) -> str:
    """The note, after the spend key, hold id, payment or source it is about."""
    return f"{drift.subject}: {drift.note}" if drift.subject else drift.note


def _print_fixes(out: TextIO, fixes, made, unfixable: int, yes: bool) -> None:
    out.write("\n")
    if not fixes:
        out.write("no pool drift to correct\n")
    elif yes:
        write_table(out, ["user_id", "pool", "stored", "ledger", "record", "outcome", "correction_id"],
                    [[m.correction.user_id, m.correction.pool.value, m.correction.stored, m.correction.ledger,
                      f"{m.correction.amount:+d}", m.outcome, m.correction.correction_id] for m in made])
        written = sum(m.outcome == corrections.WRITTEN for m in made)
        out.write(f"wrote {written} ledger corrections (adjustment records; pools unchanged)\n")
    else:
        write_table(out, ["user_id", "pool", "stored", "ledger", "record", "correction_id"],
                    [[f.user_id, f.pool.value, f.stored, f.ledger, f"{f.amount:+d}", f.correction_id] for f in fixes])
        out.write(f"would write {len(fixes)} ledger corrections (adjustment records of stored - ledger; pools "
                  "unchanged);\nrun again with --fix --yes to write them\n")
    if unfixable:
        out.write(f"{unfixable} drifts (totals, debts, missing or legacy documents, refunds, holds, payments) "
                  "are not corrected by --fix\n")
