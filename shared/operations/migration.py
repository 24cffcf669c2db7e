"""Legacy migration over the whole user collection, as an operator runs it.

Rules enforced here:
- each user is written through the store's conditional commits, so a document changed by a
  live function meanwhile is re-read and re-decided (it is then no longer legacy and left
  alone); its `migration` record has an id derived from the user, created only once;
- users are walked in id order and the report names the last user of the last finished page,
  so an interrupted run can continue from there; starting again from the beginning is just as
  safe, because migrated documents are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..common import ids, log
from ..ledger import records
from ..ledger.change import Change, Snapshot
from ..ledger.codec import is_legacy_document
from ..store import scans
from ..store.batch import UserChange, change_users
from ..store.client import utcnow
from .migration_rules import MigrationAction, MigrationDecision, decide_migration


@dataclass
class MigrationReport:
    dry_run: bool
    run_id: str
    examined: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {action.value: 0 for action in MigrationAction})
    credits_migrated: int = 0
    review: list[dict[str, Any]] = field(default_factory=list)
    repaired: list[dict[str, Any]] = field(default_factory=list)
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
            "resume_after": self.resume_after,
            "complete": self.complete,
        }


def migration_change(snap: Snapshot, user_id: str, prior: list[int], run_id: str) -> Change[MigrationDecision]:
    """One user's migration change, decided again on what the commit reads."""
    decision = decide_migration(user_id, snap.user_data, prior)
    if not decision.writes:
        return Change(result=decision)
    written = (
        records.records(user_id, list(decision.entries), run_id, snap.now, ids=[ids.migration_record_id(user_id)])
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
