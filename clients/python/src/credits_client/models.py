"""The API's answers as frozen dataclasses, read from the JSON the OpenAPI document describes.

Rules:
- credits are `int`; times are timezone-aware `datetime`s (the API writes ISO 8601 UTC with `Z`);
- fields the document may add later are ignored, so a newer server never breaks an older client;
- `replayed` is True when the server answered with `Idempotent-Replayed: true` (the first answer
  to the same key, nothing done twice).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional


def _time(value: Optional[str]) -> Optional[datetime]:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class Balance:
    """A user's credits now (`GET /balance/{user_id}`); `balance` is what can be spent now."""

    user_id: str
    credits_monthly: int
    credits_permanent: int
    balance: int
    total_earned: int
    total_spent: int
    last_updated: Optional[datetime]
    credits_owed: int = 0
    credits_held: int = 0

    @classmethod
    def from_json(cls, data: dict) -> "Balance":
        return cls(data["user_id"], data["credits_monthly"], data["credits_permanent"], data["balance"],
                   data["total_earned"], data["total_spent"], _time(data.get("last_updated")),
                   data.get("credits_owed", 0), data.get("credits_held", 0))


@dataclass(frozen=True)
class BalanceAsOf:
    """A user's pools as they stood at `as_of`, from the record numbered `seq` (0: none yet)."""

    user_id: str
    as_of: datetime
    credits_monthly: int
    credits_permanent: int
    balance: int
    seq: int

    @classmethod
    def from_json(cls, data: dict) -> "BalanceAsOf":
        return cls(data["user_id"], _time(data["as_of"]), data["credits_monthly"], data["credits_permanent"],
                   data["balance"], data["seq"])


@dataclass(frozen=True)
class Transaction:
    """One ledger record; `balance_after` is the pair of pools right after it."""

    transaction_id: str
    user_id: str
    type: str
    pool: Optional[str]
    amount: int
    description: str
    source: Optional[str]
    created_at: datetime
    seq: int
    credits_monthly_after: int
    credits_permanent_after: int

    @classmethod
    def from_json(cls, data: dict) -> "Transaction":
        after = data["balance_after"]
        return cls(data["transaction_id"], data["user_id"], data["type"], data["pool"], data["amount"],
                   data["description"], data.get("source"), _time(data["created_at"]), data["seq"],
                   after["credits_monthly"], after["credits_permanent"])


def _transactions(data: dict) -> list[Transaction]:
    return [Transaction.from_json(item) for item in data.get("transactions", [])]


@dataclass(frozen=True)
class Spend:
    """A spend (`POST /spend`): its records in draw order, the balance after it, and its key (the
    `spend_key` a refund of it names)."""

    user_id: str
    amount: int
    transactions: list[Transaction]
    balance: Balance
    idempotency_key: str
    replayed: bool = False

    @classmethod
    def from_json(cls, data: dict, key: str, replayed: bool) -> "Spend":
        return cls(data["user_id"], data["amount"], _transactions(data), Balance.from_json(data["balance"]),
                   key, replayed)


@dataclass(frozen=True)
class PreviewEntry:
    pool: str
    amount: int
    description: str


@dataclass(frozen=True)
class Preview:
    """What a spend would do (`POST /spend` with `dry_run`); nothing was written."""

    user_id: str
    amount: int
    transactions: list[PreviewEntry]
    balance: Balance

    @classmethod
    def from_json(cls, data: dict) -> "Preview":
        entries = [PreviewEntry(t["pool"], t["amount"], t["description"]) for t in data["transactions"]]
        return cls(data["user_id"], data["amount"], entries, Balance.from_json(data["balance"]))


@dataclass(frozen=True)
class Refund:
    """A refund (`POST /refunds`): `amount` given back now, `refundable` what remains of the spend."""

    user_id: str
    spend_key: str
    amount: int
    refunded_total: int
    refundable: int
    transactions: list[Transaction]
    balance: Balance
    idempotency_key: str
    replayed: bool = False

    @classmethod
    def from_json(cls, data: dict, key: str, replayed: bool) -> "Refund":
        return cls(data["user_id"], data["spend_key"], data["amount"], data["refunded_total"], data["refundable"],
                   _transactions(data), Balance.from_json(data["balance"]), key, replayed)


@dataclass(frozen=True)
class PlacedHold:
    """A hold just placed (`POST /holds`): the credits are taken until it is captured or released."""

    hold_id: str
    user_id: str
    amount: int
    status: str
    expires_at: datetime
    transactions: list[Transaction]
    balance: Balance
    replayed: bool = False

    @classmethod
    def from_json(cls, data: dict, replayed: bool) -> "PlacedHold":
        return cls(data["hold_id"], data["user_id"], data["amount"], data["status"], _time(data["expires_at"]),
                   _transactions(data), Balance.from_json(data["balance"]), replayed)


@dataclass(frozen=True)
class Settlement:
    """A hold captured or released: `captured` stays spent, `transactions` is what went back."""

    hold_id: str
    user_id: str
    amount: int
    status: str
    captured: int
    transactions: list[Transaction]
    balance: Balance
    replayed: bool = False

    @classmethod
    def from_json(cls, data: dict, replayed: bool) -> "Settlement":
        return cls(data["hold_id"], data["user_id"], data["amount"], data["status"], data["captured"],
                   _transactions(data), Balance.from_json(data["balance"]), replayed)


@dataclass(frozen=True)
class Hold:
    """A hold as it reads now (`GET /holds/{hold_id}`): held, captured, released or expired."""

    hold_id: str
    user_id: str
    amount: int
    status: str
    captured: int
    expires_at: datetime
    created_at: datetime

    @classmethod
    def from_json(cls, data: dict) -> "Hold":
        return cls(data["hold_id"], data["user_id"], data["amount"], data["status"], data["captured"],
                   _time(data["expires_at"]), _time(data["created_at"]))


@dataclass(frozen=True)
class Page:
    """One page of a listing (history or holds), newest first; `next_page_token` None on the last."""

    items: list[Any]
    next_page_token: Optional[str]


@dataclass(frozen=True)
class Settings:
    """A user's settings; None where the user has set nothing."""

    user_id: str
    low_balance_threshold: Optional[int]
    auto_topup: Optional[dict] = field(default=None)

    @classmethod
    def from_json(cls, data: dict) -> "Settings":
        return cls(data["user_id"], data.get("low_balance_threshold"), data.get("auto_topup"))
