"""The support console in a real browser (the system Chromium, driven by Playwright) against the
local stack: the real console entry point, the spend and stripe_webhook functions, the emulator.

"My credits vanished": a user bought a pack (a signed Stripe webhook), spent, placed a hold, and
the pack was refunded, leaving a debt. An agent finds them by Stripe customer id, reads why,
releases the hold, refunds a spend, adjusts with a reason and sees each action in the audit with
their name, in under a minute. A viewer sees the same page read-only and a forged action is
refused. Screenshots are kept in test-artifacts/console/.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from shared.spending import service as spending
from tests.support.console import csrf_of, served
from tests.support.stripe_story import Customer

CHROMIUM = os.environ.get("CONSOLE_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"

pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists(),
                                reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")

USER, CUSTOMER = "mia", "cus_mia"
SPEND_KEY, HOLD_ID = "mia-export-1", "mia-render-1"


@pytest.fixture(scope="module")
def console_url(firestore_emulator):
    with served() as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def page_at(browser, width: int = 1280, height: int = 900):
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(10_000)
    return context, context.new_page()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page, url: str, actor: str, role: str) -> None:
    page.goto(url + "/")
    page.get_by_label("Your name or email").fill(actor)
    page.get_by_label("Role").select_option(role)
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_test_id("actor").inner_text() == actor


def vanished_credits(webhook, fake_stripe, spend_client) -> None:
    """A pack of 500 bought, 300 spent, 100 held, then the pack refunded in full: 0 left, 400 owed."""
    mia = Customer(USER)
    fake_stripe.add_session("cs_mia", ("price_pack_500", 1))
    assert webhook.outcome(mia.pack_checkout("cs_mia", paid=True)) == "applied"
    spent = spend_client.post("/spend", json={"user_id": USER, "amount": 300, "idempotency_key": SPEND_KEY,
                                              "description": "export"})
    assert spent.status_code == 200, spent.get_data(as_text=True)
    held = spend_client.post("/holds", json={"user_id": USER, "amount": 100, "hold_id": HOLD_ID})
    assert held.status_code == 200, held.get_data(as_text=True)
    assert webhook.outcome(mia.refund("cs_mia", 1000)) == "applied"
    balance = spending.balance(USER)
    assert (balance["balance"], balance["credits_held"], balance["credits_owed"]) == (0, 100, 400)


def test_an_agent_resolves_vanished_credits_from_the_customer_id_in_under_a_minute(
        console_url, browser, webhook, fake_stripe, spend_client):
    vanished_credits(webhook, fake_stripe, spend_client)
    context, page = page_at(browser)
    sign_in(page, console_url, "alex@support.example", "agent")
    started = time.monotonic()

    page.get_by_label("User id, Stripe customer id, spend key or hold id").fill(CUSTOMER)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/users/{USER}")
    # Why the balance is 0: the hold keeps 100, the pack's refund took the rest and 400 is owed.
    assert page.get_by_test_id("balance").inner_text() == "0"
    assert page.get_by_test_id("held").inner_text() == "100"
    assert page.get_by_test_id("owed").inner_text() == "400"
    assert "1000 of 1000" in page.get_by_test_id("payments").inner_text()
    assert "ch_for_cs_mia: 400" in page.get_by_test_id("owed-by").inner_text()
    ledger = page.get_by_test_id("ledger").inner_text()
    assert "addon_refunded" in ledger and "addon_purchase" in ledger and SPEND_KEY in ledger
    assert "held" in page.get_by_test_id("holds").inner_text()
    shot(page, "01-agent-finds-the-user")

    page.get_by_label("Reason").first.fill("the render never ran; give the held credits back")
    page.get_by_role("button", name=f"Release {HOLD_ID}").click()
    assert "released hold" in page.locator(".flash.success").inner_text()
    assert page.get_by_test_id("held").inner_text() == "0"

    page.get_by_label("Spend key or captured hold id").fill(SPEND_KEY)
    page.get_by_label("Credits (empty: all that remains)").fill("50")
    page.locator("#refund-reason").fill("the export failed half way")
    page.get_by_role("button", name="Refund", exact=True).click()
    assert "refunded 50 credits" in page.locator(".flash.success").inner_text()

    page.get_by_label("Pool", exact=True).select_option("permanent")
    page.get_by_label("Credits (negative removes)").fill("20")
    page.locator("#adjust-reason").fill("goodwill for the confusion")
    page.get_by_role("button", name="Adjust", exact=True).click()
    assert "adjusted the permanent pool by +20" in page.locator(".flash.success").inner_text()
    elapsed = time.monotonic() - started

    audit = page.get_by_test_id("audit").inner_text()
    for action, reason in (("release_hold", "the render never ran"), ("refund", "the export failed half way"),
                           ("adjust", "goodwill for the confusion")):
        assert action in audit and reason in audit
    assert audit.count("alex@support.example (agent)") == 3
    shot(page, "02-agent-after-actions")
    (ARTIFACTS / "resolve-seconds.txt").write_text(f"{elapsed:.2f}\n")
    assert elapsed < 60, f"resolving took {elapsed:.1f}s"

    # What the page says is what the API says.
    balance = spending.balance(USER)
    assert page.get_by_test_id("balance").inner_text() == str(balance["balance"])
    assert balance["credits_held"] == 0

    page.get_by_role("link", name="Audit", exact=True).click()
    assert page.get_by_test_id("audit").inner_text().count("alex@support.example") == 3
    context.close()


def test_a_viewer_reads_the_user_but_an_action_is_refused(console_url, browser, webhook, fake_stripe, spend_client):
    vanished_credits(webhook, fake_stripe, spend_client)
    context, page = page_at(browser, 390, 844)  # a phone's width
    sign_in(page, console_url, "val@finance.example", "viewer")
    page.goto(f"{console_url}/users/{USER}")
    assert page.get_by_test_id("read-only").is_visible()
    assert page.get_by_role("button", name=f"Release {HOLD_ID}").count() == 0
    shot(page, "03-viewer-phone-width")

    # A form forged from the viewer's own session (valid CSRF token) is refused, and nothing changes.
    token = csrf_of(page.content())
    answer = page.request.post(f"{console_url}/users/{USER}/release",
                               form={"csrf_token": token, "hold_id": HOLD_ID, "reason": "try",
                                     "nonce": "viewer-forged-nonce-0001"})
    assert answer.status == 403
    assert "forbidden" in answer.text()
    assert spending.balance(USER)["credits_held"] == 100
    page.goto(f"{console_url}/users/{USER}")
    assert page.get_by_test_id("held").inner_text() == "100"
    context.close()
