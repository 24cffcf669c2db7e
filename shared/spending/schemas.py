"""The `spend` function's request schemas (CONTRACT sections 3 and 3b), validated strictly at the edge.

Rules enforced here:
- strict types: a boolean, float or string is never taken for an integer;
- amounts are 1 to 1,000,000,000, descriptions up to 500 characters, keys 1 to 255 characters;
- `dry_run` is a strict boolean; a hold's `hold_id` follows the user id rules and its
  `expires_in` is 1 to 86,400 seconds (default 900);
- a listing's `limit` is 1 to 100 (default 20) and its `page_token` at most 1,024 characters;
  `GET /holds` needs its `user_id` and takes a `status` of the four a hold can read as;
- unknown fields are ignored.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from ..common.validation import IdempotencyKey, PathId, UserId

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


class HistoryQuery(BaseModel):
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    page_token: Optional[Annotated[str, Field(min_length=1, max_length=1024)]] = None


class HoldsQuery(BaseModel):
    """`GET /holds`: whose holds, in which status (any if absent), one page of them."""

    user_id: UserId
    status: Optional[Literal["held", "captured", "released", "expired"]] = None
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    page_token: Optional[Annotated[str, Field(min_length=1, max_length=1024)]] = None
