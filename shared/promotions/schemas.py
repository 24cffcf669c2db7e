"""The promotion message (CONTRACT section 5), shared by `promo_grant` and the campaign command.

Rules enforced here:
- a message is `{"grant_id", "user_ids" (or "user_id" for one), "amount", "description"}`,
  validated strictly: 1 to 500 distinct users (a repeated id counts once), amount 1 to
  1,000,000, `grant_id` 1 to 128 characters (no control characters), description up to 500
  characters;
- both `user_ids` and `user_id` is ambiguous and refused;
- data that is not UTF-8 JSON of that shape is `InvalidPayload`, with every problem named.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..common.errors import InvalidPayload
from ..common import jsontext
from ..common.validation import GrantId, UserId

MAX_USERS = 500
MAX_AMOUNT = 1_000_000


def _distinct(user_ids: list[str]) -> list[str]:
    # A repeated id counts once; order is kept so logs follow the message.
    distinct = list(dict.fromkeys(user_ids))
    if len(distinct) > MAX_USERS:
        raise ValueError(f"has {len(distinct)} distinct user ids, at most {MAX_USERS} are allowed")
    return distinct


class PromoMessage(BaseModel):
    """The data of one Pub/Sub promotion message (CONTRACT section 5)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    grant_id: GrantId
    user_ids: Annotated[list[UserId], Field(min_length=1), AfterValidator(_distinct)]
    amount: Annotated[int, Field(ge=1, le=MAX_AMOUNT)]
    description: Optional[Annotated[str, Field(max_length=500)]] = None

    @model_validator(mode="before")
    @classmethod
    def _one_user(cls, data: Any) -> Any:
        if isinstance(data, dict) and "user_id" in data:
            if "user_ids" in data:
                # Two lists of recipients are ambiguous; guessing could grant the wrong people.
                raise ValueError("give user_ids or user_id, not both")
            data = {**data, "user_ids": [data["user_id"]]}
            del data["user_id"]
        return data


def parse_message(raw: bytes) -> PromoMessage:
    """The promotion a message's data describes; InvalidPayload with the reason if none."""
    try:
        data = jsontext.loads(raw)
    except jsontext.BadJson as err:
        raise InvalidPayload(f"message data is {err}") from None
    if not isinstance(data, dict):
        raise InvalidPayload("message data is not a JSON object")
    try:
        return PromoMessage.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(part) for part in problem['loc']) or 'message'}: {problem['msg']}"
            for problem in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise InvalidPayload("invalid promotion message: " + "; ".join(problems), problems=problems) from None
