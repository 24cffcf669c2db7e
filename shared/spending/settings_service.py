"""The service behind a user's settings (`spend` function, CONTRACT section 3c).

Rules enforced here:
- a read writes nothing; a user with no record reads as no settings;
- a change is one `change_user` commit (the kernel's, conditioned on the user document read), so
  it lands whole or not at all, and releases the user's expired holds in the same commit like
  any other change; a change of nothing commits nothing; a change made in the support console
  holds its audit entry in the same commit, and a repeat under the entry's key changes nothing;
- the answer to a change is what `GET` answers once it committed, read back: the auto top-up
  attempt the kernel may add to the same commit shows as its `pending_attempt`;
- an operator's switch of a user's auto top-up (`switch_topup`) is the same commit as a `PUT` of
  the stored setting with `enabled` changed (`settings.decide_topup_switch`), logged with the
  operator and the reason; the operator's view (`topup_report`) adds to `GET`'s answer what
  holds the next attempt back (`autotopup.blocked`), when the backoff ends, and the user's
  recent attempts, read newest first.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping, Optional

from ..common import log
from ..common.errors import InvalidRequest
from ..ledger import autotopup, collections
from ..ledger.audit import AuditEntry, audited, reads_of
from ..store import documents, scans
from ..store.client import utcnow
from ..store.commit import change_user
from .settings import AUTO_TOPUP, decide_settings, decide_topup_switch, settings_view

MAX_REASON = 400
# Attempts read for the month's figures: the limit is at most 100 counted attempts, and failed
# ones in between are few (three in a row disable the setting).
MONTH_ATTEMPTS = 500


def get_settings(user_id: str) -> dict[str, Any]:
    return settings_view(user_id, documents.read(collections.user(user_id)), utcnow())


def put_settings(user_id: str, changes: Mapping[str, Any], audit: Optional[AuditEntry] = None) -> dict[str, Any]:
    """Change the named settings; what `get_settings` answers after. With `audit`, its entry is
    created in the same commit, and a repeat under the entry's key changes nothing."""
    result = change_user(user_id, audited(lambda snap: decide_settings(snap, changes), audit),
                         reads=reads_of(audit), operation="settings")
    log.info("settings changed", user_id=user_id, outcome="changed", settings=sorted(changes))
    if changes.get(AUTO_TOPUP) is None:
        return result
    return get_settings(user_id)


def switch_topup(user_id: str, enabled: bool, operator: str, reason: str,
                 audit: Optional[AuditEntry] = None) -> dict[str, Any]:
    """Put the user's stored auto top-up setting again with `enabled` (an operator's `credits topup
    enable|disable`, or the support console's switch); what `get_settings` answers after. With
    `audit`, its entry is created in the same commit, and a repeat under the entry's key changes
    nothing."""
    operator, reason = (operator or "").strip(), (reason or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise InvalidRequest(f"a reason of 1 to {MAX_REASON} characters is required",
                             fields=[{"field": "reason", "problem": f"must be 1 to {MAX_REASON} characters"}])
    if not operator:
        raise InvalidRequest("an operator name is required", fields=[{"field": "operator", "problem": "is empty"}])
    change_user(user_id, audited(lambda snap: decide_topup_switch(snap, enabled), audit), reads=reads_of(audit),
                operation="settings")
    log.info("auto top-up switched by an operator", user_id=user_id, outcome="enabled" if enabled else "disabled",
             operator=operator, reason=reason)
    return get_settings(user_id)


def topup_report(user_id: str, limit: int = 10) -> dict[str, Any]:
    """A user's auto top-up as an operator sees it: the setting and state `GET` answers, what holds
    the next attempt back and until when, this month's attempts against the limit, and the
    `limit` most recent attempts, newest first."""
    now = utcnow()
    setting = autotopup.setting_of(documents.read(collections.user(user_id)))
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0, tzinfo=now.tzinfo or timezone.utc)
    month = scans.user_attempts(user_id, MONTH_ATTEMPTS, since=month_start) if setting is not None else []
    recent = scans.user_attempts(user_id, limit)
    until = autotopup.backoff_until(setting) if setting is not None else None
    return {
        "user_id": user_id,
        "auto_topup": autotopup.view(setting, now),
        "blocked_by": autotopup.blocked(setting, now) if setting is not None else None,
        "backoff_until": until if until is not None and now < until else None,
        "month": autotopup.month_of(now),
        "month_succeeded": sum(1 for a in month if a.get("status") == autotopup.SUCCEEDED),
        "month_credits": sum(int(a.get("credits") or 0) for a in month if a.get("status") == autotopup.SUCCEEDED),
        "attempts": [_attempt_row(a) for a in recent],
    }


def _attempt_row(attempt: Mapping[str, Any]) -> dict[str, Any]:
    created = attempt.get("created_at")
    return {
        "attempt_id": attempt.get("attempt_id"),
        "created_at": created if isinstance(created, datetime) else None,
        "status": attempt.get("status"),
        "settled_at": attempt.get("settled_at") if isinstance(attempt.get("settled_at"), datetime) else None,
        "credits": attempt.get("credits"),
        "reason": attempt.get("reason"),
        "payment_intent": attempt.get("payment_intent"),
    }
