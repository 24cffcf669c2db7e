"""The time every decision and read of the spending paths sees, moved forward by a test."""

from __future__ import annotations

from datetime import timedelta

from shared.store import client as store_client


class Clock:
    """Patches `utcnow` where the spend paths read it; `advance` moves every one of them at once."""

    def __init__(self, monkeypatch):
        self.offset = timedelta()
        real = store_client.utcnow
        for module in ("shared.store.commit", "shared.store.batch", "shared.spending.service",
                       "shared.spending.holds_service"):
            monkeypatch.setattr(f"{module}.utcnow", lambda: real() + self.offset)

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)
