"""The service behind refunds, holds and previews (`spend` function, CONTRACT section 3b).

Rules enforced here:
- every refund, hold, capture, release and expiry is one `change_user` commit holding the pools,
  the records, the hold and give-back documents and the key's marker; a refund or release taken
  in the support console holds its audit entry too (`ledger.audit.audited`);
- a capture or release needs the hold's user before its one batched read; the owner of a hold
  never changes, so an instance remembers it (bounded) and reads the hold first only when it
  does not know it yet;
- a listing of a user's holds reads their hold documents newest first (created_at, then document
  id), filtered on what each reads as now, and its page token is bound to the user and the filter;
- the sweep releases a bounded page of expired holds per run, each user through the same
  commit as any change (so a hold already released is skipped), and is safe to run twice at once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Optional

from ..common import log
from ..common.errors import HoldNotFound
from ..ledger import collections
from ..ledger.audit import AuditEntry, audited, reads_of
from ..ledger.holds import EXPIRED, HELD, MAX_OPEN_HOLDS
from ..store import documents, scans
from ..store.client import utcnow
from ..store.commit import change_user
from . import page_tokens
from .holds import (
    HoldRequest,
    HoldResult,
    SettleRequest,
    decide_hold,
    decide_settle,
    decide_sweep,
    hold_view,
    listed,
    open_holds_view,
    stored_statuses,
)
from .refunds import RefundRequest, RefundResult, decide_refund
from .rules import SpendRequest, SpendResult, preview_spend
from .service import spend_order

_OWNERS_MAX = 10_000
_owners: "OrderedDict[str, str]" = OrderedDict()
_owners_lock = threading.Lock()


def _remember_owner(hold_id: str, user_id: str) -> None:
    with _owners_lock:
        _owners[hold_id] = user_id
        _owners.move_to_end(hold_id)
        while len(_owners) > _OWNERS_MAX:
            _owners.popitem(last=False)


def _owner(hold_id: str) -> str:
    with _owners_lock:
        known = _owners.get(hold_id)
    if known is not None:
        return known
    hold = documents.read(collections.hold(hold_id))
    if hold is None:
        raise HoldNotFound(f"no hold {hold_id}", hold_id=hold_id)
    _remember_owner(hold_id, hold["user_id"])
    return hold["user_id"]


def preview(user_id: str, amount: int, description: str = "") -> SpendResult:
    """What a spend would do, written nowhere."""
    order = spend_order()
    request = SpendRequest(user_id, amount, description or "Credits spent")
    return change_user(user_id, lambda snap: preview_spend(snap, request, order), operation="preview")


def refund(request: RefundRequest, audit: Optional[AuditEntry] = None) -> RefundResult:
    """Give a spend's credits back; with `audit`, its entry is created in the same commit."""
    result = change_user(
        request.user_id, audited(lambda snap: decide_refund(snap, request), audit),
        reads=request.reads + reads_of(audit), operation="refund"
    )
    log.info(
        "refund replayed" if result.replayed else "refund applied",
        user_id=request.user_id,
        source=request.spend_key,
        outcome="replayed" if result.replayed else "applied",
        amount=result.body.get("amount"),
    )
    return result


def hold(request: HoldRequest) -> HoldResult:
    order = spend_order()
    command = request.command
    result = change_user(
        request.user_id,
        lambda snap: decide_hold(snap, request, order),
        reads=[command.path],
        operation="hold",
    )
    _remember_owner(request.hold_id, request.user_id)
    log.info("hold replayed" if result.replayed else "hold placed", user_id=request.user_id,
             source=request.hold_id, outcome="replayed" if result.replayed else "held", amount=request.amount)
    return result


def settle(request: SettleRequest, audit: Optional[AuditEntry] = None) -> HoldResult:
    """Capture or release a hold, once; with `audit`, its entry is created in the same commit."""
    user_id = _owner(request.hold_id)
    result = change_user(user_id, audited(lambda snap: decide_settle(snap, request), audit),
                         reads=request.reads + reads_of(audit), operation="settle_hold")
    log.info("hold settled", user_id=user_id, source=request.hold_id,
             outcome="replayed" if result.replayed else result.body["status"], captured=result.body["captured"])
    return result


def get_hold(hold_id: str) -> dict[str, Any]:
    data = documents.read(collections.hold(hold_id))
    if data is None:
        raise HoldNotFound(f"no hold {hold_id}", hold_id=hold_id)
    _remember_owner(hold_id, data["user_id"])
    return hold_view(data, utcnow())


def list_holds(user_id: str, status: Optional[str] = None, limit: int = 20,
               page_token: Optional[str] = None) -> dict[str, Any]:
    """One page of the user's holds (in `status`, any if None), newest first, each as
    `GET /holds/{hold_id}` shows it, and the token of the next page or None."""
    listing = page_tokens.listing("holds", user_id, status)
    after = page_tokens.time_cursor(listing, page_token) if page_token else None
    now = utcnow()
    # A filtered read skips only holds stored `held` that read otherwise, and a user has at most
    # MAX_OPEN_HOLDS of those: one read that many longer fills the page (one more tells if another
    # page exists).
    size = limit + 1 + (MAX_OPEN_HOLDS if status in (HELD, EXPIRED) else 0)
    found: list[dict[str, Any]] = []
    while True:
        rows = scans.list_holds(user_id, stored_statuses(status), size, after)
        found.extend(row for row in rows if listed(row, status, now))
        if len(found) > limit or len(rows) < size:
            break
        after = (rows[-1]["created_at"], rows[-1]["_id"])
    page, more = found[:limit], len(found) > limit
    token = page_tokens.sign(listing, [page[-1]["created_at"].isoformat(), page[-1]["_id"]]) if more else None
    return {"holds": [hold_view(hold, now) for hold in page], "next_page_token": token}


def open_holds(user_id: str) -> list[dict[str, Any]]:
    """The user's open holds; expired ones count as released, though nothing is written."""
    return open_holds_view(documents.read(collections.user(user_id)), utcnow())


def sweep(limit: int = 200) -> dict[str, Any]:
    """Release up to `limit` expired holds; `more` says whether another run would find more."""
    found = scans.expired_holds(utcnow(), limit)
    users = sorted({hold["user_id"] for hold in found})
    released = 0
    for user_id in users:
        # One commit per user releases all of its expired holds; a concurrent sweep or change
        # that got there first leaves nothing to release, and nothing is written twice.
        released += len(change_user(user_id, decide_sweep, operation="sweep_holds"))
    more = len(found) == limit
    log.info("holds swept", outcome="swept", released=released, users=len(users), more=more)
    return {"released": released, "users": len(users), "more": more}

