"""Fixtures of the integration tests: services and Firestore rules on the real emulators."""

from __future__ import annotations

import pytest

from tests.support.deploy import TERRAFORM_DIR
from tests.support.emulators import Emulator

RULES = TERRAFORM_DIR / "firestore.rules"


@pytest.fixture(scope="module")
def rules_emulator():
    """A Firestore emulator of its own with `terraform/firestore.rules` loaded."""
    emulator = Emulator("firestore", extra_args=(f"--rules={RULES}",)).start()
    yield emulator
    emulator.stop()
