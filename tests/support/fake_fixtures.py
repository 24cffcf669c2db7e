"""Fixtures of the tests that run the store on the in-memory Firestore (unit and simulation tests).

A conftest imports them by name; each test then runs with the emulator variables removed and the
cached clients forgotten, so nothing reaches for a real Firestore by mistake.
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
    """The store retries lost races and resolves lost replies without sleeping, within short budgets."""
    retry_quickly(monkeypatch)


def retry_quickly(monkeypatch) -> None:
    """What `quick_retries` does, for a process that runs without pytest's fixtures (a worker).

    Resolution looks at a clock that moves 10 ms each time it is read, so its 50 ms budget allows
    a few tries whatever the machine's speed.
    """
    from shared.store import commit, outcome

    ticks = itertools.count()
    monkeypatch.setattr(commit, "_backoff", lambda attempt: None)
    monkeypatch.setattr(commit, "RACE_BUDGET_S", 0.05)
    monkeypatch.setattr(outcome, "RESOLVE_BUDGET_S", 0.05)
    monkeypatch.setattr(outcome, "time", SimpleNamespace(monotonic=lambda: next(ticks) / 100, sleep=lambda s: None))
