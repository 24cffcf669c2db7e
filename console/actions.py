"""The support console's actions: each checked, keyed, audited, and done by the same service as
the API or the operator command (no rule of the ledger lives here).

Rules enforced here:
- every action needs a reason (1 to 400 characters) and is refused unless `roles.decide_action`
  allows the signed-in role;
- every action's idempotency key is derived from the form's nonce (`console:ACTION:NONCE`), a
  random value the page put in the form: a double submit of one form is one action; a new page
  is a new form, hence a new action;
- an action already done under its key is answered as done, with nothing written; the check
  before it is a convenience, the commit's own condition is the guarantee (`ledger.audit`);
- actions that change a user pass the audit entry to the service, which creates it in the same
  commit (adjust: `operations.adjustments`, which also writes its `credit_adjustments` record with
  the actor as operator; refund and hold release: `spending.holds_service`; auto top-up on or
  off: `spending.settings_service.switch_topup`, as `credits topup enable|disable`);
- replaying or discarding a kept Stripe event, replaying or discarding a kept promo message call
  the services `credits replay` calls, then record the entry (`operations.audit_log.record`: why not in the
  same commit is said there);
- a hold is released only through the user page it belongs to, and a spend is refunded only for
  the user who made it (the refund service checks that too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

from shared.billing import service as webhooks
from shared.billing import unapplied
from shared.common.errors import Forbidden, HoldNotFound, InvalidRequest
from shared.ledger.audit import MAX_REASON, AuditEntry
from shared.operations import adjustments, audit_log
from shared.promotions import rejected
from shared.spending import holds_service, lookups, settings, settings_service
from shared.spending.holds import SettleRequest
from shared.spending.refunds import RefundRequest

from . import roles
from .config import ConsoleSettings
from .identity import Actor

REFUND_DESCRIPTION = "Refund by support"
_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


@dataclass(frozen=True)
class Done:
    """What an action did, in a sentence for the page, and whether it was done before."""

    message: str
    already: bool = False


def reason_of(text: Optional[str]) -> str:
    reason = (text or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise InvalidRequest(f"a reason of 1 to {MAX_REASON} characters is required",
                             fields=[{"field": "reason", "problem": f"must be 1 to {MAX_REASON} characters"}])
    return reason


def key_of(action: str, nonce: Optional[str]) -> str:
    """The action's idempotency key, from the form's nonce."""
    if not nonce or not _NONCE.match(nonce):
        raise InvalidRequest("the form is missing its nonce; reload the page",
                             fields=[{"field": "nonce", "problem": "missing or malformed"}])
    return f"console:{action}:{nonce}"


def _allowed(actor: Actor, action: str, config: ConsoleSettings, amount: int = 0) -> None:
    decision = roles.decide_action(actor.role, action, amount, config.agent_adjust_limit)
    if not decision.allowed:
        raise Forbidden(decision.reason, action=action)


def _entry(actor: Actor, action: str, reason: str, nonce: Optional[str], user_id: Optional[str], target: str,
           **inputs: Any) -> AuditEntry:
    return AuditEntry(actor=actor.email, role=actor.role or "", action=action, reason=reason,
                      idempotency_key=key_of(action, nonce), user_id=user_id, target=target, inputs=inputs)


def _done_before(entry: AuditEntry) -> Optional[Done]:
    seen = audit_log.entry(entry.idempotency_key)
    if seen is None:
        return None
    return Done(f"already done by {seen.get('actor')} (this form was sent before); nothing changed", already=True)


def _int(text: Any, field: str) -> int:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        raise InvalidRequest(f"{field} must be a whole number", fields=[{"field": field, "problem": "not a whole number"}]) from None


def adjust(actor: Actor, config: ConsoleSettings, user_id: str, form) -> Done:
    amount = _int(form.get("amount"), "amount")
    pool = (form.get("pool") or "").strip()
    reason = reason_of(form.get("reason"))
    _allowed(actor, roles.ADJUST, config, amount)
    entry = _entry(actor, roles.ADJUST, reason, form.get("nonce"), user_id, pool, pool=pool, amount=amount)
    if (before := _done_before(entry)) is not None:
        return before
    result = adjustments.adjust(user_id, pool, amount, reason, actor.email,
                                idempotency_key=entry.idempotency_key, audit=entry)
    if result.replayed:
        return Done("already applied (same form); nothing changed", already=True)
    return Done(f"adjusted the {pool} pool by {amount:+d}; balance now {result.balance['balance']}")


def refund(actor: Actor, config: ConsoleSettings, user_id: str, form) -> Done:
    spend_key = (form.get("spend_key") or "").strip()
    raw_amount = (form.get("amount") or "").strip()
    amount = _int(raw_amount, "amount") if raw_amount else None
    reason = reason_of(form.get("reason"))
    if not spend_key:
        raise InvalidRequest("name the spend key or hold id to refund", fields=[{"field": "spend_key", "problem": "required"}])
    if amount is not None and amount < 1:
        raise InvalidRequest("a refund's amount must be at least 1", fields=[{"field": "amount", "problem": "must be at least 1"}])
    _allowed(actor, roles.REFUND, config)
    entry = _entry(actor, roles.REFUND, reason, form.get("nonce"), user_id, spend_key, spend_key=spend_key,
                   amount=amount)
    if (before := _done_before(entry)) is not None:
        return before
    result = holds_service.refund(
        RefundRequest(user_id, spend_key, amount, REFUND_DESCRIPTION, entry.idempotency_key), audit=entry)
    body = result.body
    if result.replayed:
        return Done("already refunded (same form); nothing changed", already=True)
    return Done(f"refunded {body['amount']} credits of {spend_key}; {body['refundable']} more can be refunded")


def release_hold(actor: Actor, config: ConsoleSettings, user_id: str, form) -> Done:
    hold_id = (form.get("hold_id") or "").strip()
    reason = reason_of(form.get("reason"))
    _allowed(actor, roles.RELEASE_HOLD, config)
    if not hold_id or lookups.user_of_hold(hold_id) != user_id:
        raise HoldNotFound(f"user {user_id} has no hold {hold_id}", hold_id=hold_id)
    entry = _entry(actor, roles.RELEASE_HOLD, reason, form.get("nonce"), user_id, hold_id, hold_id=hold_id)
    if (before := _done_before(entry)) is not None:
        return before
    result = holds_service.settle(SettleRequest(hold_id, release=True), audit=entry)
    if result.replayed:
        return Done(f"hold {hold_id} was already released; nothing changed", already=True)
    return Done(f"released hold {hold_id}: {result.body['amount']} credits back")


def auto_topup(actor: Actor, config: ConsoleSettings, user_id: str, form) -> Done:
    """Turn the user's auto top-up on or off: `credits topup enable|disable`'s service, the stored
    setting put again with `enabled` changed as the API's settings `PUT` would put it."""
    wanted = (form.get("enabled") or "").strip()
    if wanted not in ("true", "false"):
        raise InvalidRequest("enabled must be true or false", fields=[{"field": "enabled", "problem": "must be true or false"}])
    reason = reason_of(form.get("reason"))
    _allowed(actor, roles.AUTO_TOPUP, config)
    if settings_service.get_settings(user_id)[settings.AUTO_TOPUP] is None:
        raise InvalidRequest("the user has no auto top-up setting; the user sets it up in the app",
                             fields=[{"field": "auto_topup", "problem": "not set"}])
    enabled = wanted == "true"
    entry = _entry(actor, roles.AUTO_TOPUP, reason, form.get("nonce"), user_id, "auto_topup", enabled=enabled)
    if (before := _done_before(entry)) is not None:
        return before
    settings_service.switch_topup(user_id, enabled, actor.email, reason, audit=entry)
    return Done(f"auto top-up {'enabled' if enabled else 'disabled'}")


def _on_kept(actor: Actor, config: ConsoleSettings, form, action: str, field: str, what: str,
             run: Callable[[str, str], list[dict[str, Any]]]) -> Done:
    """One action on a kept Stripe event (`field` `event_id`) or promo message (`message_id`):
    checked, keyed and done once by `run(id, reason)` (the service `credits replay` calls), then
    recorded with its results."""
    kept_id = (form.get(field) or "").strip()
    reason = reason_of(form.get("reason"))
    _allowed(actor, action, config)
    if not kept_id:
        raise InvalidRequest(f"name the {what}", fields=[{"field": field, "problem": "required"}])
    user_id = (form.get("user_id") or "").strip() or None if field == "event_id" else None
    entry = _entry(actor, action, reason, form.get("nonce"), user_id, kept_id, **{field: kept_id})
    if (before := _done_before(entry)) is not None:
        return before
    results = run(kept_id, reason) or [{field: kept_id, "outcome": "not_found", "reason": f"no such kept {what}"}]
    audit_log.record(entry, {"results": results}, outcome=results[0]["outcome"])
    first = results[0]
    return Done(f"{what} {kept_id}: {first['outcome']}" + (f" ({first['reason']})" if first.get("reason") else ""))


def replay_event(actor: Actor, config: ConsoleSettings, form) -> Done:
    return _on_kept(actor, config, form, roles.REPLAY_EVENT, "event_id", "event",
                    lambda event_id, _reason: webhooks.replay_unapplied(event_id=event_id))


def replay_message(actor: Actor, config: ConsoleSettings, form) -> Done:
    return _on_kept(actor, config, form, roles.REPLAY_MESSAGE, "message_id", "message",
                    lambda message_id, _reason: rejected.replay_rejected(message_id=message_id))


def discard_message(actor: Actor, config: ConsoleSettings, form) -> Done:
    return _on_kept(actor, config, form, roles.DISCARD_MESSAGE, "message_id", "message",
                    lambda message_id, reason: [rejected.discard(message_id, reason, actor.email)])


def discard_event(actor: Actor, config: ConsoleSettings, form) -> Done:
    return _on_kept(actor, config, form, roles.DISCARD_EVENT, "event_id", "event",
                    lambda event_id, reason: [unapplied.discard(event_id, reason, actor.email)])
