"""Turning ledger entries into transaction records.

Rules enforced here:
- a change's records share its commit time, each one microsecond after the one before, so
  history lists them newest first in a stable order (a migration before the spend it enables);
- every record carries the id of its source (idempotency key, invoice, event, grant id); an
  entry that names its own source (a debt collected from a grant) keeps it;
- a record's id is fresh unless the change derives it from its source (then it is created
  only once).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Iterable, Optional, Sequence

from ..common.ids import new_transaction_id
from .accounts import Entry
from .models import BaseCreditTransaction


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
            source=entry.source or source,
            created_at=now + timedelta(microseconds=i),
        )
        for i, (entry, txn_id) in enumerate(zip(entries, id_list, strict=True))
    ]


def views(records_: Sequence[BaseCreditTransaction]) -> list[dict]:
    """Records as the API shows them."""
    return [record.model_dump(mode="json") for record in records_]
