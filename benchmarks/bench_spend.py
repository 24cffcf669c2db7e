"""Spend latency and throughput: the `spend` service against a plain `@firestore.transactional`
spend of the same writes, on the same fresh Firestore emulator, in the same run.

Prints median and p95 latency (sequential), spends per second with 1, 2, 4 and 8 concurrent
spenders on one user and on different users, failures, a lost-update check, and the Firestore
round trips each spend makes.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import common  # noqa: E402  (benchmarks/ is the script's folder)
from common import fresh_firestore, out  # noqa: E402

SEQUENTIAL = int(os.environ.get("BENCH_SEQUENTIAL", "300"))
WINDOW_S = float(os.environ.get("BENCH_WINDOW_S", "3"))
CONCURRENCY = (1, 2, 4, 8)
START_CREDITS = 1_000_000_000


class RoundTrips:
    """Counts the Firestore RPCs a client makes, by wrapping its GAPIC methods."""

    METHODS = ("batch_get_documents", "commit", "begin_transaction", "rollback", "get_document", "run_query")

    def __init__(self, client) -> None:
        self.counts: Counter = Counter()
        self.lock = threading.Lock()
        api = client._firestore_api
        for name in self.METHODS:
            original = getattr(api, name)

            def counted(*args, _name=name, _original=original, **kwargs):
                with self.lock:
                    self.counts[_name] += 1
                return _original(*args, **kwargs)

            setattr(api, name, counted)

    def take(self) -> Counter:
        with self.lock:
            counts, self.counts = self.counts, Counter()
        return counts


def main() -> int:
    with fresh_firestore():
        return run()


def run() -> int:
    from google.cloud import firestore

    from shared.ledger import accounts, codec, collections, records
    from shared.spending import rules as spending_rules
    from shared.spending import service as spending
    from shared.store import client as store_client
    from shared.store import commit, group

    db = store_client.client()
    trips = RoundTrips(db)

    def seed(user_id: str) -> None:
        common.seed(user_id, START_CREDITS)

    def ours(user_id: str, key: str) -> None:
        spending.spend(user_id, 7, "bench", key)

    @firestore.transactional
    def _baseline_txn(transaction, user_id: str, key: str) -> None:
        uref = db.collection(collections.USERS).document(user_id)
        kref = db.document(collections.spend_key(key))
        snaps = {s.reference.path: s for s in transaction.get_all([uref, kref])}
        if snaps[kref.path].exists:
            return
        now = store_client.utcnow()
        account = codec.read_account(user_id, snaps[uref.path].to_dict())
        entries = spending_rules.plan_spend(account, 7, "bench", spending.spend_order())
        after = accounts.apply(account, entries)
        transaction.update(uref, {"credits_monthly": after.monthly, "credits_permanent": after.permanent,
                                  "total_spent": after.total_spent, "last_updated": now})
        for record in records.records(user_id, entries, key, now, at=common.unnumbered(account)):
            transaction.set(db.collection(collections.TRANSACTIONS).document(record.transaction_id),
                            codec.transaction_document(record))
        transaction.create(kref, {"idempotency_key": key, "user_id": user_id, "fingerprint": "bench",
                                  "response": "{}", "created_at": now})

    def baseline(user_id: str, key: str) -> None:
        _baseline_txn(db.transaction(), user_id, key)

    impls = {"transactional (baseline)": baseline, "spend service": ours}
    # The service's JSON log lines are still formatted and written, just not shown.
    sys.stdout = io.StringIO()

    # Warm up both paths (client channel, emulator JIT) before timing anything.
    for name, fn in impls.items():
        seed(f"warm-{name}")
        for _ in range(30):
            fn(f"warm-{name}", uuid.uuid4().hex)
    trips.take()

    out(f"Sequential latency, {SEQUENTIAL} spends each, interleaved in rounds of 25")
    latencies = {name: [] for name in impls}
    rt = {}
    for name in impls:
        seed(f"seq-{name}")
    for _ in range(SEQUENTIAL // 25):
        for name, fn in impls.items():
            trips.take()
            for _ in range(25):
                started = time.perf_counter()
                fn(f"seq-{name}", uuid.uuid4().hex)
                latencies[name].append(time.perf_counter() - started)
            rt[name] = trips.take()
    medians = {}
    for name, values in latencies.items():
        values.sort()
        medians[name] = statistics.median(values)
        p95 = values[int(len(values) * 0.95) - 1]
        per_spend = sum(rt[name].values()) / 25
        detail = ", ".join(f"{k} {v / 25:g}" for k, v in sorted(rt[name].items()))
        out(f"  {name:<26} median {medians[name] * 1000:6.2f} ms   p95 {p95 * 1000:6.2f} ms   "
              f"round trips per spend {per_spend:g} ({detail})")
    ratio = medians["spend service"] / medians["transactional (baseline)"]
    out(f"  median ratio spend/baseline: {ratio:.2f}  (target <= 0.75 over HTTP, bench_http.py)")

    # The same service with its in-process per-user lock disabled: the update-time precondition
    # alone serialises the spenders, as it does across separate instances.
    real_stripe = commit._stripe
    real_group_max = group.GROUP_MAX
    variants = [
        ("transactional (baseline)", baseline, ("one", "different"), real_stripe),
        ("spend service", ours, ("one", "different"), real_stripe),
        ("spend, no process lock", ours, ("one",), lambda _user: contextlib.nullcontext()),
    ]

    out(f"\nThroughput, {WINDOW_S:g} s per cell: spends/s (failed requests)")
    out(f"  {'':<26} {'users':<10}" + "".join(f"{n:>16}" for n in CONCURRENCY))
    lost = 0
    for name, fn, shapes, stripe in variants:
        commit._stripe = stripe
        # Without the lock the spenders stand for separate instances, which cannot group either.
        group.GROUP_MAX = real_group_max if stripe is real_stripe else 1
        for shape in shapes:
            cells = []
            for threads in CONCURRENCY:
                users = [f"tp-{name}-{shape}-{threads}-{i if shape == 'different' else 0}" for i in range(threads)]
                for user in set(users):
                    seed(user)
                deadline = time.perf_counter() + WINDOW_S

                def worker(i: int) -> tuple[int, int]:
                    done = errors = 0
                    while time.perf_counter() < deadline:
                        try:
                            fn(users[i], uuid.uuid4().hex)
                            done += 1
                        except Exception:  # noqa: BLE001 - a failed request is what is counted
                            errors += 1
                    return done, errors

                started = time.perf_counter()
                with ThreadPoolExecutor(threads) as pool:
                    outcomes = list(pool.map(worker, range(threads)))
                elapsed = time.perf_counter() - started
                ok, failed = Counter(), Counter()
                for user, (done, errors) in zip(users, outcomes):
                    ok[user] += done
                    failed[user] += errors
                for user in set(users):
                    doc = db.collection(collections.USERS).document(user).get().to_dict()
                    if doc["credits_permanent"] != START_CREDITS - 7 * ok[user]:
                        lost += 1
                cells.append(f"{sum(ok.values()) / elapsed:9.1f} ({sum(failed.values()):>3})")
            out(f"  {name:<26} {shape:<10}" + "".join(f"{c:>16}" for c in cells))
    commit._stripe = real_stripe
    group.GROUP_MAX = real_group_max
    out(f"\nLost updates (a pool that disagrees with the successful spends): {lost}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
