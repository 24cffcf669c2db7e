"""The system's bookkeeping counts an operator watches, read with aggregation queries.

Rules enforced here:
- every count is one aggregation read (no document is downloaded), so a check costs the same
  for ten kept events or ten thousand; auto top-up's counts filter the setting's state on the
  user documents (`auto_topup.status`, `.reason`); the scheduled reconcile's progress is one
  document read;
- what needs attention is decided by `health_rules`, not here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Optional

from ..ledger import autotopup, collections
from ..ledger.codec import CREDITS_OWED
from ..ledger.holds import HELD
from ..store import scans
from ..store.client import utcnow
from . import reconciliation
from .health_rules import (
    OWING_USERS,
    REJECTED_PROMOS,
    STALE_HOLDS,
    TOPUPS_ACTION,
    TOPUPS_FAILED,
    TOPUPS_REVERSED,
    UNAPPLIED_EVENTS,
    Health,
)

DEFAULT_HOLD_GRACE = timedelta(minutes=5)


def check(hold_grace: timedelta = DEFAULT_HOLD_GRACE, now: Optional[datetime] = None) -> Health:
    now = now or utcnow()
    unapplied, _ = scans.aggregate(collections.UNAPPLIED_EVENTS)
    rejected, _ = scans.aggregate(collections.PROMO_REJECTED, (("status", "==", "rejected"),))
    stale, _ = scans.aggregate(collections.HOLDS, (("status", "==", HELD), ("expires_at", "<=", now - hold_grace)))
    owing, owed = scans.aggregate(collections.USERS, ((CREDITS_OWED, ">", 0),), sum_of=CREDITS_OWED)
    # The setting's state is on the user document (`auto_topup.status`, `.reason`).
    status, reason = f"{autotopup.FIELD}.status", f"{autotopup.FIELD}.reason"
    failed, _ = scans.aggregate(collections.USERS, ((status, "==", autotopup.DISABLED),
                                                    (reason, "in", list(autotopup.FAILURE_REASONS))))
    reversed_, _ = scans.aggregate(collections.USERS, ((status, "==", autotopup.DISABLED),
                                                       (reason, "==", autotopup.PAYMENT_REVERSED)))
    waiting, _ = scans.aggregate(collections.USERS, ((status, "==", autotopup.ACTION_REQUIRED),))
    return Health(
        counts={UNAPPLIED_EVENTS: unapplied, REJECTED_PROMOS: rejected, STALE_HOLDS: stale, OWING_USERS: owing,
                TOPUPS_FAILED: failed, TOPUPS_REVERSED: reversed_, TOPUPS_ACTION: waiting},
        credits_owed=owed,
        reconcile=reconciliation.state(),
    )
