"""Pytest fixtures for the `stripe_webhook` tests: settings, the fake Stripe API, the real app.

Test modules import the fixtures they use from here. Settings that a test changes (secrets,
catalog) go through `stripe_config`, which resets the instance caches on the way in and out.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import pytest

from shared import catalog, stripe_api
from tests.conftest import function_app
from tests.support import stripe_fixtures
from tests.support.stripe_server import FakeStripe

TESTS = Path(__file__).resolve().parents[1]
CATALOG = TESTS / "stripe_catalog.json"
SECRET = "whsec_test_primary_0123456789"
API_KEY = "sk_test_fake_stripe_key"


def _reset_caches() -> None:
    catalog.reset()
    stripe_api.reset()


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
    _reset_caches()
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _reset_caches()


@pytest.fixture(scope="session")
def webhook_app(stripe_settings):
    return function_app("stripe_webhook")


@pytest.fixture
def stripe_config(monkeypatch, stripe_settings):
    """Change Stripe settings or the catalog for one test: `stripe_config(STRIPE_WEBHOOK_SECRET=...)`."""

    def configure(**env: str) -> None:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        _reset_caches()

    yield configure
    monkeypatch.undo()
    _reset_caches()


class Webhook:
    """Sends events to the real app, signed as Stripe signs them."""

    def __init__(self, client) -> None:
        self.client = client

    def post(self, payload: str, header: Optional[str]):
        headers = {"Stripe-Signature": header} if header is not None else {}
        return self.client.post("/", data=payload.encode(), headers=headers, content_type="application/json")

    def send(self, event: dict[str, Any], secret: str = SECRET):
        payload = json.dumps(event)
        return self.post(payload, stripe_fixtures.sign(payload, secret))

    def outcome(self, event: dict[str, Any]) -> str:
        response = self.send(event)
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        assert body["received"] is True
        return body["outcome"]


@pytest.fixture
def webhook(webhook_app, db, stripe_settings):
    _reset_caches()
    yield Webhook(webhook_app.test_client())
    _reset_caches()
