"""Fixtures of the end-to-end tests: each function's real app (spend's test client checks every
response against the function's OpenAPI document), the Stripe webhook signed as Stripe
signs, and a local stand-in of the Stripe API.

Settings that a test changes (secrets, catalog) go through `stripe_config`, which resets the
instance caches on the way in and out.
"""

from __future__ import annotations

import os

import pytest

from tests.support.functions import function_app
from tests.support.openapi import documented_client_class
from tools.local.stripe_api import FakeStripe
from tests.support.stripe_webhook import API_KEY, CATALOG, SECRET, Webhook, reset_caches
from tests.support.topups import PACK, PACK_CENTS, deliver


@pytest.fixture(scope="session")
def spend_app(firestore_emulator):
    app = function_app("spend")
    # Every response any spend test sees is checked against functions/spend/openapi.json.
    app.test_client_class = documented_client_class()
    return app


@pytest.fixture
def spend_client(spend_app, db):
    return spend_app.test_client()


@pytest.fixture(scope="session")
def operator_app(firestore_emulator):
    return function_app("operator_sweeps")


@pytest.fixture
def operator_client(operator_app, db):
    """The operator function (the scheduler's sweeps), which is not part of the app's API."""
    return operator_app.test_client()


@pytest.fixture(scope="session")
def fake_stripe():
    server = FakeStripe(API_KEY).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stripe_settings(fake_stripe, firestore_emulator):
    saved = {name: os.environ.get(name) for name in ("STRIPE_WEBHOOK_SECRET", "CREDITS_CATALOG", "STRIPE_API_BASE", "STRIPE_API_KEY")}
    os.environ.update(
        STRIPE_WEBHOOK_SECRET=SECRET,
        CREDITS_CATALOG=str(CATALOG),
        STRIPE_API_BASE=fake_stripe.base,
        STRIPE_API_KEY=API_KEY,
    )
    reset_caches()
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    reset_caches()


@pytest.fixture(scope="session")
def webhook_app(stripe_settings):
    return function_app("stripe_webhook")


@pytest.fixture
def stripe_config(monkeypatch, stripe_settings):
    """Change Stripe settings or the catalog for one test: `stripe_config(STRIPE_WEBHOOK_SECRET=...)`."""

    def configure(**env: str) -> None:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        reset_caches()

    yield configure
    monkeypatch.undo()
    reset_caches()


@pytest.fixture
def webhook(webhook_app, db, stripe_settings):
    reset_caches()
    yield Webhook(webhook_app.test_client())
    reset_caches()


@pytest.fixture(scope="session")
def topup_app(stripe_settings):
    return function_app("auto_topup")


@pytest.fixture
def stripe(fake_stripe, stripe_settings):
    """The Stripe stand-in with auto top-up's price and no PaymentIntent, customer or webhook kept."""
    fake_stripe.add_price(PACK, PACK_CENTS, "usd")
    for kept in (fake_stripe.outbox, fake_stripe.intents, fake_stripe.answers, fake_stripe.customers):
        kept.clear()
    return fake_stripe


@pytest.fixture
def trigger(topup_app, db, stripe):
    """Deliver the attempt's creation to `auto_topup` as Eventarc does (the attempt as stored)."""
    client = topup_app.test_client()
    return lambda attempt_id: deliver(client, db, attempt_id)
