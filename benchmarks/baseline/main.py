"""The baselines `bench_http.py` measures `spend` against, served by functions-framework the same
way: a textbook `@firestore.transactional` spend of the same writes (`POST /spend`) and a balance
read (`GET /balance/<user_id>`), with the same three imports as `functions/spend/main.py`
(functions-framework, the Firestore client, pydantic) and nothing else of the project.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import functions_framework
from google.cloud import firestore
from pydantic import BaseModel

_db = []


def db() -> firestore.Client:
    if not _db:
        _db.append(firestore.Client())
    return _db[0]


class SpendBody(BaseModel):
    user_id: str
    amount: int
    description: str = ""
    idempotency_key: str | None = None


@firestore.transactional
def _spend(transaction, body: SpendBody) -> dict:
    uref = db().collection("users_credits").document(body.user_id)
    kref = db().collection("credits_spend_keys").document(body.idempotency_key or uuid.uuid4().hex)
    snaps = {s.reference.path: s for s in transaction.get_all([uref, kref])}
    if snaps[kref.path].exists:
        return json.loads(snaps[kref.path].get("response"))
    data = snaps[uref.path].to_dict() or {}
    permanent, monthly = int(data.get("credits_permanent", 0)), int(data.get("credits_monthly", 0))
    if permanent + monthly < body.amount:
        raise ValueError("insufficient credits")
    now = datetime.now(timezone.utc)
    records, left = [], body.amount
    for pool, have in (("permanent", permanent), ("monthly", monthly)):
        take = min(left, have)
        if take:
            records.append((pool, -take))
            left -= take
    permanent += sum(a for p, a in records if p == "permanent")
    monthly += sum(a for p, a in records if p == "monthly")
    transaction.update(uref, {"credits_monthly": monthly, "credits_permanent": permanent,
                              "total_spent": int(data.get("total_spent", 0)) + body.amount, "last_updated": now})
    views = []
    for pool, amount in records:
        txn_id = uuid.uuid4().hex
        transaction.set(db().collection("credits_transactions").document(txn_id), {
            "transaction_id": txn_id, "user_id": body.user_id, "type": "spent", "pool": pool, "amount": amount,
            "description": body.description, "source": body.idempotency_key, "created_at": now})
        views.append({"transaction_id": txn_id, "pool": pool, "amount": amount})
    response = {"user_id": body.user_id, "amount": body.amount, "transactions": views,
                "balance": {"credits_monthly": monthly, "credits_permanent": permanent}}
    transaction.create(kref, {"idempotency_key": body.idempotency_key, "user_id": body.user_id,
                              "fingerprint": "baseline", "response": json.dumps(response), "created_at": now})
    return response


@functions_framework.http
def baseline(request):
    if request.method == "POST" and request.path == "/spend":
        body = SpendBody.model_validate(request.get_json())
        return _spend(db().transaction(), body)
    if request.method == "GET" and request.path.startswith("/balance/"):
        snap = db().collection("users_credits").document(request.path.rsplit("/", 1)[1]).get()
        return {"credits_permanent": (snap.to_dict() or {}).get("credits_permanent", 0)}
    return ("not found", 404)
