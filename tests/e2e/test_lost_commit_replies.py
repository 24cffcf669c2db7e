"""A commit whose reply is lost: the answer is still true.

A proxy between the functions and the Firestore emulator stalls traffic at the moment a commit
is sent, longer than the commit's deadline: either only the reply is held (the commit landed),
or the commit itself is held in the connection and reaches the emulator late. Whatever the
store answers must match what was written: no stalled request is ever both 503 and written.

The other branch, a commit that has not landed when the store looks, is shown without the
proxy: the commit is kept back entirely, the store fences the user document and answers 503,
and the commit, sent afterwards, is refused.
"""

from __future__ import annotations

import time

import pytest
from google.api_core import exceptions as gexc

from shared.common import settings
from shared.store import client as store_client
from shared.store import wire
from tools.local import stripe_events as sf
from tests.support.ledger import assert_ledger_invariant, records_of, seed, user_doc
from tests.support.stall_proxy import StallProxy
from tests.support.stripe_story import Customer

STALL_S = 2.5
DEADLINE_S = 1.0


class Stalls:
    """Arms one stall for the next commit the store sends."""

    def __init__(self, proxy: StallProxy) -> None:
        self.proxy = proxy
        self.armed = None

    def next_commit(self, kind: str) -> None:
        self.armed = kind

    def before_commit(self) -> None:
        kind, self.armed = self.armed, None
        if kind == "reply":
            self.proxy.stall_replies(STALL_S)
        elif kind == "request":
            self.proxy.stall_requests(STALL_S)


@pytest.fixture
def stalls(firestore_emulator, db, monkeypatch):
    proxy = StallProxy(firestore_emulator.host).start()
    stalls = Stalls(proxy)
    real_commit = wire.Batch.commit

    def commit_with_stall(self, *args, **kwargs):
        stalls.before_commit()
        return real_commit(self, *args, **kwargs)

    monkeypatch.setattr(wire.Batch, "commit", commit_with_stall)
    monkeypatch.setattr(store_client, "RPC_TIMEOUT_S", DEADLINE_S)
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", proxy.host)
    settings.reset()
    yield stalls
    monkeypatch.undo()
    settings.reset()
    # Let every held byte reach the emulator before the next test wipes it.
    time.sleep(STALL_S)
    proxy.stop()


def spent(db, user_id: str) -> int:
    return -sum(r["amount"] for r in records_of(db, user_id) if r["type"] == "spent")


def test_a_spend_whose_reply_is_lost_answers_200_because_it_landed(spend_client, db, stalls, capsys):
    seed("ava", permanent=10)
    stalls.next_commit("reply")
    capsys.readouterr()
    response = spend_client.post("/spend", json={"user_id": "ava", "amount": 3})
    assert response.status_code == 200, response.get_data(as_text=True)
    # The reply really was lost past the deadline, and the witness told that the commit landed.
    assert '"message":"commit outcome resolved"' in (logged := capsys.readouterr().out)
    assert '"outcome":"landed"' in logged
    assert response.get_json()["balance"]["balance"] == 7
    time.sleep(STALL_S)
    assert spent(db, "ava") == 3 and user_doc(db, "ava")["credits_permanent"] == 7
    assert_ledger_invariant(db, "ava")


def test_a_spend_whose_commit_is_held_in_the_connection_answers_what_happened(spend_client, db, stalls):
    seed("bo", permanent=10)
    stalls.next_commit("request")
    response = spend_client.post("/spend", json={"user_id": "bo", "amount": 3})
    time.sleep(STALL_S + 0.5)
    assert response.status_code in (200, 503), response.get_data(as_text=True)
    assert spent(db, "bo") == (3 if response.status_code == 200 else 0)
    assert_ledger_invariant(db, "bo")


@pytest.fixture
def lost_commits(monkeypatch):
    """The next commit is kept back (not sent) and fails with a deadline; `send_late()` sends it."""
    real_commit = wire.Batch.commit
    held: list = []
    state = {"armed": False}

    def commit(self, *args, **kwargs):
        if state["armed"]:
            state["armed"] = False
            held.append(self)
            raise gexc.DeadlineExceeded("the reply did not come in time")
        return real_commit(self, *args, **kwargs)

    monkeypatch.setattr(wire.Batch, "commit", commit)

    class Control:
        def arm(self) -> None:
            state["armed"] = True

        def send_late(self):
            return real_commit(held.pop(), retry=None, timeout=10)

    return Control()


def test_a_spend_whose_commit_has_not_landed_is_fenced_off_and_answered_503(spend_client, db, lost_commits):
    seed("bea", permanent=10)
    lost_commits.arm()
    response = spend_client.post("/spend", json={"user_id": "bea", "amount": 3})
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "unavailable"
    assert response.headers["Retry-After"]
    with pytest.raises((gexc.FailedPrecondition, gexc.AlreadyExists)):
        lost_commits.send_late()  # the stalled commit arrives after all: refused
    assert spent(db, "bea") == 0 and user_doc(db, "bea")["credits_permanent"] == 10
    assert spend_client.post("/spend", json={"user_id": "bea", "amount": 3}).status_code == 200
    assert spent(db, "bea") == 3
    assert_ledger_invariant(db, "bea")


def test_a_first_grant_whose_commit_has_not_landed_cannot_create_the_user_later(webhook, db, lost_commits):
    renewal = Customer("new").renewal(1, "price_pro_monthly")
    lost_commits.arm()
    assert webhook.send(renewal).status_code == 503
    with pytest.raises((gexc.FailedPrecondition, gexc.AlreadyExists)):
        lost_commits.send_late()
    assert user_doc(db, "new")["credits_monthly"] == 0 and records_of(db, "new") == []
    assert webhook.outcome(renewal) == "applied"
    assert user_doc(db, "new")["credits_monthly"] == 1000
    assert_ledger_invariant(db, "new")


def test_no_stalled_spend_is_both_503_and_written(spend_client, db, stalls):
    seed("cy", permanent=100)
    lies = 0
    for round_number, kind in enumerate(["reply", "request", "request", "reply", "request", "reply"]):
        before = spent(db, "cy")
        stalls.next_commit(kind)
        response = spend_client.post("/spend", json={"user_id": "cy", "amount": 1})
        time.sleep(STALL_S + 0.5)
        written = spent(db, "cy") - before
        assert response.status_code in (200, 503), response.get_data(as_text=True)
        assert written == (1 if response.status_code == 200 else 0), (round_number, kind)
        lies += response.status_code == 503 and written > 0
    assert lies == 0
    assert_ledger_invariant(db, "cy")


def test_a_webhook_event_whose_commit_has_not_landed_is_503_and_stripes_retry_applies_it_once(
        webhook, db, lost_commits):
    seed("dee", permanent=1)
    renewal = Customer("dee").renewal(1, "price_pro_monthly")
    lost_commits.arm()
    assert webhook.send(renewal).status_code == 503
    with pytest.raises((gexc.FailedPrecondition, gexc.AlreadyExists)):
        lost_commits.send_late()
    assert user_doc(db, "dee")["credits_monthly"] == 0
    assert webhook.outcome(renewal) == "applied"
    assert webhook.outcome(sf.redelivered(renewal)) == "duplicate"
    assert user_doc(db, "dee")["credits_monthly"] == 1000
    assert_ledger_invariant(db, "dee")


def test_a_webhook_event_whose_reply_is_lost_is_applied_once(webhook, db, stalls):
    renewal = Customer("eli").renewal(1, "price_pro_monthly")
    stalls.next_commit("reply")
    assert webhook.outcome(renewal) == "applied"
    time.sleep(STALL_S)
    assert webhook.outcome(renewal) == "duplicate"
    assert user_doc(db, "eli")["credits_monthly"] == 1000
    assert_ledger_invariant(db, "eli")


def test_a_batch_of_grants_whose_commit_has_not_landed_is_fenced_and_redelivered_once(db, lost_commits):
    import base64

    from tests.support.functions import function_app

    client = function_app("promo_grant").test_client()
    data = b'{"grant_id": "lost-batch", "user_ids": ["pa", "pb", "pc"], "amount": 5}'
    push = {"message": {"data": base64.b64encode(data).decode(), "messageId": "m-lost"}, "subscription": "s"}
    lost_commits.arm()
    assert client.post("/", json=push).status_code == 503  # Pub/Sub will redeliver
    with pytest.raises((gexc.FailedPrecondition, gexc.AlreadyExists)):
        lost_commits.send_late()
    assert all(records_of(db, user) == [] for user in ("pa", "pb", "pc"))
    assert client.post("/", json=push).status_code == 200
    for user in ("pa", "pb", "pc"):
        assert user_doc(db, user)["credits_permanent"] == 5
        assert_ledger_invariant(db, user)


def test_a_batch_whose_first_user_was_granted_earlier_is_not_judged_landed_by_that_older_grant(db, lost_commits):
    import base64

    from tests.support.functions import function_app

    client = function_app("promo_grant").test_client()

    def push(user_ids, message_id):
        data = ('{"grant_id": "older-grant", "user_ids": %s, "amount": 5}' % str(user_ids).replace("'", '"')).encode()
        return {"message": {"data": base64.b64encode(data).decode(), "messageId": message_id}, "subscription": "s"}

    # An earlier delivery granted the first user alone: their grant record exists.
    assert client.post("/", json=push(["qa"], "m-first")).status_code == 200
    lost_commits.arm()
    first = client.post("/", json=push(["qa", "qb", "qc"], "m-all"))
    assert first.status_code in (200, 503), first.get_data(as_text=True)
    if first.status_code == 503:
        assert client.post("/", json=push(["qa", "qb", "qc"], "m-all")).status_code == 200  # the redelivery
    with pytest.raises((gexc.FailedPrecondition, gexc.AlreadyExists)):
        lost_commits.send_late()  # the held batch can never land now
    for user in ("qa", "qb", "qc"):
        grants = [r for r in records_of(db, user) if r["type"] == "promo_grant"]
        assert [r["amount"] for r in grants] == [5], (user, grants)
        assert user_doc(db, user)["credits_permanent"] == 5
        assert_ledger_invariant(db, user)
