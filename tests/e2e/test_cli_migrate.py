"""`credits migrate`: legacy documents to two pools, on the Firestore emulator."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from shared.common import errors, ids
from shared.ledger import collections
from shared.operations import migration
from shared.store import batch
from tests.support.cli import credits, records_of, user_doc
from tests.support.ledger import assert_ledger_invariant

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def put_user(db, user_id, **fields):
    db.collection(collections.USERS).document(user_id).set({"user_id": user_id, **fields})


def put_record(db, txn_id, user_id, type_, pool, amount):
    db.collection(collections.TRANSACTIONS).document(txn_id).set(
        {"transaction_id": txn_id, "user_id": user_id, "type": type_, "pool": pool, "amount": amount,
         "description": "", "source": None, "created_at": T0}
    )


def mixed_set(db):
    put_user(db, "legacy-a", balance=100, total_earned=150, total_spent=50)
    put_user(db, "legacy-b", balance=0, total_earned=10, total_spent=10)
    put_user(db, "legacy-c", balance=7.0)
    put_user(db, "migrated", credits_monthly=10, credits_permanent=20, total_earned=30, total_spent=0)
    put_record(db, "m1", "migrated", "subscription_grant", "monthly", 10)
    put_record(db, "m2", "migrated", "promo_grant", "permanent", 20)
    # Half-written: pools written but the legacy field left behind.
    put_user(db, "stray", credits_monthly=0, credits_permanent=40, balance=40, total_earned=40, total_spent=0)
    put_record(db, "s1", "stray", "migration", "permanent", 40)
    # Half-written: the migration record committed without the pools.
    put_user(db, "record-only", balance=60, total_earned=60, total_spent=0)
    put_record(db, "r1", "record-only", "migration", "permanent", 60)
    # Inconsistent: a migration record that disagrees with the balance, and an unreadable balance.
    put_user(db, "disagrees", balance=60)
    put_record(db, "d1", "disagrees", "migration", "permanent", 50)
    put_user(db, "garbled", balance="a lot")


def snapshot(db):
    users = {s.id: (s.to_dict(), s.update_time) for s in db.collection(collections.USERS).stream()}
    txns = {s.id: s.to_dict() for s in db.collection(collections.TRANSACTIONS).stream()}
    return users, txns


def test_a_dry_run_reports_every_decision_and_writes_nothing(db, capsys):
    mixed_set(db)
    before = snapshot(db)
    run = credits(capsys, "migrate", "--dry-run", "--json", "--batch-size", "3")
    assert run.code == 1  # two documents need review
    body = run.json
    assert body["dry_run"] is True and body["complete"] is True and body["examined"] == 8
    assert body["counts"] == {
        "already_migrated": 1, "migrate": 3, "adopt_record": 1, "drop_stray_balance": 1,
        "review": 2, "absent": 0,
    }
    assert body["credits_migrated"] == 107
    assert {r["user_id"] for r in body["review"]} == {"disagrees", "garbled"}
    assert snapshot(db) == before


def test_migration_of_a_mixed_set_converts_legacy_repairs_half_written_and_leaves_the_rest(db, capsys):
    mixed_set(db)
    migrated_before = db.collection(collections.USERS).document("migrated").get().update_time
    run = credits(capsys, "migrate", "--batch-size", "4")
    assert run.code == 1, run.err
    assert "disagrees" in run.out and "need review" in run.out

    a = user_doc(db, "legacy-a")
    assert "balance" not in a
    assert (a["credits_monthly"], a["credits_permanent"], a["total_earned"], a["total_spent"]) == (0, 100, 150, 50)
    assert (a["legacy_total_earned"], a["legacy_total_spent"]) == (150, 50)
    [record] = records_of(db, "legacy-a")
    assert (record["type"], record["pool"], record["amount"]) == ("migration", "permanent", 100)
    assert record["transaction_id"] == ids.migration_record_id("legacy-a")

    b = user_doc(db, "legacy-b")
    assert "balance" not in b and (b["credits_monthly"], b["credits_permanent"]) == (0, 0)
    assert records_of(db, "legacy-b") == []  # no record has amount 0
    assert user_doc(db, "legacy-c")["credits_permanent"] == 7

    # Already two pools, but its records were written before seq: they are numbered, in time
    # order (the same time here, so by id), with their running sums.
    assert db.collection(collections.USERS).document("migrated").get().update_time != migrated_before
    assert user_doc(db, "migrated")["last_seq"] == 2
    assert sorted((r["transaction_id"], r["seq"], r["balance_after"]) for r in records_of(db, "migrated")) == [
        ("m1", 1, {"credits_monthly": 10, "credits_permanent": 0}),
        ("m2", 2, {"credits_monthly": 10, "credits_permanent": 20})]

    stray = user_doc(db, "stray")
    assert "balance" not in stray and stray["credits_permanent"] == 40
    assert len(records_of(db, "stray")) == 1

    adopted = user_doc(db, "record-only")
    assert "balance" not in adopted and adopted["credits_permanent"] == 60
    assert [(r["transaction_id"], r["seq"]) for r in records_of(db, "record-only")] == [("r1", 1)]
    for user_id in ("legacy-a", "stray", "record-only", "migrated"):
        assert_ledger_invariant(db, user_id)

    assert user_doc(db, "disagrees") == {"user_id": "disagrees", "balance": 60}
    assert user_doc(db, "garbled") == {"user_id": "garbled", "balance": "a lot"}

    # A second run finds nothing left to do but the two for review, and changes nothing.
    before = snapshot(db)
    again = credits(capsys, "migrate", "--json", "--no-progress")
    assert again.json["counts"]["migrate"] == 0 and again.json["counts"]["already_migrated"] == 6
    assert snapshot(db) == before
    # Everything migrated now agrees with its ledger; the two left for review are still reported.
    drift = credits(capsys, "reconcile", "--json").json["drift"]
    assert {d["user_id"] for d in drift} == {"disagrees"}


def test_progress_is_drawn_on_stderr(db, capsys):
    for i in range(6):
        put_user(db, f"p{i}", balance=i + 1)
    run = credits(capsys, "migrate", "--batch-size", "2")
    assert run.code == 0
    assert "[" in run.err and "6/6" in run.err
    assert "migrate" in run.out and "21 legacy credits" in run.out


def legacy_users(db, n):
    for i in range(n):
        put_user(db, f"user-{i:03d}", balance=10 + i, total_earned=10 + i)


def assert_all_migrated_once(db, n):
    for i in range(n):
        doc = user_doc(db, f"user-{i:03d}")
        assert "balance" not in doc and doc["credits_permanent"] == 10 + i
        assert [r["amount"] for r in records_of(db, f"user-{i:03d}")] == [10 + i]


def test_an_interrupted_run_resumes_where_it_stopped_and_migrates_each_user_once(db, capsys, monkeypatch):
    legacy_users(db, 23)
    real = batch.change_users
    calls = []

    def failing_third_batch(items, **kwargs):
        calls.append(len(items))
        if len(calls) == 3:
            raise errors.Unavailable("Firestore is unavailable (ServiceUnavailable); retry later")
        return real(items, **kwargs)

    monkeypatch.setattr(migration, "change_users", failing_third_batch)
    run = credits(capsys, "migrate", "--batch-size", "5", "--json", "--no-progress")
    assert run.code == 4
    assert run.json["examined"] == 10 and run.json["resume_after"] == "user-009" and not run.json["complete"]
    assert "--start-after user-009" in run.err
    assert "balance" not in user_doc(db, "user-009")
    assert user_doc(db, "user-010")["balance"] == 20
    monkeypatch.setattr(migration, "change_users", real)

    resumed = credits(capsys, "migrate", "--batch-size", "5", "--start-after", "user-009", "--json")
    assert resumed.code == 0 and resumed.json["complete"]
    assert resumed.json["examined"] == 13 and resumed.json["counts"]["migrate"] == 13
    assert_all_migrated_once(db, 23)


def test_a_limited_run_stops_early_and_a_full_rerun_skips_what_it_did(db, capsys):
    legacy_users(db, 12)
    run = credits(capsys, "migrate", "--batch-size", "5", "--limit", "7", "--json")
    assert run.code == 0
    assert run.json["examined"] == 7 and run.json["resume_after"] == "user-006" and not run.json["complete"]
    assert "balance" in user_doc(db, "user-007")
    rerun = credits(capsys, "migrate", "--json")
    assert rerun.json["counts"] == {**rerun.json["counts"], "already_migrated": 7, "migrate": 5}
    assert_all_migrated_once(db, 12)


def test_a_user_changed_by_a_spend_during_the_run_is_not_migrated_twice(db, capsys, monkeypatch):
    from shared.spending import service as spending

    put_user(db, "busy", balance=50)
    real = batch.change_users

    def spend_first(items, **kwargs):
        # A live spend migrates the user between the scan and the migration's commit.
        spending.spend("busy", 5, "race")
        return real(items, **kwargs)

    monkeypatch.setattr(migration, "change_users", spend_first)
    run = credits(capsys, "migrate", "--json")
    assert run.code == 0
    assert run.json["counts"]["already_migrated"] == 1 and run.json["counts"]["migrate"] == 0
    doc = user_doc(db, "busy")
    assert doc["credits_permanent"] == 45
    assert sorted(r["amount"] for r in records_of(db, "busy")) == [-5, 50]


@pytest.mark.parametrize("size", ["0", "501"])
def test_a_batch_size_out_of_range_is_a_usage_error(db, capsys, size):
    assert credits(capsys, "migrate", "--batch-size", size).code == 2
