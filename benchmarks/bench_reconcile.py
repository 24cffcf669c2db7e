"""Scheduled reconcile pages (`POST /sweep/reconcile`'s service) over seeded users, each with a
grant and a spend record: the time of each page of 500 users over one pass, and of one page of
2000 (the route's maximum), on the Firestore emulator.

The baseline, in the same run on the same documents, is the least a page must read: the next
500 user documents by id and the records of that id range, streamed and summed by user, with
no comparison, no confirmation and no bookkeeping write. Prints the median and slowest page of
500 for both, their ratio, the page of 2000, and users checked per second.
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import time

import common  # noqa: E402  (benchmarks/ is the script's folder)
from common import fresh_firestore, out  # noqa: E402

USERS = int(os.environ.get("BENCH_USERS", "2000"))
PAGE = 500


def main() -> int:
    with fresh_firestore():
        return run()


def run() -> int:
    from shared.operations import reconciliation
    from shared.spending import service as spending

    sys.stdout = io.StringIO()  # the service's log lines
    started = time.perf_counter()
    for i in range(USERS):
        user_id = f"bench-{i:06d}"
        common.seed(user_id, 100)
        spending.spend(user_id, 1 + i % 7, "bench")
    out(f"seeded {USERS} users (2 records each) in {time.perf_counter() - started:.1f} s")

    from google.cloud.firestore_v1.base_query import FieldFilter

    from shared.ledger import collections
    from shared.store import client as store_client

    db = store_client.client()

    def bare_page(after):
        users = db.collection(collections.USERS).order_by("__name__").limit(PAGE)
        if after is not None:
            users = users.start_after({"__name__": db.document(collections.user(after))})
        ids = [snap.id for snap in users.stream()]
        if not ids:
            return None
        records = db.collection(collections.TRANSACTIONS).where(filter=FieldFilter("user_id", "<=", ids[-1]))
        if after is not None:
            records = records.where(filter=FieldFilter("user_id", ">", after))
        sums: dict[str, int] = {}
        for snap in records.order_by("user_id").stream():
            record = snap.to_dict()
            sums[record["user_id"]] = sums.get(record["user_id"], 0) + record["amount"]
        return ids[-1]

    bare, after = [], None
    while True:
        t = time.perf_counter()
        after = bare_page(after)
        bare.append(time.perf_counter() - t)
        if after is None:
            break

    pages = []
    while True:
        t = time.perf_counter()
        result = reconciliation.reconcile_page(PAGE)
        pages.append(time.perf_counter() - t)
        if result["completed"]:
            break
    checked = USERS
    out(f"pass of {checked} users in {len(pages)} pages of {PAGE}: median page {statistics.median(pages) * 1000:.0f} ms, "
        f"slowest {max(pages) * 1000:.0f} ms, {checked / sum(pages):.0f} users/s")
    out(f"bare reads of the same pages: median page {statistics.median(bare) * 1000:.0f} ms, "
        f"slowest {max(bare) * 1000:.0f} ms; ratio of medians {statistics.median(pages) / statistics.median(bare):.2f}")
    t = time.perf_counter()
    big = reconciliation.reconcile_page(2000)
    elapsed = time.perf_counter() - t
    out(f"one page of {big['users']} users: {elapsed * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
