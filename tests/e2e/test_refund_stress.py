"""Refunds of the same spends racing across four real `spend` processes never give back more than
was spent.

Each round seeds a fresh user with credits in both pools, makes a few spends (each drawing from
both pools) and then fires partial and "all remaining" refunds of those spends at once, spread
over four functions-framework processes that share one Firestore emulator project. Within one
process refunds of one user take turns, so across processes only the commit preconditions keep
them serial.

After each round every spend is checked against what Firestore holds: the refund records of a
spend (`source` = its key) give back at most what it took, in total and per pool; its
`spend_refunds` document says exactly what those records gave back; every 200 answer is true
(its records exist, and the answered amounts add up to the records); `total_spent` is what was
spent less what was refunded; and each pool equals the sum of its records.

The race it looks for (a refund decided from a new user document and an older `spend_refunds`
document) needs a read to land inside another commit on the emulator, which is rare: a pass is
not proof that refunds cannot race. Bounded by `ROUNDS` and `ROUND_TIME_BUDGET_S` (rounds only,
not the processes' start), whichever comes first. The summary line (printed, and in the failure
message) says how many rounds ran and how refunds were answered.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import requests

from shared.ledger import collections
from tests.support.emulators import PROJECT
from tests.support.ledger import assert_ledger_invariant, records_of, seed, user_doc
from tests.support.servers import serve_function

ROUNDS = 150
ROUND_TIME_BUDGET_S = 60.0
PROCESSES = 4
SPENDS_PER_ROUND = 3
# Each spend takes 20 permanent then 70 monthly credits (the user is seeded with exactly that
# before each spend), so its refunds give monthly credits back first, then permanent ones.
SEED_MONTHLY = 70
SEED_PERMANENT = 20
SPEND_AMOUNT = SEED_MONTHLY + SEED_PERMANENT
# Refunds of one spend fired at once: two partial ones that together are the whole spend, and
# two of "all that remains" (None: no amount in the request).
REFUND_AMOUNTS = (40, 50, None, None)
REQUEST_TIMEOUT_S = 30.0


def refund_stress_summary(rounds: int, statuses: Counter, over_refunds: int, elapsed: float) -> str:
    return (f"refund stress: {rounds} rounds in {elapsed:.1f}s, "
            f"{rounds * SPENDS_PER_ROUND} spends of {SPEND_AMOUNT}; refunds answered "
            f"200: {statuses[200]}, 409: {statuses[409]}, 503: {statuses[503]}, "
            f"other: {sum(n for s, n in statuses.items() if s not in (200, 409, 503))}; "
            f"over-refunded spends: {over_refunds}")


def test_refunds_of_the_same_spends_racing_on_four_processes_never_give_back_more_than_was_spent(
    firestore_emulator, db
):
    env = {"FIRESTORE_EMULATOR_HOST": firestore_emulator.host, "GOOGLE_CLOUD_PROJECT": PROJECT}
    requests_per_round = SPENDS_PER_ROUND * len(REFUND_AMOUNTS)
    statuses: Counter = Counter()
    over_refunds = 0
    findings: list[str] = []
    rounds = 0
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(requests_per_round) as pool:
        bases = [stack.enter_context(serve_function("spend", env=env)) for _ in range(PROCESSES)]
        started = time.monotonic()
        deadline = started + ROUND_TIME_BUDGET_S
        while rounds < ROUNDS and time.monotonic() < deadline:
            answers = _one_round(rounds, bases, pool, requests_per_round)
            statuses.update(status for _, status, _ in answers)
            round_findings, round_over = _check_round(db, rounds, answers)
            over_refunds += round_over
            findings += round_findings
            rounds += 1
        elapsed = time.monotonic() - started

    summary = refund_stress_summary(rounds, statuses, over_refunds, elapsed)
    print(summary)
    assert rounds > 0 and statuses[200] > 0, summary
    assert over_refunds == 0, summary + "\n" + "\n".join(findings)
    assert findings == [], summary + "\n" + "\n".join(findings)


def _user(round_no: int) -> str:
    return f"stress-user-{round_no}"


def _spend_key(round_no: int, spend_no: int) -> str:
    return f"stress-{round_no}-spend-{spend_no}"


def _one_round(round_no: int, bases: list[str], pool: ThreadPoolExecutor,
               requests_per_round: int) -> list[tuple[str, int, dict]]:
    """Seed, spend, then fire every refund at once: (spend key, status, body) of each refund."""
    user_id = _user(round_no)
    for spend_no in range(SPENDS_PER_ROUND):
        seed(user_id, monthly=SEED_MONTHLY, permanent=SEED_PERMANENT)
        base = bases[spend_no % len(bases)]
        spent = requests.post(f"{base}/spend", json={
            "user_id": user_id, "amount": SPEND_AMOUNT, "description": "Stress",
            "idempotency_key": _spend_key(round_no, spend_no)}, timeout=REQUEST_TIMEOUT_S)
        assert spent.status_code == 200, spent.text
        assert [(t["pool"], t["amount"]) for t in spent.json()["transactions"]] == [
            ("permanent", -SEED_PERMANENT), ("monthly", -SEED_MONTHLY)]

    barrier = Barrier(requests_per_round)
    jobs = [(spend_no, refund_no, amount)
            for refund_no, amount in enumerate(REFUND_AMOUNTS)
            for spend_no in range(SPENDS_PER_ROUND)]

    def refund(job_no: int) -> tuple[str, int, dict]:
        spend_no, refund_no, amount = jobs[job_no]
        spend_key = _spend_key(round_no, spend_no)
        body = {"user_id": user_id, "spend_key": spend_key,
                "idempotency_key": f"stress-{round_no}-refund-{spend_no}-{refund_no}"}
        if amount is not None:
            body["amount"] = amount
        base = bases[job_no % len(bases)]
        barrier.wait(timeout=REQUEST_TIMEOUT_S)
        response = requests.post(f"{base}/refunds", json=body, timeout=REQUEST_TIMEOUT_S)
        return spend_key, response.status_code, response.json()

    return list(pool.map(refund, range(len(jobs))))


def _check_round(db, round_no: int, answers: list[tuple[str, int, dict]]) -> tuple[list[str], int]:
    """What is wrong after one round (findings), and how many of its spends were over-refunded."""
    user_id = _user(round_no)
    findings: list[str] = []
    over_refunds = 0
    records = records_of(db, user_id)
    refunded_in_all = 0
    for spend_no in range(SPENDS_PER_ROUND):
        key = _spend_key(round_no, spend_no)
        label = f"round {round_no} {key}"
        drawn = _by_pool(r for r in records if r["source"] == key and r["type"] == "spent")
        drawn = {pool: -amount for pool, amount in drawn.items()}
        refund_records = [r for r in records if r["source"] == key and r["type"] == "refund"]
        refunded = _by_pool(refund_records)
        total = sum(refunded.values())
        refunded_in_all += total
        over_pools = [pool for pool in refunded if refunded[pool] > drawn[pool]]
        if total > SPEND_AMOUNT or over_pools:
            over_refunds += 1
            findings.append(f"{label}: over-refund, spent {drawn}, refund records give back {refunded} ({total})")

        stored = db.document(collections.spend_refunds(key)).get()
        given_back = ((stored.to_dict() or {}).get("given_back") or {}) if stored.exists else {}
        given_back = {pool: given_back.get(pool, 0) for pool in refunded}
        if given_back != refunded:
            findings.append(f"{label}: spend_refunds says {given_back}, refund records give back {refunded}")

        mine = [(status, body) for spend_key, status, body in answers if spend_key == key]
        for status, body in mine:
            if status == 409 and body.get("error", {}).get("code") != "refund_exceeds_spend":
                findings.append(f"{label}: 409 that is not refund_exceeds_spend: {body}")
            elif status not in (200, 409, 503):
                findings.append(f"{label}: unexpected answer {status}: {body}")
        answered = [body for status, body in mine if status == 200]
        answered_amount = sum(body["amount"] for body in answered)
        if answered_amount != total:
            findings.append(f"{label}: 200 answers say {answered_amount} came back, refund records {total}")
        stored_ids = {r["transaction_id"]: r["amount"] for r in refund_records}
        answered_ids = {}
        for body in answered:
            moves = {t["transaction_id"]: t["amount"] for t in body["transactions"] if t["type"] == "refund"}
            if sum(moves.values()) != body["amount"]:
                findings.append(f"{label}: a 200 answer's records do not add up to its amount: {body}")
            answered_ids.update(moves)
        if answered_ids != stored_ids:
            findings.append(f"{label}: answered refund records {answered_ids} are not the stored ones {stored_ids}")

    doc = user_doc(db, user_id) or {}
    spent_total = SPENDS_PER_ROUND * SPEND_AMOUNT
    if doc.get("total_spent", 0) < 0 or doc.get("total_spent") != spent_total - refunded_in_all:
        findings.append(f"round {round_no}: total_spent {doc.get('total_spent')}, "
                        f"spent {spent_total} less refunded {refunded_in_all}")
    try:
        assert_ledger_invariant(db, user_id)
    except AssertionError as error:
        findings.append(f"round {round_no}: ledger invariant broken: {error}")
    return findings, over_refunds


def _by_pool(records) -> dict[str, int]:
    sums = {"monthly": 0, "permanent": 0}
    for record in records:
        sums[record["pool"]] += record["amount"]
    return sums
