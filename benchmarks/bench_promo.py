"""Promo grant throughput: one campaign to 10,000 users (20 messages of 500) through the
promotions service, against raw `WriteBatch` commits of the same writes, on the same fresh
Firestore emulator, in the same run.

Two campaigns per repeat: to users with no record yet (the service creates their documents)
and to the same users again under a second grant id (the service updates them, conditioned
on the update time it read). The raw baseline commits the same documents with the same write
kinds (create for an absent user, update for an existing one, create for each record) in
batches of 500 writes, but reads nothing, decides nothing and adds no update-time condition.
A second baseline writes the user documents with a blind `set` instead, the cheapest write
there is. A third commits the same writes as the first through the store's own protobuf
encoding (`shared/store/wire.py`), which the service also uses: against it, the ratio shows what
the service's reads and decisions cost, with the library's encoding taken out of both sides.
Prints users per second for each, medians over the repeats, and the ratios.
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import time

from common import fresh_firestore, out  # noqa: E402  (benchmarks/ is the script's folder)

from tests.support.emulators import Emulator  # noqa: E402

USERS = int(os.environ.get("BENCH_USERS", "10000"))
MESSAGE_USERS = 500
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
AMOUNT = 25


def main() -> int:
    with fresh_firestore() as emulator:
        return run(emulator)


def run(emulator: Emulator) -> int:
    from google.cloud.firestore_v1 import aggregation
    from google.cloud.firestore_v1.base_query import FieldFilter

    from shared.common.ids import grant_record_id
    from shared.ledger import collections
    from shared.promotions import schemas
    from shared.promotions import service as promo_service
    from shared.store import client as store_client
    from shared.store import wire
    from shared.store.batch import MAX_BATCH_WRITES

    db = store_client.client()
    users_col, records_col = db.collection(collections.USERS), db.collection(collections.TRANSACTIONS)

    def messages(prefix: str, grant_id: str) -> list[schemas.PromoMessage]:
        ids = [f"{prefix}-{i:05d}" for i in range(USERS)]
        return [
            schemas.PromoMessage(grant_id=grant_id, user_ids=ids[k : k + MESSAGE_USERS], amount=AMOUNT)
            for k in range(0, USERS, MESSAGE_USERS)
        ]

    def service(prefix: str, grant_id: str, _existing: bool) -> None:
        for message in messages(prefix, grant_id):
            outcome = promo_service.grant(message)
            assert outcome.granted == len(message.user_ids), outcome

    def raw_batches(prefix: str, grant_id: str, write_user, new_batch=None) -> None:
        # The same documents, in batches of 500 writes (250 users), with no reads.
        per_batch = MAX_BATCH_WRITES // 2
        for message in messages(prefix, grant_id):
            for k in range(0, len(message.user_ids), per_batch):
                batch = (new_batch or db.batch)()
                now = store_client.utcnow()
                for user_id in message.user_ids[k : k + per_batch]:
                    permanent = AMOUNT * 2 if grant_id.endswith("g2") else AMOUNT
                    write_user(batch, users_col.document(user_id), {
                        "user_id": user_id, "credits_monthly": 0, "credits_permanent": permanent,
                        "total_earned": permanent, "total_spent": 0, "last_updated": now,
                    })
                    txn_id = grant_record_id(grant_id, user_id)
                    batch.create(records_col.document(txn_id), {
                        "transaction_id": txn_id, "user_id": user_id, "type": "promo_grant", "pool": "permanent",
                        "amount": AMOUNT, "description": promo_service.DEFAULT_DESCRIPTION, "source": grant_id,
                        "created_at": now,
                    })
                batch.commit()

    def raw(prefix: str, grant_id: str, existing: bool) -> None:
        raw_batches(prefix, grant_id, (lambda b, ref, data: b.update(ref, data)) if existing
                    else (lambda b, ref, data: b.create(ref, data)))

    def raw_set(prefix: str, grant_id: str, _existing: bool) -> None:
        raw_batches(prefix, grant_id, lambda b, ref, data: b.set(ref, data))

    def raw_wire(prefix: str, grant_id: str, existing: bool) -> None:
        raw_batches(prefix, grant_id, (lambda b, ref, data: b.update(ref, data)) if existing
                    else (lambda b, ref, data: b.create(ref, data)), lambda: wire.Batch(db))

    def count(grant_id: str) -> int:
        query = records_col.where(filter=FieldFilter("source", "==", grant_id))
        return aggregation.AggregationQuery(query).count().get()[0][0].value

    # The service's JSON log lines are still formatted and written, just not shown.
    sys.stdout = io.StringIO()
    impls = {"raw WriteBatch": raw, "raw, blind set": raw_set, "raw, store encoding": raw_wire,
             "promo service": service}
    slugs = {"raw WriteBatch": "raw", "raw, blind set": "set", "raw, store encoding": "wire", "promo service": "promo"}
    for name, fn in impls.items():  # warm the channel and the emulator's JIT on both paths
        fn(f"warm-{slugs[name]}", "warm-g1", False)
        fn(f"warm-{slugs[name]}", "warm-g2", True)

    out(f"One campaign to {USERS} users ({USERS // MESSAGE_USERS} messages of {MESSAGE_USERS}), "
        f"{REPEATS} repeats, users/s")
    rates: dict[tuple[str, str], list[float]] = {}
    for repeat in range(REPEATS):
        emulator.reset()
        # Rotate which goes first, so none always meets a warmer or fuller emulator.
        order = list(impls.items())[repeat % len(impls):] + list(impls.items())[: repeat % len(impls)]
        for name, fn in order:
            prefix = f"r{repeat}-{slugs[name]}"
            for scenario, grant_id, existing in (("new users", f"{prefix}-g1", False),
                                                 ("existing users", f"{prefix}-g2", True)):
                started = time.perf_counter()
                fn(prefix, grant_id, existing)
                elapsed = time.perf_counter() - started
                assert count(grant_id) == USERS, (name, scenario, count(grant_id))
                rates.setdefault((scenario, name), []).append(USERS / elapsed)
        # The service's users hold exactly both grants.
        for user_id in (f"r{repeat}-promo-00000", f"r{repeat}-promo-{USERS - 1:05d}"):
            doc = users_col.document(user_id).get().to_dict()
            assert doc["credits_permanent"] == 2 * AMOUNT, doc
        out(f"  repeat {repeat + 1}: " + ", ".join(f"{s} / {n} {v[-1]:,.0f}" for (s, n), v in rates.items()))

    out("")
    for scenario in ("new users", "existing users"):
        medians = {name: statistics.median(rates[(scenario, name)]) for name in impls}
        ours = medians["promo service"]
        out(f"  {scenario:<15} " + "   ".join(f"{name} {value:,.0f}" for name, value in medians.items())
            + f"   ratio {ours / medians['raw WriteBatch']:.2f} (target >= 0.85), "
            f"vs blind set {ours / medians['raw, blind set']:.2f}, "
            f"vs store encoding {ours / medians['raw, store encoding']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
