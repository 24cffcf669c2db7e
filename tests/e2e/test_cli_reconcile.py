"""`credits reconcile`: every pool and total against the ledger, on the Firestore emulator."""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone
from pathlib import Path

import pytest

from shared.billing import service as webhooks
from shared.common import errors, settings
from shared.ledger import collections
from shared.operations import adjustments
from shared.promotions import schemas
from shared.promotions import service as promo_service
from shared.spending import service as spending
from shared.store import scans
from tests.support.cli import credits, records_of, user_doc
from tools.local import stripe_events as sf

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def example_catalog(monkeypatch):
    monkeypatch.setenv("CREDITS_CATALOG", str(ROOT / "config" / "catalog.example.json"))
    settings.reset()
    yield
    monkeypatch.undo()
    settings.reset()


def renew(user_id: str, subscription: str, n: int) -> str:
    reason = "subscription_create" if n == 1 else "subscription_cycle"
    line = sf.invoice_line("current", "price_pro_monthly", sf.period(n), subscription)
    evt = sf.event("invoice.paid", sf.invoice("current", reason, [line], subscription, f"cus_{user_id}", user_id))
    return webhooks.handle(evt, json.dumps(evt)).outcome


def cancel(user_id: str, subscription: str, n: int) -> str:
    obj = sf.subscription(subscription, f"cus_{user_id}", user_id, sf.period(n)["start"] + 86_400, "price_pro_monthly")
    evt = sf.event("customer.subscription.deleted", obj)
    return webhooks.handle(evt, json.dumps(evt)).outcome


def test_no_drift_after_a_randomized_run_of_grants_spends_renewals_and_adjustments(db, capsys, example_catalog):
    rng = random.Random(20260101)
    users = [f"r{i}" for i in range(6)]
    # Two of them start as legacy documents, migrated by whatever touches them first.
    for user_id in users[:2]:
        db.collection(collections.USERS).document(user_id).set({"user_id": user_id, "balance": 250, "total_earned": 400, "total_spent": 150})
    periods = {user_id: 0 for user_id in users}
    outcomes: dict[str, int] = {}
    for step in range(90):
        user_id = rng.choice(users)
        op = rng.choice(["promo", "spend", "spend", "renew", "adjust", "cancel"])
        try:
            if op == "promo":
                message = schemas.PromoMessage(grant_id=f"g{step}", user_ids=[user_id, rng.choice(users)], amount=rng.randint(1, 300))
                promo_service.grant(message)
            elif op == "spend":
                spending.spend(user_id, rng.randint(1, 900), "work", idempotency_key=rng.choice([None, f"k{step}"]))
            elif op == "renew":
                periods[user_id] += 1
                assert renew(user_id, f"sub_{user_id}", periods[user_id]) == "applied"
            elif op == "cancel" and periods[user_id]:
                cancel(user_id, f"sub_{user_id}", periods[user_id])
            elif op == "adjust":
                adjustments.adjust(user_id, rng.choice(["monthly", "permanent"]), rng.randint(-200, 200) or 1, "random", "test")
        except (errors.InsufficientCredits, errors.PoolUnderflow):
            op += " refused"
        outcomes[op] = outcomes.get(op, 0) + 1
    assert outcomes.get("renew", 0) >= 5 and outcomes.get("spend", 0) >= 10
    assert outcomes.get("spend refused", 0) + outcomes.get("adjust refused", 0) >= 1

    run = credits(capsys, "reconcile", "--json", "--page-size", "7")
    assert run.code == 0, run.out
    body = run.json
    assert body["drift"] == [] and body["users"] == 6
    assert body["transactions"] == db.collection(collections.TRANSACTIONS).count().get()[0][0].value
    table = credits(capsys, "reconcile")
    assert table.code == 0 and "0 users with drift" in table.out


def test_drift_planted_in_firestore_is_reported_and_fails_the_command(db, capsys):
    for user_id in ("a", "b", "c"):
        adjustments.adjust(user_id, "permanent", 100, "seed", "test")
    spending.spend("b", 30, "work")
    db.collection(collections.USERS).document("b").update({"credits_permanent": 77})  # ledger says 70
    db.collection(collections.TRANSACTIONS).document("orphan").set(
        {"transaction_id": "orphan", "user_id": "nobody", "type": "promo_grant", "pool": "permanent",
         "amount": 5, "description": "", "source": None, "created_at": T0}
    )
    run = credits(capsys, "reconcile", "--json", "--page-size", "2")
    assert run.code == 1
    drift = {(d["user_id"], d["field"]): d for d in run.json["drift"]}
    assert set(drift) == {("b", "credits_permanent"), ("nobody", "credits_permanent")}
    assert (drift["b", "credits_permanent"]["stored"], drift["b", "credits_permanent"]["ledger"]) == (77, 70)
    assert drift["b", "credits_permanent"]["difference"] == 7
    assert drift["nobody", "credits_permanent"]["ledger"] == 5
    table = credits(capsys, "reconcile")
    assert table.code == 1 and "credits_permanent" in table.out and "2 users with drift" in table.out


def test_totals_that_the_ledger_does_not_explain_are_drift(db, capsys):
    adjustments.adjust("t", "permanent", 100, "seed", "test")
    spending.spend("t", 10, "work")
    db.collection(collections.USERS).document("t").update({"total_spent": 11})
    run = credits(capsys, "reconcile", "--json")
    assert run.code == 1
    assert [(d["field"], d["stored"], d["ledger"]) for d in run.json["drift"]] == [("total_spent", 11, 10)]


def test_legacy_documents_are_not_drift_until_they_have_records(db, capsys):
    db.collection(collections.USERS).document("legacy").set({"user_id": "legacy", "balance": 40, "total_earned": 40})
    run = credits(capsys, "reconcile", "--json")
    assert run.code == 0 and run.json["legacy_users"] == 1
    # Totals kept from a legacy document count as the ledger's baseline once migrated.
    assert credits(capsys, "migrate", "--no-progress").code == 0
    spending.spend("legacy", 5, "work")
    assert user_doc(db, "legacy")["total_spent"] == 5
    assert credits(capsys, "reconcile").code == 0


def migrate_by_command(capsys, user_id: str) -> None:
    assert credits(capsys, "migrate", "--no-progress").code == 0


def migrate_by_a_grant(capsys, user_id: str) -> None:
    promo_service.grant(schemas.PromoMessage(grant_id=f"first-{user_id}", user_ids=[user_id], amount=5))


def migrate_by_an_adjustment(capsys, user_id: str) -> None:
    adjustments.adjust(user_id, "monthly", 3, "first change", "test")


@pytest.mark.parametrize("balance", [0, 30])
@pytest.mark.parametrize("migrate", [migrate_by_command, migrate_by_a_grant, migrate_by_an_adjustment],
                         ids=["credits migrate", "a grant first", "an adjustment first"])
def test_a_migrated_legacy_document_is_no_drift_however_it_was_migrated(db, capsys, migrate, balance):
    db.collection(collections.USERS).document("old").set(
        {"user_id": "old", "balance": balance, "total_earned": 10 + balance, "total_spent": 10})
    migrate(capsys, "old")
    doc = user_doc(db, "old")
    assert "balance" not in doc
    # Whichever write migrates it keeps the totals from before the ledger as its baseline.
    assert (doc["legacy_total_earned"], doc["legacy_total_spent"]) == (10 + balance, 10)
    run = credits(capsys, "reconcile", "--json", "--no-progress")
    assert run.code == 0 and run.json["drift"] == [], run.out
    adjustments.adjust("old", "permanent", 4, "later", "test")
    spending.spend("old", 2, "work")
    assert credits(capsys, "reconcile", "--fix", "--yes", "--no-progress", "--operator", "ops").code == 0
    assert credits(capsys, "reconcile", "--json", "--no-progress").json["drift"] == []


def test_a_change_landing_between_the_two_streams_is_not_reported(db, capsys, monkeypatch):
    adjustments.adjust("busy", "permanent", 100, "seed", "test")
    real = scans.transactions_by_user

    def spend_then_stream(*args, **kwargs):
        # The user documents were read already; this spend is seen only in the records.
        spending.spend("busy", 25, "work")
        yield from real(*args, **kwargs)

    monkeypatch.setattr(scans, "transactions_by_user", spend_then_stream)
    run = credits(capsys, "reconcile", "--json")
    assert run.code == 0
    assert run.json["drift"] == [] and run.json["unconfirmed"] == 1


def ledger_counts(db) -> tuple[int, int]:
    """How many transaction records and adjustment audit documents there are."""
    return (db.collection(collections.TRANSACTIONS).count().get()[0][0].value,
            db.collection(collections.ADJUSTMENTS).count().get()[0][0].value)


def test_reconcile_fix_proposes_then_writes_ledger_corrections_once_leaving_the_pools_as_stored(db, capsys):
    adjustments.adjust("fa", "permanent", 100, "seed", "test")
    adjustments.adjust("fb", "monthly", 50, "seed", "test")
    adjustments.adjust("fb", "permanent", 20, "seed", "test")
    adjustments.adjust("fc", "permanent", 10, "seed", "test")
    # Pools written around the ledger: fa lost 23 credits, fb gained 10 in one pool and lost 5 in the other.
    db.collection(collections.USERS).document("fa").update({"credits_permanent": 77})
    db.collection(collections.USERS).document("fb").update({"credits_monthly": 60, "credits_permanent": 15})
    before = ledger_counts(db)
    seen = {u: user_doc(db, u) for u in ("fa", "fb")}

    proposed = credits(capsys, "reconcile", "--fix", "--no-progress", "--operator", "ops")
    assert proposed.code == 1
    assert "would write 3 ledger corrections" in proposed.out and "--fix --yes" in proposed.out
    as_json = credits(capsys, "reconcile", "--fix", "--json", "--no-progress", "--operator", "ops")
    assert as_json.code == 1
    assert sorted((c["user_id"], c["pool"], c["amount"], c["outcome"]) for c in as_json.json["corrections"]) == [
        ("fa", "permanent", -23, "proposed"), ("fb", "monthly", 10, "proposed"), ("fb", "permanent", -5, "proposed")]
    assert ledger_counts(db) == before  # nothing written without --yes

    fixed = credits(capsys, "reconcile", "--fix", "--yes", "--json", "--no-progress", "--operator", "ops")
    assert fixed.code == 0, fixed.out
    assert sorted(c["outcome"] for c in fixed.json["corrections"]) == ["written"] * 3
    assert ledger_counts(db) == (before[0] + 3, before[1] + 3)
    # What the users see stayed; the ledger now explains it.
    for user_id in ("fa", "fb"):
        after = user_doc(db, user_id)
        assert (after["credits_monthly"], after["credits_permanent"]) == (
            seen[user_id]["credits_monthly"], seen[user_id]["credits_permanent"])
    assert user_doc(db, "fb")["total_earned"] == seen["fb"]["total_earned"] + 10  # as any positive adjustment
    records = [r for r in records_of(db, "fb") if r["description"].startswith("Ledger correction")]
    assert sorted((r["pool"], r["amount"], r["type"]) for r in records) == [
        ("monthly", 10, "adjustment"), ("permanent", -5, "adjustment")]
    audit = db.collection(collections.ADJUSTMENTS).document(fixed.json["corrections"][0]["correction_id"]).get()
    assert audit.exists and audit.to_dict()["operator"] == "ops" and audit.to_dict()["kind"] == "ledger_correction"

    clean = credits(capsys, "reconcile", "--json", "--no-progress")
    assert clean.code == 0 and clean.json["drift"] == []
    again = credits(capsys, "reconcile", "--fix", "--yes", "--no-progress", "--operator", "ops")
    assert again.code == 0 and "no pool drift to correct" in again.out
    assert ledger_counts(db) == (before[0] + 3, before[1] + 3)


def test_the_same_correction_is_never_written_twice(db, capsys):
    adjustments.adjust("fd", "permanent", 40, "seed", "test")
    db.collection(collections.USERS).document("fd").update({"credits_permanent": 30})
    from shared.operations import corrections, reconciliation
    from shared.operations.reconcile_rules import correction

    [fix] = [correction(d) for d in reconciliation.reconcile().drift]
    assert [m.outcome for m in corrections.correct([fix], "ops")] == ["written"]
    # A second run of the very same correction (as a racing colleague's would be) finds it made.
    assert [m.outcome for m in corrections.correct([fix], "ops")] == ["already_made"]
    assert len([r for r in records_of(db, "fd") if r["amount"] == -10]) == 1


def test_totals_drift_is_reported_by_fix_but_not_corrected(db, capsys):
    adjustments.adjust("ft", "permanent", 100, "seed", "test")
    db.collection(collections.USERS).document("ft").update({"total_earned": 90})
    before = ledger_counts(db)
    run = credits(capsys, "reconcile", "--fix", "--yes", "--no-progress", "--operator", "ops")
    assert run.code == 1
    assert "total_earned" in run.out and "no pool drift to correct" in run.out and "not corrected" in run.out
    assert ledger_counts(db) == before
    assert credits(capsys, "reconcile", "--yes", "--no-progress").code == 2
