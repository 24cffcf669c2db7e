"""Simulation tests: generated histories delivered in many orders with faults, on the in-memory
Firestore (no emulator), at unit speed, through the real services with the test catalog."""

from __future__ import annotations

import os

import pytest

from shared.common import settings
from tests.support.fake_fixtures import fake_db, no_emulators, quick_retries  # noqa: F401 (fixtures)

CATALOG = os.path.join(os.path.dirname(__file__), "..", "stripe_catalog.json")


@pytest.fixture(autouse=True)
def stripe_setup(monkeypatch):
    """The test catalog and Stripe settings; line items come from each history, never the API."""
    monkeypatch.setenv("CREDITS_CATALOG", CATALOG)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_simulation")
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_simulation")
    settings.reset()
