"""The pure rules behind the history's filters and page tokens and the balance as of a time."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from shared.common.errors import InvalidRequest
from shared.spending import page_tokens
from shared.spending.schemas import BalanceQuery, HistoryQuery, parse_time
from shared.spending.service import HistoryFilter, as_of_view, filters_of

UTC = timezone.utc


@pytest.fixture(autouse=True)
def token_key(monkeypatch):
    from shared.common import settings

    monkeypatch.setenv(page_tokens.ENV, "unit-test-key")
    settings.reset()
    yield
    settings.reset()


@pytest.mark.parametrize("text, instant", [
    ("2026-01-31T12:00:00Z", datetime(2026, 1, 31, 12, tzinfo=UTC)),
    ("2026-01-31T13:00:00+01:00", datetime(2026, 1, 31, 12, tzinfo=UTC)),
    # An unencoded `+` in a query string arrives as a space.
    ("2026-01-31T13:00:00 01:00", datetime(2026, 1, 31, 12, tzinfo=UTC)),
    ("2026-01-31T12:00:00.123456z", datetime(2026, 1, 31, 12, 0, 0, 123456, tzinfo=UTC)),
])
def test_a_time_with_a_zone_is_read_as_the_instant_it_names(text, instant):
    assert parse_time(text) == instant


@pytest.mark.parametrize("text", ["", "yesterday", "2026-01-31", "2026-01-31T12:00:00", "2026-02-30T00:00:00Z",
                                  "0001-01-01T00:00:00+05:00", "2024-01-01T12:99:00Z"])
def test_a_time_without_a_zone_or_not_a_time_is_refused(text):
    with pytest.raises(ValueError):
        parse_time(text)


def test_the_history_query_takes_one_type_or_several_and_refuses_an_unknown_type_or_pool():
    query = HistoryQuery.model_validate({"type": "spent, refund,spent", "pool": "monthly",
                                         "since": "2026-01-01T00:00:00Z"})
    assert query.type == ("refund", "spent") and query.pool.value == "monthly"
    for bad in ({"type": "spend"}, {"type": "spent,"}, {"pool": "bonus"}, {"until": "soon"}, {"limit": "0"}):
        with pytest.raises(ValidationError):
            HistoryQuery.model_validate(bad)
    assert BalanceQuery.model_validate({}).as_of is None


def test_a_page_token_continues_after_its_seq_only_for_its_user_and_its_filters():
    filters = filters_of(HistoryFilter(types=("spent",), pool="monthly",
                                       since=datetime(2026, 1, 1, tzinfo=UTC)))
    token = page_tokens.encode("u", 42, filters)
    assert page_tokens.decode("u", token, filters) == 42
    with pytest.raises(InvalidRequest, match="other filters"):
        page_tokens.decode("u", token, filters_of(HistoryFilter(types=("spent",))))
    with pytest.raises(InvalidRequest, match="not a token this API issued"):
        page_tokens.decode("v", token, filters)
    for forged in ("", "abc", token + "0", token.replace(".", "x."), "W10." + token.split(".")[1]):
        with pytest.raises(InvalidRequest):
            page_tokens.decode("u", forged, filters)


def test_the_same_instant_written_in_another_zone_is_the_same_filter():
    one = filters_of(HistoryFilter(since=parse_time("2026-01-01T01:00:00+01:00")))
    assert one == filters_of(HistoryFilter(since=parse_time("2026-01-01T00:00:00Z")))


def test_a_token_stays_short_whatever_the_user_id():
    user_id = "é" * 128
    filters = filters_of(HistoryFilter(types=tuple(sorted(("spent", "refund", "promo_grant"))), pool="permanent",
                                       since=datetime(1, 1, 1, tzinfo=UTC), until=datetime(9999, 12, 31, tzinfo=UTC)))
    token = page_tokens.encode(user_id, 10**12, filters)
    assert len(token) < 100
    assert page_tokens.decode(user_id, token, filters) == 10**12


def test_a_balance_as_of_a_time_is_the_pools_after_the_record_or_zeros_without_one():
    at = datetime(2026, 1, 1, tzinfo=UTC)
    record = {"seq": 7, "balance_after": {"credits_monthly": 3, "credits_permanent": 4}}
    assert as_of_view("u", at, record) == {"user_id": "u", "as_of": "2026-01-01T00:00:00.000000Z",
                                           "credits_monthly": 3, "credits_permanent": 4, "balance": 7, "seq": 7}
    assert as_of_view("u", at, None) == {"user_id": "u", "as_of": "2026-01-01T00:00:00.000000Z",
                                         "credits_monthly": 0, "credits_permanent": 0, "balance": 0, "seq": 0}
