"""Unit tests check pure rules: no emulator, no network, a few seconds in all.

Every test here runs with the emulator variables removed and the cached clients forgotten, so a
rule that reached for Firestore by mistake fails at once instead of quietly finding an emulator.
Tests of the store itself run it on an in-memory Firestore instead (`fake_db`).
"""

from __future__ import annotations

from tests.support.fake_fixtures import fake_db, no_emulators, quick_retries  # noqa: F401 (fixtures)
