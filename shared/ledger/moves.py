"""The monthly pool's movements between subscription facts, kept for users with a subscription.

Rules enforced here (pure):
- a user whose document carries `stripe_epoch` (how many subscription facts were recorded, kept
  by the billing feature) has every other change to the monthly pool (a spend, a refund, a hold,
  a take-back, an adjustment) recorded in `monthly_moves`, stamped with that epoch, in the same
  commit: so a subscription fact that arrives late can be placed among them by Stripe's time and
  the pool recomputed as creation order would have left it;
- moves between the same two facts are summed into one, so the list grows with the facts, not
  with the spends;
- a change that records a subscription fact itself (it writes `stripe_epoch`) is not a move;
- a user without subscription facts pays nothing: no field is written.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

EPOCH = "stripe_epoch"
MOVES = "monthly_moves"


def recorded(stored: Optional[Mapping[str, Any]], monthly_before: int, monthly_after: int,
             user_fields: Mapping[str, Any]) -> Optional[list[dict[str, int]]]:
    """The moves list to write for a change of the monthly pool from `monthly_before` to
    `monthly_after`, or None when there is nothing to record."""
    if not stored or EPOCH not in stored or EPOCH in user_fields or MOVES in user_fields:
        return None
    delta = monthly_after - monthly_before
    if delta == 0:
        return None
    epoch = int(stored.get(EPOCH) or 0)
    moves = [dict(move) for move in (stored.get(MOVES) or [])]
    if moves and moves[-1].get("epoch") == epoch:
        moves[-1]["delta"] = int(moves[-1]["delta"]) + delta
    else:
        moves.append({"epoch": epoch, "delta": delta})
    return moves
