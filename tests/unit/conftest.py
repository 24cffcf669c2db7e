"""Unit tests check pure rules: no emulator, no network, a few seconds in all.

Every test here runs with the emulator variables removed and the cached clients forgotten, so a
rule that reached for Firestore by mistake fails at once instead of quietly finding an emulator.
Tests of the store itself run it on an in-memory Firestore instead (`fake_db`).
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest

from shared.common import settings


@pytest.fixture(autouse=True)
def no_emulators(monkeypatch):
    for name in ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    settings.reset()
    yield
    settings.reset()


@pytest.fixture
def fake_db(monkeypatch):
    """An in-memory Firestore (`tests.support.fake_firestore`) as the store's client, empty."""
    from tests.support.fake_firestore import FakeFirestore, install

    return install(FakeFirestore(), monkeypatch)


@pytest.fixture
def quick_retries(monkeypatch):
    """The store retries lost races and resolves lost replies without sleeping, within short budgets.

    Resolution looks at a clock that moves 10 ms each time it is read, so its 50 ms budget allows
    a few tries whatever the machine's speed.
    """
    from shared.store import commit, outcome

    ticks = itertools.count()
    monkeypatch.setattr(commit, "_backoff", lambda attempt: None)
    monkeypatch.setattr(commit, "RACE_BUDGET_S", 0.05)
    monkeypatch.setattr(outcome, "RESOLVE_BUDGET_S", 0.05)
    monkeypatch.setattr(outcome, "time", SimpleNamespace(monotonic=lambda: next(ticks) / 100, sleep=lambda s: None))
