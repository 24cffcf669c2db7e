"""The pure rules of holds: reserve credits now, capture or release them later (no I/O).

Rules enforced here:
- a hold takes its credits exactly like a spend (`spent` records, `source` = `hold_id`); its
  `hold_id` is its key in the global key space of spend keys, so the same id with the same
  request replays and with any other request (a spend's included) is a conflict;
- a user keeps at most `MAX_OPEN_HOLDS` open holds; each is listed on the user document, so
  every change to the user can release the expired ones in its own commit;
- a hold settles once: capture keeps 1 to the held amount and gives the rest back, release
  gives everything back, both by the refund rules; the same settlement again replays its first
  response, any other is `HoldNotOpen`;
- an expired hold reads as `expired` and is settled by the first change to its user or by the
  sweep (`decide_sweep`), never twice; a listing of a user's holds filtered on a status shows
  each hold in the status it reads as, so an expired hold is listed as `expired`, not `held`,
  as soon as its time has passed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Mapping, Optional

from ..common import ids
from ..common.errors import CaptureExceedsHold, HoldNotFound, HoldNotOpen, TooManyHolds
from ..ledger import accounts, codec, collections, holds, records
from ..ledger.change import Change, Snapshot
from ..ledger.holds import CAPTURED, EXPIRED, HELD, RELEASED
from ..ledger.idempotency import Once
from ..ledger.models import iso_z
from .rules import SpendOrder, plan_spend

DEFAULT_DESCRIPTION = "Credits held"
RELEASE_DESCRIPTION = "Hold released"
HOLD_KIND = "hold"


@dataclass(frozen=True)
class HoldRequest:
    user_id: str
    amount: int
    hold_id: str
    description: str = DEFAULT_DESCRIPTION
    expires_in: int = 900

    @property
    def command(self) -> Once:
        return Once.command(HOLD_KIND, self.hold_id, collections.spend_key, HOLD_KIND, self.user_id, self.amount,
                            self.description, self.expires_in, key_name="hold_id")


@dataclass(frozen=True)
class SettleRequest:
    """A capture (`captured` None: all) or a release (`release` True) of one hold."""

    hold_id: str
    release: bool = False
    amount: Optional[int] = None

    @property
    def reads(self) -> list[str]:
        return [collections.hold(self.hold_id), collections.spend_refunds(self.hold_id)]


@dataclass(frozen=True)
class HoldResult:
    body: dict[str, Any]
    replayed: bool


def status_of(hold: Mapping[str, Any], now: datetime) -> str:
    """A hold's status as every read shows it: an open hold past `expires_at` is `expired`."""
    status = hold.get("status", HELD)
    if status == HELD and holds.is_expired(hold, now):
        return EXPIRED
    return status


def hold_view(hold: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """`GET /holds/{hold_id}`."""
    return {
        "hold_id": hold["hold_id"],
        "user_id": hold["user_id"],
        "amount": int(hold["amount"]),
        "status": status_of(hold, now),
        "captured": int(hold.get("captured") or 0),
        "expires_at": iso_z(hold["expires_at"]),
        "created_at": iso_z(hold["created_at"]),
    }


def decide_hold(snap: Snapshot, request: HoldRequest, order: SpendOrder) -> Change[HoldResult]:
    """The hold's change: a replay, or its spend records, its documents and its key's marker."""
    command = request.command
    replayed = command.replay(snap.documents.get(command.path))
    if replayed is not None:
        return Change(result=HoldResult(replayed, replayed=True))
    open_holds = holds.open_holds_of(snap.user_data)
    if len(open_holds) >= holds.MAX_OPEN_HOLDS:
        raise TooManyHolds(
            f"user {request.user_id} already has {len(open_holds)} open holds", limit=holds.MAX_OPEN_HOLDS
        )
    account, migration = accounts.migrate(snap.account)
    entries = plan_spend(account, request.amount, request.description, order)
    after = accounts.apply(account, entries)
    written = records.records(request.user_id, migration + entries, request.hold_id, snap.now, at=snap.position)
    expires_at = snap.now + timedelta(seconds=request.expires_in)
    hold = {
        "hold_id": request.hold_id,
        "amount": request.amount,
        "description": request.description,
        "created_at": snap.now,
        "expires_at": expires_at,
        "drawn": holds.drawn_data(entries),
    }
    open_holds[holds.open_hold_key(request.hold_id)] = hold
    body = {
        "hold_id": request.hold_id,
        "user_id": request.user_id,
        "amount": request.amount,
        "status": HELD,
        "expires_at": iso_z(expires_at),
        "transactions": records.views(written[len(migration):]),
        "balance": codec.balance_view(after, snap.now, holds.held_by(open_holds, snap.now)),
    }
    return Change(
        result=HoldResult(body, replayed=False),
        account=after,
        records=written,
        create={
            command.path: command.record(snap.now, body, user_id=request.user_id, kind=HOLD_KIND,
                                         drawn=hold["drawn"]),
            collections.hold(request.hold_id): holds.hold_document(hold, request.user_id, HELD, 0, None),
        },
        user_fields={holds.OPEN_HOLDS: open_holds},
    )


def decide_settle(snap: Snapshot, request: SettleRequest) -> Change[HoldResult]:
    """The capture's or release's change, or the first settlement's response again."""
    hold = snap.documents.get(collections.hold(request.hold_id))
    if hold is None:
        raise HoldNotFound(f"no hold {request.hold_id}", hold_id=request.hold_id)
    held = int(hold["amount"])
    captured = 0 if request.release else (request.amount if request.amount is not None else held)
    fingerprint = ids.fingerprint(RELEASED if request.release else CAPTURED, captured)
    status = status_of(hold, snap.now)
    if status != HELD:
        if hold.get("settle_fingerprint") == fingerprint and hold.get("settlement"):
            return Change(result=HoldResult(json.loads(hold["settlement"]), replayed=True))
        raise HoldNotOpen(f"hold {request.hold_id} is {status}", status=status, hold_id=request.hold_id)
    if captured > held:
        raise CaptureExceedsHold(f"hold {request.hold_id} holds {held}, less than {captured}", held=held)
    user_id = hold["user_id"]
    account, migration = accounts.migrate(snap.account)
    drawn = holds.drawn_entries(hold["drawn"])
    given = holds.given_back_of(snap.documents.get(collections.spend_refunds(request.hold_id)))
    entries = []
    if held - captured:
        entries = holds.give_back(
            drawn, given, held - captured, RELEASE_DESCRIPTION,
            holds.spent_before_reset(hold.get("created_at"), snap.user_data),
        )
    after = accounts.apply(account, entries)
    written = records.records(user_id, migration + entries, request.hold_id, snap.now, at=snap.position)
    final = RELEASED if request.release else CAPTURED
    open_holds = holds.open_holds_of(snap.user_data)
    open_holds.pop(holds.open_hold_key(request.hold_id), None)
    body = {
        "hold_id": request.hold_id,
        "user_id": user_id,
        "amount": held,
        "status": final,
        "captured": captured,
        "transactions": records.views(written[len(migration):]),
        "balance": codec.balance_view(after, snap.now, holds.held_by(open_holds, snap.now)),
    }
    back = holds.refunded_by(entries)
    overwrite = {
        collections.hold(request.hold_id): holds.hold_document(
            hold, user_id, final, captured, snap.now, settlement=body, fingerprint=fingerprint
        ),
        collections.spend_refunds(request.hold_id): holds.give_back_document(
            request.hold_id, user_id, {pool: given[pool] + back[pool] for pool in given}, snap.now
        ),
    }
    return Change(
        result=HoldResult(body, replayed=False),
        account=after,
        records=written,
        overwrite=overwrite,
        user_fields={holds.OPEN_HOLDS: open_holds},
    )


def stored_statuses(status: Optional[str]) -> Optional[tuple[str, ...]]:
    """The stored statuses a listing of holds in `status` (any if None) reads: a hold stays stored
    `held` until its expiry is written, though it reads `expired` as soon as its time has passed."""
    if status is None:
        return None
    return (HELD, EXPIRED) if status == EXPIRED else (status,)


def listed(hold: Mapping[str, Any], status: Optional[str], now: datetime) -> bool:
    """Whether a hold read by `stored_statuses(status)` belongs in the listing of `status`."""
    return status is None or status_of(hold, now) == status


def decide_sweep(snap: Snapshot) -> Change[tuple[str, ...]]:
    """Commit the user's expired holds' releases (done by the store for every change), or nothing."""
    if not snap.released:
        return Change(result=())
    return Change(result=snap.released, account=snap.account)


def open_holds_view(user_data: Optional[Mapping[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """A user's open holds (expired ones are not open), soonest expiry first."""
    entries = [entry for entry in holds.open_holds_of(user_data).values() if not holds.is_expired(entry, now)]
    entries.sort(key=lambda entry: (entry["expires_at"], entry["hold_id"]))
    return [
        {
            "hold_id": entry["hold_id"],
            "amount": int(entry["amount"]),
            "description": entry.get("description", ""),
            "created_at": iso_z(entry["created_at"]),
            "expires_at": iso_z(entry["expires_at"]),
        }
        for entry in entries
    ]
