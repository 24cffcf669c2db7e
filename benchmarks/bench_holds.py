"""Hold and capture latency: the holds service (`POST /holds`, then `POST /holds/{id}/capture` of
part of it) against plain `@firestore.transactional` functions making the same writes, with a
spend of the service beside them, on the same Firestore emulator in the same run.

Prints the median and p95 of a hold, a capture and a spend (sequential, interleaved in rounds),
the ratio of each to its baseline, and the Firestore round trips each makes.
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import time
import uuid
from datetime import timedelta

import common  # noqa: E402  (benchmarks/ is the script's folder)
from bench_spend import RoundTrips  # noqa: E402
from common import fresh_firestore, out  # noqa: E402

SEQUENTIAL = int(os.environ.get("BENCH_SEQUENTIAL", "200"))
ROUND = 20
START_CREDITS = 1_000_000_000


def main() -> int:
    with fresh_firestore():
        return run()


def run() -> int:
    from google.cloud import firestore

    from shared.common import ids
    from shared.ledger import accounts, codec, collections, holds, records
    from shared.spending import holds_service
    from shared.spending import rules as spending_rules
    from shared.spending import service as spending
    from shared.spending.holds import HoldRequest, SettleRequest
    from shared.store import client as store_client

    db = store_client.client()
    trips = RoundTrips(db)

    def seed(user_id: str) -> None:
        common.seed(user_id, START_CREDITS)

    @firestore.transactional
    def _baseline_hold(transaction, user_id: str, hold_id: str) -> None:
        uref = db.document(collections.user(user_id))
        kref = db.document(collections.spend_key(hold_id))
        snaps = {s.reference.path: s for s in transaction.get_all([uref, kref])}
        if snaps[kref.path].exists:
            return
        now = store_client.utcnow()
        data = snaps[uref.path].to_dict()
        account = codec.read_account(user_id, data)
        entries = spending_rules.plan_spend(account, 10, "bench", spending.spend_order())
        after = accounts.apply(account, entries)
        hold = {"hold_id": hold_id, "amount": 10, "description": "bench", "created_at": now,
                "expires_at": now + timedelta(seconds=900),
                "drawn": [{"pool": e.pool.value, "amount": -e.amount} for e in entries]}
        open_holds = {**(data.get(holds.OPEN_HOLDS) or {}), ids.open_hold_key(hold_id): hold}
        transaction.update(uref, {"credits_monthly": after.monthly, "credits_permanent": after.permanent,
                                  "total_spent": after.total_spent, "last_updated": now,
                                  holds.OPEN_HOLDS: open_holds})
        for record in records.records(user_id, entries, hold_id, now, at=common.unnumbered(account)):
            transaction.set(db.document(collections.transaction(record.transaction_id)),
                            codec.transaction_document(record))
        transaction.create(kref, {"hold_id": hold_id, "user_id": user_id, "fingerprint": "bench",
                                  "response": "{}", "created_at": now})
        transaction.create(db.document(collections.hold(hold_id)), holds.hold_document(hold, user_id, "held", 0, None))

    @firestore.transactional
    def _baseline_capture(transaction, user_id: str, hold_id: str) -> None:
        uref = db.document(collections.user(user_id))
        href = db.document(collections.hold(hold_id))
        gref = db.document(collections.spend_refunds(hold_id))
        snaps = {s.reference.path: s for s in transaction.get_all([uref, href, gref])}
        hold = snaps[href.path].to_dict()
        if hold["status"] != "held":
            return
        now = store_client.utcnow()
        data = snaps[uref.path].to_dict()
        account = codec.read_account(user_id, data)
        entries = holds.give_back(holds.drawn_entries(hold["drawn"]), {}, 4, "bench", False)
        after = accounts.apply(account, entries)
        open_holds = dict(data.get(holds.OPEN_HOLDS) or {})
        open_holds.pop(ids.open_hold_key(hold_id), None)
        transaction.update(uref, {"credits_monthly": after.monthly, "credits_permanent": after.permanent,
                                  "total_spent": after.total_spent, "last_updated": now,
                                  holds.OPEN_HOLDS: open_holds})
        for record in records.records(user_id, entries, hold_id, now, at=common.unnumbered(account)):
            transaction.set(db.document(collections.transaction(record.transaction_id)),
                            codec.transaction_document(record))
        transaction.set(href, holds.hold_document(hold, user_id, "captured", 6, now, settlement={}, fingerprint="x"))
        transaction.set(gref, holds.give_back_document(hold_id, user_id, holds.refunded_by(entries), now))

    def baseline_hold(user_id, hold_id):
        _baseline_hold(db.transaction(), user_id, hold_id)

    def baseline_capture(user_id, hold_id):
        _baseline_capture(db.transaction(), user_id, hold_id)

    def service_hold(user_id, hold_id):
        holds_service.hold(HoldRequest(user_id, 10, hold_id, "bench", 900))

    def service_capture(user_id, hold_id):
        holds_service.settle(SettleRequest(hold_id, amount=6))

    def service_spend(user_id, key):
        spending.spend(user_id, 10, "bench", key)

    sys.stdout = io.StringIO()
    pairs = {"baseline": (baseline_hold, baseline_capture), "service": (service_hold, service_capture)}
    for name in pairs:
        seed(f"warm-{name}")
        seed(f"seq-{name}")
    seed("seq-spend")
    for name, (hold, capture) in pairs.items():
        for _ in range(20):
            key = uuid.uuid4().hex
            hold(f"warm-{name}", key)
            capture(f"warm-{name}", key)
    trips.take()

    timings = {f"{name} {step}": [] for name in pairs for step in ("hold", "capture")}
    timings["service spend"] = []
    counted = {}

    def timed(label, fn, *args):
        trips.take()
        started = time.perf_counter()
        fn(*args)
        timings[label].append(time.perf_counter() - started)
        counted[label] = sum(trips.take().values())

    for _ in range(SEQUENTIAL // ROUND):
        for name, (hold, capture) in pairs.items():
            # A job at a time: hold, then capture (the user has one open hold at a time).
            for _ in range(ROUND):
                key = uuid.uuid4().hex
                timed(f"{name} hold", hold, f"seq-{name}", key)
                timed(f"{name} capture", capture, f"seq-{name}", key)
        for _ in range(ROUND):
            timed("service spend", service_spend, "seq-spend", uuid.uuid4().hex)

    out(f"Sequential latency, {SEQUENTIAL} of each, interleaved in rounds of {ROUND}")
    medians = {}
    for label, values in timings.items():
        values.sort()
        medians[label] = statistics.median(values)
        p95 = values[int(len(values) * 0.95) - 1]
        out(f"  {label:<18} median {medians[label] * 1000:6.2f} ms   p95 {p95 * 1000:6.2f} ms   "
            f"round trips {counted[label]}")
    for step in ("hold", "capture"):
        out(f"  median ratio service/baseline, {step}: {medians[f'service {step}'] / medians[f'baseline {step}']:.2f}")
    out(f"  median ratio hold/spend (service): {medians['service hold'] / medians['service spend']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
