"""The service behind `promo_grant`: permanent credits for whole campaigns, once per grant and user.

Rules enforced here:
- a promotion message is `{"grant_id", "user_ids" (or "user_id" for one), "amount",
  "description"}`, validated strictly: at most 500 distinct users, amount 1 to 1,000,000;
- each user receives `amount` permanent credits (`promo_grant`) at most once per `grant_id`:
  the grant's record id is derived from `grant_id` and user, and created (never overwritten)
  in the same commit as the user's pools, so any repeat fails instead of granting twice;
- a user with no document gets one with both pools; a legacy document is migrated in the
  same commit as its grant;
- a message that can never be valid is kept in `promo_rejected` with its reason and raw
  data; a replay re-validates the raw data, and marks a message that now applies as
  replayed exactly once.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Mapping, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from . import core, ledger, log, store
from .errors import InvalidPayload
from .models import CreditPool, TransactionType
from .validation import UserId

MAX_USERS = 500
MAX_AMOUNT = 1_000_000
DEFAULT_DESCRIPTION = "Promotional credits"
# Firestore keeps documents up to 1 MiB; a larger raw message is kept cut, and flagged.
MAX_KEPT_RAW_BYTES = 900_000
KEPT_TEXT_CHARS = 10_000

GRANTED, ALREADY_GRANTED, CONFLICTING = "granted", "already_granted", "conflicting"


def _distinct(user_ids: list[str]) -> list[str]:
    # A repeated id counts once; order is kept so logs follow the message.
    distinct = list(dict.fromkeys(user_ids))
    if len(distinct) > MAX_USERS:
        raise ValueError(f"has {len(distinct)} distinct user ids, at most {MAX_USERS} are allowed")
    return distinct


class PromoMessage(BaseModel):
    """The data of one Pub/Sub promotion message (CONTRACT section 5)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    grant_id: Annotated[str, Field(min_length=1, max_length=128)]
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
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidPayload("message data is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise InvalidPayload("message data is not JSON") from None
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


def grant_record_id(grant_id: str, user_id: str) -> str:
    """The id of a user's record of a grant: the same for every delivery of that grant."""
    # A digest, because grant ids may hold characters a document id cannot.
    digest = hashlib.sha256(json.dumps([grant_id, user_id], separators=(",", ":")).encode()).hexdigest()
    return f"promo_{digest}"


@dataclass(frozen=True)
class GrantOutcome:
    """What one message did: how many users it granted and how many had the grant already."""

    grant_id: str
    message_id: Optional[str]
    users: int
    granted: int
    already_granted: int
    conflicting: int

    @property
    def outcome(self) -> str:
        return "applied" if self.granted else "duplicate"


def _decide_for(message: PromoMessage, user_id: str, record_path: str):
    description = message.description or DEFAULT_DESCRIPTION

    def decide(snap: store.Snapshot) -> store.Change[str]:
        seen = snap.markers[record_path]
        if seen is not None:
            # The grant reached this user before; a different amount under the same grant id
            # is reported, never added on top.
            return store.Change(result=ALREADY_GRANTED if seen.get("amount") == message.amount else CONFLICTING)
        account, migration = core.migrate(snap.account)
        entry = core.grant(TransactionType.PROMO_GRANT, message.amount, description, CreditPool.PERMANENT)
        after = core.apply(account, [entry])
        ids = [ledger.new_transaction_id() for _ in migration] + [record_path.split("/", 1)[1]]
        records = ledger.records(user_id, migration + [entry], message.grant_id, snap.now, ids=ids)
        return store.Change(result=GRANTED, account=after, records=records, create_records=True)

    return decide


def grant(message: PromoMessage, message_id: Optional[str] = None) -> GrantOutcome:
    """Grant the message's amount to each of its users who does not have this grant yet.

    Raises Unavailable on a fault that may heal; whatever committed before it stays, and a
    redelivery completes the rest without granting anyone twice.
    """
    items = []
    for user_id in message.user_ids:
        record_path = f"{store.TRANSACTIONS}/{grant_record_id(message.grant_id, user_id)}"
        items.append(store.UserChange(user_id, _decide_for(message, user_id, record_path), (record_path,)))
    results = store.change_users(items, operation="promo_grant")
    outcome = GrantOutcome(
        grant_id=message.grant_id,
        message_id=message_id,
        users=len(results),
        granted=results.count(GRANTED),
        already_granted=results.count(ALREADY_GRANTED),
        conflicting=results.count(CONFLICTING),
    )
    if outcome.conflicting:
        conflicting = [user for user, result in zip(message.user_ids, results) if result == CONFLICTING]
        log.warning(
            "grant id reused with a different amount; those users keep their first grant",
            source=message.grant_id,
            message_id=message_id,
            outcome="conflicting",
            amount=message.amount,
            user_ids=conflicting[:20],
            conflicting=outcome.conflicting,
        )
    log.info("promo grant " + outcome.outcome, source=message.grant_id, **_fields(outcome))
    return outcome


def _fields(outcome: GrantOutcome) -> dict[str, Any]:
    return {k: v for k, v in asdict(outcome).items() if k != "grant_id"} | {"outcome": outcome.outcome}


_PLAIN_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")


def rejected_doc_id(message_id: str) -> str:
    """The `promo_rejected` document id of a message: its Pub/Sub id when that is a safe id."""
    if _PLAIN_ID.match(message_id) and message_id not in (".", "..") and not message_id.startswith("__"):
        return message_id
    return "msg_" + hashlib.sha256(message_id.encode()).hexdigest()


def reject(
    message_id: str, reason: str, raw: bytes, attributes: Optional[Mapping[str, str]] = None
) -> bool:
    """Keep a message that can never be valid, with its reason and raw data, for review and replay.

    A redelivery of a message already kept changes nothing (its replay state is kept too).
    Returns whether it was newly kept.
    """
    kept = raw[:MAX_KEPT_RAW_BYTES]
    created = store.create_rejected(
        rejected_doc_id(message_id),
        {
            "message_id": message_id,
            "status": "rejected",
            "reason": reason,
            "raw_data": kept,
            "raw_text": kept[:KEPT_TEXT_CHARS].decode("utf-8", errors="replace"),
            "raw_size": len(raw),
            "raw_truncated": len(kept) < len(raw),
            "attributes": dict(attributes or {}),
            "rejected_at": store.utcnow(),
        },
    )
    log.warning(
        "promo message rejected" if created else "rejected promo message delivered again",
        message_id=message_id,
        outcome="rejected",
        reason=reason,
    )
    return created


def replay_rejected(message_id: Optional[str] = None) -> list[dict[str, Any]]:
    """Re-validate kept rejected messages (one, or every one still rejected) and apply those now valid.

    Returns one entry per message considered: `{"message_id", "outcome", ...}` where outcome is
    `replayed` (applied now, with the grant counts), `still_rejected` (with the current
    reason), `already_replayed` or `not_found`. Granting is idempotent per grant and user, and
    the mark is conditioned on the kept document, so a message is marked replayed once.
    """
    if message_id is not None:
        kept = store.rejected(doc_id=rejected_doc_id(message_id))
        if not kept:
            return [{"message_id": message_id, "outcome": "not_found"}]
    else:
        kept = store.rejected(status="rejected")
    return [_replay_one(doc_id, data, update_time) for doc_id, data, update_time in kept]


def _replay_one(doc_id: str, data: dict[str, Any], update_time) -> dict[str, Any]:
    message_id = data.get("message_id", doc_id)
    if data.get("status") == "replayed":
        return {"message_id": message_id, "outcome": "already_replayed"}
    now = store.utcnow()
    try:
        if data.get("raw_truncated"):
            raise InvalidPayload("the kept raw data is cut short; the message cannot be replayed")
        message = parse_message(bytes(data.get("raw_data") or b""))
    except InvalidPayload as err:
        store.update_rejected(doc_id, {"last_replay_at": now, "last_replay_reason": err.message}, update_time)
        log.info("rejected promo message still invalid", message_id=message_id, outcome="still_rejected")
        return {"message_id": message_id, "outcome": "still_rejected", "reason": err.message}
    outcome = grant(message, message_id=message_id)
    counts = {"granted": outcome.granted, "already_granted": outcome.already_granted, "conflicting": outcome.conflicting}
    marked = store.update_rejected(
        doc_id, {"status": "replayed", "replayed_at": now, "replay_outcome": counts}, update_time
    )
    if not marked:
        # Another replay got there first; its grants and ours are the same grants.
        return {"message_id": message_id, "outcome": "already_replayed"}
    log.info("rejected promo message replayed", source=message.grant_id, message_id=message_id, outcome="replayed")
    return {"message_id": message_id, "outcome": "replayed", "grant_id": message.grant_id, **counts}
