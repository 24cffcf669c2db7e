"""The bugs of `shared/billing` (and auto top-up's rules) the generated histories found, and the seeds that met them.

Each bug has a minimized case in `test_found_orders.py`, named for it, kept as a regression test
once fixed. While a bug stands, the seeds of `test_user_months.py`'s default run that meet it are
listed in `KNOWN_BUGS`: they are left out of the main test and run as strict xfails of their own
(as the minimized case is marked), so the suite stays green and tells when the fix lands.
"""

from __future__ import annotations

LATE_END = ("a late pause or cancellation takes what a later renewal rolled over, even when that came from credits "
            "granted after the end (seeds 112, 1554 of test_user_months)")
PAUSE_AFTER_RESUME = ("a pause that arrives after its own resume is taken as part of an earlier pause and answered "
                      "stale (seeds 25, 1890, 1893 of test_user_months)")
EARLY_UPGRADE = ("an upgrade that arrives before the renewal of its own period is granted on the previous period "
                 "and reset by that renewal (seeds 1103, 1191, 1448, 1957 of test_user_months)")
FIRST_INVOICE_AFTER_UPGRADE = ("an upgrade delivered before its subscription's first invoice stands in for that "
                               "invoice: the pool it would have reset is kept, and an older subscription's late end "
                               "takes the upgrade (seeds 110, 681 of test_user_months)")
PAUSED_THEN_CANCELLED = ("the cancellation of a replaced subscription that was paused before its replacement began "
                         "gives the replacement a rollover the pause had taken (seed 848 of test_user_months)")
SECOND_PAUSE = ("a pause that arrives while an earlier pause's resume has not arrived is taken for that pause and "
                "answered duplicate (seeds 1106, 1642 of test_user_months)")
CANCELLED_REPLACEMENT = ("a cancellation ignored because an older subscription looked active is not applied when "
                         "that subscription's earlier pause arrives (found by an earlier draw of test_user_months)")
REPLACEMENT_PAUSED_FIRST = ("a replaced subscription's late pause leaves its credits in the pool when its "
                            "replacement's own pause arrived before the replacement's first invoice (seed 9 of "
                            "test_user_months)")
REPLACED_UPGRADE = ("an upgrade of a replaced subscription delivered after its replacement's first invoice adds "
                    "credits that invoice had reset (seed 1682 of test_user_months)")
CHARGED_THEN_CANCELED = ("an attempt whose charge Stripe made, but whose answer the function lost, is canceled "
                         "when the setting is stopped before its trigger comes again, and the payment's success then lands "
                         "no credits (seed 1876 of test_user_months)")
REMOVED_THEN_PUT = ("removing the auto top-up setting forgets its pending attempt and the month's count, so putting it "
                    "again starts a second pending attempt and charges past the monthly limit (seeds 555, 774, 1214, "
                    "1562 of test_user_months)")

# Every bug above is fixed (`shared/billing/timeline.py` replays subscription facts in creation
# order); the seeds that met them run in the main test again. A seed that meets a new bug goes here.
KNOWN_BUGS: dict[int, str] = {}
