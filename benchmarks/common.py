"""What every benchmark shares: a fresh Firestore emulator, and results kept apart from logs."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.emulators import PROJECT, Emulator  # noqa: E402


def out(*args) -> None:
    """Results go to the real stdout; sys.stdout itself swallows the service's log lines."""
    print(*args, file=sys.__stdout__, flush=True)


@contextlib.contextmanager
def fresh_firestore() -> Iterator[Emulator]:
    """A Firestore emulator of the benchmark's own, with the environment pointing at it
    (or the running one `CREDITS_TEST_FIRESTORE` names, wiped first, as the tests use it)."""
    emulator = Emulator.shared_or_started("firestore")
    emulator.reset()
    os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host
    os.environ.setdefault("GOOGLE_CLOUD_PROJECT", PROJECT)
    try:
        yield emulator
    finally:
        emulator.stop()


def seed(user_id: str, credits: int) -> None:
    """Give a user `credits` permanent credits through the store, with their record."""
    from shared.ledger import accounts, change, records
    from shared.ledger.models import CreditPool, TransactionType
    from shared.store import commit

    entry = accounts.grant(TransactionType.PROMO_GRANT, credits, "bench", CreditPool.PERMANENT)
    commit.change_user(
        user_id,
        lambda snap: change.Change(result=None, account=accounts.apply(snap.account, [entry]),
                                  records=records.records(user_id, [entry], "bench", snap.now, at=snap.position)),
    )


def unnumbered(account):
    """Where a baseline's records are numbered from: a textbook transaction keeps no `last_seq`, so
    its records start again at seq 1 each time; only their `balance_after` follows the pools."""
    from shared.ledger.records import Position

    return Position(0, account.monthly, account.permanent)
