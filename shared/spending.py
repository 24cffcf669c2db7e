"""The service behind the `spend` function: spend credits, read balances and history.

Rules enforced here:
- a spend with an idempotency key is applied at most once: the key's marker is created in
  the same commit as the spend and stores the response, so a repeat gets that response;
- keys are global: the same key with any other user, amount or description is a conflict;
- a refused spend (insufficient credits) writes nothing, so its key is not remembered;
- a legacy document is migrated in the same commit as its first spend;
- history pages are newest first, and a page token only continues the listing that issued it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional

from . import config, core, ledger, log, store
from .errors import IdempotencyConflict, InvalidRequest


@dataclass(frozen=True)
class SpendResult:
    body: dict[str, Any]
    replayed: bool


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def key_marker_path(idempotency_key: str) -> str:
    # Keys may hold any character, `/` included; a digest is always a valid document id.
    return f"{store.SPEND_KEYS}/{_digest(idempotency_key)}"


def _fingerprint(user_id: str, amount: int, description: str) -> str:
    return _digest(json.dumps([user_id, amount, description]))


def spend(user_id: str, amount: int, description: str = "", idempotency_key: Optional[str] = None) -> SpendResult:
    """Take `amount` credits from the user's pools in the configured order, once per key."""
    order = config.spend_order()
    description = description or "Credits spent"
    fingerprint = _fingerprint(user_id, amount, description)
    marker = key_marker_path(idempotency_key) if idempotency_key is not None else None

    def decide(snap: store.Snapshot) -> store.Change[SpendResult]:
        if marker is not None and snap.markers[marker] is not None:
            seen = snap.markers[marker]
            if seen["fingerprint"] != fingerprint:
                raise IdempotencyConflict(
                    "this idempotency_key was already used with a different request",
                    idempotency_key=idempotency_key,
                )
            return store.Change(result=SpendResult(json.loads(seen["response"]), replayed=True))
        account, migration = core.migrate(snap.account)
        entries = core.plan_spend(account, amount, description, order)
        after = core.apply(account, entries)
        written = ledger.records(user_id, migration + entries, idempotency_key, snap.now)
        spent = written[len(migration):]
        body = {
            "user_id": user_id,
            "amount": amount,
            "transactions": [record.model_dump(mode="json") for record in spent],
            "balance": ledger.balance_response(after, snap.now).model_dump(mode="json"),
        }
        create = {}
        if marker is not None:
            create[marker] = {
                "idempotency_key": idempotency_key,
                "user_id": user_id,
                "fingerprint": fingerprint,
                "response": json.dumps(body, separators=(",", ":")),
                "created_at": snap.now,
            }
        return store.Change(result=SpendResult(body, replayed=False), account=after, records=written, create=create)

    result = store.change_user(user_id, decide, markers=[marker] if marker else [], operation="spend")
    log.info(
        "spend replayed" if result.replayed else "spend applied",
        user_id=user_id,
        source=idempotency_key,
        outcome="replayed" if result.replayed else "applied",
        amount=amount,
    )
    return result


def balance(user_id: str) -> dict[str, Any]:
    """The user's balance; a user with no document reads as zeros, and nothing is written."""
    return ledger.stored_balance(user_id, store.get_user(user_id)).model_dump(mode="json")


# Page tokens are opaque to callers; the digest rejects tokens this API did not issue
# (edited, truncated, or issued for another user's listing).
_TOKEN_CONTEXT = b"two-pool-credits/transactions-page/v1"


def _encode_token(user_id: str, created_at: datetime, transaction_id: str) -> str:
    payload = json.dumps([user_id, created_at.isoformat(), transaction_id], separators=(",", ":")).encode()
    tag = hmac.new(_TOKEN_CONTEXT, payload, hashlib.sha256).hexdigest()[:24]
    return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + tag


def _decode_token(user_id: str, token: str) -> tuple[datetime, str]:
    invalid = InvalidRequest("page_token is not one this API issued", fields=["page_token"])
    try:
        encoded, tag = token.split(".")
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        expected = hmac.new(_TOKEN_CONTEXT, payload, hashlib.sha256).hexdigest()[:24]
        if not hmac.compare_digest(tag, expected):
            raise invalid
        owner, created_at, transaction_id = json.loads(payload)
        if owner != user_id:
            raise invalid
        return datetime.fromisoformat(created_at), transaction_id
    except (ValueError, TypeError):
        raise invalid from None


def history(user_id: str, limit: int = 20, page_token: Optional[str] = None) -> dict[str, Any]:
    """One page of the user's records, newest first, and the token of the next page or None."""
    after = _decode_token(user_id, page_token) if page_token else None
    # One extra record tells whether another page exists without a second query.
    rows = store.list_transactions(user_id, limit + 1, after)
    page, more = rows[:limit], len(rows) > limit
    transactions = [ledger.transaction_from_document(row) for row in page]
    next_token = _encode_token(user_id, page[-1]["created_at"], page[-1]["transaction_id"]) if more else None
    return {"transactions": transactions, "next_page_token": next_token}
