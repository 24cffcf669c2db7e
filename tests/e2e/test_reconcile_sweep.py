"""The scheduled reconcile (`POST /sweep/reconcile` on the operator function): bounded pages over
the users on the Firestore emulator, a cursor that survives between runs, and one pass after another."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from shared.ledger import collections
from shared.operations import adjustments, reconciliation
from shared.spending import service as spending
from tests.support.cli import credits
from tests.support.ledger import dump, seed

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def log_lines(capsys, message: str) -> list[dict]:
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in (captured.out + captured.err).splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("message") == message]


@pytest.fixture
def compared(monkeypatch):
    """The user ids each reconcile checks against their records, in order."""
    seen: list[str] = []
    real = reconciliation._check

    def spy(report, user_id, *rest):
        seen.append(user_id)
        return real(report, user_id, *rest)

    monkeypatch.setattr(reconciliation, "_check", spy)
    return seen


def state(db) -> dict:
    return db.document(collections.reconcile_state()).get().to_dict()


def orphan_record(db, user_id: str, amount: int) -> None:
    db.collection(collections.TRANSACTIONS).document(f"orphan-{user_id}").set(
        {"transaction_id": f"orphan-{user_id}", "user_id": user_id, "type": "promo_grant", "pool": "permanent",
         "amount": amount, "description": "", "source": None, "created_at": T0})


def test_a_pass_in_pages_visits_every_user_exactly_once_completes_and_then_starts_over(db, compared, capsys):
    users = [f"u{i:02d}" for i in range(11)]
    for user_id in users:
        seed(user_id, monthly=10, permanent=5)
    spending.spend("u03", 12, "work")
    capsys.readouterr()

    pages = []
    while not pages or not pages[-1]["completed"]:
        pages.append(reconciliation.reconcile_page(4))
        assert len(pages) <= 5
    assert [p["users"] for p in pages] == [4, 4, 3]
    assert [p["cursor"] for p in pages] == ["u03", "u07", None]
    assert compared == users
    records = db.collection(collections.TRANSACTIONS).count().get()[0][0].value
    assert sum(p["transactions"] for p in pages) == records and all(p["drift"] == 0 for p in pages)
    [done] = log_lines(capsys, "reconcile pass complete")
    assert (done["users"], done["transactions"], done["drift"], done["unconfirmed"], done["pages"]) == (
        11, records, 0, 0, 3)
    assert done["started_at"] and done["duration_s"] >= 0
    last = state(db)["last_pass"]
    assert (last["users"], last["drift"]) == (11, 0) and state(db)["cursor"] is None

    # The next run starts the next pass from the first user.
    compared.clear()
    assert reconciliation.reconcile_page(4)["cursor"] == "u03"
    assert compared == users[:4] and state(db)["passes_completed"] == 1


def test_an_exact_number_of_full_pages_completes_on_the_run_that_finds_no_more_users(db, compared):
    for user_id in ("a", "b", "c", "d"):
        seed(user_id, permanent=1)
    runs = [reconciliation.reconcile_page(2) for _ in range(3)]
    assert [(r["users"], r["completed"]) for r in runs] == [(2, False), (2, False), (0, True)]
    assert compared == ["a", "b", "c", "d"] and state(db)["last_pass"]["users"] == 4


def test_a_drift_planted_in_one_user_is_reported_once_per_pass_as_ledger_drift(db, capsys):
    for user_id in ("d1", "d2", "d3", "d4", "d5"):
        seed(user_id, permanent=100)
    db.collection(collections.USERS).document("d4").update({"credits_permanent": 93})  # the ledger says 100
    capsys.readouterr()
    for _ in range(2):
        runs = [reconciliation.reconcile_page(2) for _ in range(3)]
        assert [r["drift"] for r in runs] == [0, 1, 0] and runs[-1]["completed"]
        [drift] = log_lines(capsys, "ledger drift")
        assert (drift["severity"], drift["user_id"], drift["field"], drift["stored"], drift["ledger"]) == (
            "WARNING", "d4", "credits_permanent", 93, 100)
        assert state(db)["last_pass"]["drift"] == 1 and state(db)["last_pass"]["drift_users"] == 1
    # The same drift, as the full reconcile sees it.
    assert credits(capsys, "reconcile", "--json", "--no-progress").json["drift"][0]["user_id"] == "d4"


def test_a_user_with_records_and_no_document_is_reconciled_in_the_page_of_its_range(db, compared, capsys):
    for user_id in ("m1", "m3", "m5"):
        seed(user_id, permanent=10)
    orphan_record(db, "m2", 5)  # between two documents
    orphan_record(db, "m9", 7)  # after the last document
    capsys.readouterr()
    runs = [reconciliation.reconcile_page(2) for _ in range(3)]
    assert compared == ["m1", "m2", "m3", "m5", "m9"]
    # At most two users a page: m2 comes before the second document, m9 after the last one.
    assert [(r["users"], r["drift"], r["completed"]) for r in runs] == [(2, 1, False), (2, 0, False), (1, 1, True)]
    assert {d["user_id"] for d in log_lines(capsys, "ledger drift")} == {"m2", "m9"}
    assert state(db)["last_pass"]["users"] == 5


def test_no_page_reconciles_more_than_its_limit_even_across_users_with_records_only(db, compared):
    seed("z", permanent=1)
    for user_id in ("o1", "o2", "o3"):
        orphan_record(db, user_id, 1)
    runs = [reconciliation.reconcile_page(2) for _ in range(2)]
    assert [(r["users"], r["cursor"], r["completed"]) for r in runs] == [(2, "o2", False), (2, None, True)]
    assert compared == ["o1", "o2", "o3", "z"]


@pytest.mark.parametrize("first_run", [True, False], ids=["first ever run", "later run"])
def test_two_overlapping_page_runs_do_not_both_advance_the_cursor(db, compared, monkeypatch, capsys, first_run):
    for user_id in ("p1", "p2", "p3", "p4", "p5"):
        seed(user_id, permanent=10)
    db.collection(collections.USERS).document("p2").update({"credits_permanent": 11})
    if not first_run:
        reconciliation.reconcile_page(1)
    before = state(db) if not first_run else None
    real = reconciliation.after_page
    inner = []

    def overlapped(*args, **kwargs):
        # Another run reads, reconciles and writes while this one is between its read and its write.
        if not inner:
            monkeypatch.setattr(reconciliation, "after_page", real)
            inner.append(reconciliation.reconcile_page(2))
        return real(*args, **kwargs)

    monkeypatch.setattr(reconciliation, "after_page", overlapped)
    capsys.readouterr()
    outer = reconciliation.reconcile_page(2)
    expected_cursor = "p2" if first_run else "p3"
    assert inner[0]["outcome"] == "advanced" and inner[0]["cursor"] == expected_cursor
    assert outer == {"outcome": "lost_race", "users": 0, "transactions": 0, "drift": 0, "completed": False,
                     "cursor": before["cursor"] if before else None}
    after = state(db)
    assert after["cursor"] == expected_cursor and after["pages"] == (1 if first_run else 2)
    assert after["users"] == (2 if first_run else 3)
    # The drift in p2 was logged by the run that advanced, not twice.
    assert len(log_lines(capsys, "ledger drift")) == 1


def test_a_page_writes_nothing_but_its_bookkeeping_document(db):
    for user_id in ("w1", "w2"):
        adjustments.adjust(user_id, "permanent", 20, "seed", "test")
    db.collection(collections.USERS).document("w2").update({"credits_permanent": 3})
    before = dump(db)
    reconciliation.reconcile_page(5)
    after = dump(db)
    assert set(after) - set(before) == {collections.reconcile_state()}
    assert {path: doc for path, doc in after.items() if path in before} == before


def test_the_route_answers_what_the_page_reconciled_and_refuses_a_bad_limit(db, operator_client):
    for user_id in ("h1", "h2", "h3"):
        seed(user_id, monthly=10)
    first = operator_client.post("/sweep/reconcile", json={"limit": 2})
    assert first.status_code == 200
    assert first.get_json() == {"outcome": "advanced", "users": 2, "transactions": 2, "drift": 0,
                                "completed": False, "cursor": "h2"}
    rest = operator_client.post("/sweep/reconcile")  # no body: the default limit
    assert rest.status_code == 200 and rest.get_json()["completed"] is True and rest.get_json()["users"] == 1
    for bad in ({"limit": 0}, {"limit": 2001}, {"limit": "5"}, {"limit": 2.0}, {"limit": True}):
        response = operator_client.post("/sweep/reconcile", json=bad)
        assert response.status_code == 400, bad
        error = response.get_json()["error"]
        assert error["code"] == "invalid_request" and error["fields"][0]["field"] == "limit"
    assert operator_client.get("/sweep/reconcile").status_code == 405
    assert operator_client.post("/sweep/reconcile", data=b"[1]", content_type="application/json").status_code == 400


def test_credits_health_shows_the_last_pass_and_needs_attention_while_it_found_drift(db, capsys):
    seed("k1", permanent=10)
    seed("k2", permanent=10)
    quiet = credits(capsys, "health", "--json")
    assert quiet.code == 0 and quiet.json["reconcile"]["last_pass"] is None
    db.collection(collections.USERS).document("k2").update({"credits_permanent": 12})
    reconciliation.reconcile_page(1)
    running = credits(capsys, "health", "--json").json["reconcile"]
    assert running["current_pass"]["cursor"] == "k1" and running["current_pass"]["users"] == 1
    while not reconciliation.reconcile_page(1)["completed"]:
        pass
    run = credits(capsys, "health", "--json")
    assert run.code == 1 and run.json["needs_attention"] is True
    last = run.json["reconcile"]["last_pass"]
    assert (last["users"], last["drift"], last["drift_users"]) == (2, 1, 1) and last["finished_at"]
    table = credits(capsys, "health")
    assert table.code == 1 and "reconcile: last pass finished" in table.out
    assert "needs attention: drift_in_last_reconcile_pass" in table.out
    # Once the pool is explained again, the next pass clears it.
    db.collection(collections.USERS).document("k2").update({"credits_permanent": 10})
    while not reconciliation.reconcile_page(5)["completed"]:
        pass
    assert credits(capsys, "health", "--json").code == 0


def test_a_bookkeeping_write_whose_reply_is_lost_still_logs_the_drift_of_the_page_once(db, monkeypatch, capsys):
    from shared.common.errors import Unavailable
    from shared.store import documents

    seed("l1", permanent=10)
    db.collection(collections.USERS).document("l1").update({"credits_permanent": 9})
    real_create = documents.create

    def landed_then_lost(path, data):
        real_create(path, data)
        raise Unavailable("Firestore is unavailable (DeadlineExceeded); retry later")

    monkeypatch.setattr(documents, "create", landed_then_lost)
    capsys.readouterr()
    result = reconciliation.reconcile_page(5)
    assert result["outcome"] == "advanced" and result["drift"] == 1 and result["completed"]
    assert [d["user_id"] for d in log_lines(capsys, "ledger drift")] == ["l1"]

    def lost(path, fields, version):
        raise Unavailable("Firestore is unavailable (ServiceUnavailable); retry later")

    monkeypatch.setattr(documents, "update_if_unchanged", lost)
    before = state(db)
    with pytest.raises(Unavailable):
        reconciliation.reconcile_page(5)
    assert state(db) == before and log_lines(capsys, "ledger drift") == []
