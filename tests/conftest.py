"""Shared fixtures: the real Firestore and Pub/Sub emulators, and each function's real app.

The emulators are started once per test session on free ports, so the suite needs nothing
running beforehand and never touches a developer's own emulators.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.emulators import PROJECT, Emulator  # noqa: E402

os.environ.setdefault("GOOGLE_CLOUD_PROJECT", PROJECT)


@pytest.fixture(scope="session")
def firestore_emulator():
    from shared import store

    emulator = Emulator.shared_or_started("firestore")
    os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host
    store.reset_client()
    yield emulator
    emulator.stop()
    store.reset_client()


@pytest.fixture(scope="session")
def pubsub_emulator():
    emulator = Emulator.shared_or_started("pubsub")
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
    yield emulator
    emulator.stop()


@pytest.fixture
def db(firestore_emulator):
    """An empty Firestore (the emulator, wiped before the test) and the store's client."""
    from shared import store

    firestore_emulator.reset()
    return store.client()


def function_app(name: str):
    """The real functions-framework app of `functions/<name>/main.py`, loaded by file path."""
    from functions_framework import create_app

    return create_app(name, source=str(ROOT / "functions" / name / "main.py"))


@pytest.fixture(scope="session")
def spend_app(firestore_emulator):
    return function_app("spend")


@pytest.fixture
def spend_client(spend_app, db):
    return spend_app.test_client()
