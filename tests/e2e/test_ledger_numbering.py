"""Every record's place in its user's ledger (`seq`) and the pools right after it
(`balance_after`), and the balance with what is owed and held, through the real `spend` function
on the emulator; records from before `seq`, numbered by `credits migrate`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from shared.ledger import collections
from tests.support.cli import credits
from tests.support.ledger import assert_ledger_invariant, records_of, seed, user_doc
from tests.support.round_trips import counted


def post(client, path, **body):
    return client.post(path, data=json.dumps(body), content_type="application/json")


def listing(client, user_id: str) -> list[dict]:
    body = client.get(f"/transactions/{user_id}?limit=100").get_json()
    assert body["next_page_token"] is None
    return body["transactions"]


# -- every record knows its place and what it left --------------------------------------------------


def test_every_answer_and_every_listed_record_carries_its_seq_and_the_pools_right_after_it(spend_client, db):
    seed("ada", monthly=100, permanent=50)
    spent = post(spend_client, "/spend", user_id="ada", amount=70, idempotency_key="ada-1").get_json()
    held = post(spend_client, "/holds", user_id="ada", amount=20, hold_id="ada-h").get_json()
    captured = post(spend_client, "/holds/ada-h/capture", amount=5).get_json()
    refunded = post(spend_client, "/refunds", user_id="ada", spend_key="ada-1", amount=25).get_json()
    answered = [t for body in (spent, held, captured, refunded) for t in body["transactions"]]
    assert [t["seq"] for t in answered] == list(range(3, 3 + len(answered)))

    stored = {record["transaction_id"]: record for record in records_of(db, "ada")}
    for shown in answered:
        assert (shown["seq"], shown["balance_after"]) == (stored[shown["transaction_id"]]["seq"],
                                                          stored[shown["transaction_id"]]["balance_after"])
    last = answered[-1]["balance_after"]
    assert (last["credits_monthly"], last["credits_permanent"]) == (
        refunded["balance"]["credits_monthly"], refunded["balance"]["credits_permanent"])
    listed = listing(spend_client, "ada")
    assert [t["seq"] for t in listed] == list(range(len(stored), 0, -1))
    assert user_doc(db, "ada")["last_seq"] == len(stored)
    assert_ledger_invariant(db, "ada")


def test_a_user_document_without_last_seq_continues_after_its_records_then_migrate_numbers_the_old_ones(
        spend_client, db, capsys):
    old = datetime(2025, 1, 1, tzinfo=timezone.utc)
    db.document(collections.user("old")).set({"user_id": "old", "credits_monthly": 0, "credits_permanent": 60,
                                              "total_earned": 80, "total_spent": 20})
    for n, (kind, amount) in enumerate((("promo_grant", 80), ("spent", -20))):
        db.document(collections.transaction(f"old-{n}")).set({
            "transaction_id": f"old-{n}", "user_id": "old", "type": kind, "pool": "permanent", "amount": amount,
            "description": "written by the earlier version", "source": None, "created_at": old + timedelta(days=n)})

    methods = ("batch_get_documents", "commit", "run_query", "run_aggregation_query")
    with counted(db, methods) as first:
        body = post(spend_client, "/spend", user_id="old", amount=5, idempotency_key="old-a").get_json()
    # The document did not say where the ledger ends: learned once, from the records.
    assert (first["run_query"], first["run_aggregation_query"]) == (1, 1)
    assert [(t["seq"], t["balance_after"]["credits_permanent"]) for t in body["transactions"]] == [(3, 55)]
    assert user_doc(db, "old")["last_seq"] == 3
    with counted(db, methods) as second:
        body = post(spend_client, "/spend", user_id="old", amount=5, idempotency_key="old-b").get_json()
    assert second["run_query"] == second["run_aggregation_query"] == 0
    assert body["transactions"][0]["seq"] == 4
    # Until migrate runs, reconcile says the old records lack seq.
    drift = credits(capsys, "reconcile", "--json", "--no-progress").json["drift"]
    assert [(d["user_id"], d["kind"], d["field"]) for d in drift] == [("old", "sequence", "seq")]

    dry = credits(capsys, "migrate", "--dry-run", "--json", "--no-progress").json
    assert (dry["numbered_users"], dry["numbered_records"]) == (1, 2)
    assert all("seq" not in record for record in records_of(db, "old") if record["transaction_id"].startswith("old-"))
    run = credits(capsys, "migrate", "--json", "--no-progress")
    assert run.code == 0 and (run.json["numbered_users"], run.json["numbered_records"]) == (1, 2)
    assert sorted((r["transaction_id"], r["seq"]) for r in records_of(db, "old"))[:2] == [("old-0", 1), ("old-1", 2)]
    assert_ledger_invariant(db, "old")
    assert credits(capsys, "reconcile", "--json", "--no-progress").json["drift"] == []
    # Numbered users are skipped by the next run.
    again = credits(capsys, "migrate", "--json", "--no-progress").json
    assert (again["numbered_users"], again["numbered_records"]) == (0, 0)


def test_a_restored_document_without_last_seq_continues_after_the_highest_numbered_record(spend_client, db):
    seed("rex", permanent=50)
    post(spend_client, "/spend", user_id="rex", amount=10, idempotency_key="rex-1")
    restored = user_doc(db, "rex")
    del restored["last_seq"]
    db.document(collections.user("rex")).set(restored)
    body = post(spend_client, "/spend", user_id="rex", amount=10, idempotency_key="rex-2").get_json()
    assert body["transactions"][0]["seq"] == 3
    assert_ledger_invariant(db, "rex")


# -- the balance: what is owed and held, and as of a time ------------------------------------------


def test_the_balance_shows_credits_held_by_open_holds_and_credits_owed(spend_client, db):
    seed("hal", permanent=100)
    assert spend_client.get("/balance/hal").get_json()["credits_held"] == 0
    held = post(spend_client, "/holds", user_id="hal", amount=30, hold_id="hal-h").get_json()
    assert (held["balance"]["balance"], held["balance"]["credits_held"]) == (70, 30)
    balance = spend_client.get("/balance/hal").get_json()
    assert (balance["balance"], balance["credits_held"], balance["credits_owed"]) == (70, 30, 0)
    assert user_doc(db, "hal")["credits_held"] == 30
    spent = post(spend_client, "/spend", user_id="hal", amount=10).get_json()
    assert spent["balance"]["credits_held"] == 30
    released = post(spend_client, "/holds/hal-h/release").get_json()
    assert released["balance"]["credits_held"] == 0
    assert spend_client.get("/balance/hal").get_json()["credits_held"] == 0

    db.document(collections.user("owes")).set({"user_id": "owes", "credits_monthly": 0, "credits_permanent": 0,
                                               "credits_owed": 7, "credits_owed_by": {"ch_1": 7}, "last_seq": 0})
    assert spend_client.get("/balance/owes").get_json()["credits_owed"] == 7
