"""Unit tests check pure rules: no emulator, no network, a few seconds in all.

Every test here runs with the emulator variables removed and the cached clients forgotten, so a
rule that reached for Firestore by mistake fails at once instead of quietly finding an emulator.
"""

from __future__ import annotations

import pytest

from shared.common import settings


@pytest.fixture(autouse=True)
def no_emulators(monkeypatch):
    for name in ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    settings.reset()
    yield
    settings.reset()
