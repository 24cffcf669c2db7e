"""What a committed document change publishes: pure rules, no I/O.

Rules enforced here:
- every `credits_transactions` record publishes one `transaction.created`, its data the record as
  `GET /transactions` shows it;
- a `users_credits` write publishes `balance.updated` (the balance as `GET /balance` shows it)
  only when what that balance shows changed: a write of other fields publishes nothing;
- `balance.low` fires when a change takes the balance from at least the threshold to below it,
  both sides compared with the new document's threshold (its `low_balance_threshold`, else the
  default), so it fires once per crossing and never for a change of the threshold alone; a
  threshold of 0 or less means none; both sides are the balance as `GET /balance` shows it at the
  change's time, with expired holds counted as given back, so whether the hold sweep wrote their
  release between two changes makes no difference to which `balance.low` events are published;
- an auto top-up attempt (`credits_topups`) publishes `topup.succeeded`, `topup.failed` or
  `topup.action_required` (with the PaymentIntent's `client_secret`) when a write moves its
  status to that outcome; a pending or canceled attempt publishes nothing; a user document whose
  `auto_topup` state becomes `disabled` publishes `topup.disabled` (its data names the attempt
  that was pending, if any, and the reason); each is published once per outcome:
    topup.<outcome>      "topup.<outcome>:" + attempt id
    topup.disabled       "topup.disabled:users_credits/" + user id + "@" + update_time
- a deleted document publishes nothing (there is no balance or record left to show);
- every message's `event_id` is derived from what identifies the change, never from the
  delivery, so every redelivery of the same change carries the same id:
    transaction.created  "transaction.created:" + transaction id (one record, one creation)
    balance.updated      "balance.updated:users_credits/" + user id + "@" + the new document's
    balance.low          "balance.low:users_credits/" + ...      update_time (each commit of a
                                                                 document has its own)
- the ordering key is the user id, so one user's messages keep their order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping, Optional

from pydantic import ValidationError

from ..common.errors import InvalidPayload
from ..ledger.codec import stored_balance_view, transaction_view
from ..ledger.holds import effective_account
from ..ledger.models import iso_z

TRANSACTIONS = "credits_transactions"
USERS = "users_credits"

TRANSACTION_CREATED = "transaction.created"
BALANCE_UPDATED = "balance.updated"
BALANCE_LOW = "balance.low"
TOPUPS = "credits_topups"
TOPUP_SUCCEEDED, TOPUP_FAILED = "topup.succeeded", "topup.failed"
TOPUP_ACTION_REQUIRED, TOPUP_DISABLED = "topup.action_required", "topup.disabled"
EVENT_TYPES = (TRANSACTION_CREATED, BALANCE_UPDATED, BALANCE_LOW, TOPUP_SUCCEEDED, TOPUP_FAILED,
               TOPUP_ACTION_REQUIRED, TOPUP_DISABLED)
_ATTEMPT_EVENTS = {"succeeded": TOPUP_SUCCEEDED, "failed": TOPUP_FAILED, "action_required": TOPUP_ACTION_REQUIRED}

# What the balance response shows, less `last_updated` (which every commit moves).
_SHOWN = ("credits_monthly", "credits_permanent", "total_earned", "total_spent")


@dataclass(frozen=True)
class Message:
    """One Pub/Sub message to publish: JSON data, and the attributes consumers filter on."""

    event_type: str
    user_id: str
    event_id: str
    data: dict[str, Any] = field(hash=False)

    @property
    def ordering_key(self) -> str:
        return self.user_id

    @property
    def attributes(self) -> dict[str, str]:
        return {"event_type": self.event_type, "user_id": self.user_id, "event_id": self.event_id}

    def payload(self) -> bytes:
        return json.dumps(self.data, separators=(",", ":"), default=str).encode()


def _stamp(moment: Optional[datetime]) -> str:
    if moment is None:
        # Eventarc always sends update_time; a change without one cannot be told from another.
        raise InvalidPayload("the new document has no update_time")
    return iso_z(moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc))


def transaction_messages(document_id: str, value: Optional[Mapping[str, Any]]) -> list[Message]:
    """`transaction.created` for a new transaction record; nothing for a deleted one."""
    if not value:
        return []
    try:
        record = transaction_view(dict(value))
    except ValidationError as err:
        fields = sorted({".".join(str(part) for part in error["loc"]) for error in err.errors()})
        raise InvalidPayload(f"not a transaction record: bad {', '.join(fields)}") from None
    if record["transaction_id"] != document_id:
        raise InvalidPayload("transaction_id differs from the document id")
    return [Message(TRANSACTION_CREATED, record["user_id"], f"{TRANSACTION_CREATED}:{document_id}", record)]


def threshold_of(value: Mapping[str, Any], default: int) -> int:
    """The user's own `low_balance_threshold` when it is an integer, else the default."""
    own = value.get("low_balance_threshold")
    if isinstance(own, int) and not isinstance(own, bool):
        return own
    return default


def balance_messages(
    user_id: str,
    value: Optional[Mapping[str, Any]],
    old_value: Optional[Mapping[str, Any]],
    update_time: Optional[datetime],
    default_threshold: int,
) -> list[Message]:
    """`balance.updated` when the shown balance changed, then `balance.low` on a downward crossing."""
    if not value:
        return []
    new = stored_balance_view(user_id, dict(value))
    old = stored_balance_view(user_id, dict(old_value) if old_value else None)
    if all(new[key] == old[key] for key in _SHOWN):
        return []
    change = f"{USERS}/{user_id}@{_stamp(update_time)}"
    messages = [Message(BALANCE_UPDATED, user_id, f"{BALANCE_UPDATED}:{change}", new)]
    threshold = threshold_of(value, default_threshold)
    if threshold > 0 and _effective(user_id, old_value, update_time) >= threshold > _effective(user_id, value, update_time):
        low = {
            "user_id": user_id,
            "balance": new["balance"],
            "threshold": threshold,
            "credits_monthly": new["credits_monthly"],
            "credits_permanent": new["credits_permanent"],
        }
        messages.append(Message(BALANCE_LOW, user_id, f"{BALANCE_LOW}:{change}", low))
    return messages


def topup_messages(attempt_id: str, value: Optional[Mapping[str, Any]],
                   old_value: Optional[Mapping[str, Any]]) -> list[Message]:
    """The attempt's outcome event when this write moved it to that outcome."""
    if not value:
        return []
    status = value.get("status")
    event_type = _ATTEMPT_EVENTS.get(status) if isinstance(status, str) else None
    if event_type is None or (old_value or {}).get("status") == status:
        return []
    user_id = str(value.get("user_id"))
    data = {"user_id": user_id, "attempt_id": value.get("attempt_id") or attempt_id, "credits": value.get("credits"),
            "payment_intent": value.get("payment_intent"), "reason": value.get("reason")}
    if event_type == TOPUP_ACTION_REQUIRED:
        data["client_secret"] = value.get("client_secret")
    return [Message(event_type, user_id, f"{event_type}:{data['attempt_id']}", data)]


def disabled_messages(user_id: str, value: Optional[Mapping[str, Any]], old_value: Optional[Mapping[str, Any]],
                      update_time: Optional[datetime]) -> list[Message]:
    """`topup.disabled` when this write made the user's auto top-up setting `disabled`."""
    new = (value or {}).get("auto_topup")
    old = (old_value or {}).get("auto_topup")
    if not isinstance(new, Mapping) or new.get("status") != "disabled":
        return []
    if isinstance(old, Mapping) and old.get("status") == "disabled":
        return []
    data = {"user_id": user_id, "attempt_id": old.get("pending_attempt") if isinstance(old, Mapping) else None,
            "credits": new.get("credits"), "payment_intent": None, "reason": new.get("reason")}
    change = f"{USERS}/{user_id}@{_stamp(update_time)}"
    return [Message(TOPUP_DISABLED, user_id, f"{TOPUP_DISABLED}:{change}", data)]


def _effective(user_id: str, data: Optional[Mapping[str, Any]], at: Optional[datetime]) -> int:
    """The balance `GET /balance` would show for `data` at `at`: expired holds count as given back."""
    if at is None:
        return stored_balance_view(user_id, dict(data) if data else None)["balance"]
    return effective_account(user_id, dict(data) if data else None, at).balance


def messages_for(
    path: str,
    value: Optional[Mapping[str, Any]],
    old_value: Optional[Mapping[str, Any]],
    update_time: Optional[datetime],
    default_threshold: int,
) -> list[Message]:
    """Every message a change of the document at `path` publishes, in publishing order."""
    parts = path.strip("/").split("/")
    if len(parts) != 2 or parts[0] not in (TRANSACTIONS, USERS, TOPUPS) or not parts[1]:
        raise InvalidPayload(f"{path!r} is not a document of {TRANSACTIONS}, {USERS} or {TOPUPS}")
    collection, document_id = parts
    if collection == TRANSACTIONS:
        return transaction_messages(document_id, value)
    if collection == TOPUPS:
        return topup_messages(document_id, value, old_value)
    return (balance_messages(document_id, value, old_value, update_time, default_threshold)
            + disabled_messages(document_id, value, old_value, update_time))
