"""What auto top-up costs a spend: the Firestore round trips of the spend path with auto top-up off
and on, counted, and `POST /spend` over HTTP with it off and on against the transactional
baseline, on the same fresh Firestore emulator, in the same run.

Round trips (in process, the `spend` service behind `POST /spend`): the Firestore client's RPC
methods are wrapped and counted, with the writes of each commit, for four kinds of spend, each the
first spend of a fresh user seeded the same way (`BENCH_TOPUP_USERS` users each):
- auto top-up off (no setting);
- on, the balance staying above the threshold;
- on, the spend crossing the threshold (it creates the attempt, in the same commit);
- on, below the threshold with an attempt already pending (nothing more is created).

Over HTTP: one `spend` function and the transactional baseline (`baseline/main.py`), served by
functions-framework; three users (the baseline's, ours without a setting, ours with a setting
enabled whose threshold is above the balance, so every spend runs the check below the threshold
and the first one creates the attempt that stays pending), sequential spends with a fresh key each,
interleaved in rounds of 25, each round starting with the next of the three. Medians, p95 and each one's ratio to the baseline of the same rounds.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import statistics
import sys
import time
import uuid
from collections import Counter

import common  # noqa: E402  (benchmarks/ is the script's folder)
from bench_http import SERVERS, first_200, start  # noqa: E402
from bench_spend import RoundTrips  # noqa: E402
from common import ROOT, fresh_firestore, out  # noqa: E402

from tests.support.emulators import free_port  # noqa: E402

USERS = int(os.environ.get("BENCH_TOPUP_USERS", "40"))
SEQUENTIAL = int(os.environ.get("BENCH_SEQUENTIAL", "400"))
CATALOG = ROOT / "tests" / "stripe_catalog.json"
SEEDED = 1_000
PACK = "price_pack_500"


def main() -> int:
    os.environ.setdefault("CREDITS_CATALOG", str(CATALOG))
    sys.stdout = io.StringIO()  # the service's log lines are formatted and written, not shown
    with fresh_firestore():
        trips = round_trips()
        over_http()
    return 0 if trips else 1


def _setting(threshold: int):
    from shared.spending import settings

    body = settings.AutoTopupBody.model_validate({"enabled": True, "threshold": threshold, "price_id": PACK,
                                                  "customer": "cus_bench"})
    return {settings.AUTO_TOPUP: body.setting(500)}


def round_trips() -> bool:
    """Count each kind of spend's RPCs and commit writes; True if every kind makes the same RPCs."""
    from shared.ledger import collections
    from shared.spending import service as spending
    from shared.spending import settings_service
    from shared.store import client as store_client

    db = store_client.client()
    trips = RoundTrips(db)
    writes: list[int] = []
    api = db._firestore_api
    counted_commit = api.commit

    def commit(*args, **kwargs):
        request = kwargs.get("request") if "request" in kwargs else args[0]
        writes.append(len(request.writes) if hasattr(request, "writes") else len(request["writes"]))
        return counted_commit(*args, **kwargs)

    api.commit = commit
    kinds = {
        "off (no setting)": (None, 7),
        "on, staying above the threshold": (100, 7),
        "on, crossing the threshold": (SEEDED - 3, 7),
        "on, an attempt already pending": (SEEDED - 3, 7),
    }
    results: dict[str, tuple[Counter, float, int]] = {}
    for kind, (threshold, amount) in kinds.items():
        users = [f"rt-{len(results)}-{i}" for i in range(USERS)]
        for user in users:
            common.seed(user, SEEDED)
            if threshold is not None:
                settings_service.put_settings(user, _setting(threshold))
            if kind == "on, an attempt already pending":
                spending.spend(user, amount, "bench", uuid.uuid4().hex)  # creates the attempt
        before = len(_attempts(db, collections))
        trips.take()
        writes.clear()
        for user in users:
            spending.spend(user, amount, "bench", uuid.uuid4().hex)
        counts = trips.take()
        created = len(_attempts(db, collections)) - before
        results[kind] = (counts, sum(writes) / max(len(writes), 1), created)
    api.commit = counted_commit
    out(f"Round trips of the spend path, first spend of {USERS} fresh users each (in process)")
    for kind, (counts, per_commit, created) in results.items():
        detail = ", ".join(f"{name} {n / USERS:g}" for name, n in sorted(counts.items()))
        out(f"  {kind:<34} round trips per spend {sum(counts.values()) / USERS:g} ({detail})   "
            f"writes per commit {per_commit:g}   attempts created {created}")
    same = len({tuple(sorted(counts.items())) for counts, _, _ in results.values()}) == 1
    out(f"  the same round trips with auto top-up off and on: {'yes' if same else 'NO'}")
    return same


def _attempts(db, collections) -> list:
    return list(db.collection(collections.TOPUPS).select([]).stream())


def over_http() -> None:
    from shared.spending import settings_service

    servers, connections = {}, {}
    names = {"transactional (baseline)": "transactional (baseline)", "spend, auto top-up off": "spend function",
             "spend, auto top-up on": "spend function"}
    users = {"transactional (baseline)": "http-base", "spend, auto top-up off": "http-off",
             "spend, auto top-up on": "http-on"}
    try:
        for name, (source, target) in SERVERS.items():
            port = free_port()
            servers[name] = start(source, target, port)
            first_200(port, time.perf_counter(), servers[name])
            connections[name] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for user in users.values():
            common.seed(user, 10**9)
        # A threshold above the balance: every spend runs the check, the first creates the attempt.
        settings_service.put_settings(users["spend, auto top-up on"], _setting(10**9))

        def spend(kind: str) -> float:
            body = json.dumps({"user_id": users[kind], "amount": 7, "description": "bench",
                               "idempotency_key": uuid.uuid4().hex})
            connection = connections[names[kind]]
            started = time.perf_counter()
            connection.request("POST", "/spend", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200:
                raise RuntimeError(f"{kind} answered {response.status}")
            return elapsed

        for kind in users:  # warm every path (channel, emulator JIT, caches)
            for _ in range(50):
                spend(kind)
        times: dict[str, list[float]] = {kind: [] for kind in users}
        kinds = list(users)
        for round_ in range(SEQUENTIAL // 25):
            # Each round starts with the next kind, so no kind always follows the same one.
            for kind in kinds[round_ % 3:] + kinds[:round_ % 3]:
                times[kind].extend(spend(kind) for _ in range(25))
    finally:
        for process in servers.values():
            process.terminate()
            process.wait(timeout=10)

    out(f"\nPOST /spend over HTTP, {SEQUENTIAL} sequential spends each, interleaved in rounds of 25")
    stats = {}
    for kind, values in times.items():
        values.sort()
        stats[kind] = (statistics.median(values), values[int(len(values) * 0.95) - 1])
        out(f"  {kind:<26} median {stats[kind][0] * 1000:6.2f} ms   p95 {stats[kind][1] * 1000:6.2f} ms")
    base = stats["transactional (baseline)"]
    for kind in ("spend, auto top-up off", "spend, auto top-up on"):
        ours = stats[kind]
        out(f"  ratio {kind}/baseline: median {ours[0] / base[0]:.2f} (target <= 0.75), "
            f"p95 {ours[1] / base[1]:.2f} (target <= 0.90)")
    on, off = stats["spend, auto top-up on"], stats["spend, auto top-up off"]
    out(f"  on/off: median {on[0] / off[0]:.2f}, p95 {on[1] / off[1]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
