"""Turning ledger entries into transaction records and balances into responses.

Rules enforced here:
- a change's records share its commit time, each one microsecond after the one before, so
  history lists them newest first in a stable order (a migration before the spend it enables);
- every record carries the id of its source (idempotency key, invoice, event, grant id).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Iterable, Optional, Sequence

from .core import Account, Entry, read_account
from .models import BaseCreditTransaction, CreditBalanceResponse


def new_transaction_id() -> str:
    return f"txn_{uuid.uuid4().hex}"


def records(
    user_id: str,
    entries: Sequence[Entry],
    source: Optional[str],
    now: datetime,
    ids: Optional[Iterable[str]] = None,
) -> list[BaseCreditTransaction]:
    """The records of `entries`, with fresh ids unless `ids` derives them from the source."""
    id_list = list(ids) if ids is not None else [new_transaction_id() for _ in entries]
    return [
        BaseCreditTransaction(
            transaction_id=txn_id,
            user_id=user_id,
            type=entry.type,
            pool=entry.pool,
            amount=entry.amount,
            description=entry.description,
            source=source,
            created_at=now + timedelta(microseconds=i),
        )
        for i, (entry, txn_id) in enumerate(zip(entries, id_list, strict=True))
    ]


def balance_response(account: Account, last_updated: Optional[datetime]) -> CreditBalanceResponse:
    return CreditBalanceResponse(
        user_id=account.user_id,
        credits_monthly=account.monthly,
        credits_permanent=account.permanent,
        total_earned=account.total_earned,
        total_spent=account.total_spent,
        last_updated=last_updated,
    )


def stored_balance(user_id: str, data: Optional[dict[str, Any]]) -> CreditBalanceResponse:
    """The balance a stored document shows, legacy documents in their migrated view."""
    return balance_response(read_account(user_id, data), (data or {}).get("last_updated"))


def transaction_from_document(data: dict[str, Any]) -> dict[str, Any]:
    """A stored transaction record as the API shows it."""
    return BaseCreditTransaction.model_validate(data).model_dump(mode="json")
