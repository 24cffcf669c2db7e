"""The service behind the `spend` function: spend credits, read balances and history.

Rules enforced here:
- a spend is decided by `rules.decide_spend` and committed with its key's marker, so it is
  applied at most once per key; it is first decided from the user's last version this instance
  saw (one commit, no read, conditioned on that version, the marker create-only), and read and
  decided again if that version was stale; spends for one user that arrive while another is
  committing are committed together (`store.group`), each decided in turn;
- a balance read writes nothing; a user with no document reads as zeros, and an expired hold's
  credits read as given back (not held) before its release is written;
- a balance as of a time is read from the records, not the document: the pools after the
  user's last record created at or before it; a time in the future is refused, since records
  may still be written before it;
- history pages are newest first by `seq`, filtered by type, pool and time as asked (all must
  hold); a page token continues only the listing, filters included, that issued it, and the
  next page starts below the last `seq` shown, so records written while a caller pages (always
  numbered higher) never shift what the later pages hold;
- a balance read imports only what it reads with: the commit machinery and the page tokens are
  imported by the first spend or history page (a cold start that answers a balance first does not
  pay for them).
"""

from __future__ import annotations

import os
from typing import Any, Optional

from datetime import datetime

from ..common import log, settings
from ..common.errors import ConfigurationError, InvalidRequest
from ..ledger import codec, collections, holds
from ..ledger.models import iso_z
from ..store import documents, scans
from ..store.client import utcnow
from ..store.scans import HistoryFilter
from .rules import (
    DEFAULT_DESCRIPTION,
    SpendOrder,
    SpendRequest,
    SpendResult,
    decide_spend,
)


@settings.cached
def spend_order() -> SpendOrder:
    """`CREDITS_SPEND_ORDER`, validated once per instance."""
    raw = os.environ.get("CREDITS_SPEND_ORDER", "").strip() or SpendOrder.PERMANENT_FIRST.value
    try:
        return SpendOrder(raw)
    except ValueError:
        allowed = ", ".join(order.value for order in SpendOrder)
        raise ConfigurationError(f"CREDITS_SPEND_ORDER={raw!r} is not one of {allowed}") from None


def spend(user_id: str, amount: int, description: str = "", idempotency_key: Optional[str] = None) -> SpendResult:
    """Take `amount` credits from the user's pools in the configured order, once per key."""
    # The commit machinery is imported by the first spend: a balance read never needs it.
    from ..store.group import change_user_grouped

    order = spend_order()
    request = SpendRequest(user_id, amount, description or DEFAULT_DESCRIPTION, idempotency_key)
    command = request.command
    result = change_user_grouped(
        user_id,
        lambda snap: decide_spend(snap, request, order),
        reads=[command.path] if command else [],
        operation="spend",
    )
    log.info(
        "spend replayed" if result.replayed else "spend applied",
        user_id=user_id,
        source=idempotency_key,
        outcome="replayed" if result.replayed else "applied",
        amount=amount,
    )
    return result


def balance(user_id: str) -> dict[str, Any]:
    """The user's balance; a user with no document reads as zeros, and nothing is written."""
    data = documents.read(collections.user(user_id))
    now = utcnow()
    return codec.balance_view(holds.effective_account(user_id, data, now), (data or {}).get("last_updated"),
                              codec.held(data, now))


def balance_as_of(user_id: str, at: datetime) -> dict[str, Any]:
    """The user's pools as they stood at `at`, from their last record created at or before it."""
    if at > utcnow():
        raise InvalidRequest("as_of is in the future", fields=[{"field": "as_of", "problem": "is in the future"}])
    return as_of_view(user_id, at, scans.record_as_of(user_id, at))


def as_of_view(user_id: str, at: datetime, record: Optional[dict[str, Any]]) -> dict[str, Any]:
    """`GET /balance?as_of=`: the pools right after `record` (zeros and seq 0 without one)."""
    after = (record or {}).get("balance_after") or {}
    monthly, permanent = int(after.get("credits_monthly", 0)), int(after.get("credits_permanent", 0))
    return {
        "user_id": user_id,
        "as_of": iso_z(at),
        "credits_monthly": monthly,
        "credits_permanent": permanent,
        "balance": monthly + permanent,
        "seq": int((record or {}).get("seq") or 0),
    }


def owed(user_id: str) -> dict[str, Any]:
    """What the user owes (`credits_owed`) and its parts by charge or dispute (`credits_owed_by`)."""
    parts = codec.read_owed(documents.read(collections.user(user_id)))
    return {"credits_owed": sum(amount for _, amount in parts), "credits_owed_by": dict(parts)}


def history(user_id: str, limit: int = 20, page_token: Optional[str] = None,
            where: HistoryFilter = HistoryFilter()) -> dict[str, Any]:
    """One page of the user's records that `where` lets through, newest first, and the token of
    the next page or None."""
    from . import page_tokens

    filters = filters_of(where)
    before = page_tokens.decode(user_id, page_token, filters) if page_token else None
    # One extra record tells whether another page exists without a second query.
    rows = scans.list_transactions(user_id, limit + 1, before, where)
    page, more = rows[:limit], len(rows) > limit
    transactions = [codec.transaction_view(row) for row in page]
    next_token = page_tokens.encode(user_id, page[-1]["seq"], filters) if more else None
    return {"transactions": transactions, "next_page_token": next_token}


def filters_of(where: HistoryFilter) -> dict[str, Any]:
    """A listing's filters in the canonical form its page tokens are bound to."""
    return {
        "type": sorted(where.types),
        "pool": where.pool,
        "since": iso_z(where.since) if where.since is not None else None,
        "until": iso_z(where.until) if where.until is not None else None,
    }
