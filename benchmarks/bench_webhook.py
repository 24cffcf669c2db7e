"""Webhook latency and cold start.

1. A renewal event end to end (signature check, parse, one batched read, decision, one commit)
   through the functions-framework app, against a bare Firestore commit of the same writes
   (user document, `monthly_expired` and `subscription_grant` records, the invoice and period
   markers), on the same fresh emulator in the same run, interleaved in rounds.
2. Cold start, process start to first 200, of `stripe_webhook` (a signed renewal) and of
   `spend` (`GET /balance/...`), each a fresh `functions-framework` process, alternated.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from common import ROOT, fresh_firestore, out  # noqa: E402  (benchmarks/ is the script's folder)

from tests.support.emulators import free_port  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "12"))
PER_ROUND = 25
COLD_STARTS = int(os.environ.get("BENCH_COLD_STARTS", "5"))
SECRET = "whsec_benchmark_secret"
FUNCTIONS_FRAMEWORK = str(Path(sys.executable).parent / "functions-framework")


def summary(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return statistics.median(values), values[max(int(len(values) * 0.95) - 1, 0)]


def main() -> int:
    os.environ.update(STRIPE_WEBHOOK_SECRET=SECRET, CREDITS_CATALOG=str(ROOT / "config" / "catalog.example.json"))
    with fresh_firestore():
        latency()
        cold_starts()
        return 0


def latency() -> None:
    from functions_framework import create_app

    from shared.ledger import collections
    from shared.store import client as store_client
    from tests.support.stripe_story import Customer
    from tools.local import stripe_events as sf

    client = create_app("stripe_webhook", source=str(ROOT / "functions" / "stripe_webhook" / "main.py")).test_client()
    db = store_client.client()
    sys.stdout = io.StringIO()

    customer = Customer("bench-user", tag="bench")
    period = iter(range(1, 10_000))

    def webhook_renewal() -> float:
        payload = json.dumps(customer.renewal(next(period), "price_pro_monthly"))
        header = sf.sign(payload, SECRET)
        started = time.perf_counter()
        response = client.post("/", data=payload, headers={"Stripe-Signature": header}, content_type="application/json")
        elapsed = time.perf_counter() - started
        assert response.status_code == 200 and response.get_json()["outcome"] == "applied", response.get_data()
        return elapsed

    baseline_n = iter(range(1, 10_000_000))

    def bare_commit() -> float:
        n = next(baseline_n)
        now = store_client.utcnow()
        batch = db.batch()
        batch.set(db.collection(collections.USERS).document("bench-baseline"), {
            "user_id": "bench-baseline", "credits_monthly": 1500, "credits_permanent": 0, "total_earned": 1000 * n,
            "total_spent": 0, "last_updated": now,
            "stripe_subscriptions": {"sub_bench": {"price_id": "price_pro_monthly", "period_start": n, "period_end": n + 1,
                                                   "granted": 1000, "canceled_at": None}},
        })
        for kind, amount in (("monthly_expired", -1000), ("subscription_grant", 1000)):
            tid = f"txn_baseline_{n}_{kind}"
            batch.create(db.collection(collections.TRANSACTIONS).document(tid), {
                "transaction_id": tid, "user_id": "bench-baseline", "type": kind, "pool": "monthly", "amount": amount,
                "description": "baseline", "source": f"in_baseline_{n}", "created_at": now})
        marker = {"event_id": f"evt_{n}", "event_type": "invoice.paid", "user_id": "bench-baseline",
                  "outcome": "applied", "created_at": now}
        batch.create(db.document(collections.applied_marker("invoice", f"in_baseline_{n}")), marker)
        batch.create(db.document(collections.applied_marker("period", f"sub_baseline:{n}")), marker)
        started = time.perf_counter()
        batch.commit()
        return time.perf_counter() - started

    impls = {"bare commit (baseline)": bare_commit, "webhook renewal, end to end": webhook_renewal}
    for fn in impls.values():  # warm up the channel, the app and the emulator
        for _ in range(20):
            fn()
    times: dict[str, list[float]] = {name: [] for name in impls}
    for _ in range(ROUNDS):
        for name, fn in impls.items():
            times[name].extend(fn() for _ in range(PER_ROUND))
    out(f"Renewal latency, {ROUNDS * PER_ROUND} each, interleaved in rounds of {PER_ROUND}")
    medians = {}
    for name, values in times.items():
        medians[name], p95 = summary(values)
        out(f"  {name:<30} median {medians[name] * 1000:6.2f} ms   p95 {p95 * 1000:6.2f} ms")
    ratio = medians["webhook renewal, end to end"] / medians["bare commit (baseline)"]
    out(f"  median ratio webhook/bare commit: {ratio:.2f}")


def _first_200(name: str, request_for, env: dict[str, str]) -> float:
    port = free_port()
    args = [FUNCTIONS_FRAMEWORK, "--source", str(ROOT / "functions" / name / "main.py"), "--target", name, "--port", str(port)]
    started = time.perf_counter()
    process = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}")
            try:
                with urllib.request.urlopen(request_for(port), timeout=10) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.perf_counter() - started > 60:
                raise RuntimeError(f"{name} gave no 200 within 60 s")
            time.sleep(0.005)
    finally:
        process.terminate()
        process.wait(timeout=10)


def cold_starts() -> None:
    from tests.support.stripe_story import Customer
    from tools.local import stripe_events as sf

    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def webhook_request(port: int) -> urllib.request.Request:
        payload = json.dumps(Customer(f"cold-{port}").renewal(1, "price_pro_monthly")).encode()
        return urllib.request.Request(f"http://127.0.0.1:{port}/", data=payload, method="POST", headers={
            "Content-Type": "application/json", "Stripe-Signature": sf.sign(payload.decode(), SECRET)})

    def spend_request(port: int) -> urllib.request.Request:
        return urllib.request.Request(f"http://127.0.0.1:{port}/balance/cold-user")

    starts: dict[str, list[float]] = {"stripe_webhook": [], "spend": []}
    for _ in range(COLD_STARTS):
        starts["stripe_webhook"].append(_first_200("stripe_webhook", webhook_request, env))
        starts["spend"].append(_first_200("spend", spend_request, env))
    out(f"\nCold start, process start to first 200, median of {COLD_STARTS} (alternated)")
    for name, values in starts.items():
        out(f"  {name:<16} median {statistics.median(values) * 1000:7.0f} ms   "
            f"min {min(values) * 1000:7.0f} ms   max {max(values) * 1000:7.0f} ms")


if __name__ == "__main__":
    sys.exit(main())
