"""What the `stripe_webhook` tests share: the settings they run with and a signing client.

The fixtures built on these (the local Stripe API, the app, `stripe_config`, `webhook`) are in
`tests/e2e/conftest.py`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from shared.common import settings
from tools.local import stripe_events as stripe_fixtures

TESTS = Path(__file__).resolve().parents[1]
CATALOG = TESTS / "stripe_catalog.json"
SECRET = "whsec_test_primary_0123456789"
API_KEY = "sk_test_fake_stripe_key"


def reset_caches() -> None:
    settings.reset()


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
