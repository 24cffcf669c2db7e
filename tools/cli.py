"""`credits`: the operator's command line for the credit system.

It works against whatever Firestore the environment names, exactly like the functions
(`GOOGLE_CLOUD_PROJECT`, `FIRESTORE_EMULATOR_HOST`), and holds no rules of its own: it parses
arguments, calls the services in `shared`, and prints a table on a terminal or JSON with `--json`.
Logs go to stderr (errors only, unless `--verbose`), so stdout is only the command's output.

Exit codes: 0 done; 1 the command found problems (drift, documents needing review, something
that still could not be applied); 2 bad arguments; 3 refused by the rules (a pool would go below
zero, an idempotency key reused for something else); 4 Firestore unavailable or the run was
interrupted: retry (a migration prints where to continue).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from datetime import date
from typing import Any, Optional, Sequence, TextIO

from shared import admin, errors, log, spending, store

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_UNAVAILABLE = 4

MAX_REPORT_DAYS = 3660


# --- output --------------------------------------------------------------------------------


def _is_number(cell: str) -> bool:
    """Counts, percentages and the `-` of an empty figure are right-aligned."""
    return cell == "-" or cell.lstrip("-").rstrip("%").replace(".", "", 1).replace(",", "").isdigit()


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table: columns padded to their widest cell, numbers right-aligned."""
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if _is_number(cell) else cell.ljust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()

    return "\n".join([line(list(headers)), "  ".join("-" * w for w in widths)] + [line(row) for row in cells])


def _emit_json(out: TextIO, value: Any) -> None:
    out.write(json.dumps(value, indent=2, default=str, ensure_ascii=False) + "\n")


class Progress:
    """A progress bar on stderr: redrawn in place on a terminal, a line per step otherwise."""

    def __init__(self, stream: TextIO, label: str, total: Optional[int], enabled: bool = True) -> None:
        self.stream, self.label, self.total, self.enabled = stream, label, total, enabled
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.drawn = False

    def update(self, done: int, detail: str = "") -> None:
        if not self.enabled:
            return
        if self.total:
            fraction = min(done / self.total, 1.0)
            bar = "#" * int(fraction * 30)
            text = f"{self.label} [{bar:<30}] {done}/{self.total} {fraction:6.1%} {detail}".rstrip()
        else:
            text = f"{self.label} {done} {detail}".rstrip()
        if self.tty:
            self.stream.write("\r\x1b[2K" + text)
            self.drawn = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.drawn:
            self.stream.write("\n")
            self.stream.flush()


# --- commands ------------------------------------------------------------------------------


def cmd_balance(args, out: TextIO, err: TextIO) -> int:
    body = spending.balance(args.user_id)
    if args.json:
        _emit_json(out, body)
    else:
        out.write(render_table(["field", "value"], [[k, v] for k, v in body.items()]) + "\n")
    return EXIT_OK


def cmd_history(args, out: TextIO, err: TextIO) -> int:
    if not 1 <= args.limit <= 100:
        raise errors.InvalidRequest("--limit must be from 1 to 100", fields=["limit"])
    page = spending.history(args.user_id, args.limit, args.page_token)
    if args.json:
        _emit_json(out, page)
        return EXIT_OK
    rows = [
        [t["created_at"], t["type"], t["pool"], t["amount"], t["description"], t["source"], t["transaction_id"]]
        for t in page["transactions"]
    ]
    out.write(render_table(["created_at", "type", "pool", "amount", "description", "source", "transaction_id"], rows) + "\n")
    if page["next_page_token"]:
        out.write(f"\nmore: credits history {args.user_id} --limit {args.limit} --page-token {page['next_page_token']}\n")
    return EXIT_OK


def cmd_adjust(args, out: TextIO, err: TextIO) -> int:
    result = admin.adjust(
        args.user_id, args.pool, args.amount, args.reason, args.operator, idempotency_key=args.idempotency_key
    )
    if args.json:
        _emit_json(out, result.as_dict())
        return EXIT_OK
    t, b = result.transaction, result.balance
    verb = "already applied (same idempotency key); nothing changed" if result.replayed else "applied"
    out.write(f"adjustment {result.adjustment_id} {verb}\n")
    out.write(
        render_table(
            ["transaction_id", "pool", "amount", "description"],
            [[t["transaction_id"], t["pool"], t["amount"], t["description"]]],
        )
        + "\n\n"
    )
    out.write(
        render_table(
            ["credits_monthly", "credits_permanent", "balance"],
            [[b["credits_monthly"], b["credits_permanent"], b["balance"]]],
        )
        + "\n"
    )
    return EXIT_OK


def cmd_migrate(args, out: TextIO, err: TextIO) -> int:
    if args.batch_size < 1 or args.batch_size > 500:
        raise errors.InvalidRequest("--batch-size must be from 1 to 500", fields=["batch_size"])
    total = None if args.no_progress else store.count_users()
    bar = Progress(err, "migrate (dry run)" if args.dry_run else "migrate", total, enabled=not args.no_progress)
    report = admin.MigrationReport(dry_run=args.dry_run, run_id=f"migrate_{store.utcnow():%Y%m%dT%H%M%SZ}")

    def progress(r: admin.MigrationReport) -> None:
        bar.update(r.examined, f"migrated {r.counts['migrate']}")

    try:
        admin.migrate_users(
            batch_size=args.batch_size,
            dry_run=args.dry_run,
            start_after=args.start_after,
            limit=args.limit,
            progress=progress,
            report=report,
        )
    except (errors.Unavailable, KeyboardInterrupt) as exc:
        bar.close()
        _print_migration(args, out, report)
        where = f"--start-after {report.resume_after}" if report.resume_after else "from the beginning"
        err.write(
            f"credits: migration interrupted ({exc.__class__.__name__}: {exc}); every user up to "
            f"{report.resume_after or '(none)'} is done; run again with {where} to continue "
            "(starting over is safe too: migrated documents are skipped)\n"
        )
        return EXIT_UNAVAILABLE
    bar.close()
    _print_migration(args, out, report)
    if not report.complete:
        err.write(f"credits: stopped after --limit {args.limit}; continue with --start-after {report.resume_after}\n")
    return EXIT_PROBLEMS if report.review else EXIT_OK


def _print_migration(args, out: TextIO, report: admin.MigrationReport) -> None:
    if args.json:
        _emit_json(out, report.as_dict())
        return
    title = "dry run: nothing written; this is what a run would do" if report.dry_run else f"run {report.run_id}"
    out.write(title + "\n")
    out.write(render_table(["outcome", "users"], [[k, v] for k, v in report.counts.items()]) + "\n")
    out.write(f"\nexamined {report.examined} users; {report.credits_migrated} legacy credits moved to permanent pools\n")
    if report.repaired:
        out.write("\nrepaired half-written documents:\n")
        out.write(render_table(["user_id", "action", "reason"], [[r["user_id"], r["action"], r["reason"]] for r in report.repaired]) + "\n")
    if report.review:
        out.write("\nleft untouched, need review:\n")
        out.write(render_table(["user_id", "reason"], [[r["user_id"], r["reason"]] for r in report.review]) + "\n")
    if not report.complete:
        out.write(f"\nnot finished: continue with --start-after {report.resume_after}\n")


def cmd_reconcile(args, out: TextIO, err: TextIO) -> int:
    bar = Progress(err, "reconcile: users", None, enabled=not args.no_progress)
    report = admin.reconcile(
        page_size=args.page_size,
        progress=lambda r: bar.update(r.users, f"transactions {r.transactions}"),
        progress_every=args.page_size,
    )
    bar.close()
    if args.json:
        _emit_json(out, report.as_dict())
    else:
        if report.drift:
            rows = [[d.user_id, d.field, d.stored, d.ledger, d.difference, d.note] for d in report.drift]
            out.write(render_table(["user_id", "field", "stored", "ledger", "difference", "note"], rows) + "\n\n")
        users_with_drift = len({d.user_id for d in report.drift})
        out.write(
            f"{report.users} users, {report.transactions} transactions, {report.legacy_users} legacy (not yet migrated); "
            f"{users_with_drift} users with drift\n"
        )
    return EXIT_PROBLEMS if report.drift else EXIT_OK


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def cmd_report(args, out: TextIO, err: TextIO) -> int:
    start, end = args.start, args.end
    if end < start:
        raise errors.InvalidRequest("--to is before --from", fields=["to"])
    if (end - start).days + 1 > MAX_REPORT_DAYS:
        raise errors.InvalidRequest(f"a report covers at most {MAX_REPORT_DAYS} days", fields=["from", "to"])
    if args.format == "png" and not args.output:
        raise errors.InvalidRequest("--format png needs --output FILE", fields=["output"])
    from shared.operations import usage_totals

    from . import report as render

    days = admin.usage(start, end)
    rows = [day.as_dict() for day in days]
    total = usage_totals(days, start).as_dict()
    total["date"] = "total"
    if args.format == "png":
        render.to_png(days, args.output, f"Credit pool usage {start} to {end} (UTC)")
        err.write(f"wrote {args.output}\n")
        return EXIT_OK
    if args.format == "csv":
        text = render.to_csv(rows)
        if args.output:
            with open(args.output, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
            err.write(f"wrote {args.output}\n")
        else:
            out.write(text)
        return EXIT_OK
    if args.json:
        _emit_json(out, {"from": start.isoformat(), "to": end.isoformat(), "days": rows, "total": total})
        return EXIT_OK
    headers, cells = render.table_rows(rows + [total])
    text = render_table(headers, cells) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
        err.write(f"wrote {args.output}\n")
    else:
        out.write(text)
    return EXIT_OK


# --- parser --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON instead of a table (for scripts)")
    common.add_argument("--verbose", action="store_true", help="also print the structured logs (JSON lines) on stderr")

    parser = argparse.ArgumentParser(
        prog="credits",
        description=(
            "Operate the two-pool credit system: balances, history, adjustments, migration, "
            "reconciliation, replay and usage reports. Uses the same environment variables as the "
            "functions (GOOGLE_CLOUD_PROJECT, FIRESTORE_EMULATOR_HOST)."
        ),
        epilog="Exit codes: 0 done, 1 problems found, 2 bad arguments, 3 refused by the rules, 4 unavailable/interrupted.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = commands.add_parser("balance", parents=[common], help="a user's pools and totals")
    p.add_argument("user_id", metavar="USER")
    p.set_defaults(run=cmd_balance)

    p = commands.add_parser("history", parents=[common], help="a user's transactions, newest first, a page at a time")
    p.add_argument("user_id", metavar="USER")
    p.add_argument("--limit", type=int, default=20, help="records per page, 1 to 100 (default 20)")
    p.add_argument("--page-token", help="the token printed under the previous page")
    p.set_defaults(run=cmd_history)

    p = commands.add_parser(
        "adjust",
        parents=[common],
        help="correct a pool by hand (an `adjustment` transaction)",
        description=(
            "Add (positive --amount) or remove (negative --amount) credits in one pool, recorded as an "
            "`adjustment` transaction with the operator and reason, and an audit document in "
            "credit_adjustments. A pool never goes below zero. The same --idempotency-key again changes nothing."
        ),
    )
    p.add_argument("user_id", metavar="USER")
    p.add_argument("--pool", required=True, choices=["monthly", "permanent"])
    p.add_argument("--amount", required=True, type=int, help="signed number of credits, not 0 (use --amount=-50 to remove)")
    p.add_argument("--reason", required=True, help="why, for the record (1 to 400 characters)")
    p.add_argument(
        "--operator",
        default=os.environ.get("CREDITS_OPERATOR") or _login(),
        help="who is adjusting (default: $CREDITS_OPERATOR, else your login name)",
    )
    p.add_argument("--idempotency-key", help="makes a re-run (after a timeout, say) change nothing")
    p.set_defaults(run=cmd_adjust)

    p = commands.add_parser(
        "migrate",
        parents=[common],
        help="convert every legacy `balance` document to the two pools",
        description=(
            "Move each legacy balance to credits_permanent with a `migration` transaction, totals kept, "
            "in batches of users ordered by id. Migrated documents are untouched. Half-written documents: "
            "pools beside a stray `balance` keep the pools and lose the field; a legacy document whose "
            "migration record already exists with its exact balance gets its pools without a second "
            "record; anything inconsistent is left alone and listed for review (exit code 1)."
        ),
    )
    p.add_argument("--dry-run", action="store_true", help="report what would change and write nothing")
    p.add_argument("--batch-size", type=int, default=200, help="users read and committed together, 1 to 500 (default 200)")
    p.add_argument("--start-after", metavar="USER", help="continue an interrupted run after this user id")
    p.add_argument("--limit", type=int, help="stop after examining this many users (a trial run)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(run=cmd_migrate)

    p = commands.add_parser(
        "reconcile",
        parents=[common],
        help="check every user's pools and totals against their transactions",
        description=(
            "Stream every user and every transaction (ordered by user) and compare each pool, and the "
            "totals, with the records. Drift is re-checked with a consistent read of that user before it "
            "is reported. Exit code 1 if any drift is found."
        ),
    )
    p.add_argument("--page-size", type=int, default=500, help="documents read per request (default 500)")
    p.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    p.set_defaults(run=cmd_reconcile)

    p = commands.add_parser(
        "replay",
        parents=[common],
        help="list or re-apply stored unapplied Stripe events and rejected promo messages",
        description=(
            "Without an action (or with --list): list the Stripe events kept in webhook_unapplied and the "
            "promotion messages kept in promo_rejected. --event-id / --message-id applies one again, "
            "--all applies every one; each applies at most once however often it is replayed."
        ),
    )
    action = p.add_mutually_exclusive_group()
    action.add_argument("--list", action="store_true", help="list what is waiting (the default)")
    action.add_argument("--event-id", help="replay one stored Stripe event")
    action.add_argument("--message-id", help="replay one stored promotion message")
    action.add_argument("--all", action="store_true", help="replay every stored event and message")
    p.set_defaults(run=cmd_replay)

    p = commands.add_parser(
        "report",
        parents=[common],
        help="pool usage per day: granted, spent, expired, spend share",
        description=(
            "Per UTC day and pool: credits granted (subscription, add-on, promo and positive adjustments), "
            "spent (less refunds), expired (monthly_expired) and other (migrations, negative adjustments), "
            "and each pool's share of the day's spending. Both dates are included."
        ),
    )
    p.add_argument("--from", dest="start", required=True, type=_parse_date, metavar="DATE", help="first day, YYYY-MM-DD")
    p.add_argument("--to", dest="end", required=True, type=_parse_date, metavar="DATE", help="last day, YYYY-MM-DD")
    p.add_argument("--format", choices=["table", "csv", "png"], default="table", help="default table")
    p.add_argument("--output", metavar="FILE", help="write to FILE (required for png)")
    p.set_defaults(run=cmd_report)
    return parser


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers; --operator is then required in practice
        return ""


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    out, err = sys.stdout, sys.stderr
    # The command prints what matters itself; the JSON logs are for --verbose (or a log sink).
    log.configure(err, "DEBUG" if args.verbose else "ERROR")
    try:
        return args.run(args, out, err)
    except errors.CreditsError as exc:
        code = _exit_code(exc)
        if args.json:
            _emit_json(out, exc.body())
        err.write(f"credits {args.command}: {exc.code}: {exc.message}\n")
        return code
    except KeyboardInterrupt:
        err.write(f"credits {args.command}: interrupted\n")
        return EXIT_UNAVAILABLE
    finally:
        log.configure()


def _exit_code(exc: errors.CreditsError) -> int:
    if exc.transient:
        return EXIT_UNAVAILABLE
    if isinstance(exc, (errors.InvalidRequest, errors.ConfigurationError)):
        return EXIT_USAGE
    if isinstance(exc, (errors.PoolUnderflow, errors.IdempotencyConflict, errors.InsufficientCredits)):
        return EXIT_REFUSED
    return EXIT_PROBLEMS


# --- replay --------------------------------------------------------------------------------

# Outcomes that leave an event or message waiting: the cause is not fixed yet, or a fault.
_NOT_DONE = {"unapplied", "failed", "still_rejected", "not_found"}


def cmd_replay(args, out: TextIO, err: TextIO) -> int:
    # Imported here: replaying Stripe events needs the catalog and Stripe settings, the rest does not.
    from shared import promotions, webhooks

    if not (args.event_id or args.message_id or args.all):
        return _list_waiting(args, out)
    results: list[dict[str, Any]] = []
    if args.event_id or args.all:
        events = webhooks.replay_unapplied(event_id=args.event_id)
        if args.event_id and not events:
            events = [{"event_id": args.event_id, "outcome": "not_found", "reason": "no such stored event"}]
        results += [{"kind": "stripe_event", "id": e.get("event_id"), **e} for e in events]
    if args.message_id or args.all:
        messages = promotions.replay_rejected(message_id=args.message_id)
        results += [{"kind": "promo_message", "id": m.get("message_id"), **m} for m in messages]
    if args.json:
        _emit_json(out, {"results": results})
    elif results:
        rows = [[r["kind"], r["id"], r["outcome"], r.get("user_id") or r.get("grant_id") or "", r.get("reason") or ""] for r in results]
        out.write(render_table(["kind", "id", "outcome", "user / grant", "reason"], rows) + "\n")
    else:
        out.write("nothing waiting to replay\n")
    return EXIT_PROBLEMS if any(r["outcome"] in _NOT_DONE for r in results) else EXIT_OK


def _list_waiting(args, out: TextIO) -> int:
    events = [
        {
            "event_id": e.get("event_id"),
            "event_type": e.get("event_type"),
            "user_id": e.get("user_id"),
            "customer_id": e.get("customer_id"),
            "reason": e.get("reason"),
            "attempts": e.get("attempts"),
            "last_attempt_at": e.get("last_attempt_at"),
        }
        for e in store.unapplied_events()
    ]
    messages = [
        {
            "message_id": data.get("message_id", doc_id),
            "reason": data.get("reason"),
            "rejected_at": data.get("rejected_at"),
            "last_replay_reason": data.get("last_replay_reason"),
            "raw_text": data.get("raw_text"),
        }
        for doc_id, data, _ in store.rejected(status="rejected")
    ]
    if args.json:
        _emit_json(out, {"stripe_events": events, "promo_messages": messages})
        return EXIT_OK
    out.write(f"Stripe events waiting in {store.UNAPPLIED_EVENTS}: {len(events)}\n")
    if events:
        rows = [[e["event_id"], e["event_type"], e["user_id"] or e["customer_id"] or "", e["attempts"], e["reason"]] for e in events]
        out.write(render_table(["event_id", "type", "user / customer", "attempts", "reason"], rows) + "\n")
    out.write(f"\npromo messages waiting in {store.PROMO_REJECTED}: {len(messages)}\n")
    if messages:
        rows = [[m["message_id"], m["last_replay_reason"] or m["reason"], (m["raw_text"] or "")[:60]] for m in messages]
        out.write(render_table(["message_id", "reason", "data"], rows) + "\n")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
