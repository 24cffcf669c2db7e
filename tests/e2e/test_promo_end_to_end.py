"""Marketing's command -> Pub/Sub emulator -> push subscription -> `promo_grant` over HTTP -> Firestore."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from google.cloud import pubsub_v1
from google.cloud.firestore_v1.base_query import FieldFilter

from shared.common import ids
from shared.ledger import collections
from tests.support import docs
from tests.support.emulators import PROJECT
from tests.support.functions import ROOT, function_app
from tests.support.ledger import assert_ledger_invariant, records_of, user_doc
from tests.support.promo import serve_app


@pytest.fixture
def pushed(pubsub_emulator, firestore_emulator, db):
    """The local wiring: `promo_grant` served over HTTP, the topic pushing to it."""
    with serve_app(function_app("promo_grant")) as served:
        for _ in range(2):  # the wiring is idempotent: the run command may run it again
            wire = subprocess.run([sys.executable, str(ROOT / "scripts" / "local_pubsub.py"), served.url],
                                  env=command_env(), capture_output=True, text=True, timeout=60)
            assert wire.returncode == 0, wire.stderr
        yield served


def command_env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "GOOGLE_CLOUD_PROJECT": PROJECT}


def publish_campaign(*args, stdin=None):
    return subprocess.run([str(ROOT / "scripts" / "publish-campaign"), *args], input=stdin, env=command_env(),
                          capture_output=True, text=True, timeout=120)


def wait_for(answered, count, timeout=60.0):
    deadline = time.monotonic() + timeout
    while len(answered) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(answered) >= count, f"only {len(answered)} of {count} pushes arrived"


def grant_records(db, grant_id):
    query = db.collection(collections.TRANSACTIONS).where(filter=FieldFilter("source", "==", grant_id))
    return [snap.to_dict() for snap in query.stream()]


def test_a_campaign_from_the_marketing_command_lands_once_however_often_it_is_run(pushed, db, tmp_path):
    users = [f"fan-{i:04d}" for i in range(1100)]
    listing = tmp_path / "users.txt"
    listing.write_text("\n".join(users[:600] + ["", "fan-0001"] + users[600:]) + "\n")

    first = publish_campaign("--grant-id", "launch-2026", "--amount", "12", "--description", "Launch week", str(listing))
    assert first.returncode == 0, first.stderr
    assert "1100 users (1 repeated ids dropped), in 3 message(s)" in first.stdout
    assert "published message 3/3" in first.stdout
    wait_for(pushed.answered, 3)
    assert pushed.answered == [200, 200, 200]
    records = grant_records(db, "launch-2026")
    assert sorted(r["user_id"] for r in records) == users
    assert {(r["type"], r["pool"], r["amount"], r["description"]) for r in records} == {
        ("promo_grant", "permanent", 12, "Launch week")}
    for user_id in users[::97]:
        assert user_doc(db, user_id)["credits_permanent"] == 12
        assert_ledger_invariant(db, user_id)

    # Marketing runs it again, from a CSV export this time: nobody is granted twice.
    csv = "email,user_id\n" + "".join(f"{u}@example.com,{u}\n" for u in reversed(users))
    again = publish_campaign("--grant-id", "launch-2026", "--amount", "12", "--description", "Launch week",
                             "--column", "user_id", "-", stdin=csv)
    assert again.returncode == 0, again.stderr
    wait_for(pushed.answered, 6)
    assert pushed.answered == [200] * 6
    assert len(grant_records(db, "launch-2026")) == 1100
    assert sum(user_doc(db, u)["credits_permanent"] for u in users) == 12 * 1100


def test_a_bad_message_on_the_topic_is_kept_and_acknowledged(pushed, db):
    publisher = pubsub_v1.PublisherClient()
    message_id = publisher.publish(f"projects/{PROJECT}/topics/promo-grants", b'{"grant_id": "x", "amount": 5}',
                                   ).result(timeout=30)
    wait_for(pushed.answered, 1)
    assert pushed.answered == [200]
    doc = db.collection(collections.PROMO_REJECTED).document(ids.rejected_message_id(message_id)).get().to_dict()
    assert "user_ids" in doc["reason"] and doc["raw_data"] == b'{"grant_id": "x", "amount": 5}'
    assert not list(db.collection(collections.USERS).stream())


def test_the_marketing_command_refuses_bad_input_and_publishes_nothing(pushed, db, tmp_path):
    listing = tmp_path / "users.txt"
    listing.write_text("ok-1\nbad/id\nok-2\n")
    bad_id = publish_campaign("--grant-id", "g", "--amount", "5", str(listing))
    assert bad_id.returncode == 2 and "line 2: 'bad/id'" in bad_id.stderr
    bad_amount = publish_campaign("--grant-id", "g", "--amount", "0", "-", stdin="ok-1\n")
    assert bad_amount.returncode == 2 and "amount" in bad_amount.stderr
    no_column = publish_campaign("--grant-id", "g", "--amount", "5", "--column", "uid", "-", stdin="id\nu1\n")
    assert no_column.returncode == 2 and "no column 'uid'" in no_column.stderr
    no_topic = publish_campaign("--grant-id", "g", "--amount", "5", "--topic", "nope", "-", stdin="u1\n")
    assert no_topic.returncode == 2 and "does not exist" in no_topic.stderr
    time.sleep(0.5)
    assert pushed.answered == []
    assert records_of(db, "ok-1") == [] and records_of(db, "u1") == []


def test_the_marketing_command_waits_and_reports_who_was_granted_now_and_who_already_was(pushed, db, tmp_path):
    listing = tmp_path / "users.txt"
    listing.write_text("early-bird\n")
    first = publish_campaign("--grant-id", "wait-2026", "--amount", "7", "--wait-seconds", "60", str(listing))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "message 1/1 (id " in first.stdout and "1 granted, 0 already granted, 0 conflicting" in first.stdout

    listing.write_text("\n".join(f"wait-{i}" for i in range(5)) + "\nearly-bird\n")
    second = publish_campaign("--grant-id", "wait-2026", "--amount", "7", "--chunk-size", "3", "--wait-seconds", "60",
                              str(listing))
    assert second.returncode == 0, second.stdout + second.stderr
    assert "message 1/2 (id " in second.stdout and ": 3 granted, 0 already granted, 0 conflicting" in second.stdout
    assert "message 2/2 (id " in second.stdout and ": 2 granted, 1 already granted, 0 conflicting" in second.stdout
    assert "outcome: 5 granted, 1 already granted, 0 conflicting, 0 not applied yet" in second.stdout
    assert user_doc(db, "early-bird")["credits_permanent"] == 7


def test_the_marketing_command_exits_non_zero_when_a_grant_id_comes_back_with_another_amount(pushed, db, tmp_path):
    listing = tmp_path / "users.txt"
    listing.write_text("amount-a\n")
    assert publish_campaign("--grant-id", "wait-conflict", "--amount", "5", "--wait-seconds", "60", str(listing)).returncode == 0
    listing.write_text("amount-a\namount-b\n")
    run = publish_campaign("--grant-id", "wait-conflict", "--amount", "9", "--wait-seconds", "60", str(listing))
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 granted, 0 already granted, 1 conflicting" in run.stdout
    assert "conflicting: amount-a was granted 5 under this grant id before, not 9" in run.stdout
    assert user_doc(db, "amount-a")["credits_permanent"] == 5  # the first grant stands
    assert user_doc(db, "amount-b")["credits_permanent"] == 9


def documented_campaign_demo() -> list[str]:
    """The campaign commands of the guide's local demo, exactly as written there."""
    for section in docs.sections("Trying it locally, end to end"):
        lines = [line for line in docs.shell_lines(section.text) if line.startswith("./scripts/publish-campaign")]
        if lines:
            return lines
    raise AssertionError("no guide has the campaign demo (a section 'Trying it locally, end to end')")


def test_the_documented_campaign_demo_runs_as_written_and_reports_each_outcome(pushed, db):
    first, again, other_amount = documented_campaign_demo()
    assert "--wait examples/users.txt" in first and '--description "Welcome bonus"' in first

    def run(line):
        return subprocess.run(["bash", "-c", line], cwd=ROOT, env=command_env(), capture_output=True, text=True,
                              timeout=300)

    granted = run(first)
    assert granted.returncode == 0, granted.stdout + granted.stderr
    assert "outcome: 1200 granted, 0 already granted, 0 conflicting, 0 not applied yet" in granted.stdout
    assert user_doc(db, "user-0001")["credits_permanent"] == 50
    repeated = run(again)
    assert repeated.returncode == 0, repeated.stdout + repeated.stderr
    assert "outcome: 0 granted, 1200 already granted, 0 conflicting" in repeated.stdout
    conflicting = run(other_amount)
    assert conflicting.returncode == 1, conflicting.stdout + conflicting.stderr
    assert "outcome: 0 granted, 0 already granted, 1200 conflicting" in conflicting.stdout
    assert user_doc(db, "user-1200")["credits_permanent"] == 50


def test_a_number_after_wait_is_refused_with_the_option_that_takes_it(tmp_path):
    listing = tmp_path / "users.txt"
    listing.write_text("u1\n")
    run = publish_campaign("--grant-id", "g", "--amount", "5", "--wait", "60", str(listing))
    assert run.returncode == 2
    assert "use --wait-seconds 60" in run.stderr
