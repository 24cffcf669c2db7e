"""Auto top-up's pure rules: the setting and its state on the user document, when an attempt is due,
and what each charge outcome does to both (CONTRACT section 9). No I/O.

Rules enforced here:
- the setting and its state live on the user document (`auto_topup`), so every change to the user
  sees them without another read, and the commit that makes an attempt due creates it;
- an attempt is due after a change that leaves the balance (as `GET /balance` shows it, expired
  holds given back) below `threshold`, if the setting is enabled and `active`, no attempt of the
  user is pending, the month's limit is not reached (attempts that succeeded, are pending or wait
  for action, per calendar month in UTC), and the last failure, if any, is at least 1 hour old
  (4 hours after two failures in a row); a user never has two pending attempts, because the
  pending one is named on the user document that every change is conditioned on;
- an outcome settles a pending attempt once: `succeeded` resets `failures`; a hard decline
  (`lost_card`, `stolen_card`, `pickup_card`, `fraudulent`, `expired_card`, or advice
  `do_not_try_again`) disables at once (`card_declined`); any other failure counts, and the third
  in a row disables (`repeated_failures`); authentication needed makes the attempt and the setting
  `action_required`; no customer or payment method disables (`missing_payment_method`); a setting
  disabled or removed before the charge cancels the attempt (nothing charged); a refund or dispute
  of a top-up payment disables (`payment_reversed`);
- putting a setting (even the same one) makes it `active` with 0 failures and no backoff; a
  failed or canceled attempt no longer counts against the month's limit;
- removing the setting keeps what it must not forget (`removed_setting`): while an attempt is
  pending or the month has counted attempts, a stopped stub (`removed`, not enabled) stays on the
  user document, shown as no setting, so a setting put again still sees the pending attempt and
  the month's count (removing and putting it again never starts a second pending attempt nor
  charges past the month's limit);
- a PaymentIntent that succeeded for an attempt that was canceled (its create call reached Stripe
  but its answer was lost, and the setting was stopped before the trigger came again) still lands
  its credits once, as any succeeded payment does, and counts against the month again;
- every committed change is checked (`with_due_attempt`, run by the kernel on each decision):
  the balance compared is the one the change leaves, with the setting as the change leaves it,
  and the attempt and the setting naming it are written in that same commit; a change that
  writes nothing, or a user without a setting, costs nothing more.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Mapping, Optional

from ..common import ids
from . import collections
from .change import REMOVED, Change

FIELD = "auto_topup"

ACTIVE, DISABLED, ACTION_REQUIRED = "active", "disabled", "action_required"
PENDING, SUCCEEDED, FAILED, CANCELED = "pending", "succeeded", "failed", "canceled"
CARD_DECLINED, REPEATED_FAILURES = "card_declined", "repeated_failures"
MISSING_PAYMENT_METHOD, PAYMENT_REVERSED = "missing_payment_method", "payment_reversed"
# The reasons a setting is `disabled` by its charges failing (a refund or dispute is `PAYMENT_REVERSED`).
FAILURE_REASONS = (CARD_DECLINED, REPEATED_FAILURES, MISSING_PAYMENT_METHOD)

HARD_DECLINES = frozenset({"lost_card", "stolen_card", "pickup_card", "fraudulent", "expired_card"})
STRIKES = 3
BACKOFF = timedelta(hours=1)
LONG_BACKOFF = timedelta(hours=4)


@dataclass(frozen=True)
class TopupSetting:
    """The setting as the user put it, with the credits one attempt grants (from the catalog)."""

    enabled: bool
    threshold: int
    price_id: str
    credits: int
    quantity: int = 1
    monthly_limit: int = 5
    customer: Optional[str] = None
    payment_method: Optional[str] = None
    # The state that outcomes change; a new setting starts it afresh.
    status: str = ACTIVE
    reason: Optional[str] = None
    failures: int = 0
    last_failure_at: Optional[datetime] = None
    month: Optional[str] = None
    this_month: int = 0
    pending_attempt: Optional[str] = None
    # Removed by the user, kept only for the state above (`removed_setting`).
    removed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Optional["TopupSetting"]:
        if not isinstance(data, Mapping) or not isinstance(data.get("threshold"), int):
            return None
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        try:
            return cls(**known)
        except TypeError:
            return None

    def counted(self, now: datetime) -> int:
        """Attempts counted against this calendar month's limit."""
        return self.this_month if self.month == month_of(now) else 0


@dataclass(frozen=True)
class Attempt:
    attempt_id: str
    document: dict[str, Any]

    @property
    def path(self) -> str:
        return collections.topup_attempt(self.attempt_id)


def month_of(now: datetime) -> str:
    return now.strftime("%Y-%m")


def put_setting(setting: TopupSetting, previous: Optional[TopupSetting]) -> TopupSetting:
    """A setting put by the user: active, 0 failures, no backoff; the month's count and a pending
    attempt carry over (they are facts, not preferences)."""
    keep = previous or TopupSetting(False, 1, "", 0)
    return replace(setting, status=ACTIVE, reason=None, failures=0, last_failure_at=None,
                   month=keep.month, this_month=keep.this_month, pending_attempt=keep.pending_attempt)


def removed_setting(previous: Optional[TopupSetting]) -> Optional[TopupSetting]:
    """What a removal leaves: nothing, or a stopped stub keeping a pending attempt and the month's count."""
    if previous is None or (previous.pending_attempt is None and previous.this_month <= 0):
        return None
    return replace(previous, enabled=False, removed=True)


def backoff_until(setting: TopupSetting) -> Optional[datetime]:
    """When the backoff after the last failure ends (None: no failure counts): 1 hour after it,
    4 hours after two failures in a row."""
    if setting.failures <= 0 or setting.last_failure_at is None:
        return None
    return setting.last_failure_at + (LONG_BACKOFF if setting.failures >= 2 else BACKOFF)


# What holds back the next attempt, whatever the balance (`blocked`), in the order it is checked.
NOT_ENABLED, PENDING_ATTEMPT, MONTHLY_LIMIT, BACKING_OFF = "not_enabled", "attempt_pending", "monthly_limit_reached", "backing_off"


def blocked(setting: Optional[TopupSetting], now: datetime) -> Optional[str]:
    """Why no attempt would be made now even below the threshold, or None (one would be): the
    setting is stopped by the user (`not_enabled`), `disabled` or `action_required` (its status),
    an attempt is pending, the month's limit is reached, or the last failure is too recent."""
    if setting is None or not setting.enabled:
        return NOT_ENABLED
    if setting.status != ACTIVE:
        return setting.status
    if setting.pending_attempt is not None:
        return PENDING_ATTEMPT
    if setting.counted(now) >= setting.monthly_limit:
        return MONTHLY_LIMIT
    until = backoff_until(setting)
    if until is not None and now < until:
        return BACKING_OFF
    return None


def decide_attempt(user_id: str, setting: Optional[TopupSetting], balance: int,
                   now: datetime) -> Optional[tuple[Attempt, TopupSetting]]:
    """The attempt a change that leaves `balance` makes due, with the setting after it; or None."""
    if setting is None or blocked(setting, now) is not None or balance >= setting.threshold:
        return None
    attempt_id = ids.topup_attempt_id(user_id, now)
    document = {
        "attempt_id": attempt_id,
        "user_id": user_id,
        "price_id": setting.price_id,
        "quantity": setting.quantity,
        "credits": setting.credits,
        "status": PENDING,
        "created_at": now,
    }
    after = replace(setting, month=month_of(now), this_month=setting.counted(now) + 1, pending_attempt=attempt_id)
    return Attempt(attempt_id, document), after


@dataclass(frozen=True)
class ChargeOutcome:
    """What Stripe said of an attempt's charge, in the contract's terms."""

    kind: str  # SUCCEEDED, FAILED, ACTION_REQUIRED, CANCELED, or MISSING_PAYMENT_METHOD
    decline_code: Optional[str] = None
    advice_code: Optional[str] = None
    payment_intent: Optional[str] = None


def outcome_of_error(code: Optional[str], decline_code: Optional[str], advice_code: Optional[str],
                     payment_intent: Optional[str]) -> ChargeOutcome:
    """A refused create call (or a failed PaymentIntent's `last_payment_error`) in the contract's terms:
    authentication needed is taken before any decline; anything else is a failure, its decline
    code (else its error code) the reason."""
    if code == "authentication_required" or decline_code == "authentication_required":
        return ChargeOutcome(ACTION_REQUIRED, decline_code, advice_code, payment_intent)
    return ChargeOutcome(FAILED, decline_code or code or "payment_failed", advice_code, payment_intent)


def outcome_of_intent(status: Optional[str], payment_intent: Optional[str]) -> Optional[ChargeOutcome]:
    """A PaymentIntent's status as an outcome; None while Stripe has not decided (`processing`)."""
    if status == "succeeded":
        return ChargeOutcome(SUCCEEDED, payment_intent=payment_intent)
    if status in ("requires_action", "requires_confirmation"):
        return ChargeOutcome(ACTION_REQUIRED, payment_intent=payment_intent)
    if status in ("requires_payment_method", "canceled"):
        return ChargeOutcome(FAILED, "payment_failed", payment_intent=payment_intent)
    return None


def should_charge(attempt: Optional[Mapping[str, Any]], setting: Optional[TopupSetting]) -> Optional[bool]:
    """Whether a pending attempt is charged (True), canceled (False: its setting was removed,
    stopped or no longer names it), or left alone (None: not pending, already settled)."""
    if attempt is None or attempt.get("status") != PENDING:
        return None
    return (setting is not None and setting.enabled and setting.status == ACTIVE
            and setting.pending_attempt == attempt.get("attempt_id"))


def settles(attempt: Optional[Mapping[str, Any]], outcome: ChargeOutcome) -> bool:
    """Whether `outcome` settles the attempt now: a pending one settles once; one waiting for
    action only by that same PaymentIntent's success; a settled one never again."""
    if attempt is None:
        return False
    if attempt.get("status") == PENDING:
        return True
    if outcome.kind != SUCCEEDED or outcome.payment_intent is None:
        return False
    if attempt.get("status") == CANCELED:
        # Canceled after a create call whose answer was lost: Stripe took the money, so it lands.
        return attempt.get("payment_intent") in (None, outcome.payment_intent)
    return attempt.get("status") == ACTION_REQUIRED and attempt.get("payment_intent") == outcome.payment_intent


def is_hard_decline(outcome: ChargeOutcome) -> bool:
    return outcome.decline_code in HARD_DECLINES or outcome.advice_code == "do_not_try_again"


def settle_setting(setting: Optional[TopupSetting], attempt_id: str, outcome: ChargeOutcome,
                   attempt_created: datetime, now: datetime, was_canceled: bool = False) -> Optional[TopupSetting]:
    """The setting after an attempt's outcome (None stays None: a removed setting has no state;
    a removed one's stub keeps only its pending attempt and count). `was_canceled`: the attempt
    was canceled (and uncounted) before this success."""
    if setting is None:
        return None
    pending = None if setting.pending_attempt == attempt_id else setting.pending_attempt
    setting = replace(setting, pending_attempt=pending)
    counted_month = month_of(attempt_created)
    uncount = outcome.kind in (FAILED, CANCELED, MISSING_PAYMENT_METHOD) and setting.month == counted_month
    if uncount:
        setting = replace(setting, this_month=max(setting.this_month - 1, 0))
    if was_canceled and outcome.kind == SUCCEEDED:
        # The cancellation uncounted it; a succeeded attempt counts against its month.
        if setting.month == counted_month:
            setting = replace(setting, this_month=setting.this_month + 1)
        elif setting.month is None or setting.month < counted_month:
            setting = replace(setting, month=counted_month, this_month=1)
    if setting.removed:
        return setting
    if outcome.kind == SUCCEEDED:
        # A PaymentIntent completed on session after `action_required` makes the setting active again.
        if setting.status == ACTION_REQUIRED:
            setting = replace(setting, status=ACTIVE, reason=None)
        return replace(setting, failures=0, last_failure_at=None)
    if outcome.kind == ACTION_REQUIRED:
        return replace(setting, status=ACTION_REQUIRED, reason="authentication_required")
    if outcome.kind == MISSING_PAYMENT_METHOD:
        return replace(setting, status=DISABLED, reason=MISSING_PAYMENT_METHOD)
    if outcome.kind == CANCELED:
        return setting
    failures = setting.failures + 1
    setting = replace(setting, failures=failures, last_failure_at=now)
    if is_hard_decline(outcome):
        return replace(setting, status=DISABLED, reason=CARD_DECLINED)
    if failures >= STRIKES:
        return replace(setting, status=DISABLED, reason=REPEATED_FAILURES)
    return setting


def attempt_status(outcome: ChargeOutcome) -> str:
    return {SUCCEEDED: SUCCEEDED, ACTION_REQUIRED: ACTION_REQUIRED, CANCELED: CANCELED}.get(outcome.kind, FAILED)


def reversed_payment(setting: Optional[TopupSetting]) -> Optional[TopupSetting]:
    """A refund or dispute of a top-up payment: the setting stops until it is put again."""
    if setting is None or setting.removed:
        return setting
    return replace(setting, status=DISABLED, reason=PAYMENT_REVERSED)


def view(setting: Optional[TopupSetting], now: datetime) -> Optional[dict[str, Any]]:
    """The setting as `GET /users/{user_id}/settings` answers it (a removed one's stub is no setting)."""
    if setting is None or setting.removed:
        return None
    return {
        "enabled": setting.enabled,
        "threshold": setting.threshold,
        "price_id": setting.price_id,
        "quantity": setting.quantity,
        "monthly_limit": setting.monthly_limit,
        "customer": setting.customer,
        "payment_method": setting.payment_method,
        "status": setting.status,
        "reason": setting.reason,
        "failures": setting.failures,
        "this_month": setting.counted(now),
        "pending_attempt": setting.pending_attempt,
    }


def setting_of(user_data: Optional[Mapping[str, Any]]) -> Optional[TopupSetting]:
    """The setting stored on a user document (None: none, or one this code cannot read)."""
    return TopupSetting.from_dict((user_data or {}).get(FIELD))


def with_due_attempt(change: Change, user_data: Optional[Mapping[str, Any]], now: datetime) -> Change:
    """`change` with the attempt it makes due (and the setting naming it) in the same commit.

    `user_data` is the user document the change was decided on; the setting compared is the one
    the change leaves (a settings change may put, remove or stop it).
    """
    account = change.account
    if account is None:
        return change
    raw = change.user_fields[FIELD] if FIELD in change.user_fields else (user_data or {}).get(FIELD)
    if raw is None or raw is REMOVED:
        return change
    balance = account.legacy_balance if account.legacy_balance is not None else account.balance
    due = decide_attempt(account.user_id, TopupSetting.from_dict(raw), balance, now)
    if due is None:
        return change
    attempt, after = due
    return change.merge(Change(result=change.result, create={attempt.path: attempt.document},
                               user_fields={FIELD: after.to_dict()}))
