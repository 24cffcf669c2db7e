"""The pure parts of subscription credits that read an invoice, and what every Stripe decision returns.

Rules enforced here:
- an allowance is the plan's `monthly_credits` times the line's quantity (seats);
- the line that renews a plan is a plan price with a period, not a proration, latest first (a
  renewal invoice may carry prorations of the period before); the line that charges an upgrade is
  a plan price that is not a credit for unused time;
- a `Decision` is an outcome, the entries that carry it out, and what else the change writes.
How renewals, upgrades, pauses and ends move the monthly pool, in any delivery order, is
`timeline` (replayed in creation order) and `decisions` (one named decision per event type).
No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from ..ledger.accounts import Entry
from .catalog import Catalog, Plan
from .events import InvoiceLine
from .outcomes import Outcome

APPLIED, DUPLICATE, STALE, IGNORED, UNAPPLIED = (Outcome.APPLIED, Outcome.DUPLICATE, Outcome.STALE, Outcome.IGNORED,
                                                 Outcome.UNAPPLIED)


@dataclass(frozen=True)
class Decision:
    """An outcome, the entries that carry it out, and the subscription state to keep."""

    outcome: str
    entries: tuple[Entry, ...] = ()
    reason: str = ""
    # A renewal, pause or cancellation starts the monthly pool afresh: refunds of older spends'
    # monthly parts expire at once (CONTRACT 3b).
    resets_monthly: bool = False
    # Set by a rule that settles debts itself (money back): the debts after its entries, which
    # then already include any collection. None: the entries are grants that pay debts first.
    owed_by: Optional[tuple[tuple[str, int], ...]] = None
    # Documents the change writes over the version it read (a payment's document).
    documents: Optional[dict[str, dict[str, Any]]] = None
    # Fields of the user document the decision writes (the subscription timeline).
    user_fields: Optional[dict[str, Any]] = None
    # Money back on an auto top-up's payment: the user's auto top-up setting stops in the same commit.
    disables_topup: bool = False

    @property
    def writes(self) -> bool:
        return bool(self.entries or self.documents or self.user_fields)


def allowance(plan: Plan, quantity: int) -> int:
    return plan.monthly_credits * max(quantity, 1)


def _latest(candidates: Sequence[tuple[InvoiceLine, Plan]]) -> Optional[tuple[InvoiceLine, Plan]]:
    if not candidates:
        return None
    return max(candidates, key=lambda pair: (pair[0].period.start, allowance(pair[1], pair[0].quantity)))


def renewal_line(lines: Sequence[InvoiceLine], catalog: Catalog) -> Optional[tuple[InvoiceLine, Plan]]:
    """The line that renews a plan: a plan price with a period, not a proration, latest first.

    A renewal invoice may also carry prorations from changes in the previous period; those
    are not the renewal.
    """
    plans = [(line, catalog.plan(line.price_id)) for line in lines if line.period and catalog.plan(line.price_id)]
    return _latest([pair for pair in plans if not pair[0].proration]) or _latest(plans)


def upgrade_line(lines: Sequence[InvoiceLine], catalog: Catalog) -> Optional[tuple[InvoiceLine, Plan]]:
    """The line charging for the new plan: a plan price that is not a credit for unused time."""
    plans = [(line, catalog.plan(line.price_id)) for line in lines if line.period and catalog.plan(line.price_id)]
    return _latest([pair for pair in plans if pair[0].amount >= 0])


def unknown_prices(lines: Sequence[InvoiceLine]) -> list[str]:
    return sorted({line.price_id or "(no price)" for line in lines})
