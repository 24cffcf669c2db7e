"""`credits migrate`: every legacy `balance` document converted to the two pools, and every
user's records numbered (`seq`, `balance_after`), resumably."""

from __future__ import annotations

from typing import TextIO

from shared.common import errors
from shared.operations import migration
from shared.store import scans
from shared.store.client import utcnow

from ..common import EXIT_OK, EXIT_PROBLEMS, EXIT_UNAVAILABLE, add_command
from ..output import Progress, emit_json, write_table


def add_parser(subparsers):
    p = add_command(
        subparsers,
        "migrate",
        help="convert every legacy `balance` document to the two pools and number every user's records",
        description=(
            "Move each legacy balance to credits_permanent with a `migration` transaction, totals kept, "
            "in batches of users ordered by id. Migrated documents are untouched. Half-written documents: "
            "pools beside a stray `balance` keep the pools and lose the field; a legacy document whose "
            "migration record already exists with its exact balance gets its pools without a second "
            "record; anything inconsistent is left alone and listed for review (exit code 1). "
            "Then each user's records written before `seq` existed are numbered: `seq` 1, 2, 3, ... in "
            "commit order and `balance_after` the running pools, one commit per user, and `last_seq` set "
            "on the user document; numbered users are skipped. Run it once after every function of the "
            "new version is deployed."
        ),
    )
    p.add_argument("--dry-run", action="store_true", help="report what would change and write nothing")
    p.add_argument("--batch-size", type=int, default=200, help="users read and committed together, 1 to 500 (default 200)")
    p.add_argument("--start-after", metavar="USER", help="continue an interrupted run after this user id")
    p.add_argument("--limit", type=int, help="stop after examining this many users (a trial run)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return p


def run(args, out: TextIO, err: TextIO) -> int:
    if args.batch_size < 1 or args.batch_size > 500:
        raise errors.InvalidRequest(
            "--batch-size must be from 1 to 500",
            fields=[{"field": "batch_size", "problem": "must be from 1 to 500"}])
    total = None if args.no_progress else scans.count_users()
    bar = Progress(err, "migrate (dry run)" if args.dry_run else "migrate", total, enabled=not args.no_progress)
    report = migration.MigrationReport(dry_run=args.dry_run, run_id=f"migrate_{utcnow():%Y%m%dT%H%M%SZ}")

    def progress(r: migration.MigrationReport) -> None:
        bar.update(r.examined, f"migrated {r.counts['migrate']}")

    try:
        migration.migrate_users(
            batch_size=args.batch_size,
            dry_run=args.dry_run,
            start_after=args.start_after,
            limit=args.limit,
            progress=progress,
            report=report,
        )
    except (errors.Unavailable, KeyboardInterrupt) as exc:
        bar.close()
        _print_report(args, out, report)
        where = f"--start-after {report.resume_after}" if report.resume_after else "from the beginning"
        err.write(
            f"credits: migration interrupted ({exc.__class__.__name__}: {exc}); every user up to "
            f"{report.resume_after or '(none)'} is done; run again with {where} to continue "
            "(starting over is safe too: migrated documents are skipped)\n"
        )
        return EXIT_UNAVAILABLE
    bar.close()
    _print_report(args, out, report)
    if not report.complete:
        err.write(f"credits: stopped after --limit {args.limit}; continue with --start-after {report.resume_after}\n")
    return EXIT_PROBLEMS if report.review else EXIT_OK


_WOULD = {"migrate": "would migrate", "adopt_record": "would adopt record", "drop_stray_balance": "would drop stray balance"}


def _print_report(args, out: TextIO, report: migration.MigrationReport) -> None:
    if args.json:
        emit_json(out, report.as_dict())
        return
    title = "dry run: nothing written; this is what a run would do" if report.dry_run else f"run {report.run_id}"
    out.write(title + "\n")
    # A dry run says what a run would do, in those words: nothing here has happened yet.
    label = (lambda k: _WOULD.get(k, k)) if report.dry_run else (lambda k: k)
    write_table(out, ["outcome", "users"], [[label(k), v] for k, v in report.counts.items()])
    moved = "would move" if report.dry_run else "moved"
    out.write(f"\nexamined {report.examined} users; {report.credits_migrated} legacy credits {moved} to permanent pools\n")
    numbered = "would number" if report.dry_run else "numbered"
    out.write(f"{numbered} {report.numbered_records} records of {report.numbered_users} users (seq, balance_after)\n")
    if report.repaired:
        out.write("\nrepaired half-written documents:\n")
        write_table(out, ["user_id", "action", "reason"], [[r["user_id"], r["action"], r["reason"]] for r in report.repaired],
                    wrap=["reason"])
    if report.review:
        out.write("\nleft untouched, need review:\n")
        write_table(out, ["user_id", "reason"], [[r["user_id"], r["reason"]] for r in report.review], wrap=["reason"])
    if not report.complete:
        out.write(f"\nnot finished: continue with --start-after {report.resume_after}\n")
