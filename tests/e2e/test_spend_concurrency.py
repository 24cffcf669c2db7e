"""Concurrent spends on one user, through the real function and emulator: never an overdraft."""

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

from tests.support.ledger import assert_ledger_invariant, records_of, seed, user_doc

SPENDERS = 12


def test_concurrent_spends_succeed_exactly_as_often_as_the_balance_allows(spend_app, db):
    seed("quinn", monthly=45, permanent=35)  # 80 credits: 8 spends of 10 fit, one of them split
    barrier = Barrier(SPENDERS)

    def one_spend(n):
        client = spend_app.test_client()
        barrier.wait()
        return client.post("/spend", json={"user_id": "quinn", "amount": 10, "idempotency_key": f"q-{n}"}).status_code

    with ThreadPoolExecutor(SPENDERS) as pool:
        statuses = list(pool.map(one_spend, range(SPENDERS)))

    assert sorted(statuses) == [200] * 8 + [402] * 4
    doc = user_doc(db, "quinn")
    assert (doc["credits_monthly"], doc["credits_permanent"], doc["total_spent"]) == (0, 0, 80)
    assert len([r for r in records_of(db, "quinn") if r["type"] == "spent"]) == 8 + 1  # one spend split pools
    assert_ledger_invariant(db, "quinn")


def test_concurrent_repeats_of_one_key_spend_once(spend_app, db):
    seed("rosa", monthly=100)
    barrier = Barrier(8)

    def one_spend(_):
        client = spend_app.test_client()
        barrier.wait()
        response = client.post("/spend", json={"user_id": "rosa", "amount": 25, "idempotency_key": "same"})
        return response.status_code, response.get_json()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one_spend, range(8)))

    assert {status for status, _ in results} == {200}
    assert len({str(body) for _, body in results}) == 1
    assert user_doc(db, "rosa")["credits_monthly"] == 75
    assert_ledger_invariant(db, "rosa")
