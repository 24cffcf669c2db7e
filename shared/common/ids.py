"""Every derived id and digest, in one place.

Rules enforced here:
- an id derived from a caller's key, a grant or a user is the same for every delivery and
  every retry of the same thing, so a create-only write of it is the idempotency;
- callers' keys and ids may hold any character (`/` included), so a derived document id is a
  SHA-256 digest, never the raw text;
- a fresh record id is random (`txn_` and 32 hex digits).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import datetime
from typing import Any


def digest(*parts: Any) -> str:
    """The SHA-256 hex digest of `parts` as compact JSON (a string alone is digested as is)."""
    text = parts[0] if len(parts) == 1 and isinstance(parts[0], str) else json.dumps(list(parts), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(*parts: Any) -> str:
    """What identifies a keyed request's input: the same request always gives the same value."""
    # Default JSON separators: stored markers hold fingerprints made this way.
    return hashlib.sha256(json.dumps(list(parts)).encode()).hexdigest()


def new_transaction_id() -> str:
    return f"txn_{uuid.uuid4().hex}"


def spend_key_id(idempotency_key: str) -> str:
    """The marker id of a spend's idempotency key (keys are global, so no user in it)."""
    return digest(idempotency_key)


def open_hold_key(hold_id: str) -> str:
    """The key of a hold in its user's `open_holds` map (a map key must not be raw caller text)."""
    return "h" + digest("hold:" + hold_id)[:31]


def adjustment_id(idempotency_key: str | None = None) -> str:
    """An adjustment's audit id: derived from its key when it has one, random otherwise."""
    if idempotency_key is None:
        return f"adj_{uuid.uuid4().hex}"
    return f"adj_{digest('adjustment:' + idempotency_key)[:40]}"


def audit_entry_id(idempotency_key: str) -> str:
    """An audited action's entry id: derived from the action's key, so a repeat finds it."""
    return f"audit_{digest('audit:' + idempotency_key)[:40]}"


def grant_record_id(grant_id: str, user_id: str) -> str:
    """The id of a user's record of a promotion: the same for every delivery of that grant."""
    return f"promo_{digest(grant_id, user_id)}"


def migration_record_id(user_id: str) -> str:
    """The id of the `migration` record an operator's migration writes for a user."""
    return f"txn_migration_{digest('migration:' + user_id)[:32]}"


_PLAIN_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")


def is_plain(text: str) -> bool:
    """Whether `text` can name a document as it is: plain characters, not a reserved name."""
    return bool(_PLAIN_ID.match(text)) and text not in (".", "..") and not text.startswith("__")


def document_id(text: str, prefix: str = "sha256_") -> str:
    """A document id for an id from outside (Stripe, Pub/Sub): itself when plain, else its digest.

    Plain ids keep their readable names; anything else (a `/`, a reserved `__x__`, a lone
    surrogate, a control character) is digested, so it can never break or escape a path.
    """
    if is_plain(text):
        return text
    return prefix + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def rejected_message_id(message_id: str) -> str:
    """The `promo_rejected` document id of a message: its Pub/Sub id when that is a safe id."""
    return document_id(message_id, prefix="msg_")


def correction_id(user_id: str, pool_field: str, stored: int, ledger: int) -> str:
    """The audit id of a ledger correction: derived from the drift it explains, so a re-run of the
    same correction finds it made."""
    return f"fix_{digest('correction', user_id, pool_field, stored, ledger)[:40]}"


def correction_record_id(correction: str) -> str:
    """The id of the `adjustment` record a ledger correction writes (one per correction)."""
    return f"txn_{correction}"


def topup_attempt_id(user_id: str, now: datetime) -> str:
    """An auto top-up attempt's id: the user's digest and the decision's time, so attempts of a user
    never collide and the id (Stripe's idempotency key for its charge) names no user data."""
    return f"topup_{digest('topup', user_id)[:20]}_{now.strftime('%Y%m%dT%H%M%S%f')}"
