"""Reconcile checks the documents derived from the ledger too (a spend's give-back totals, holds,
add-on payments), on the Firestore emulator: a clean history of every kind reports nothing, and
each kind of planted drift is reported, logged with its kind and never "fixed"."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from shared.operations import reconciliation
from shared.promotions import service as promotions
from shared.promotions.schemas import PromoMessage
from shared.store import client as store_client
from shared.ledger import collections
from shared.store import scans
from tests.support.cli import credits
from tests.support.ledger import records_of, seed, user_doc
from tests.support.stripe_story import Customer, payment_of

STARTER = "price_starter_monthly"


def post(client, path, **body):
    response = client.post(path, data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def log_lines(capsys, message: str) -> list[dict]:
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in (captured.out + captured.err).splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("message") == message]


def ledger_size(db) -> int:
    return db.collection(collections.TRANSACTIONS).count().get()[0][0].value


@pytest.fixture
def clock(monkeypatch):
    """Moves the time every decision sees forward, so a hold can expire within the test."""
    offset = [timedelta()]
    real = store_client.utcnow
    for module in ("shared.store.commit", "shared.store.batch", "shared.spending.service",
                   "shared.spending.holds_service"):
        monkeypatch.setattr(f"{module}.utcnow", lambda: real() + offset[0])
    return lambda seconds: offset.__setitem__(0, offset[0] + timedelta(seconds=seconds))


def buy(webhook, fake_stripe, customer: Customer, session_id: str) -> None:
    fake_stripe.add_session(session_id, ("price_pack_500", 1))
    assert webhook.outcome(customer.pack_checkout(session_id, paid=True)) == "applied"


def test_a_history_of_refunds_holds_expiries_and_pack_refunds_reconciles_clean(
        spend_client, operator_client, webhook, fake_stripe, db, capsys, clock):
    ada = Customer("ada")
    assert webhook.outcome(ada.renewal(1, STARTER)) == "applied"
    # Monthly credits spent before a renewal (refunded below) come back and expire at once.
    post(spend_client, "/spend", user_id="ada", amount=15, idempotency_key="s3")
    buy(webhook, fake_stripe, ada, "cs_ada")
    # Spends refunded in part, then in full.
    post(spend_client, "/spend", user_id="ada", amount=40, idempotency_key="s1")
    post(spend_client, "/refunds", user_id="ada", spend_key="s1", amount=10)
    post(spend_client, "/refunds", user_id="ada", spend_key="s1")
    post(spend_client, "/spend", user_id="ada", amount=30, idempotency_key="s2")
    post(spend_client, "/refunds", user_id="ada", spend_key="s2", amount=5)
    # A hold captured in part and its capture refunded in part; one released; one left open.
    post(spend_client, "/holds", user_id="ada", amount=100, hold_id="h-cap")
    post(spend_client, "/holds/h-cap/capture", amount=60)
    post(spend_client, "/refunds", user_id="ada", spend_key="h-cap", amount=20)
    post(spend_client, "/holds", user_id="ada", amount=50, hold_id="h-rel")
    post(spend_client, "/holds/h-rel/release")
    post(spend_client, "/holds", user_id="ada", amount=10, hold_id="h-open")
    # A hold that expires and is given back by the sweep.
    post(spend_client, "/holds", user_id="ada", amount=20, hold_id="h-exp", expires_in=5)
    clock(6)
    assert post(operator_client, "/sweep/holds")["released"] == 1
    assert webhook.outcome(ada.renewal(2, STARTER)) == "applied"
    refund = post(spend_client, "/refunds", user_id="ada", spend_key="s3")
    assert [t["type"] for t in refund["transactions"]] == ["refund", "monthly_expired"]
    # The pack refunded in half.
    assert webhook.outcome(ada.refund("cs_ada", 500)) == "applied"
    # A pack refunded after its credits were spent leaves a debt, which a later grant pays in part.
    bo = Customer("bo")
    buy(webhook, fake_stripe, bo, "cs_bo")
    post(spend_client, "/spend", user_id="bo", amount=450, idempotency_key="bo-1")
    assert webhook.outcome(bo.refund("cs_bo", 1000)) == "applied"
    promotions.grant(PromoMessage(grant_id="promo-bo", user_ids=["bo"], amount=100))
    assert user_doc(db, "bo")["credits_owed"] == 350
    # A dispute won gives back what it took.
    cy = Customer("cy")
    buy(webhook, fake_stripe, cy, "cs_cy")
    assert webhook.outcome(cy.dispute("cs_cy", "dp_cy")) == "applied"
    assert webhook.outcome(cy.dispute("cs_cy", "dp_cy", status="won")) == "applied"

    kinds = {collection: db.collection(collection).count().get()[0][0].value
             for collection in reconciliation.DERIVED}
    assert kinds == {collections.SPEND_REFUNDS: 6, collections.HOLDS: 4, collections.STRIPE_PAYMENTS: 3}
    run = credits(capsys, "reconcile", "--json", "--no-progress")
    assert run.code == 0 and run.json["drift"] == [], run.out
    assert run.json["users"] == 3 and run.json["unconfirmed"] == 0
    capsys.readouterr()
    pages = [reconciliation.reconcile_page(2) for _ in range(2)]
    assert [(p["users"], p["drift"], p["completed"]) for p in pages] == [(2, 0, False), (1, 0, True)]
    assert log_lines(capsys, "ledger drift") == []


def history(spend_client, webhook, fake_stripe) -> None:
    """One user with a refunded spend, a captured hold, an open hold and a pack refunded in half."""
    dee = Customer("dee")
    buy(webhook, fake_stripe, dee, "cs_dee")
    post(spend_client, "/spend", user_id="dee", amount=40, idempotency_key="s1")
    post(spend_client, "/refunds", user_id="dee", spend_key="s1", amount=10)
    post(spend_client, "/holds", user_id="dee", amount=100, hold_id="h-cap")
    post(spend_client, "/holds/h-cap/capture", amount=60)
    post(spend_client, "/holds", user_id="dee", amount=10, hold_id="h-open")
    assert webhook.outcome(dee.refund("cs_dee", 500)) == "applied"
    seed("quiet", permanent=5)


def plant_spend_refunds(db) -> None:
    # 7 credits said to have gone back of spend s1, where its refund records gave back 10.
    db.document(collections.spend_refunds("s1")).update({"given_back": {"monthly": 0, "permanent": 7}, "total": 7})


def plant_missing_spend_refunds(db) -> None:
    db.document(collections.spend_refunds("s1")).delete()


def plant_hold(db) -> None:
    # The capture kept 60 and gave 40 back; the document now says it kept 70.
    db.document(collections.hold("h-cap")).update({"captured": 70})


def plant_open_hold_dropped(db) -> None:
    db.document(collections.user("dee")).update({"open_holds": {}})


def plant_payment(db) -> None:
    # Half the pack (250 credits) was taken back; the payment now says 200 were claimed.
    db.document(collections.stripe_payment(payment_of("cs_dee"))).update({"refund_claimed": 200})


@pytest.mark.parametrize("plant, expected", [
    (plant_spend_refunds, {("spend_refunds", "s1", "given_back.permanent", 7, 10),
                           ("spend_refunds", "s1", "total", 7, 10)}),
    (plant_missing_spend_refunds, {("spend_refunds", "s1", "given_back", 0, 10)}),
    (plant_hold, {("hold", "h-cap", "captured", 70, 60)}),
    (plant_open_hold_dropped, {("hold", "h-open", "open_holds", 0, 10)}),
    (plant_payment, {("payment", payment_of("cs_dee"), "refund_claimed", 200, 250),
                     ("account", None, "credits_owed", 0, -50)}),
], ids=["spend_refunds", "spend_refunds missing", "hold captured", "open hold not listed", "payment"])
def test_drift_planted_in_a_derived_document_is_reported_logged_and_never_fixed(
        spend_client, webhook, fake_stripe, db, capsys, plant, expected):
    history(spend_client, webhook, fake_stripe)
    assert credits(capsys, "reconcile", "--json", "--no-progress").json["drift"] == []
    plant(db)

    run = credits(capsys, "reconcile", "--json", "--no-progress")
    assert run.code == 1
    found = {(d["kind"], d["subject"], d["field"], d["stored"], d["ledger"]) for d in run.json["drift"]}
    assert found == expected
    assert {d["user_id"] for d in run.json["drift"]} == {"dee"}
    table = credits(capsys, "reconcile", "--no-progress")
    assert table.code == 1 and "1 users with drift" in table.out
    kind = next(iter(expected))[0]
    assert f"{kind}." in table.out or kind == "account"

    # The scheduled pass reports and logs the same drift, each line with the check that found it.
    capsys.readouterr()
    while not reconciliation.reconcile_page(1)["completed"]:
        pass
    logged = {(line["kind"], line.get("subject"), line["field"], line["stored"], line["ledger"])
              for line in log_lines(capsys, "ledger drift")}
    assert logged == expected
    assert db.document(collections.reconcile_state()).get().to_dict()["last_pass"]["drift"] == len(expected)

    # --fix has nothing to write for a derived document: the drift stays for a person.
    before = ledger_size(db)
    fixed = credits(capsys, "reconcile", "--fix", "--yes", "--no-progress", "--operator", "ops")
    assert fixed.code == 1 and "no pool drift to correct" in fixed.out and "not corrected by --fix" in fixed.out
    assert ledger_size(db) == before
    assert credits(capsys, "reconcile", "--json", "--no-progress").json["drift"] != []


def test_a_refund_landing_between_the_streams_is_not_reported(spend_client, db, capsys, monkeypatch):
    seed("ed", permanent=100)
    post(spend_client, "/spend", user_id="ed", amount=30, idempotency_key="e1")
    real = scans.transactions_by_user

    def refund_then_stream(*args, **kwargs):
        # The user and their give-back documents were read already; this refund is seen only in
        # the records (refund records without a spend_refunds document, until re-read).
        post(spend_client, "/refunds", user_id="ed", spend_key="e1", amount=5)
        yield from real(*args, **kwargs)

    monkeypatch.setattr(scans, "transactions_by_user", refund_then_stream)
    run = credits(capsys, "reconcile", "--json", "--no-progress")
    assert run.code == 0, run.out
    assert run.json["drift"] == [] and run.json["unconfirmed"] == 1
    assert [r["amount"] for r in records_of(db, "ed") if r["type"] == "refund"] == [5]
