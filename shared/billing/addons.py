"""The pure rules of add-on packs: what a paid Checkout Session grants.

Rules enforced here:
- each line item whose price is a catalog add-on grants `permanent_credits` times the quantity
  bought, as one `addon_purchase` entry in the permanent pool;
- other prices grant nothing and are reported, so a mixed session still grants its packs.
"""

from __future__ import annotations

from typing import Optional, Sequence

from ..ledger.accounts import Entry
from ..ledger.models import CreditPool, TransactionType
from .catalog import Addon, Catalog
from .events import LineItem


def addon_entries(items: Sequence[LineItem], catalog: Catalog) -> tuple[tuple[Entry, ...], list[str]]:
    """One `addon_purchase` entry per catalog add-on line, and the prices that are not add-ons."""
    entries, others = [], []
    for item in items:
        addon: Optional[Addon] = catalog.addon(item.price_id)
        if addon is None:
            others.append(item.price_id or "(no price)")
            continue
        entries.append(
            Entry(
                TransactionType.ADDON_PURCHASE,
                CreditPool.PERMANENT,
                addon.permanent_credits * item.quantity,
                f"Add-on pack {addon.price_id} x {item.quantity}",
            )
        )
    return tuple(entries), others
