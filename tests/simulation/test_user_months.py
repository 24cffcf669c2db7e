"""A user's months (`months.generate`), delivered as they arrive, with faults, thousands of times.

Each seed's history is delivered as its plan draws it (`months.plan`: Stripe's and Pub/Sub's
messages late, out of order and twice, the app's calls made again, lost replies and stalled
commits) to the real services on a fresh in-memory Firestore, on a simulated clock
(`runner.Runner`). After every step the ledger invariant and the answer the step got are checked
(`runner.check_ledger`, `runner.AppModel`), and at the end that every key, hold, refund,
adjustment, promotion and pack took effect once (`runner.check_final`).

Then the final state is compared with another delivery of the same history:

- A history with app calls: the pool a spend draws from, and whether it is refused, depend on
  which Stripe events have arrived when it is made, so the final pools legitimately differ
  between arrival orders. What must not differ is the effect of faults and repeats: the plan is
  delivered again exactly as it took effect (each Stripe and Pub/Sub fact once, at its first
  arrival that was not answered 503; each app call that was not a 503 or a replay, at the time
  it was made), with no fault and no repeat, and every answer, the records in `seq` order and
  the pools, debts and totals must be the same. (Both runs end with one closing adjustment when
  the app made holds, so an expired hold's release is written in both.)
- A history of Stripe and marketing alone: the pools and `credits_owed` once everything is
  delivered equal delivery in creation order (CONTRACT section 4, "Delivery order"), less what the
  contract lets an order leave out: a renewal for a period older than one already renewed (what
  it would have rolled over is not recomputed) and a plan change of a period renewed past
  (`runner.skippable`). Packs, refunds, disputes and promotions change only the permanent pool
  when nothing is spent, so they converge too (section 4b).

`CREDITS_SIM_HISTORIES` sets how many histories run (default 2,000), in `CREDITS_SIM_WORKERS`
processes (default: one per CPU, at most 4). A failure names its seed and the command that
replays that one history alone, which also shrinks it (`runner.shrink`: the fewest facts that
fail the same way, the start of a named case in `test_found_orders.py`):

    CREDITS_SIM_SEED=1234 .venv/bin/python -m pytest tests/simulation/test_user_months.py -q

With auto top-up (a share of the app histories, `months._topups`), the run also delivers what
each charge causes (`topups.spawned`) and checks section 9 after every step and at the end
(`topups`); the reference run delivers those deliveries as they took effect, so the final
credits must not depend on the order the triggers, the charges' answers and the webhooks came in.

Seeds that meet a known bug are listed in `found.py` and run as strict xfails of their own.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.simulation.found import KNOWN_BUGS
from tests.simulation.runner import WORKERS, check_in_workers, check_seeds

HISTORIES = int(os.environ.get("CREDITS_SIM_HISTORIES", "2000"))
FIRST_SEED = 1


def test_a_user_s_months_delivered_late_out_of_order_twice_and_with_faults_keep_the_ledger_whole():
    started = time.monotonic()
    if os.environ.get("CREDITS_SIM_SEED"):
        # One seed replayed: a failure also shows the fewest facts that fail the same way.
        seeds = [int(os.environ["CREDITS_SIM_SEED"])]
        failures = check_seeds(seeds, shrinking=True)
    else:
        seeds = [seed for seed in range(FIRST_SEED, FIRST_SEED + HISTORIES) if seed not in KNOWN_BUGS]
        failures = check_in_workers(seeds)
    elapsed = time.monotonic() - started
    assert not failures, (f"{len(failures)} of {len(seeds)} histories failed (seeds "
                          f"{[seed for seed, _ in failures][:20]}); the first:\n{failures[0][1]}")
    print(f"simulation: {len(seeds)} histories of a user's months in {elapsed:.1f}s ({WORKERS} processes)")


@pytest.mark.parametrize("seed", [pytest.param(seed, marks=pytest.mark.xfail(strict=True, reason=reason))
                                  for seed, reason in sorted(KNOWN_BUGS.items())])
def test_a_history_that_meets_a_known_bug_still_fails(seed):
    failures = check_seeds([seed])
    assert not failures, failures[0][1]
