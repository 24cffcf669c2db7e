"""The `spend` function's request schemas (CONTRACT section 3), validated strictly at the edge.

Rules enforced here:
- strict types: a boolean, float or string is never taken for an integer;
- amounts are 1 to 1,000,000,000, descriptions up to 500 characters, keys 1 to 255 characters;
- unknown fields are ignored.
"""

from __future__ import annotations

from typing import Annotated, Optional

from pydantic import BaseModel, ConfigDict, Field

from ..common.validation import UserId

MAX_AMOUNT = 1_000_000_000


class SpendBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    user_id: UserId
    amount: Annotated[int, Field(strict=True, ge=1, le=MAX_AMOUNT)]
    description: Optional[Annotated[str, Field(max_length=500)]] = None
    idempotency_key: Optional[Annotated[str, Field(min_length=1, max_length=255)]] = None


class HistoryQuery(BaseModel):
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    page_token: Optional[Annotated[str, Field(min_length=1, max_length=1024)]] = None
