"""A Firestore outage while the webhook handles events: 5xx, nothing left behind, then once.

The outage is real: a Firestore emulator of this test's own is stopped, and later started
again from an export taken just before it went down, so the data that existed survives.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from shared.common import settings
from shared.store import client as store_client
from tests.support.emulators import PROJECT, Emulator
from tests.support.ledger import assert_ledger_invariant, dump, user_doc
from tests.support.stripe_story import Customer


def export(emulator: Emulator, directory: Path) -> Path:
    """Write the emulator's data to `directory` and return the file `--import-data` takes."""
    directory.mkdir(parents=True, exist_ok=True)
    request = urllib.request.Request(
        f"http://{emulator.host}/emulator/v1/projects/{PROJECT}:export",
        data=json.dumps({"database": f"projects/{PROJECT}/databases/(default)", "export_directory": str(directory)}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request, timeout=30).close()
    [metadata] = directory.rglob("*.overall_export_metadata")
    return metadata


@pytest.fixture
def outage_db(webhook, tmp_path, monkeypatch):
    """A Firestore emulator of this test's own, with the store pointed at it, restored after."""
    emulator = Emulator("firestore").start()
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", emulator.host)
    settings.reset()
    try:
        yield emulator
    finally:
        emulator.stop()
        monkeypatch.undo()
        settings.reset()
        assert os.environ["FIRESTORE_EMULATOR_HOST"] != emulator.host


def test_a_firestore_outage_during_events_answers_5xx_leaves_nothing_and_the_retry_applies_once(
    webhook, outage_db, fake_stripe, tmp_path
):
    db = store_client.client()
    uma = Customer("uma")
    fake_stripe.add_session("cs_test_uma_pack", ("price_pack_500", 1))
    assert webhook.outcome(uma.renewal(1, "price_pro_monthly")) == "applied"
    before = dump(db)
    snapshot = export(outage_db, tmp_path / "export")

    # Firestore goes down in the middle of a pack purchase: after the event was read and
    # checked against its marker, while its line items are being read from Stripe.
    def go_down(path):
        outage_db.stop()
        return None

    fake_stripe.intercept = go_down
    pack = uma.pack_checkout("cs_test_uma_pack", paid=True)
    try:
        response = webhook.send(pack)
    finally:
        fake_stripe.intercept = None
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "unavailable"
    assert int(response.headers["Retry-After"]) >= 1

    # With Firestore still down, a renewal fails the same way.
    renewal = uma.renewal(2, "price_pro_monthly")
    assert webhook.send(renewal).status_code == 503

    # Firestore comes back with what it held before; the failed events left nothing.
    restarted = Emulator("firestore", port=outage_db.port, extra_args=(f"--import-data={snapshot}",)).start()
    outage_db.process, restarted.process = restarted.process, None
    settings.reset()
    db = store_client.client()
    assert dump(db) == before

    # Stripe's retries apply each event once.
    assert webhook.outcome(pack) == "applied"
    assert webhook.outcome(renewal) == "applied"
    assert webhook.outcome(pack) == "duplicate"
    assert webhook.outcome(renewal) == "duplicate"
    doc = user_doc(db, "uma")
    assert (doc["credits_monthly"], doc["credits_permanent"]) == (1500, 500)
    assert_ledger_invariant(db, "uma")
