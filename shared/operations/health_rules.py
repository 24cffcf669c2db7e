"""What in the system's bookkeeping needs an operator (pure; no I/O).

Rules enforced here:
- kept Stripe events (`webhook_unapplied`), rejected promo messages still `rejected`, and holds
  left open longer than the grace after they expired (the sweep runs every minute, so a hold
  expired for longer means the sweep is not running) each need attention as soon as there is one;
- users owing credits is reported, not alarmed: it is the expected state after Stripe takes back
  a pack whose credits were spent, and it is paid by the user's next grant;
- auto top-up settings disabled by failed charges, disabled by a refund or dispute of a top-up
  (`payment_reversed`), and waiting for the user to authenticate a payment are reported, not
  alarmed: each is one user's card or bank speaking, and the app tells that user; a sudden rise
  is for the dashboards;
- a last completed reconcile pass that found drift needs attention (the drift stays until a
  person corrects it, so the next pass finds it again); a pass not yet run is reported only,
  since the alert on missing passes watches that from the logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping, Optional

UNAPPLIED_EVENTS = "unapplied_stripe_events"
REJECTED_PROMOS = "rejected_promo_messages"
STALE_HOLDS = "expired_holds_not_swept"
OWING_USERS = "users_owing_credits"
TOPUPS_FAILED = "topups_disabled_by_failures"
TOPUPS_REVERSED = "topups_disabled_by_refund_or_dispute"
TOPUPS_ACTION = "topups_waiting_for_action"

# What each count is, and what the operator does about it.
ABOUT = {
    UNAPPLIED_EVENTS: ("Stripe events kept in webhook_unapplied", "credits replay --list, then --event-id ID"),
    REJECTED_PROMOS: ("promo messages kept in promo_rejected, not replayed", "credits replay --list, then --message-id ID"),
    STALE_HOLDS: ("holds expired longer than the grace, not released yet", "is the sweep running? credits holds sweep"),
    OWING_USERS: ("users owing credits taken back by Stripe", "paid by their next grant; nothing to do"),
    TOPUPS_FAILED: ("auto top-ups disabled by declined or impossible charges",
                    "the app asks the user for a new card; credits topup show USER"),
    TOPUPS_REVERSED: ("auto top-ups disabled because a top-up was refunded or disputed",
                      "restarted when the user puts the setting again (or credits topup enable USER)"),
    TOPUPS_ACTION: ("auto top-ups waiting for the user to authenticate a payment",
                    "the app completes the payment with the user on session"),
}
ALARMING = (UNAPPLIED_EVENTS, REJECTED_PROMOS, STALE_HOLDS)
# Named in `attention` when the last completed reconcile pass found drift.
RECONCILE_DRIFT = "drift_in_last_reconcile_pass"
RECONCILE_ACTION = "credits reconcile to see the users and fields; --fix for pool drift"


def reconcile_view(state: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """The scheduled reconcile's last completed pass and current progress, from its bookkeeping."""
    state = state or {}
    last = state.get("last_pass")
    current = {"started_at": _iso(state.get("pass_started_at")), "cursor": state.get("cursor"),
               "users": _count(state.get("users")), "drift": _count(state.get("drift")),
               "pages": _count(state.get("pages"))}
    last_view = None
    if isinstance(last, Mapping):
        last_view = {"started_at": _iso(last.get("started_at")), "finished_at": _iso(last.get("finished_at")),
                     "users": _count(last.get("users")), "transactions": _count(last.get("transactions")),
                     "drift": _count(last.get("drift")), "drift_users": _count(last.get("drift_users")),
                     "unconfirmed": _count(last.get("unconfirmed"))}
    drift = bool(last_view and last_view["drift"])
    return {"last_pass": last_view, "current_pass": current, "needs_attention": drift,
            "action": RECONCILE_ACTION if drift else None}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _iso(value: Any) -> Optional[str]:
    return value.isoformat() if isinstance(value, datetime) else None


@dataclass(frozen=True)
class Health:
    counts: dict[str, int]
    credits_owed: int
    # The scheduled reconcile's bookkeeping document (None: it has not run yet).
    reconcile: Optional[Mapping[str, Any]] = None

    @property
    def attention(self) -> list[str]:
        """The checks that need an operator, in report order."""
        found = [name for name in ALARMING if self.counts.get(name, 0) > 0]
        return found + ([RECONCILE_DRIFT] if reconcile_view(self.reconcile)["needs_attention"] else [])

    def as_dict(self) -> dict[str, Any]:
        return {
            "needs_attention": bool(self.attention),
            "checks": {
                name: {"count": self.counts.get(name, 0), "needs_attention": name in self.attention,
                       "what": ABOUT[name][0], "action": ABOUT[name][1]}
                for name in ABOUT
            },
            "credits_owed": self.credits_owed,
            "reconcile": reconcile_view(self.reconcile),
        }
