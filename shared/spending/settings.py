"""A user's settings (CONTRACT section 3c): what `GET /users/{user_id}/settings` shows and what a
`PUT` changes, as pure rules over the user document.

Rules enforced here:
- settings live on the user document beside the pools, so every change to the user (and
  `ledger_events`' `balance.low`) sees them without another read;
- `low_balance_threshold` is an integer 1 to 1,000,000,000, or null to clear it (the field is
  then removed, never stored as null); a stored value that is not such an integer (written by
  another tool) reads as null, as `balance.low` ignores it;
- a `PUT` changes only the settings it names; an empty object, or any field that is not a
  setting this API takes, is `invalid_request` (`auto_topup` is one of them until auto top-up
  exists: a setting is added by giving it a field in `SettingsBody` and a writer in `WRITERS`);
- a `PUT` that changes nothing writes nothing (a user with no record stays without one);
- a legacy document is migrated by the commit that first changes its settings, with its
  `migration` record, like any other change.
"""

from __future__ import annotations

from typing import Annotated, Any, Callable, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..common.errors import InvalidRequest
from ..ledger import accounts, records
from ..ledger.change import REMOVED, Change, Snapshot

LOW_BALANCE_THRESHOLD = "low_balance_threshold"
AUTO_TOPUP = "auto_topup"
MAX_THRESHOLD = 1_000_000_000

Threshold = Annotated[int, Field(strict=True, ge=1, le=MAX_THRESHOLD)]


class SettingsBody(BaseModel):
    """A `PUT` body: the settings to change; a field left out is left as it is."""

    model_config = ConfigDict(strict=True, extra="forbid")

    low_balance_threshold: Optional[Threshold] = None

    @model_validator(mode="before")
    @classmethod
    def _not_empty(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data:
            raise ValueError("name at least one setting to change")
        return data

    def changes(self) -> dict[str, Any]:
        """Each named setting and its new value (None: cleared)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


def _threshold_of(user_data: Optional[Mapping[str, Any]]) -> Optional[int]:
    value = (user_data or {}).get(LOW_BALANCE_THRESHOLD)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_THRESHOLD:
        return value
    return None


def settings_view(user_id: str, user_data: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """`GET /users/{user_id}/settings` of a stored user document (None: no record)."""
    return {
        "user_id": user_id,
        LOW_BALANCE_THRESHOLD: _threshold_of(user_data),
        # Auto top-up is not offered yet: no user has a setting.
        AUTO_TOPUP: None,
    }


def _write_threshold(value: Optional[int]) -> Any:
    return REMOVED if value is None else value


# How each setting is stored on the user document: its value, or REMOVED to clear it.
WRITERS: dict[str, Callable[[Any], Any]] = {LOW_BALANCE_THRESHOLD: _write_threshold}


def refuse_unsupported(body: Mapping[str, Any]) -> None:
    """`invalid_request` naming the settings this API cannot change yet (before the body's own check)."""
    if AUTO_TOPUP in body:
        raise InvalidRequest("auto_topup cannot be set yet", fields=[
            {"field": AUTO_TOPUP, "problem": "auto top-up is not available yet; only low_balance_threshold can be set"}
        ])


def decide_settings(snap: Snapshot, changes: Mapping[str, Any]) -> Change[dict[str, Any]]:
    """The settings change: the named settings written on the user document, or nothing if they
    already hold those values; its result is what `GET` answers after it."""
    user_id = snap.account.user_id
    current = settings_view(user_id, snap.user_data)
    stored = {name: WRITERS[name](value) for name, value in changes.items() if current.get(name) != value}
    if not stored:
        return Change(result=current)
    account, migration = accounts.migrate(snap.account)
    after = {**(snap.user_data or {}), **{k: v for k, v in stored.items() if v is not REMOVED}}
    for name, value in stored.items():
        if value is REMOVED:
            after.pop(name, None)
    written = records.records(user_id, migration, None, snap.now, at=snap.position) if migration else []
    return Change(result=settings_view(user_id, after), account=account, records=written, user_fields=stored)
