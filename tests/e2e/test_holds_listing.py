"""`GET /holds`: a user's holds, newest first, through the real function on the emulator (every
answer checked against the OpenAPI document by `spend_client`)."""

from __future__ import annotations

import json

import pytest

from tests.support.clock import Clock
from tests.support.ledger import dump, seed


@pytest.fixture
def clock(monkeypatch):
    return Clock(monkeypatch)


def hold(client, user_id, hold_id, amount=10, expires_in=900):
    response = client.post("/holds", data=json.dumps({"user_id": user_id, "amount": amount, "hold_id": hold_id,
                                                      "expires_in": expires_in}), content_type="application/json")
    assert response.status_code == 200, response.get_json()


def listing(client, **query):
    response = client.get("/holds", query_string=query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def ids(page):
    return [h["hold_id"] for h in page["holds"]]


def every_page(client, **query):
    pages, token = [], None
    while True:
        page = listing(client, **query, **({"page_token": token} if token else {}))
        pages.append(ids(page))
        token = page["next_page_token"]
        if token is None:
            return pages


def test_a_user_s_holds_are_listed_newest_first_each_as_get_hold_answers_it(spend_client, db):
    seed("lia", permanent=100)
    seed("other", permanent=100)
    for hold_id in ("h1", "h2", "h3"):
        hold(spend_client, "lia", hold_id)
    hold(spend_client, "other", "o1")

    page = listing(spend_client, user_id="lia")

    assert ids(page) == ["h3", "h2", "h1"]
    assert page["next_page_token"] is None
    for listed in page["holds"]:
        assert listed == spend_client.get(f"/holds/{listed['hold_id']}").get_json()


def test_pages_of_holds_cover_each_hold_once_and_end_with_a_null_token(spend_client, db):
    seed("pat", permanent=1000)
    for i in range(7):
        hold(spend_client, "pat", f"p{i}")

    assert every_page(spend_client, user_id="pat", limit=3) == [["p6", "p5", "p4"], ["p3", "p2", "p1"], ["p0"]]
    assert every_page(spend_client, user_id="pat", limit=7) == [[f"p{i}" for i in reversed(range(7))]]


def test_the_status_filter_lists_the_holds_in_that_status_only(spend_client, db):
    seed("sam", permanent=100)
    for hold_id in ("open", "kept", "given"):
        hold(spend_client, "sam", hold_id)
    assert spend_client.post("/holds/kept/capture").status_code == 200
    assert spend_client.post("/holds/given/release").status_code == 200

    assert ids(listing(spend_client, user_id="sam", status="held")) == ["open"]
    assert ids(listing(spend_client, user_id="sam", status="captured")) == ["kept"]
    assert ids(listing(spend_client, user_id="sam", status="released")) == ["given"]
    assert ids(listing(spend_client, user_id="sam", status="expired")) == []
    assert [h["status"] for h in listing(spend_client, user_id="sam")["holds"]] == ["released", "captured", "held"]


def test_an_expired_hold_is_listed_as_expired_not_held_before_anything_is_written(spend_client, db, clock):
    seed("eve", permanent=100)
    hold(spend_client, "eve", "short", expires_in=60)
    hold(spend_client, "eve", "long", expires_in=3600)
    clock.advance(61)
    before = dump(db)

    assert ids(listing(spend_client, user_id="eve", status="held")) == ["long"]
    assert ids(listing(spend_client, user_id="eve", status="expired")) == ["short"]
    assert [(h["hold_id"], h["status"]) for h in listing(spend_client, user_id="eve")["holds"]] == [
        ("long", "held"), ("short", "expired")]
    # Read only: the expiry's records are written by the next change or the sweep, not by a listing.
    assert dump(db) == before


def test_a_filtered_listing_pages_past_open_holds_that_do_not_match(spend_client, db, clock):
    seed("flo", permanent=1000)
    for i in range(4):
        hold(spend_client, "flo", f"gone{i}", expires_in=60)
    for i in range(5):
        hold(spend_client, "flo", f"open{i}", expires_in=3600)
    clock.advance(61)

    assert every_page(spend_client, user_id="flo", status="expired", limit=3) == [
        ["gone3", "gone2", "gone1"], ["gone0"]]
    assert every_page(spend_client, user_id="flo", status="held", limit=2) == [
        ["open4", "open3"], ["open2", "open1"], ["open0"]]


def test_a_token_is_accepted_back_even_for_a_long_user_id_of_non_ascii_characters(spend_client, db):
    user_id = "ü€𝄞" * 42 + "ää"  # 128 characters, up to 4 bytes each
    assert len(user_id) == 128
    seed(user_id, permanent=100)
    for i in range(3):
        hold(spend_client, user_id, f"n{i}")

    first = listing(spend_client, user_id=user_id, status="held", limit=1)
    assert len(first["next_page_token"]) <= 1024

    assert every_page(spend_client, user_id=user_id, status="held", limit=1) == [["n2"], ["n1"], ["n0"]]


@pytest.mark.parametrize("query, field", [
    ({}, "user_id"),
    ({"user_id": ""}, "user_id"),
    ({"user_id": "a/b"}, "user_id"),
    ({"user_id": "u", "status": "open"}, "status"),
    ({"user_id": "u", "limit": "0"}, "limit"),
    ({"user_id": "u", "limit": "101"}, "limit"),
    ({"user_id": "u", "limit": "ten"}, "limit"),
    ({"user_id": "u", "page_token": "x" * 1025}, "page_token"),
])
def test_a_bad_listing_query_is_400_naming_the_field(spend_client, db, query, field):
    response = spend_client.get("/holds", query_string=query)

    assert response.status_code == 400
    assert [f["field"] for f in response.get_json()["error"]["fields"]] == [field]


def test_a_token_of_another_user_another_status_or_another_listing_is_400(spend_client, db):
    seed("tom", permanent=100)
    seed("tim", permanent=100)
    for user_id in ("tom", "tim"):
        for i in range(2):
            hold(spend_client, user_id, f"{user_id}{i}")
    token = listing(spend_client, user_id="tom", limit=1)["next_page_token"]
    history_token = spend_client.get("/transactions/tom?limit=1").get_json()["next_page_token"]

    for query in ({"user_id": "tim"}, {"user_id": "tom", "status": "held"}):
        response = spend_client.get("/holds", query_string={**query, "page_token": token})
        assert response.status_code == 400 and response.get_json()["error"]["fields"][0]["field"] == "page_token"
    assert spend_client.get("/holds", query_string={"user_id": "tom", "page_token": history_token}).status_code == 400
    assert spend_client.get("/transactions/tom", query_string={"page_token": token}).status_code == 400
    edited = token[:-1] + ("1" if token.endswith("0") else "0")
    assert spend_client.get("/holds", query_string={"user_id": "tom", "page_token": edited}).status_code == 400


def test_holds_takes_get_and_post_only(spend_client, db):
    response = spend_client.delete("/holds")

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"


def test_a_query_that_is_not_utf8_is_400_and_never_names_another_user(spend_client, db):
    seed("%FF", permanent=10)
    hold(spend_client, "%FF", "pct")

    response = spend_client.get("/holds", query_string="user_id=%FF")

    assert response.status_code == 400
    assert response.get_json()["error"]["fields"] == [{"field": "query", "problem": "not UTF-8"}]
    assert ids(listing(spend_client, user_id="%FF")) == ["pct"]  # the id itself, sent encoded
