"""Ledger corrections: records that make a user's ledger explain the pools they have stored.

Rules enforced here:
- the stored pool is what the user sees and spends, so a correction never changes it: it adds
  one `adjustment` record of stored - ledger to that pool (`reconcile_rules.correction`); a
  positive one also adds to `total_earned`, as every positive adjustment does, so the totals stay
  as explained as they were;
- all of one user's corrections are one commit (`change_user`): the records, the user document
  and an audit document per correction in `credit_adjustments`, created only once under an id
  derived from the drift, so running the same correction again writes nothing;
- a correction is made only over the pool value reconcile saw; a pool that moved since is left
  for the next reconcile (outcome `changed`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable

from ..common import ids, log
from ..ledger import collections, records
from ..ledger.accounts import MONTHLY, Entry, totals_change
from ..ledger.change import Change, Snapshot
from ..ledger.models import TransactionType
from ..store.commit import change_user
from .reconcile_rules import Correction

WRITTEN = "written"
ALREADY_MADE = "already_made"
CHANGED = "changed"


@dataclass(frozen=True)
class CorrectionOutcome:
    correction: Correction
    outcome: str

    def as_dict(self) -> dict[str, Any]:
        return {**self.correction.as_dict(), "outcome": self.outcome}


def audit_path(fix: Correction) -> str:
    return collections.path(collections.ADJUSTMENTS, fix.correction_id)


def decide_correction(snap: Snapshot, fixes: tuple[Correction, ...], operator: str) -> Change[list[CorrectionOutcome]]:
    """One user's corrections: each made once, only over the pool value reconcile saw."""
    outcomes: list[CorrectionOutcome] = []
    entries: list[tuple[Correction, Entry]] = []
    stored = snap.user_data or {}
    for fix in fixes:
        if snap.documents.get(audit_path(fix)) is not None:
            outcomes.append(CorrectionOutcome(fix, ALREADY_MADE))
        elif snap.user_data is None or snap.account.is_legacy or stored.get(fix.field) != fix.stored:
            outcomes.append(CorrectionOutcome(fix, CHANGED))
        else:
            outcomes.append(CorrectionOutcome(fix, WRITTEN))
            entries.append((fix, Entry(
                TransactionType.ADJUSTMENT, fix.pool, fix.amount,
                f"Ledger correction by {operator}: the {fix.pool.value} pool was {fix.stored}, "
                f"its records summed to {fix.ledger}", source=fix.correction_id)))
    if not entries:
        return Change(result=outcomes)
    account = snap.account
    for _, entry in entries:
        # The pool stays as stored; only the totals move, by the rule every record follows.
        earned, spent = totals_change(entry.type, entry.amount)
        account = replace(account, total_earned=account.total_earned + earned, total_spent=account.total_spent + spent)
    # The records explain pools that do not move: right before them, the ledger stood at the
    # stored pools less what they add.
    start = snap.position
    for _, entry in entries:
        start = records.Position(start.seq, start.monthly - (entry.amount if entry.pool is MONTHLY else 0),
                                 start.permanent - (0 if entry.pool is MONTHLY else entry.amount))
    written = records.records(snap.account.user_id, [entry for _, entry in entries], None, snap.now,
                              ids=[ids.correction_record_id(fix.correction_id) for fix, _ in entries], at=start)
    audits = {
        audit_path(fix): {
            "adjustment_id": fix.correction_id,
            "kind": "ledger_correction",
            "user_id": fix.user_id,
            "pool": fix.pool.value,
            "amount": fix.amount,
            "stored": fix.stored,
            "ledger": fix.ledger,
            "reason": "the ledger did not explain the stored pool",
            "operator": operator,
            "transaction_id": record.transaction_id,
            "created_at": snap.now,
        }
        for (fix, _), record in zip(entries, written)
    }
    return Change(result=outcomes, account=account, records=written, create=audits)


def correct(fixes: Iterable[Correction], operator: str) -> list[CorrectionOutcome]:
    """Make the corrections, one commit per user; each is made at most once however often it runs."""
    by_user: dict[str, list[Correction]] = {}
    for fix in fixes:
        by_user.setdefault(fix.user_id, []).append(fix)
    outcomes: list[CorrectionOutcome] = []
    for user_id, user_fixes in by_user.items():
        batch = tuple(user_fixes)
        made = change_user(user_id, lambda snap: decide_correction(snap, batch, operator),
                           reads=[audit_path(fix) for fix in batch], operation="correct_ledger")
        for result in made:
            log.info(
                "ledger correction " + result.outcome.replace("_", " "),
                user_id=user_id,
                source=result.correction.correction_id,
                outcome=result.outcome,
                pool=result.correction.pool.value,
                amount=result.correction.amount,
                operator=operator,
            )
        outcomes += made
    return outcomes
