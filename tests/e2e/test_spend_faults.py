"""The `spend` function when its environment is wrong or Firestore is out of reach."""

import json

import pytest

from shared.common import settings
from tests.support.functions import function_app
from tests.support.emulators import free_port
from tests.support.ledger import assert_ledger_invariant, seed


@pytest.fixture
def spend_order(monkeypatch):
    def set_order(value):
        monkeypatch.setenv("CREDITS_SPEND_ORDER", value)
        settings.reset()

    yield set_order
    monkeypatch.delenv("CREDITS_SPEND_ORDER", raising=False)
    settings.reset()


def test_monthly_first_draws_the_monthly_pool_before_the_permanent_one(spend_client, db, spend_order):
    spend_order("monthly_first")
    seed("olga", monthly=10, permanent=50)
    body = spend_client.post("/spend", json={"user_id": "olga", "amount": 30}).get_json()
    assert [(t["pool"], t["amount"]) for t in body["transactions"]] == [("monthly", -10), ("permanent", -20)]
    assert_ledger_invariant(db, "olga")


def test_an_unknown_spend_order_fails_the_function_start(firestore_emulator, spend_order):
    spend_order("whatever_first")
    with pytest.raises(Exception, match="CREDITS_SPEND_ORDER"):
        function_app("spend")


def test_firestore_out_of_reach_is_503_unavailable_with_retry_after(spend_app, monkeypatch):
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    settings.reset()
    try:
        client = spend_app.test_client()
        response = client.post("/spend", data=json.dumps({"user_id": "pat", "amount": 1}),
                               content_type="application/json")
        assert response.status_code == 503
        assert response.get_json()["error"]["code"] == "unavailable"
        assert int(response.headers["Retry-After"]) >= 1
        assert client.get("/balance/pat").status_code == 503
    finally:
        monkeypatch.undo()
        settings.reset()
