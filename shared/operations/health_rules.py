"""What in the system's bookkeeping needs an operator (pure; no I/O).

Rules enforced here:
- kept Stripe events (`webhook_unapplied`), rejected promo messages still `rejected`, and holds
  left open longer than the grace after they expired (the sweep runs every minute, so a hold
  expired for longer means the sweep is not running) each need attention as soon as there is one;
- users owing credits is reported, not alarmed: it is the expected state after Stripe takes back
  a pack whose credits were spent, and it is paid by the user's next grant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

UNAPPLIED_EVENTS = "unapplied_stripe_events"
REJECTED_PROMOS = "rejected_promo_messages"
STALE_HOLDS = "expired_holds_not_swept"
OWING_USERS = "users_owing_credits"

# What each count is, and what the operator does about it.
ABOUT = {
    UNAPPLIED_EVENTS: ("Stripe events kept in webhook_unapplied", "credits replay --list, then --event-id ID"),
    REJECTED_PROMOS: ("promo messages kept in promo_rejected, not replayed", "credits replay --list, then --message-id ID"),
    STALE_HOLDS: ("holds expired longer than the grace, not released yet", "is the sweep running? credits holds sweep"),
    OWING_USERS: ("users owing credits taken back by Stripe", "paid by their next grant; nothing to do"),
}
ALARMING = (UNAPPLIED_EVENTS, REJECTED_PROMOS, STALE_HOLDS)


@dataclass(frozen=True)
class Health:
    counts: dict[str, int]
    credits_owed: int

    @property
    def attention(self) -> list[str]:
        """The checks that need an operator, in report order."""
        return [name for name in ALARMING if self.counts.get(name, 0) > 0]

    def as_dict(self) -> dict[str, Any]:
        return {
            "needs_attention": bool(self.attention),
            "checks": {
                name: {"count": self.counts.get(name, 0), "needs_attention": name in self.attention,
                       "what": ABOUT[name][0], "action": ABOUT[name][1]}
                for name in ABOUT
            },
            "credits_owed": self.credits_owed,
        }
