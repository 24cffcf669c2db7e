"""Auto top-up in the end-to-end tests: putting the setting and spending through `spend`'s test
client, delivering an attempt's creation to `auto_topup` as Eventarc does, and reading back the
setting, the attempts and the `auto_topup` records."""

from __future__ import annotations

import json

from tests.support.events import CREATED, document_event
from tests.support.ledger import attempts, records_of, user_doc

PACK = "price_pack_500"
# The stand-in's price of PACK in the top-up tests: what one top-up of one pack is charged.
PACK_CENTS = 499


def deliver(client, db, attempt_id):
    """The attempt's creation delivered to `auto_topup` (its test client); the attempt after."""
    attempt = db.collection("credits_topups").document(attempt_id).get().to_dict()
    headers, body = document_event(f"credits_topups/{attempt_id}", attempt, event_type=CREATED)
    response = client.post("/", data=body, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return db.collection("credits_topups").document(attempt_id).get().to_dict()


def put_topup(client, user_id, **setting):
    body = {"auto_topup": {"enabled": True, "threshold": 100, "price_id": PACK, **setting}}
    response = client.put(f"/users/{user_id}/settings", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["auto_topup"]


def spend(client, user_id, amount, key=None):
    body = {"user_id": user_id, "amount": amount, **({"idempotency_key": key} if key else {})}
    return client.post("/spend", data=json.dumps(body), content_type="application/json")


def setting(db, user_id):
    return user_doc(db, user_id)["auto_topup"]


def topup_records(db, user_id):
    return [(r["amount"], r["source"]) for r in records_of(db, user_id) if r["type"] == "auto_topup"]


def pending(db, user_id):
    return [a for a in attempts(db, user_id).values() if a["status"] == "pending"]


def customer(stripe, method="pm_card_visa"):
    return stripe.add_customer(default_payment_method=method)
