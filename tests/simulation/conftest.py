"""Simulation tests: generated histories delivered in many orders with faults, on the in-memory
Firestore (no emulator), at unit speed."""

from __future__ import annotations

from tests.support.fake_fixtures import fake_db, no_emulators, quick_retries  # noqa: F401 (fixtures)
