"""The pure rules of `POST /refunds`: giving a spend's credits back (no I/O).

Rules enforced here:
- a spend is found by its idempotency key (its marker), and only for the user who made it; a
  spend without a key, a refund's own key, or another user's spend is `SpendNotFound`; what it
  drew is data on the marker (`drawn`); only a marker written before markers carried it is read
  from the response it stored;
- credits go back the pool drawn last first, and the monthly part of a spend made before the
  last monthly reset expires at once (`ledger.holds.give_back`);
- over all refunds of one spend at most the spend's amount goes back: the give-back totals live
  in a document read by each refund's decision and written in its commit, which the kernel
  conditions on the version read, so concurrent refunds of one spend are serial and never
  exceed it, even when a read is torn across another refund's commit;
- an open hold has nothing refundable until it is captured; a captured hold refunds what it kept;
- a refund with an idempotency key is applied once and replayed after (keys are global).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

from ..common.errors import RefundExceedsSpend, SpendNotFound
from ..ledger import accounts, codec, collections, holds, records
from ..ledger.change import Change, Snapshot
from ..ledger.idempotency import Once
from ..ledger.models import CreditPool

DEFAULT_DESCRIPTION = "Refund"
REFUND_KIND = "refund"


@dataclass(frozen=True)
class RefundRequest:
    """A validated refund: whose spend, how much (None: all that remains), and the refund's own key."""

    user_id: str
    spend_key: str
    amount: Optional[int] = None
    description: str = DEFAULT_DESCRIPTION
    idempotency_key: Optional[str] = None

    @property
    def command(self) -> Optional[Once]:
        return Once.command(REFUND_KIND, self.idempotency_key, collections.spend_key, REFUND_KIND, self.user_id,
                                  self.spend_key, self.amount, self.description)

    @property
    def reads(self) -> list[str]:
        paths = [
            collections.spend_key(self.spend_key),
            collections.spend_refunds(self.spend_key),
            collections.hold(self.spend_key),
        ]
        command = self.command
        return paths + ([command.path] if command and command.path not in paths else [])


@dataclass(frozen=True)
class RefundResult:
    body: dict[str, Any]
    replayed: bool


def decide_refund(snap: Snapshot, request: RefundRequest) -> Change[RefundResult]:
    """The refund's change: a replay, or the refund records, the give-back totals and the key's marker."""
    command = request.command
    if command is not None:
        replayed = command.replay(snap.documents.get(command.path))
        if replayed is not None:
            return Change(result=RefundResult(replayed, replayed=True))
    marker = snap.documents.get(collections.spend_key(request.spend_key))
    if not marker or marker.get("user_id") != request.user_id or marker.get("kind") == REFUND_KIND:
        raise SpendNotFound(f"no spend with this key for user {request.user_id}", spend_key=request.spend_key)
    drawn = drawn_of_marker(marker)
    if not drawn:
        raise SpendNotFound(f"no spend with this key for user {request.user_id}", spend_key=request.spend_key)
    given = holds.given_back_of(snap.documents.get(collections.spend_refunds(request.spend_key)))
    spent = sum(taken for _, taken in drawn)
    refundable = spent - sum(given.values())
    hold = snap.documents.get(collections.hold(request.spend_key))
    if hold is not None and hold.get("status") == holds.HELD:
        # An open hold is settled by capture or release; only what a capture kept can be refunded.
        refundable = 0
    amount = request.amount if request.amount is not None else refundable
    if refundable <= 0 or amount > refundable:
        raise RefundExceedsSpend(
            f"{max(refundable, 0)} credits of this spend can still be refunded", refundable=max(refundable, 0)
        )
    account, migration = accounts.migrate(snap.account)
    entries = holds.give_back(
        drawn, given, amount, request.description, holds.spent_before_reset(marker.get("created_at"), snap.user_data)
    )
    after = accounts.apply(account, entries)
    written = records.records(request.user_id, migration + entries, request.spend_key, snap.now,
                              at=snap.position)
    back = holds.refunded_by(entries)
    total = {pool: given[pool] + back[pool] for pool in given}
    body = {
        "user_id": request.user_id,
        "spend_key": request.spend_key,
        "amount": amount,
        "refunded_total": sum(total.values()) - (0 if hold is None else hold_uncaptured(hold)),
        "refundable": refundable - amount,
        "transactions": records.views(written[len(migration):]),
        "balance": codec.balance_view(after, snap.now, codec.held(snap.user_data, snap.now)),
    }
    overwrite = {
        collections.spend_refunds(request.spend_key): holds.give_back_document(
            request.spend_key, request.user_id, total, snap.now
        )
    }
    create = {}
    if command is not None:
        create[command.path] = command.record(snap.now, body, user_id=request.user_id, kind=REFUND_KIND)
    return Change(
        result=RefundResult(body, replayed=False), account=after, records=written, create=create, overwrite=overwrite
    )


def hold_uncaptured(hold: dict[str, Any]) -> int:
    """What a settled hold gave back when it was settled: that part is not a refund of the capture."""
    return int(hold.get("amount", 0)) - int(hold.get("captured", 0))


def drawn_of_marker(marker: dict[str, Any]) -> list[tuple[CreditPool, int]]:
    """What the spend drew, pool by pool in draw order: the `drawn` data on its marker.

    A marker written before spends stored `drawn` has only the response it answered; its
    `spent` records are read from there, the one place such a spend's draw is kept.
    """
    if isinstance(marker.get("drawn"), list):
        try:
            return holds.drawn_entries(marker["drawn"])
        except (KeyError, TypeError, ValueError):
            return []
    try:
        response = json.loads(marker.get("response") or "{}")
    except ValueError:
        return []
    return holds.drawn_of(response.get("transactions") or [])
