"""Fixtures of every test that needs Firestore or Pub/Sub: the real emulators, and an empty database.

The tests come in three kinds, each in its folder with a conftest of its own: `unit/` (pure rules,
no emulator), `integration/` (services and rules on the emulators), `e2e/` (functions through
functions-framework, bundles, the operator command). The emulators are started once per test
session on free ports, so the suite needs nothing running beforehand and never touches a
developer's own emulators.
"""

from __future__ import annotations

import os

import pytest

from tests.support.emulators import PROJECT, Emulator

os.environ.setdefault("GOOGLE_CLOUD_PROJECT", PROJECT)


@pytest.fixture(scope="session")
def firestore_emulator():
    from shared.common import settings

    emulator = Emulator.shared_or_started("firestore")
    os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host
    settings.reset()
    yield emulator
    emulator.stop()
    settings.reset()


@pytest.fixture(scope="session")
def pubsub_emulator():
    emulator = Emulator.shared_or_started("pubsub")
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
    yield emulator
    emulator.stop()


@pytest.fixture
def db(firestore_emulator):
    """An empty Firestore (the emulator, wiped before the test) and the store's client."""
    from shared.store import client as store_client

    firestore_emulator.reset()
    return store_client.client()
