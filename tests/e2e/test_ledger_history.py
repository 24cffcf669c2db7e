"""The balance as of a time and the filtered, paged history, through the real `spend` function
on the emulator."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest

from shared.ledger import collections
from shared.spending import service as spending
from tests.support.ledger import assert_ledger_invariant, records_of, seed


def post(client, path, **body):
    return client.post(path, data=json.dumps(body), content_type="application/json")


def stamp(moment: datetime) -> str:
    return quote(moment.astimezone(timezone.utc).isoformat())


def history(client, user_id: str, query: str = "", limit: int = 100) -> list[dict]:
    """Every record the listing gives with `query`, page by page."""
    seen, token = [], None
    while True:
        page = client.get(f"/transactions/{quote(user_id)}?limit={limit}{query}"
                          + (f"&page_token={token}" if token else ""))
        assert page.status_code == 200, page.get_json()
        seen += page.get_json()["transactions"]
        token = page.get_json()["next_page_token"]
        if token is None:
            return seen


def by_seq(records: list[dict]) -> list[dict]:
    return sorted(records, key=lambda record: record["seq"], reverse=True)


def busy_user(client, user_id: str) -> None:
    """A user with records of several types in both pools, each commit at its own time."""
    seed(user_id, monthly=100, permanent=50)
    assert post(client, "/spend", user_id=user_id, amount=70, idempotency_key=f"{user_id}-1").status_code == 200
    assert post(client, "/refunds", user_id=user_id, spend_key=f"{user_id}-1", amount=30).status_code == 200
    assert post(client, "/spend", user_id=user_id, amount=10, idempotency_key=f"{user_id}-2").status_code == 200
    assert post(client, "/spend", user_id=user_id, amount=60, idempotency_key=f"{user_id}-3").status_code == 200


# -- the balance as of a time ----------------------------------------------------------------------


def test_a_balance_as_of_a_time_is_the_pools_after_the_last_record_created_by_then(spend_client, db):
    seed("ava", monthly=100, permanent=50)
    post(spend_client, "/spend", user_id="ava", amount=70, idempotency_key="ava-1")
    post(spend_client, "/spend", user_id="ava", amount=10, idempotency_key="ava-2")
    records = sorted(records_of(db, "ava"), key=lambda record: record["seq"])
    assert len(records) == 5

    def as_of(moment):
        response = spend_client.get(f"/balance/ava?as_of={stamp(moment)}")
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    for record in records:
        body = as_of(record["created_at"])
        assert (body["seq"], body["credits_monthly"], body["credits_permanent"]) == (
            record["seq"], record["balance_after"]["credits_monthly"], record["balance_after"]["credits_permanent"])
        assert body["balance"] == body["credits_monthly"] + body["credits_permanent"]
    # Just before the last record: the pools after the one before it.
    before_last = as_of(records[-1]["created_at"] - timedelta(microseconds=1))
    assert before_last["seq"] == records[-2]["seq"]
    assert as_of(records[0]["created_at"] - timedelta(seconds=1)) == {
        "user_id": "ava", "as_of": (records[0]["created_at"] - timedelta(seconds=1)).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ"),
        "credits_monthly": 0, "credits_permanent": 0, "balance": 0, "seq": 0}
    # The same instant in another zone.
    moment = records[2]["created_at"].astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert spend_client.get(f"/balance/ava?as_of={quote(moment.isoformat())}").get_json()["seq"] == 3
    assert spend_client.get("/balance/nobody?as_of=2026-01-01T00:00:00Z").get_json()["seq"] == 0


@pytest.mark.parametrize("as_of", ["tomorrow", "2026-01-01", "2026-01-01T00:00:00", "2026-13-01T00:00:00Z", "",
                                   "FUTURE"])
def test_a_malformed_or_future_as_of_is_400(spend_client, db, as_of):
    if as_of == "FUTURE":
        as_of = stamp(datetime.now(timezone.utc) + timedelta(minutes=5))
    response = spend_client.get(f"/balance/ava?as_of={as_of}")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"
    assert response.get_json()["error"]["fields"][0]["field"] == "as_of"


# -- the filtered history --------------------------------------------------------------------------


def test_history_filters_by_type_pool_and_time_combined_newest_first_by_seq(spend_client, db):
    busy_user(spend_client, "fay")
    records = records_of(db, "fay")
    times = sorted({record["created_at"] for record in records})
    middle, late = times[len(times) // 3], times[2 * len(times) // 3]

    def matching(types=None, pool=None, since=None, until=None):
        return [record["transaction_id"] for record in by_seq(records)
                if (types is None or record["type"] in types) and (pool is None or record["pool"] == pool)
                and (since is None or record["created_at"] >= since) and (until is None or record["created_at"] < until)]

    cases = [
        ("&type=spent", matching({"spent"})),
        ("&type=spent,refund", matching({"spent", "refund"})),
        ("&type=spent&type=refund", matching({"spent", "refund"})),
        ("&pool=monthly", matching(pool="monthly")),
        (f"&since={stamp(middle)}", matching(since=middle)),
        (f"&until={stamp(late)}", matching(until=late)),
        (f"&type=spent&pool=permanent&since={stamp(middle)}&until={stamp(late)}",
         matching({"spent"}, "permanent", middle, late)),
        ("&type=migration", []),
    ]
    for query, expected in cases:
        for limit in (1, 2, 100):
            assert [t["transaction_id"] for t in history(spend_client, "fay", query, limit)] == expected, query
    assert matching({"spent"}) and matching(since=middle) != matching() and matching(until=late) != matching()


@pytest.mark.parametrize("query", ["type=spend", "type=spent,", "type=", "pool=bonus", "since=yesterday",
                                   "until=2026-01-01", "since=2026-01-01T00:00:00"])
def test_an_unknown_type_or_pool_or_a_malformed_time_is_400(spend_client, db, query):
    response = spend_client.get(f"/transactions/fay?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"


def test_a_page_token_used_with_other_filters_than_it_was_issued_with_is_400(spend_client, db):
    busy_user(spend_client, "gil")
    token = spend_client.get("/transactions/gil?limit=1&type=spent").get_json()["next_page_token"]
    assert token
    assert spend_client.get(f"/transactions/gil?limit=1&type=spent&page_token={token}").status_code == 200
    for other in ("", "&type=refund", "&type=spent,refund", "&type=spent&pool=monthly",
                  "&type=spent&since=2020-01-01T00:00:00Z"):
        response = spend_client.get(f"/transactions/gil?limit=1{other}&page_token={token}")
        assert response.status_code == 400, other
        assert "other filters" in response.get_json()["error"]["message"]


def test_paging_a_filtered_list_while_records_are_written_returns_each_matching_record_once(spend_client, db):
    seed("ivo", monthly=1000, permanent=1000)
    for n in range(12):
        spending.spend("ivo", 30 + n, "before", f"ivo-before-{n}")
    stop = threading.Event()

    def write():
        n = 0
        while not stop.is_set():
            spending.spend("ivo", 1, "meanwhile", f"ivo-meanwhile-{n}")
            n += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        seen, token, top = [], None, None
        while True:
            page = spend_client.get("/transactions/ivo?limit=3&type=spent&pool=permanent"
                                    + (f"&page_token={token}" if token else "")).get_json()
            top = top or page["transactions"][0]["seq"]
            seen += page["transactions"]
            token = page["next_page_token"]
            if token is None:
                break
    finally:
        stop.set()
        writer.join()
    expected = [record["transaction_id"] for record in by_seq(records_of(db, "ivo"))
                if record["type"] == "spent" and record["pool"] == "permanent" and record["seq"] <= top]
    assert [t["transaction_id"] for t in seen] == expected
    assert len(expected) >= 12
    assert len(records_of(db, "ivo")) > 13  # records were written while it paged
    assert_ledger_invariant(db, "ivo")


def test_every_page_token_the_api_issues_is_accepted_back_even_for_the_longest_user_id(spend_client, db):
    user_id = "é" * 128
    seed(user_id, monthly=10, permanent=10)
    post(spend_client, "/spend", user_id=user_id, amount=15)
    first = spend_client.get(f"/transactions/{quote(user_id)}?limit=1&type=spent,promo_grant,subscription_grant"
                             f"&since=2000-01-01T00:00:00Z").get_json()
    token = first["next_page_token"]
    assert token and len(token) <= 1024
    listed = history(spend_client, user_id, "&type=spent,promo_grant,subscription_grant&since=2000-01-01T00:00:00Z",
                     limit=1)
    assert [t["seq"] for t in listed] == [4, 3, 2, 1]


def test_the_listing_leaves_out_records_written_before_seq_until_migrate_numbers_them(spend_client, db):
    old = datetime(2025, 1, 1, tzinfo=timezone.utc)
    db.document(collections.user("old")).set({"user_id": "old", "credits_monthly": 0, "credits_permanent": 80,
                                              "total_earned": 80, "total_spent": 0})
    db.document(collections.transaction("old-0")).set({
        "transaction_id": "old-0", "user_id": "old", "type": "promo_grant", "pool": "permanent", "amount": 80,
        "description": "written by the earlier version", "source": None, "created_at": old})
    post(spend_client, "/spend", user_id="old", amount=5)
    assert [t["seq"] for t in history(spend_client, "old")] == [2]
    assert spend_client.get(f"/balance/old?as_of={stamp(old + timedelta(days=1))}").get_json()["seq"] == 0
