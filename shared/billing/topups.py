"""Charging auto top-up attempts (function `auto_topup`, and the sweep of lost triggers), CONTRACT
section 9.

Rules enforced here:
- an attempt is charged only while it is `pending` and its setting is enabled, `active` and
  names it (`autotopup.should_charge`); one whose setting was stopped, removed or put anew is
  `canceled` and nothing is charged; a settled attempt makes no Stripe call at all, so a
  repeated trigger costs one read;
- the charge is one `POST /v1/payment_intents` off-session with the attempt id as Stripe's
  idempotency key: however often the trigger (or the sweep) comes, Stripe answers with the same
  PaymentIntent; the amount is the price's `unit_amount` x `quantity` (read from Stripe), the
  customer the setting's or the one linked to the user, the payment method the setting's or the
  customer's default; without a customer or a payment method nothing is created and the
  attempt fails (`missing_payment_method`);
- the answer is recorded by one commit through the kernel (`decisions.topup_change`), which
  settles the attempt once whichever of it and the webhook comes first; a PaymentIntent Stripe
  has not decided yet (`processing`) is left pending for the webhook;
- a Stripe or Firestore fault that may heal raises (transient), so the trigger is delivered
  again and the same key makes the same charge;
- the sweep charges attempts pending for more than `STALE_AFTER` (their trigger was lost) the
  same way, with the same key; one attempt that cannot be charged now (a fault, a price without an
  amount) is counted and left pending, and the sweep goes on to the next, so its answer says
  truly what it settled and no attempt blocks the others.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any, Optional

from ..common import log
from ..common.errors import CannotApply, CreditsError
from ..ledger import autotopup, collections
from ..ledger.autotopup import ChargeOutcome
from ..store import documents, scans
from ..store.client import utcnow
from ..store.commit import change_user
from . import customers, stripe_api
from .decisions import TopupResult, topup_change

STALE_AFTER = timedelta(minutes=5)


def charge(attempt_id: str) -> str:
    """Charge one attempt (if it is still to be charged); the attempt's status after."""
    path = collections.topup_attempt(attempt_id)
    attempt = documents.read(path)
    if attempt is None:
        log.warning("auto top-up attempt not found", attempt_id=attempt_id, outcome="missing")
        return "missing"
    user_id = attempt["user_id"]
    setting = autotopup.setting_of(documents.read(collections.user(user_id)))
    go = autotopup.should_charge(attempt, setting)
    if go is None:
        return str(attempt.get("status"))
    if not go:
        return _record(user_id, TopupResult(attempt_id, ChargeOutcome(autotopup.CANCELED, "setting_stopped")))
    answer = _charge(attempt, setting)
    if answer is None:
        log.info("auto top-up charge not decided yet", attempt_id=attempt_id, user_id=user_id, outcome="processing")
        return autotopup.PENDING
    return _record(user_id, answer)


def _charge(attempt: dict[str, Any], setting: autotopup.TopupSetting) -> Optional[TopupResult]:
    attempt_id, user_id = attempt["attempt_id"], attempt["user_id"]
    missing = TopupResult(attempt_id, ChargeOutcome(autotopup.MISSING_PAYMENT_METHOD, autotopup.MISSING_PAYMENT_METHOD))
    customer = setting.customer or customers.customer_of(user_id)
    if customer is None:
        return missing
    method = setting.payment_method
    if method is None:
        exists, method = stripe_api.default_payment_method(customer)
        if not exists or method is None:
            return missing
    price = stripe_api.price(attempt["price_id"])
    if price is None:
        raise CannotApply(f"Stripe has no unit amount for price {attempt['price_id']}", user_id)
    metadata = {"user_id": user_id, "topup_attempt_id": attempt_id, "credits": str(attempt["credits"])}
    answer = stripe_api.create_payment_intent(attempt_id, price.unit_amount * int(attempt["quantity"]),
                                              price.currency, customer, method, metadata)
    if answer.error_type is not None:
        if answer.code == "resource_missing" and answer.error_type == "invalid_request_error":
            return missing
        outcome = autotopup.outcome_of_error(answer.code, answer.decline_code, answer.advice_code,
                                             answer.payment_intent)
    else:
        outcome = autotopup.outcome_of_intent(answer.status, answer.payment_intent)
        if outcome is None:
            return None
    return TopupResult(attempt_id, outcome, answer.client_secret)


def _record(user_id: str, result: TopupResult) -> str:
    decision = change_user(user_id, partial(topup_change, result=result), reads=result.documents,
                           operation="auto_topup")
    status = autotopup.attempt_status(result.outcome)
    log.info("auto top-up attempt settled" if decision.outcome == "applied" else "auto top-up attempt already settled",
             attempt_id=result.attempt_id, user_id=user_id, outcome=status, reason=result.outcome.decline_code,
             payment_intent=result.outcome.payment_intent)
    return status if decision.outcome == "applied" else "already_settled"


def sweep(limit: int = 100) -> dict[str, Any]:
    """Charge up to `limit` attempts whose trigger was lost (pending for over `STALE_AFTER`)."""
    found = scans.stale_attempts(utcnow() - STALE_AFTER, limit)
    outcomes: dict[str, int] = {}
    for attempt in found:
        try:
            status = charge(attempt["attempt_id"])
        except CreditsError as err:
            # Left pending: the next sweep (or the trigger) tries it again with the same key.
            status = "retry_later" if err.transient else "cannot_charge"
            log.warning("auto top-up attempt left pending by the sweep", attempt_id=attempt["attempt_id"],
                        outcome=status, detail=err.message)
        outcomes[status] = outcomes.get(status, 0) + 1
    more = len(found) == limit
    log.info("auto top-up attempts swept", outcome="swept", attempts=len(found), more=more, **outcomes)
    return {"attempts": len(found), "outcomes": outcomes, "more": more}
