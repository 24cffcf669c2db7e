"""`credits health`: the counts an on-call operator watches, and whether any needs attention."""

from __future__ import annotations

from datetime import timedelta
from typing import TextIO

from shared.operations import health

from ..common import EXIT_OK, EXIT_PROBLEMS, add_command
from ..output import emit_json, write_table


def add_parser(subparsers):
    p = add_command(
        subparsers,
        "health",
        help="count what needs an operator: kept Stripe events, rejected promo messages, unswept holds, debts, "
             "stopped auto top-ups",
        description=(
            "Count the Stripe events kept unapplied, the promo messages kept rejected, the holds expired "
            "longer than --hold-grace and still open (the sweep is not running), the users owing credits "
            "taken back by Stripe, and the auto top-up settings disabled by failed charges, disabled by a "
            "refund or dispute of a top-up, or waiting for the user to authenticate a payment. Each count "
            "is one aggregation read. Also shows the scheduled reconcile's last completed pass and the "
            "current pass's progress. Exit code 1 if any of the first three is not zero or the last "
            "reconcile pass found drift; owing users and stopped auto top-ups are reported only. The alert "
            "policies in terraform/monitoring.tf watch the same things from the logs."
        ),
    )
    p.add_argument("--hold-grace", type=int, default=5, metavar="MINUTES",
                   help="how long after expiry an open hold is normal, waiting for the sweep (default 5)")
    return p


def run(args, out: TextIO, err: TextIO) -> int:
    report = health.check(hold_grace=timedelta(minutes=max(args.hold_grace, 0)))
    if args.json:
        emit_json(out, report.as_dict())
    else:
        checks = report.as_dict()["checks"]
        rows = [[name, c["count"], "ATTENTION" if c["needs_attention"] else "ok", c["what"], c["action"]]
                for name, c in checks.items()]
        write_table(out, ["check", "count", "state", "what", "action"], rows, end="\n\n",
                    wrap=["what", "action"], keep=["check"])
        _write_reconcile(out, report.as_dict()["reconcile"])
        out.write(f"{report.credits_owed} credits owed in all; "
                  + ("needs attention: " + ", ".join(report.attention) if report.attention else "nothing needs attention")
                  + "\n")
    return EXIT_PROBLEMS if report.attention else EXIT_OK


def _write_reconcile(out: TextIO, view: dict) -> None:
    last, current = view["last_pass"], view["current_pass"]
    if last is None:
        out.write("reconcile: no scheduled pass has completed yet")
    else:
        out.write(f"reconcile: last pass finished {last['finished_at']}, {last['users']} users, "
                  f"{last['drift']} drift" + (" (ATTENTION: " + view["action"] + ")" if view["needs_attention"] else ""))
    if current["started_at"] is not None:
        out.write(f"; current pass from {current['started_at']}: {current['users']} users so far, "
                  f"at {current['cursor']}")
    out.write("\n")
