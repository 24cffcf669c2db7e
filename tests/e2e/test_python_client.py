"""The Python client (clients/python) against the real `spend` function served by functions-framework
on the Firestore emulator: every route, its typed answers and exceptions, the README's example, and
retries that spend exactly once when a reply is lost or the function answers 503."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from credits_client import (CreditsClient, HoldNotFound, HoldNotOpen, IdempotencyConflict, InsufficientCredits,
                            InvalidRequest, RefundExceedsSpend, SpendNotFound)
from tests.support.ledger import assert_ledger_invariant, records_of, seed
from tests.support.servers import serve_function
from tests.support.stall_proxy import StallProxy

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "clients" / "python" / "README.md"
HOW_TO = ROOT / "docs" / "how-to" / "call-the-api-from-the-backend.md"


@pytest.fixture(scope="module")
def spend_url(firestore_emulator):
    with serve_function("spend") as url:
        yield url


@pytest.fixture
def client(spend_url, db):
    with CreditsClient(spend_url, deadline=20) as client:
        yield client


def spent_records(db, user_id):
    return [r for r in records_of(db, user_id) if r["type"] == "spent"]


def run_first_python_block(path, spend_url):
    block = re.search(r"```python\n(.*?)```", path.read_text(), re.S).group(1)
    assert len(block.strip().splitlines()) < 20
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(block.replace("http://127.0.0.1:8081", spend_url), {})
    return out


def test_the_readme_example_runs_against_the_local_function(spend_url, db):
    seed("ava", permanent=100)
    out = run_first_python_block(README, spend_url)
    # 100 - 30 spent; a hold of 50 keeps 20; 10 of the spend refunded; the last spend refused.
    assert out.getvalue().split("\n") == ["70", "20 50", "10 20", "60 1000000", ""]
    assert_ledger_invariant(db, "ava")


def test_the_how_to_example_runs_against_the_local_function(spend_url, db):
    seed("ava", permanent=100)
    assert run_first_python_block(HOW_TO, spend_url).getvalue() == "60 1000000\n"
    assert_ledger_invariant(db, "ava")


def test_a_spend_its_preview_the_balance_then_and_now_and_the_history_by_pages(client, db):
    seed("bea", monthly=10, permanent=40)
    preview = client.preview_spend("bea", 25)
    assert [(e.pool, e.amount) for e in preview.transactions] == [("permanent", -25)]
    assert preview.balance.balance == 25 and spent_records(db, "bea") == []
    before = datetime.now(timezone.utc)
    time.sleep(0.01)
    first = client.spend("bea", 25, description="Export")
    again = client.spend("bea", 25, description="Export", idempotency_key=first.idempotency_key)
    assert again.replayed and not first.replayed and again.transactions == first.transactions
    assert first.balance.balance == 25 and first.transactions[0].description.startswith("Export")
    client.spend("bea", 20)
    assert client.balance("bea").balance == 5
    then = client.balance("bea", as_of=before)
    assert (then.balance, then.credits_monthly, then.credits_permanent) == (50, 10, 40)
    pages = list(client.history_pages("bea", limit=2))
    assert [len(p.items) for p in pages] == [2, 2, 1] and pages[-1].next_page_token is None
    assert [t.seq for p in pages for t in p.items] == [5, 4, 3, 2, 1]
    assert [t.amount for t in client.history("bea", types=["spent"], pool="permanent", limit=1)] == [-15, -25]
    assert [t.type for t in client.history("bea", since=before)] == ["spent", "spent", "spent"]
    assert [t.seq for t in client.history("bea", until=before)] == [2, 1]
    assert len(spent_records(db, "bea")) == 3
    assert_ledger_invariant(db, "bea")


def test_refusals_are_the_exceptions_of_their_codes_with_their_numbers(client, db):
    seed("cy", permanent=10)
    with pytest.raises(InsufficientCredits) as short:
        client.spend("cy", 11)
    assert (short.value.balance, short.value.requested, short.value.status) == (10, 11, 402)
    with pytest.raises(InsufficientCredits):
        client.preview_spend("cy", 11)
    spend = client.spend("cy", 4, idempotency_key="cy-1")
    with pytest.raises(IdempotencyConflict):
        client.spend("cy", 5, idempotency_key="cy-1")
    with pytest.raises(RefundExceedsSpend) as over:
        client.refund("cy", spend.idempotency_key, 5)
    assert over.value.refundable == 4
    with pytest.raises(SpendNotFound):
        client.refund("cy", "no-such-spend")
    with pytest.raises(HoldNotFound):
        client.get_hold("no-such-hold")
    with pytest.raises(InvalidRequest) as invalid:
        client.spend("cy", 0)
    assert invalid.value.fields and invalid.value.fields[0]["field"] == "amount"
    refund = client.refund("cy", spend.idempotency_key)
    assert (refund.amount, refund.refundable, refund.balance.balance) == (4, 0, 10)
    assert client.refund("cy", spend.idempotency_key, idempotency_key=refund.idempotency_key).replayed
    assert_ledger_invariant(db, "cy")


def test_a_hold_block_captures_on_success_and_releases_on_an_exception(client, db):
    seed("dee", permanent=100)
    with client.hold("dee", 30, hold_id="dee-render") as hold:
        assert client.balance("dee").credits_held == 30
    assert (hold.settlement.status, hold.settlement.captured, hold.settlement.balance.balance) == ("captured", 30, 70)
    with pytest.raises(RuntimeError, match="render failed"):
        with client.hold("dee", 40) as failed:
            raise RuntimeError("render failed")
    assert failed.settlement.status == "released" and failed.settlement.balance.balance == 70
    with client.hold("dee", 50) as partial:
        partial.capture_amount = 5
    assert partial.settlement.captured == 5 and client.balance("dee").balance == 65
    with pytest.raises(HoldNotOpen) as closed:
        client.capture_hold(failed.hold_id)
    assert closed.value.hold_status == "released"
    assert client.release_hold(failed.hold_id).replayed
    assert client.get_hold("dee-render").status == "captured"
    assert [h.hold_id for h in client.holds("dee", status="released")] == [failed.hold_id]
    assert len(list(client.hold_pages("dee", limit=1))) == 3
    placed = client.place_hold("dee", 5, expires_in=60)
    assert placed.status == "held" and client.capture_hold(placed.hold_id, 2).captured == 2
    assert client.refund("dee", "dee-render", 30).balance.balance == 93
    assert_ledger_invariant(db, "dee")


def test_settings_are_read_and_changed(client, db):
    seed("eve", permanent=5)
    assert client.settings("eve").low_balance_threshold is None
    assert client.update_settings("eve", low_balance_threshold=50).low_balance_threshold == 50
    assert client.settings("eve").low_balance_threshold == 50
    assert client.update_settings("eve", low_balance_threshold=None).low_balance_threshold is None
    assert client.openapi()["paths"].keys() >= {"/spend", "/holds"}


def test_a_spend_whose_reply_is_lost_is_retried_with_its_key_and_spent_once(spend_url, db, caplog):
    seed("fay", permanent=10)
    proxy = StallProxy(spend_url.removeprefix("http://")).start()
    try:
        with CreditsClient(f"http://{proxy.host}", timeout=1.0, deadline=20) as client:
            client.balance("fay")  # opens the connection the spend goes out on
            proxy.stall_replies(3.0)  # the function answers; the answer does not come back in time
            with caplog.at_level(logging.INFO, logger="credits_client"):
                spend = client.spend("fay", 3)
    finally:
        time.sleep(3.0)
        proxy.stop()
    assert "retrying" in caplog.text and "ReadTimeout" in caplog.text
    assert spend.replayed and spend.balance.balance == 7
    assert len(spent_records(db, "fay")) == 1
    assert_ledger_invariant(db, "fay")


def test_a_503_is_retried_after_its_retry_after_until_the_function_can_reach_firestore(firestore_emulator, db,
                                                                                      caplog):
    seed("gus", permanent=10)
    # The function's way to Firestore is a proxy that starts listening only a while after the spend.
    proxy = StallProxy(firestore_emulator.host)
    with serve_function("spend", env={"FIRESTORE_EMULATOR_HOST": proxy.host}) as url:
        opener = threading.Timer(1.5, proxy.start)
        opener.start()
        try:
            with caplog.at_level(logging.INFO, logger="credits_client"):
                with CreditsClient(url, deadline=30) as client:
                    spend = client.spend("gus", 4)
        finally:
            opener.join()
            proxy.stop()
    assert re.search(r"retrying in \d+\.\d+ s after unavailable", caplog.text)
    waits = [float(w) for w in re.findall(r"retrying in (\d+\.\d+) s after unavailable", caplog.text)]
    assert min(waits) >= 1.0  # at least the function's Retry-After
    assert spend.balance.balance == 6 and len(spent_records(db, "gus")) == 1
    assert_ledger_invariant(db, "gus")
