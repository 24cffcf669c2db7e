"""The spec's data models (pydantic v2), with the spec's names.

Rules enforced here:
- credits are integers, never floats, and pools are never negative;
- `balance` is computed as `credits_monthly + credits_permanent`, never stored separately;
- timestamps serialize as ISO 8601 UTC with a trailing `Z`;
- a record carries its place in its user's ledger (`seq`, 1, 2, 3, ...) and the pools right
  after it (`balance_after`); both are optional only so that a record written before they
  existed still reads (`credits migrate` numbers those).
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Annotated, Optional

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    computed_field,
    model_serializer,
)


def iso_z(value: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, the one timestamp format every response uses."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    # strftime's %Y does not pad a year below 1000 on every platform; four digits always.
    return f"{value.year:04d}-" + value.strftime("%m-%dT%H:%M:%S.%fZ")


Timestamp = Annotated[datetime, PlainSerializer(iso_z, return_type=str)]
NonNegative = Annotated[int, Field(strict=True, ge=0)]


class CreditPool(str, Enum):
    """The two pools a user's credits live in."""

    MONTHLY = "monthly"
    PERMANENT = "permanent"


class TransactionType(str, Enum):
    """Why a pool changed; every transaction record carries one."""

    SUBSCRIPTION_GRANT = "subscription_grant"
    MONTHLY_EXPIRED = "monthly_expired"
    ADDON_PURCHASE = "addon_purchase"
    ADDON_REFUNDED = "addon_refunded"
    ADDON_REINSTATED = "addon_reinstated"
    AUTO_TOPUP = "auto_topup"
    PROMO_GRANT = "promo_grant"
    SPENT = "spent"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"
    MIGRATION = "migration"


class CreditBalance(BaseModel):
    """Both pools of one user and their sum."""

    # Each model's validator is built on its first use, not at import: a cold start that answers a
    # balance builds only the balance response's.
    model_config = ConfigDict(frozen=True, defer_build=True)

    credits_monthly: NonNegative = 0
    credits_permanent: NonNegative = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def balance(self) -> int:
        return self.credits_monthly + self.credits_permanent


class BaseUserCredits(CreditBalance):
    """A `users_credits/{user_id}` document."""

    user_id: str
    total_earned: int = 0
    total_spent: int = 0
    last_updated: Optional[Timestamp] = None


class CreditBalanceResponse(BaseUserCredits):
    """Exactly the contract's balance response: the user document's fields in the spec's order,
    then what is owed and what open holds take (both 0 when there is none)."""

    credits_owed: NonNegative = 0
    credits_held: NonNegative = 0

    _ORDER = ("user_id", "credits_monthly", "credits_permanent", "balance",
              "total_earned", "total_spent", "last_updated", "credits_owed", "credits_held")

    @model_serializer(mode="wrap")
    def _in_spec_order(self, handler):  # type: ignore[no-untyped-def]
        data = handler(self)
        return {key: data[key] for key in self._ORDER}


class BalanceAfter(BaseModel):
    """A user's pools right after one record (`balance_after`)."""

    model_config = ConfigDict(frozen=True)

    credits_monthly: Annotated[int, Field(strict=True)]
    credits_permanent: Annotated[int, Field(strict=True)]


class BaseCreditTransaction(BaseModel):
    """A `credits_transactions/{transaction_id}` document."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    transaction_id: str
    user_id: str
    type: TransactionType
    pool: Optional[CreditPool] = None
    amount: Annotated[int, Field(strict=True)]
    description: str = ""
    source: Optional[str] = None
    created_at: Timestamp
    seq: Optional[Annotated[int, Field(strict=True, ge=1)]] = None
    balance_after: Optional[BalanceAfter] = None
