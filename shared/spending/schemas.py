"""The `spend` function's request schemas (CONTRACT sections 3 and 3b), validated strictly at the edge.

Rules enforced here:
- strict types: a boolean, float or string is never taken for an integer;
- amounts are 1 to 1,000,000,000, descriptions up to 500 characters, keys 1 to 255 characters;
- `dry_run` is a strict boolean; a hold's `hold_id` follows the user id rules and its
  `expires_in` is 1 to 86,400 seconds (default 900);
- a time in a query (`since`, `until`, `as_of`) is ISO 8601 with a zone (`Z` or an offset; a
  space where a `+` was, as an unencoded `+` arrives, reads as the `+`), taken as the instant
  it names: a time without a zone is refused rather than guessed;
- the history's `type` is one type or several, comma-separated (repeats count once), each one
  the ledger knows; `pool` is `monthly` or `permanent`;
- a listing's `limit` is 1 to 100 (default 20) and its `page_token` at most 1,024 characters;
  `GET /holds` needs its `user_id` and takes a `status` of the four a hold can read as;
- unknown fields are ignored.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, PlainValidator

from ..common.validation import IdempotencyKey, PathId, UserId
from ..ledger.models import CreditPool, TransactionType

MAX_AMOUNT = 1_000_000_000


class SpendBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    user_id: UserId
    amount: Annotated[int, Field(strict=True, ge=1, le=MAX_AMOUNT)]
    description: Optional[Annotated[str, Field(max_length=500)]] = None
    idempotency_key: Optional[IdempotencyKey] = None
    dry_run: Annotated[bool, Field(strict=True)] = False


Amount = Annotated[int, Field(strict=True, ge=1, le=MAX_AMOUNT)]
Description = Annotated[str, Field(max_length=500)]
Key = IdempotencyKey
MAX_EXPIRES_IN = 86_400
DEFAULT_EXPIRES_IN = 900


class RefundBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    user_id: UserId
    spend_key: Key
    amount: Optional[Amount] = None
    description: Optional[Description] = None
    idempotency_key: Optional[Key] = None


class HoldBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    user_id: UserId
    amount: Amount
    hold_id: PathId
    description: Optional[Description] = None
    expires_in: Annotated[int, Field(strict=True, ge=1, le=MAX_EXPIRES_IN)] = DEFAULT_EXPIRES_IN


class CaptureBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    amount: Optional[Amount] = None


_SPACED_OFFSET = re.compile(r" (\d{2}(:?\d{2})?)$")


def parse_time(value: object) -> datetime:
    """An ISO 8601 time with a zone as an aware UTC datetime, or ValueError saying what is wrong."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be an ISO 8601 time with a zone, such as 2026-01-31T12:00:00Z")
    text = _SPACED_OFFSET.sub(r"+\1", value.strip())
    if text.endswith("z"):
        text = text[:-1] + "Z"  # RFC 3339 allows a lower-case zone letter
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("is not an ISO 8601 time (such as 2026-01-31T12:00:00Z)") from None
    if moment.tzinfo is None:
        raise ValueError("needs a zone: Z or an offset such as +01:00")
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("is outside the years 1 to 9999 in UTC") from None


def parse_types(value: object) -> tuple[str, ...]:
    """One transaction type or several, comma-separated, as a sorted tuple of distinct values."""
    known = [kind.value for kind in TransactionType]
    if not isinstance(value, str):
        raise ValueError("must be one type or several, comma-separated")
    parts = [part.strip() for part in value.split(",")]
    unknown = [part for part in parts if part not in known]
    if unknown:
        raise ValueError(f"unknown type {unknown[0]!r}: each must be one of {', '.join(known)}")
    return tuple(sorted(set(parts)))


QueryTime = Annotated[datetime, PlainValidator(parse_time)]


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: Annotated[int, Field(ge=1, le=100)] = 20
    page_token: Optional[Annotated[str, Field(min_length=1, max_length=1024)]] = None
    type: Annotated[tuple[str, ...], PlainValidator(parse_types)] = ()
    pool: Optional[CreditPool] = None
    since: Optional[QueryTime] = None
    until: Optional[QueryTime] = None


class BalanceQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    as_of: Optional[QueryTime] = None


class HoldsQuery(BaseModel):
    """`GET /holds`: whose holds, in which status (any if absent), one page of them."""

    model_config = ConfigDict(extra="ignore")

    user_id: UserId
    status: Optional[Literal["held", "captured", "released", "expired"]] = None
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    page_token: Optional[Annotated[str, Field(min_length=1, max_length=1024)]] = None
