"""Legacy migration over the whole user collection, as an operator runs it.

Rules enforced here:
- each user is written through the store's conditional commits, so a document changed by a
  live function meanwhile is re-read and re-decided (it is then no longer legacy and left
  alone); its `migration` record has an id derived from the user, created only once;
- users are walked in id order and the report names the last user of the last finished page,
  so an interrupted run can continue from there; starting again from the beginning is just as
  safe, because migrated documents are skipped;
- each page's records are streamed once (ordered by user) to find the users whose records lack
  `seq` or `balance_after` (written before they existed), or are not numbered 1..n with their
  running sums, or whose document's `last_seq` is not their count (`plan_numbering`); each such
  user is read again at one instant and numbered in one commit through the store (the user
  document and every record it renumbers, each written over the version read, the plan made
  again if anything moved), in commits of at most `NUMBER_CHUNK` records for a user with more;
  a numbered user plans nothing, so a run started again skips them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..common import ids, log
from ..common.errors import Unavailable
from ..ledger import codec, collections, records
from ..ledger.change import Change, Snapshot
from ..ledger.codec import is_legacy_document
from ..store import scans
from ..store.batch import UserChange, change_users
from ..store.client import utcnow
from ..store.commit import change_user
from .migration_rules import MigrationAction, MigrationDecision, NumberingPlan, decide_migration, plan_numbering

# Records renumbered per commit: Firestore takes 500 writes, less the witness and the user document.
NUMBER_CHUNK = 400
# Plans made again in a row for one user because it moved before the numbering committed.
NUMBER_ATTEMPTS = 5
NUMBER_THREADS = 8
NUMBERED, MOVED = "numbered", "moved"


@dataclass
class MigrationReport:
    dry_run: bool
    run_id: str
    examined: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {action.value: 0 for action in MigrationAction})
    credits_migrated: int = 0
    review: list[dict[str, Any]] = field(default_factory=list)
    repaired: list[dict[str, Any]] = field(default_factory=list)
    # Users whose records were (or, in a dry run, would be) numbered, and how many records.
    numbered_users: int = 0
    numbered_records: int = 0
    # The last user of the last page finished; a later run may continue after it.
    resume_after: Optional[str] = None
    complete: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "run_id": self.run_id,
            "examined": self.examined,
            "counts": self.counts,
            "credits_migrated": self.credits_migrated,
            "review": self.review,
            "repaired": self.repaired,
            "numbered_users": self.numbered_users,
            "numbered_records": self.numbered_records,
            "resume_after": self.resume_after,
            "complete": self.complete,
        }


def migration_change(snap: Snapshot, user_id: str, prior: list[int], run_id: str) -> Change[MigrationDecision]:
    """One user's migration change, decided again on what the commit reads."""
    decision = decide_migration(user_id, snap.user_data, prior)
    if not decision.writes:
        return Change(result=decision)
    written = (
        records.records(user_id, list(decision.entries), run_id, snap.now, ids=[ids.migration_record_id(user_id)],
                        at=snap.position)
        if decision.entries
        else []
    )
    return Change(
        result=decision,
        account=decision.account,
        records=written,
        user_fields=dict(decision.user_fields or {}),
    )


def _user_change(user_id: str, prior: list[int], run_id: str) -> UserChange[MigrationDecision]:
    return UserChange(user_id, lambda snap: migration_change(snap, user_id, prior, run_id))


def migrate_users(
    batch_size: int = scans.SCAN_PAGE_SIZE,
    dry_run: bool = False,
    start_after: Optional[str] = None,
    limit: Optional[int] = None,
    progress: Callable[[MigrationReport], None] = lambda report: None,
    report: Optional[MigrationReport] = None,
) -> MigrationReport:
    """Migrate every legacy user document, one page of `batch_size` users at a time.

    `report` may be passed in so a caller still holds the figures if the run is interrupted.
    """
    report = report or MigrationReport(dry_run=dry_run, run_id=f"migrate_{utcnow():%Y%m%dT%H%M%SZ}")
    report.resume_after = start_after
    for page in scans.user_pages(batch_size, start_after):
        if limit is not None and report.examined >= limit:
            return report
        if limit is not None:
            page = page[: limit - report.examined]
        decisions: dict[str, MigrationDecision] = {}
        items = []
        # Only a legacy document can have a migration record without pools; others need no lookup.
        priors = scans.record_amounts("migration", [user_id for user_id, data in page if is_legacy_document(data)])
        for user_id, data in page:
            prior = priors.get(user_id, [])
            decision = decide_migration(user_id, data, prior)
            if decision.writes and not dry_run:
                items.append(_user_change(user_id, prior, report.run_id))
            else:
                decisions[user_id] = decision
        if items:
            for item, decision in zip(items, change_users(items, operation="migrate")):
                decisions[item.user_id] = decision
        for user_id, _ in page:
            _count(report, user_id, decisions[user_id])
        migrated = {user_id for user_id, decision in decisions.items() if decision.writes and not dry_run}
        _number_page(page, report.resume_after, migrated, report)
        report.examined += len(page)
        report.resume_after = page[-1][0]
        progress(report)
    report.complete = True
    return report


def _count(report: MigrationReport, user_id: str, decision: MigrationDecision) -> None:
    report.counts[decision.action.value] += 1
    if decision.action is MigrationAction.MIGRATE:
        report.credits_migrated += sum(entry.amount for entry in decision.entries)
    if decision.action is MigrationAction.REVIEW:
        report.review.append({"user_id": user_id, "reason": decision.reason})
    elif decision.action in (MigrationAction.ADOPT_RECORD, MigrationAction.DROP_STRAY_BALANCE):
        report.repaired.append({"user_id": user_id, "action": decision.action.value, "reason": decision.reason})
    if decision.writes and not report.dry_run:
        log.info("user migrated", user_id=user_id, source=report.run_id, outcome=decision.action.value)


def _number_page(page: list[tuple[str, dict[str, Any]]], after: Optional[str], migrated: set[str],
                 report: MigrationReport) -> None:
    """Number the records of the page's users that need it (see the module's rules); `after` is
    the last user before the page, `migrated` the users this run just migrated (their documents
    in `page` are from before)."""
    if not page:
        return
    by_user: dict[str, dict[str, dict[str, Any]]] = {}
    for record in scans.transactions_in_user_range(after, page[-1][0]):
        by_user.setdefault(record["user_id"], {})[str(record.get("transaction_id"))] = record
    plans = {user_id: plan_numbering(data, by_user.get(user_id, {})) for user_id, data in page}
    if report.dry_run:
        counts = [len(plan.numbers) for plan in plans.values()]
    else:
        todo = [user_id for user_id, _ in page if plans[user_id].needed or user_id in migrated]
        # Users are independent: their reads and commits run side by side.
        with ThreadPoolExecutor(max_workers=NUMBER_THREADS) as pool:
            counts = list(pool.map(lambda user_id: number_user(user_id, report.run_id), todo))
    report.numbered_users += sum(1 for count in counts if count)
    report.numbered_records += sum(counts)


def numbering_change(snap: Snapshot, planned: Optional[dict[str, Any]], records_read: dict[str, dict[str, Any]],
                     chunk: dict[str, tuple[int, dict[str, int]]], plan: NumberingPlan) -> Change[str]:
    """Renumber `chunk` of the user's records, if the user is still as planned (`MOVED` if not)."""
    if snap.released:
        # Expired holds are released in this commit, their records numbered on from the stored
        # `last_seq`; the numbering is planned again after it.
        return Change(result=MOVED, account=snap.account)
    if _unnumbered(snap.user_data) != _unnumbered(planned):
        return Change(result=MOVED)
    overwrite = {}
    for record_id, (seq, after) in chunk.items():
        path = collections.transaction(record_id)
        current = snap.documents.get(path)
        if current is None or current != records_read[record_id]:
            return Change(result=MOVED)
        overwrite[path] = {**current, "seq": seq, "balance_after": after}
    return Change(result=NUMBERED, account=snap.account, overwrite=overwrite, last_seq=plan.last_seq)


def _unnumbered(data: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    # The store adds `last_seq` to a document it read without one: that is no change of the user.
    return None if data is None else {k: v for k, v in data.items() if k != codec.LAST_SEQ}


def number_user(user_id: str, run_id: str = "") -> int:
    """Number the user's records 1..n with their running sums and set `last_seq`; how many
    records were renumbered (0: they already were)."""
    done = moved = 0
    while moved < NUMBER_ATTEMPTS:
        data, found = scans.user_records(user_id)
        plan = plan_numbering(data, found)
        if not plan.needed:
            return done
        chunk = dict(list(plan.numbers.items())[:NUMBER_CHUNK])
        outcome = change_user(
            user_id, lambda snap: numbering_change(snap, data, found, chunk, plan),
            reads=[collections.transaction(record_id) for record_id in chunk], operation="number_records")
        if outcome == NUMBERED:
            done += len(chunk)
            moved = 0
            log.info("records numbered", user_id=user_id, source=run_id, outcome=NUMBERED, records=len(chunk))
        else:
            moved += 1
    raise Unavailable(f"the records of user {user_id} kept changing while they were numbered; run again")
