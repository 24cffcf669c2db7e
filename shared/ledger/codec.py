"""Both directions of both stored documents: `users_credits/{user_id}` and
`credits_transactions/{transaction_id}`, and the API shapes they are shown in.

Rules enforced here:
- a user document holds the pools, the totals, `last_updated` and any extra fields a feature
  keeps beside them; reading one never fails: a missing or non-numeric figure reads as 0, and a
  float written by another tool reads as the int it holds;
- a legacy document (`balance`, no pool field) reads as that many permanent credits (a negative
  balance as 0); writing its account drops the legacy field, which would contradict the pools,
  and keeps the totals it had as `legacy_total_earned`/`legacy_total_spent`: whichever write
  migrates it (`credits migrate` or any function's first change), the totals from before the
  ledger stay known, even at a balance of 0, which leaves no `migration` record;
- what Stripe took back and the pools could not cover is `credits_owed`, with its parts by
  source in `credits_owed_by` (charge or dispute id -> credits); both are written once a user
  has owed anything, and then kept (0 and `{}` when paid), so the document never contradicts
  itself;
- a transaction document holds exactly the record's fields, enums as their values, and
  `balance_after` as a map of the two pools;
- the user document keeps the `seq` of the user's last record (`last_seq`), written in the
  same commit as the record (`store.pipeline`), so the next record is numbered without a
  read; a stored document without it is one written before it existed (or by an import or a
  restore), and its next number is learned from the records (`last_seq` says None);
- what open holds take is `credits_held` on the user document, written with `open_holds`
  whenever the user has or had one, so the document shows it without a read of the holds;
- a balance is shown in the contract's field order, timestamps as ISO 8601 with `Z`, with
  `credits_owed` and `credits_held` (0 when there is none).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping, Optional

from .accounts import Account, owed_map
from .models import BaseCreditTransaction, CreditBalanceResponse

LEGACY_BALANCE = "balance"
# When the monthly pool was last reset (renewal, pause, cancellation): refunds of the monthly part
# of a spend made before it expire at once.
MONTHLY_RESET_AT = "monthly_reset_at"
# The totals a legacy document carried before the ledger (the baseline reconcile adds to it).
LEGACY_EARNED = "legacy_total_earned"
LEGACY_SPENT = "legacy_total_spent"
CREDITS_OWED = "credits_owed"
CREDITS_OWED_BY = "credits_owed_by"
# A stored total with no per-source parts (written by another tool) is owed under this source.
UNATTRIBUTED = "unattributed"
# The `seq` of the user's last record.
LAST_SEQ = "last_seq"
# A user's open holds, each with its amount (ledger.holds), and what they take in all.
OPEN_HOLDS = "open_holds"
CREDITS_HELD = "credits_held"


def _int_field(data: Mapping[str, Any], name: str) -> int:
    value = data.get(name, 0)
    # Firestore may hand back floats for documents written by other tools; credits are ints.
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def is_legacy_document(data: Optional[Mapping[str, Any]]) -> bool:
    """A legacy document has a `balance` and neither pool field."""
    return bool(data) and LEGACY_BALANCE in data and "credits_monthly" not in data and "credits_permanent" not in data


def read_account(user_id: str, data: Optional[Mapping[str, Any]]) -> Account:
    """The account a stored user document describes; a legacy one reads as permanent credits."""
    if not data:
        return Account(user_id=user_id)
    earned, spent = _int_field(data, "total_earned"), _int_field(data, "total_spent")
    if is_legacy_document(data):
        # A negative legacy balance cannot become a pool; it migrates as zero.
        legacy = max(_int_field(data, LEGACY_BALANCE), 0)
        return Account(user_id, 0, legacy, earned, spent, legacy_balance=legacy)
    return Account(
        user_id, _int_field(data, "credits_monthly"), _int_field(data, "credits_permanent"), earned, spent,
        owed_by=read_owed(data),
    )


def read_owed(data: Optional[Mapping[str, Any]]) -> tuple[tuple[str, int], ...]:
    """The per-source debts a user document holds (see `CREDITS_OWED_BY`)."""
    data = data or {}
    parts = data.get(CREDITS_OWED_BY)
    if isinstance(parts, Mapping):
        return owed_map({str(k): _int_field(parts, k) for k in parts})
    total = _int_field(data, CREDITS_OWED)
    return owed_map({UNATTRIBUTED: total})


def last_seq(data: Optional[Mapping[str, Any]]) -> Optional[int]:
    """The `seq` of the user's last record as the stored document says it (0 with no document),
    or None when a stored document does not say (see the module's rules)."""
    if data is None:
        return 0
    value = data.get(LAST_SEQ)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def held(data: Optional[Mapping[str, Any]], now: Optional[datetime] = None) -> int:
    """The credits the document's open holds take; with `now`, an expired hold counts as given
    back (as every read shows it)."""
    total = 0
    for entry in ((data or {}).get(OPEN_HOLDS) or {}).values():
        expires_at = entry.get("expires_at") if isinstance(entry, Mapping) else None
        if now is not None and isinstance(expires_at, datetime) and expires_at <= now:
            continue
        total += _int_field(entry, "amount") if isinstance(entry, Mapping) else 0
    return total


def legacy_baseline(stored: Optional[Mapping[str, Any]]) -> dict[str, int]:
    """The baseline a write over a legacy document keeps beside the pools ({} for any other)."""
    if not is_legacy_document(stored):
        return {}
    return {LEGACY_EARNED: _int_field(stored, "total_earned"), LEGACY_SPENT: _int_field(stored, "total_spent")}


def user_document(
    account: Account,
    now: datetime,
    extra: Optional[Mapping[str, Any]] = None,
    stored: Optional[Mapping[str, Any]] = None,
) -> dict[str, Any]:
    """The fields a write of `account` stores over the `stored` document (the store drops a
    legacy `balance` beside them, and these keep its totals as the baseline)."""
    owed = {}
    if account.owed_by or (stored and (CREDITS_OWED in stored or CREDITS_OWED_BY in stored)):
        owed = {CREDITS_OWED: account.owed, CREDITS_OWED_BY: dict(account.owed_by)}
    extra = dict(extra or {})
    if OPEN_HOLDS in extra:
        extra[CREDITS_HELD] = held(extra)
    elif stored and OPEN_HOLDS in stored and CREDITS_HELD not in stored:
        extra[CREDITS_HELD] = held(stored)
    return {
        "user_id": account.user_id,
        "credits_monthly": account.monthly,
        "credits_permanent": account.permanent,
        "total_earned": account.total_earned,
        "total_spent": account.total_spent,
        "last_updated": now,
        **legacy_baseline(stored),
        **owed,
        **extra,
    }


def transaction_document(record: BaseCreditTransaction) -> dict[str, Any]:
    """The stored form of a transaction record."""
    return {
        "transaction_id": record.transaction_id,
        "user_id": record.user_id,
        "type": record.type.value,
        "pool": record.pool.value if record.pool else None,
        "amount": record.amount,
        "description": record.description,
        "source": record.source,
        "created_at": record.created_at,
        # Always set on a record the system writes (records.records); a record without them is
        # one written before they existed, and a query ordered by `seq` leaves it out.
        **({"seq": record.seq} if record.seq is not None else {}),
        **({"balance_after": record.balance_after.model_dump()} if record.balance_after is not None else {}),
    }


def transaction_view(data: Mapping[str, Any]) -> dict[str, Any]:
    """A stored transaction record as the API shows it (a record written before `seq` existed,
    which no listing returns, is shown without `seq` and `balance_after`)."""
    view = BaseCreditTransaction.model_validate(dict(data)).model_dump(mode="json")
    for name in ("seq", "balance_after"):
        if view[name] is None:
            del view[name]
    return view


def balance_response(account: Account, last_updated: Optional[datetime], held_credits: int) -> CreditBalanceResponse:
    return CreditBalanceResponse(
        user_id=account.user_id,
        credits_monthly=account.monthly,
        credits_permanent=account.permanent,
        total_earned=account.total_earned,
        total_spent=account.total_spent,
        last_updated=last_updated,
        credits_owed=account.owed,
        credits_held=held_credits,
    )


def balance_view(account: Account, last_updated: Optional[datetime], held_credits: int) -> dict[str, Any]:
    """The balance of `account` as `GET /balance` shows it, `held_credits` taken by its open holds."""
    return balance_response(account, last_updated, held_credits).model_dump(mode="json")


def stored_balance_view(user_id: str, data: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """The balance a stored document shows, legacy documents in their migrated view."""
    return balance_view(read_account(user_id, data), (data or {}).get("last_updated"), held(data))

