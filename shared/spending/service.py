"""The service behind the `spend` function: spend credits, read balances and history.

Rules enforced here:
- a spend is decided by `rules.decide_spend` and committed with its key's marker, so it is
  applied at most once per key; it is first decided from the user's last version this instance
  saw (one commit, no read, conditioned on that version, the marker create-only), and read and
  decided again if that version was stale; spends for one user that arrive while another is
  committing are committed together (`store.group`), each decided in turn;
- a balance read writes nothing; a user with no document reads as zeros, and an expired hold's
  credits read as given back before its release is written;
- history pages are newest first, and a page token only continues the listing that issued it;
- a balance read imports only what it reads with: the commit machinery and the history's scans
  are imported by the first spend or history page (a cold start that answers a balance first
  does not pay for them).
"""

from __future__ import annotations

import os
from typing import Any, Optional

from ..common import log, settings
from ..common.errors import ConfigurationError
from ..ledger import codec, collections, holds
from ..store import documents
from ..store.client import utcnow
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
    return codec.balance_view(holds.effective_account(user_id, data, utcnow()), (data or {}).get("last_updated"))


def owed(user_id: str) -> dict[str, Any]:
    """What the user owes (`credits_owed`) and its parts by charge or dispute (`credits_owed_by`)."""
    parts = codec.read_owed(documents.read(collections.user(user_id)))
    return {"credits_owed": sum(amount for _, amount in parts), "credits_owed_by": dict(parts)}


def history(user_id: str, limit: int = 20, page_token: Optional[str] = None) -> dict[str, Any]:
    """One page of the user's records, newest first, and the token of the next page or None."""
    from ..store import scans
    from . import page_tokens

    after = page_tokens.decode(user_id, page_token) if page_token else None
    # One extra record tells whether another page exists without a second query.
    rows = scans.list_transactions(user_id, limit + 1, after)
    page, more = rows[:limit], len(rows) > limit
    transactions = [codec.transaction_view(row) for row in page]
    next_token = page_tokens.encode(user_id, page[-1]["created_at"], page[-1]["transaction_id"]) if more else None
    return {"transactions": transactions, "next_page_token": next_token}
