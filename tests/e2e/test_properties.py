"""Property-based tests of every door, through the real functions on the emulator.

Hypothesis sends bodies, events and messages of every shape; whatever comes in, the answer is
one the contract names (never a 5xx), a refusal writes nothing, and every user's pools equal the
sums of their records after every step. The examples are bounded and, in CI, derandomized, so
the suite stays fast and stable.
"""

from __future__ import annotations

import base64
import copy
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools.local import stripe_events as sf
from tests.support.functions import function_app
from tests.support.ledger import assert_ledger_invariant, dump, seed
from tests.support.stripe_story import Customer
from tests.support.stripe_webhook import SECRET

CI = bool(os.environ.get("CI"))
PROFILE = settings(
    max_examples=80,
    deadline=None,
    derandomize=CI,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# JSON values of every kind, odd ones included: deep nesting, huge numbers, control characters.
ODD_TEXT = st.one_of(st.text(max_size=20), st.sampled_from(["", " ", "\u0000", "\ud800", "a/b", "__x__", "..", "x" * 300]))
ODD_NUMBER = st.one_of(st.integers(), st.sampled_from([0, -1, 1, 10**9, 10**9 + 1, 2**63, -(2**63), 10**30]),
                       st.floats(allow_nan=True, allow_infinity=True), st.booleans())
JSON = st.recursive(st.one_of(st.none(), ODD_NUMBER, ODD_TEXT),
                    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(ODD_TEXT, inner, max_size=4)),
                    max_leaves=12)

SPEND_BODIES = st.one_of(
    JSON,
    st.fixed_dictionaries({
        "user_id": st.one_of(st.just("prop-u"), ODD_TEXT, JSON),
        "amount": st.one_of(st.integers(min_value=-5, max_value=80), ODD_NUMBER, JSON),
    }, optional={
        "description": st.one_of(ODD_TEXT, JSON, st.text(min_size=490, max_size=510)),
        "idempotency_key": st.one_of(ODD_TEXT, st.just("prop-key"), JSON),
        "extra": JSON,
    }),
)


def _json_text(value) -> str:
    return json.dumps(value, allow_nan=True)


@pytest.fixture
def spend_http(spend_app, db):
    seed("prop-u", permanent=40, monthly=40)
    return spend_app.test_client()


@PROFILE
@given(body=SPEND_BODIES)
def test_any_spend_body_is_answered_as_the_contract_says_and_a_refusal_writes_nothing(spend_http, db, body):
    before = dump(db)
    response = spend_http.post("/spend", data=_json_text(body), content_type="application/json")
    assert response.status_code in (200, 400, 402, 409), response.get_data(as_text=True)
    if response.status_code != 200:
        error = response.get_json()["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str)
        assert dump(db) == before
    assert_ledger_invariant(db, "prop-u")


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("spend"), st.integers(min_value=1, max_value=60), st.sampled_from([None, "k1", "k2", "k3"])),
        st.tuples(st.just("promo"), st.integers(min_value=1, max_value=50), st.sampled_from(["g1", "g2", "g3"])),
        st.tuples(st.just("renewal"), st.integers(min_value=1, max_value=4), st.just(None)),
    ),
    min_size=1,
    max_size=8,
)


@settings(PROFILE, max_examples=25)
@given(operations=OPERATIONS)
def test_any_sequence_of_spends_grants_and_renewals_keeps_the_ledger_invariant(spend_app, webhook, db, operations):
    import uuid

    user = f"seq-{uuid.uuid4().hex[:8]}"
    client = spend_app.test_client()
    promo = function_app("promo_grant").test_client() if any(op[0] == "promo" for op in operations) else None
    customer = Customer(user)
    for kind, amount, key in operations:
        if kind == "spend":
            body = {"user_id": user, "amount": amount, **({"idempotency_key": f"{user}-{key}"} if key else {})}
            assert client.post("/spend", json=body).status_code in (200, 402, 409)
        elif kind == "promo":
            data = json.dumps({"grant_id": f"{user}-{key}", "user_ids": [user], "amount": amount}).encode()
            push = {"message": {"data": base64.b64encode(data).decode(), "messageId": f"{user}-{key}"},
                    "subscription": "s"}
            assert promo.post("/", json=push).status_code == 200
        else:
            assert webhook.outcome(customer.renewal(amount, "price_pro_monthly")) in ("applied", "duplicate", "stale")
        assert_ledger_invariant(db, user)


def _leaves(value, path=()):
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _leaves(child, path + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _leaves(child, path + (index,))
    else:
        yield path


def _set(value, path, new):
    for step in path[:-1]:
        value = value[step]
    value[path[-1]] = new


BASE_EVENTS = [
    lambda: Customer("mut-u").renewal(1, "price_pro_monthly"),
    lambda: Customer("mut-u").pack_checkout("cs_test_mut", paid=True),
    lambda: Customer("mut-u").cancellation(sf.period(2)["start"]),
]


@PROFILE
@given(base=st.sampled_from(range(len(BASE_EVENTS))), picks=st.lists(st.integers(min_value=0), min_size=1, max_size=4),
       values=st.lists(st.one_of(ODD_NUMBER, ODD_TEXT, JSON), min_size=4, max_size=4))
def test_any_signed_event_mutated_from_the_fixtures_is_answered_never_crashed(webhook, db, base, picks, values):
    event = copy.deepcopy(BASE_EVENTS[base]())
    leaves = [path for path in _leaves(event["data"]["object"])]
    for pick, new in zip(picks, values):
        _set(event["data"]["object"], leaves[pick % len(leaves)], copy.deepcopy(new))
    before = dump(db)
    payload = json.dumps(event, allow_nan=True)
    response = webhook.post(payload, sf.sign(payload, SECRET))
    assert response.status_code in (200, 400), response.get_data(as_text=True)
    if response.status_code == 400:
        assert response.get_json()["error"]["code"] == "invalid_payload"
        assert dump(db) == before
    else:
        assert response.get_json()["outcome"] in ("applied", "duplicate", "stale", "ignored", "unapplied")
    for path in dump(db):
        if path.startswith("users_credits/"):
            assert_ledger_invariant(db, path.split("/", 1)[1])


@pytest.fixture
def promo_http(db):
    return function_app("promo_grant").test_client()


PROMO_DATA = st.one_of(
    st.binary(max_size=64),
    JSON.map(lambda v: _json_text(v).encode()),
    st.fixed_dictionaries({"grant_id": st.one_of(ODD_TEXT, JSON), "user_ids": st.one_of(st.lists(ODD_TEXT, max_size=3), JSON),
                           "amount": st.one_of(ODD_NUMBER, JSON)}).map(lambda v: _json_text(v).encode()),
)


@PROFILE
@given(data=PROMO_DATA, message_id=st.one_of(st.text(min_size=1, max_size=20), st.just("__x__")))
def test_any_promo_message_is_granted_or_kept_and_acknowledged(promo_http, db, data, message_id):
    push = {"message": {"data": base64.b64encode(data).decode(), "messageId": message_id}, "subscription": "s"}
    response = promo_http.post("/", json=push)
    assert response.status_code == 200, response.get_data(as_text=True)
    for path in dump(db):
        if path.startswith("users_credits/"):
            assert_ledger_invariant(db, path.split("/", 1)[1])
