"""terraform/firestore.rules on a Firestore emulator started with those rules loaded.

Clients are simulated the way Firebase's rules test tools do it: unsigned (alg "none") ID
tokens over the REST API. Documents are seeded with the emulator's `Bearer owner` credential,
which bypasses rules the way the functions' server credentials do in production.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any, Optional

import pytest
from google.cloud.firestore_v1.base_query import FieldFilter

from shared.spending import service as spending
from tests.support.emulators import PROJECT

OWNER = "owner"  # the emulator's admin credential: rules do not apply


def id_token(uid: str) -> str:
    """An unsigned Firebase ID token for `uid`, as @firebase/rules-unit-testing builds it."""

    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    header = {"alg": "none", "kid": "fakekid", "typ": "JWT"}
    payload = {
        "iss": f"https://securetoken.google.com/{PROJECT}",
        "aud": PROJECT,
        "iat": 0,
        "exp": 3600,
        "auth_time": 0,
        "sub": uid,
        "user_id": uid,
        "firebase": {"sign_in_provider": "custom", "identities": {}},
    }
    return f"{part(header)}.{part(payload)}."


class Client:
    """The Firestore REST API of one emulator, as one caller."""

    def __init__(self, host: str, token: Optional[str]) -> None:
        self.base = f"http://{host}/v1/projects/{PROJECT}/databases/(default)/documents"
        self.token = token

    def request(self, method: str, path: str, body: Optional[dict] = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(errors="replace")

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def put(self, path: str, fields: dict) -> tuple[int, Any]:
        return self.request("PATCH", path, {"fields": fields})

    def create(self, collection: str, doc_id: str, fields: dict) -> tuple[int, Any]:
        return self.request("POST", f"/{collection}?documentId={doc_id}", {"fields": fields})

    def delete(self, path: str) -> tuple[int, Any]:
        return self.request("DELETE", path)

    def transactions_of(self, user_id: str, order_by: Optional[str] = None, limit: Optional[int] = None,
                        collection: str = "credits_transactions") -> tuple[int, Any]:
        """`where user_id == X` [`orderBy order_by desc`] [`limit`], as the app's client asks."""
        query: dict[str, Any] = {
            "from": [{"collectionId": collection}],
            "where": {
                "fieldFilter": {"field": {"fieldPath": "user_id"}, "op": "EQUAL", "value": {"stringValue": user_id}}
            },
        }
        if order_by:
            query["orderBy"] = [{"field": {"fieldPath": order_by}, "direction": "DESCENDING"}]
        if limit:
            query["limit"] = limit
        return self.request("POST", ":runQuery", {"structuredQuery": query})


def s(value: str) -> dict:
    return {"stringValue": value}


def i(value: int) -> dict:
    return {"integerValue": str(value)}


def ts(value: str) -> dict:
    return {"timestampValue": value}


def user_doc(user_id: str, **overrides: Optional[dict]) -> dict:
    fields = {
        "user_id": s(user_id),
        "credits_monthly": i(100),
        "credits_permanent": i(50),
        "total_earned": i(200),
        "total_spent": i(50),
        "last_updated": ts("2026-01-01T00:00:00Z"),
    }
    fields.update(overrides)
    return {key: value for key, value in fields.items() if value is not None}


def transaction_doc(transaction_id: str, user_id: str, **overrides: Optional[dict]) -> dict:
    fields = {
        "transaction_id": s(transaction_id),
        "user_id": s(user_id),
        "type": s("spent"),
        "pool": s("permanent"),
        "amount": i(-10),
        "description": s("Story generation (from permanent pool)"),
        "source": s("story-1"),
        "created_at": ts("2026-01-01T00:00:00Z"),
    }
    fields.update(overrides)
    return {key: value for key, value in fields.items() if value is not None}


@pytest.fixture
def admin(rules_emulator):
    rules_emulator.reset()
    return Client(rules_emulator.host, OWNER)


@pytest.fixture
def as_user(rules_emulator):
    return lambda uid: Client(rules_emulator.host, id_token(uid))


@pytest.fixture
def anonymous(rules_emulator):
    return Client(rules_emulator.host, None)


@pytest.fixture
def seeded(admin):
    assert admin.put("/users_credits/alice", user_doc("alice"))[0] == 200
    assert admin.put("/users_credits/bob", user_doc("bob"))[0] == 200
    assert admin.put("/credits_transactions/t-alice", transaction_doc("t-alice", "alice"))[0] == 200
    assert admin.put("/credits_transactions/t-bob", transaction_doc("t-bob", "bob"))[0] == 200
    return admin


def test_a_signed_in_user_reads_their_own_balance_document(seeded, as_user):
    status, doc = as_user("alice").get("/users_credits/alice")

    assert status == 200
    assert doc["fields"]["credits_permanent"] == i(50)


def test_a_signed_in_user_cannot_read_another_users_balance_document(seeded, as_user):
    assert as_user("bob").get("/users_credits/alice")[0] == 403


def test_a_user_without_a_balance_document_is_told_it_does_not_exist(seeded, as_user, anonymous):
    # The app listens before the first grant: "not found", not "permission denied", so the
    # listener stays open (tests/e2e/test_web_client_live.py shows it with the real SDK).
    assert as_user("newcomer").get("/users_credits/newcomer")[0] == 404
    # Whether someone else has a document is not given away.
    assert as_user("bob").get("/users_credits/newcomer")[0] == 403
    assert anonymous.get("/users_credits/newcomer")[0] == 403


def test_an_unauthenticated_client_reads_nothing(seeded, anonymous):
    assert anonymous.get("/users_credits/alice")[0] == 403
    assert anonymous.get("/credits_transactions/t-alice")[0] == 403
    assert anonymous.transactions_of("alice")[0] == 403


def test_a_user_cannot_list_the_balance_collection(seeded, as_user):
    status, _ = as_user("alice").request(
        "POST", ":runQuery", {"structuredQuery": {"from": [{"collectionId": "users_credits"}]}}
    )
    assert status == 403


def test_a_signed_in_user_reads_and_queries_their_own_transactions(seeded, as_user):
    alice = as_user("alice")

    status, doc = alice.get("/credits_transactions/t-alice")
    query_status, rows = alice.transactions_of("alice")

    assert status == 200 and doc["fields"]["pool"] == s("permanent")
    assert query_status == 200
    assert [row["document"]["name"].rsplit("/", 1)[1] for row in rows if "document" in row] == ["t-alice"]


@pytest.mark.parametrize("order_by", ["seq", "created_at"])
def test_the_apps_history_queries_newest_first_are_allowed_for_the_owner_only(admin, as_user, order_by):
    for seq, user_id in enumerate(["alice", "alice", "bob"], start=1):
        admin.put(f"/credits_transactions/t-{seq}", transaction_doc(f"t-{seq}", user_id, seq=i(seq),
                                                                     created_at=ts(f"2026-01-0{seq}T00:00:00Z")))

    status, rows = as_user("alice").transactions_of("alice", order_by=order_by, limit=100)

    assert status == 200
    assert [row["document"]["name"].rsplit("/", 1)[1] for row in rows if "document" in row] == ["t-2", "t-1"]
    assert as_user("bob").transactions_of("alice", order_by=order_by, limit=100)[0] == 403


def test_a_signed_in_user_cannot_read_or_query_another_users_transactions(seeded, as_user):
    bob = as_user("bob")

    assert bob.get("/credits_transactions/t-alice")[0] == 403
    assert bob.transactions_of("alice")[0] == 403
    # An unfiltered query could return others' records, so it is refused as a whole.
    status, _ = bob.request("POST", ":runQuery", {"structuredQuery": {"from": [{"collectionId": "credits_transactions"}]}})
    assert status == 403


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda c: c.put("/users_credits/alice", user_doc("alice", credits_permanent=i(10**6))), id="raise own pool"),
        pytest.param(lambda c: c.create("users_credits", "carol", user_doc("carol")), id="create own balance"),
        pytest.param(lambda c: c.delete("/users_credits/alice"), id="delete own balance"),
        pytest.param(lambda c: c.create("credits_transactions", "t-new", transaction_doc("t-new", "alice", amount=i(500))), id="add a record"),
        pytest.param(lambda c: c.put("/credits_transactions/t-alice", transaction_doc("t-alice", "alice", amount=i(-1))), id="edit own record"),
        pytest.param(lambda c: c.delete("/credits_transactions/t-alice"), id="delete own record"),
        pytest.param(lambda c: c.put("/spend_idempotency/k", {"user_id": s("alice")}), id="write a marker"),
        pytest.param(lambda c: c.put("/anything/else", {"x": i(1)}), id="write elsewhere"),
    ],
)
@pytest.mark.parametrize("caller", ["alice", "carol", None], ids=["owner", "other user", "unauthenticated"])
def test_no_client_may_write_anything(seeded, rules_emulator, write, caller):
    client = Client(rules_emulator.host, id_token(caller) if caller else None)

    assert write(client)[0] == 403
    # ...and nothing changed.
    assert seeded.get("/users_credits/alice")[1]["fields"] == user_doc("alice")
    assert seeded.get("/credits_transactions/t-alice")[1]["fields"] == transaction_doc("t-alice", "alice")


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param(user_doc("alice", credits_monthly=None), id="no credits_monthly"),
        pytest.param(user_doc("alice", credits_permanent=None), id="no credits_permanent"),
        pytest.param({"user_id": s("alice"), "balance": s("150")}, id="legacy balance not an integer"),
        pytest.param({"user_id": s("bob"), "balance": i(150)}, id="legacy document naming another user"),
        pytest.param({"user_id": s("alice"), "balance": i(150), "credits_permanent": i(5)}, id="balance beside one pool"),
        pytest.param(user_doc("alice", credits_monthly=s("100")), id="pool not an integer"),
        pytest.param(user_doc("alice", credits_permanent=i(-1)), id="negative pool"),
    ],
)
def test_a_balance_document_without_both_pools_is_refused(admin, as_user, fields):
    assert admin.put("/users_credits/alice", fields)[0] == 200

    assert as_user("alice").get("/users_credits/alice")[0] == 403


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"user_id": s("alice"), "balance": i(150), "total_earned": i(150), "total_spent": i(0)}, id="as the app wrote it"),
        pytest.param({"balance": i(150)}, id="without user_id"),
    ],
)
def test_a_legacy_balance_document_is_readable_by_its_owner_until_it_is_migrated(admin, as_user, fields):
    # Its listener then stays open through the migration, which the functions make at the first change.
    assert admin.put("/users_credits/alice", fields)[0] == 200

    status, doc = as_user("alice").get("/users_credits/alice")

    assert status == 200 and doc["fields"]["balance"] == i(150)
    assert as_user("bob").get("/users_credits/alice")[0] == 403


def test_every_record_type_of_the_contract_is_readable_by_its_owner(admin, as_user):
    types = ["subscription_grant", "monthly_expired", "addon_purchase", "addon_refunded", "addon_reinstated",
             "auto_topup", "promo_grant", "spent", "refund", "adjustment", "migration"]
    for kind in types:
        admin.put(f"/credits_transactions/t-{kind}", transaction_doc(f"t-{kind}", "alice", type=s(kind)))
    admin.put("/credits_transactions/t-bogus", transaction_doc("t-bogus", "alice", type=s("bonus")))

    assert {kind: as_user("alice").get(f"/credits_transactions/t-{kind}")[0] for kind in types} == dict.fromkeys(types, 200)
    assert as_user("alice").get("/credits_transactions/t-bogus")[0] == 403


def test_a_transaction_may_omit_pool_but_may_not_name_an_unknown_one(admin, as_user):
    admin.put("/credits_transactions/t-nopool", transaction_doc("t-nopool", "alice", pool=None))
    admin.put("/credits_transactions/t-badpool", transaction_doc("t-badpool", "alice", pool=s("bonus")))
    admin.put("/credits_transactions/t-zero", transaction_doc("t-zero", "alice", amount=i(0)))
    alice = as_user("alice")

    assert alice.get("/credits_transactions/t-nopool")[0] == 200
    assert alice.get("/credits_transactions/t-badpool")[0] == 403
    assert alice.get("/credits_transactions/t-zero")[0] == 403


def test_the_functions_own_collections_are_closed_to_clients(admin, as_user):
    admin.put("/spend_idempotency/story-1", {"user_id": s("alice")})
    admin.put("/credits_commits/c-1", {"change_id": s("c-1"), "user_id": s("alice")})

    assert as_user("alice").get("/spend_idempotency/story-1")[0] == 403
    # A commit's witness names its user, but it is the kernel's bookkeeping, not the user's data.
    assert as_user("alice").get("/credits_commits/c-1")[0] == 403


def test_documents_written_by_the_spend_service_are_readable_by_their_owner(db, admin, as_user):
    # A legacy user spends through the real service: the commit migrates the document and
    # writes a migration and a spend record, in the shapes the rules must accept.
    db.collection("users_credits").document("dana").set({"user_id": "dana", "balance": 40})
    spending.spend("dana", 15, idempotency_key="rules-1")

    written = {"users_credits/dana": db.collection("users_credits").document("dana").get().to_dict()}
    for snap in db.collection("credits_transactions").where(filter=FieldFilter("user_id", "==", "dana")).stream():
        written[f"credits_transactions/{snap.id}"] = snap.to_dict()
    assert len(written) == 3
    for path, data in written.items():
        assert admin.put(f"/{path}", to_rest(data))[0] == 200

    dana = as_user("dana")
    for path in written:
        assert dana.get(f"/{path}")[0] == 200, path
    status, rows = dana.transactions_of("dana")
    assert status == 200 and len([row for row in rows if "document" in row]) == 2
    assert as_user("erin").get("/users_credits/dana")[0] == 403


def test_an_auto_top_up_written_by_the_real_services_shows_its_record_and_setting_to_the_owner_but_not_the_attempt(
        db, admin, as_user):
    from functools import partial

    from shared.billing.decisions import TopupResult, topup_change
    from shared.ledger.autotopup import SUCCEEDED, ChargeOutcome, TopupSetting
    from shared.spending import settings_service
    from shared.store.commit import change_user

    # The setting put below the threshold makes the attempt; its charge's success grants the pack.
    setting = TopupSetting(enabled=True, threshold=100, price_id="price_pack_500", credits=500, customer="cus_rules")
    view = settings_service.put_settings("gail", {"auto_topup": setting})
    attempt_id = view["auto_topup"]["pending_attempt"]
    result = TopupResult(attempt_id, ChargeOutcome(SUCCEEDED, payment_intent="pi_rules"))
    change_user("gail", partial(topup_change, result=result), reads=result.documents, operation="auto_topup")

    written = {"users_credits/gail": db.collection("users_credits").document("gail").get().to_dict(),
               f"credits_topups/{attempt_id}": db.collection("credits_topups").document(attempt_id).get().to_dict()}
    for snap in db.collection("credits_transactions").where(filter=FieldFilter("user_id", "==", "gail")).stream():
        written[f"credits_transactions/{snap.id}"] = snap.to_dict()
    [record] = [path for path, data in written.items() if data.get("type") == "auto_topup"]
    assert written["users_credits/gail"]["auto_topup"]["status"] == "active"
    for path, data in written.items():
        assert admin.put(f"/{path}", to_rest(data))[0] == 200

    gail = as_user("gail")
    assert gail.get("/users_credits/gail")[0] == 200
    assert gail.get(f"/{record}")[0] == 200
    status, rows = gail.transactions_of("gail")
    assert status == 200 and [row["document"]["fields"]["type"]["stringValue"] for row in rows] == ["auto_topup"]
    # The attempt (its PaymentIntent, client secret) is the functions' bookkeeping, even for its owner.
    assert gail.get(f"/credits_topups/{attempt_id}")[0] == 403
    assert gail.transactions_of("gail", collection="credits_topups")[0] == 403
    assert admin.create("credits_topups", "t-new", {"user_id": s("gail")})[0] == 200
    assert gail.create("credits_topups", "t-client", {"user_id": s("gail")})[0] == 403


def to_rest(data: dict) -> dict:
    """A Python client document as REST fields (the types the functions write)."""
    from datetime import datetime, timezone

    def value(v: Any) -> dict:
        if v is None:
            return {"nullValue": None}
        if isinstance(v, bool):
            return {"booleanValue": v}
        if isinstance(v, int):
            return i(v)
        if isinstance(v, float):
            return {"doubleValue": v}
        if isinstance(v, str):
            return s(v)
        if isinstance(v, datetime):
            return ts(v.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        if isinstance(v, dict):
            return {"mapValue": {"fields": {k: value(x) for k, x in v.items()}}}
        if isinstance(v, list):
            return {"arrayValue": {"values": [value(x) for x in v]}}
        raise TypeError(f"unexpected field type {type(v)!r}")

    return {key: value(v) for key, v in data.items()}
