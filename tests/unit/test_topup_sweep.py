"""The auto top-up sweep goes on past an attempt it cannot charge now: that attempt is counted and
left pending, the others are charged, and the answer says what became of each."""

from __future__ import annotations

from shared.billing import topups
from shared.common.errors import CannotApply, Unavailable


def test_an_attempt_that_cannot_be_charged_now_neither_stops_the_sweep_nor_hides_what_it_settled(monkeypatch):
    stale = [{"attempt_id": name} for name in ("a-fault", "a-no-amount", "a-good")]
    monkeypatch.setattr(topups.scans, "stale_attempts", lambda before, limit: stale)
    charged = []

    def charge(attempt_id):
        charged.append(attempt_id)
        if attempt_id == "a-fault":
            raise Unavailable("Stripe is unreachable")
        if attempt_id == "a-no-amount":
            raise CannotApply("Stripe has no unit amount for price p", "u1")
        return "succeeded"

    monkeypatch.setattr(topups, "charge", charge)
    answer = topups.sweep(limit=10)
    assert charged == ["a-fault", "a-no-amount", "a-good"]
    assert answer == {"attempts": 3, "outcomes": {"retry_later": 1, "cannot_charge": 1, "succeeded": 1},
                      "more": False}
