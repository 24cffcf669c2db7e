"""A user's settings (CONTRACT section 3c): what `GET /users/{user_id}/settings` shows and what a
`PUT` changes, as pure rules over the user document.

Rules enforced here:
- settings live on the user document beside the pools, so every change to the user (and
  `ledger_events`' `balance.low`) sees them without another read;
- `low_balance_threshold` is an integer 1 to 1,000,000,000, or null to clear it (the field is
  then removed, never stored as null); a stored value that is not such an integer (written by
  another tool) reads as null, as `balance.low` ignores it;
- a `PUT` changes only the settings it names; an empty object, or any field that is not a
  setting this API takes, is `invalid_request` (a setting is added by giving it a field in
  `SettingsBody` and a writer in `WRITERS`);
- `auto_topup` (CONTRACT section 9) is validated here field by field (`AutoTopupBody`: strict
  types, defaults, no unknown field); whether its `price_id` is a catalog add-on is decided at the
  edge, which knows the catalog and passes the credits one attempt grants; a `PUT` of it replaces
  the whole setting and restarts its state (`autotopup.put_setting`), even when it is the same
  one, and null removes it (leaving a stopped stub, shown as no setting, while an attempt is
  pending or the month has counted attempts: `autotopup.removed_setting`); the attempt such a
  `PUT` makes due is created by the kernel in the same commit, like any change's;
- the operator's `credits topup enable|disable` is that same `PUT` of `auto_topup`: the user's
  stored setting put again with only `enabled` changed (`decide_topup_switch`), so its state
  restarts as a `PUT` restarts it and the user's price, quantity, threshold, limit, customer,
  payment method and credits per top-up are kept; a user without a setting has nothing to switch;
- a `PUT` that changes nothing writes nothing (a user with no record stays without one);
- a legacy document is migrated by the commit that first changes its settings, with its
  `migration` record, like any other change.
"""

from __future__ import annotations

from typing import Annotated, Any, Callable, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from datetime import datetime

from ..common.errors import NotFound
from ..common.validation import text_problem
from ..ledger import accounts, autotopup, records
from ..ledger.autotopup import TopupSetting
from ..ledger.change import REMOVED, Change, Snapshot

LOW_BALANCE_THRESHOLD = "low_balance_threshold"
AUTO_TOPUP = "auto_topup"
MAX_THRESHOLD = 1_000_000_000

Threshold = Annotated[int, Field(strict=True, ge=1, le=MAX_THRESHOLD)]
StripeId = Annotated[str, Field(strict=True, min_length=1, max_length=255)]


class AutoTopupBody(BaseModel):
    """`auto_topup` as a `PUT` gives it; a field left out takes its default."""

    model_config = ConfigDict(strict=True, extra="forbid")

    enabled: bool
    threshold: Threshold
    price_id: StripeId
    quantity: Annotated[int, Field(strict=True, ge=1, le=100)] = 1
    monthly_limit: Annotated[int, Field(strict=True, ge=1, le=100)] = 5
    customer: Optional[StripeId] = None
    payment_method: Optional[StripeId] = None

    @model_validator(mode="after")
    def _plain_ids(self) -> "AutoTopupBody":
        for name in ("price_id", "customer", "payment_method"):
            value = getattr(self, name)
            problem = text_problem(value) if value is not None else None
            if problem or (value is not None and "/" in value):
                raise ValueError(f"{name} is not a Stripe id")
        return self

    def setting(self, credits_per_unit: int) -> TopupSetting:
        """The setting stored, with the credits one attempt grants (`permanent_credits x quantity`)."""
        return TopupSetting(enabled=self.enabled, threshold=self.threshold, price_id=self.price_id,
                            credits=credits_per_unit * self.quantity, quantity=self.quantity,
                            monthly_limit=self.monthly_limit, customer=self.customer,
                            payment_method=self.payment_method)


class SettingsBody(BaseModel):
    """A `PUT` body: the settings to change; a field left out is left as it is."""

    model_config = ConfigDict(strict=True, extra="forbid")

    low_balance_threshold: Optional[Threshold] = None
    auto_topup: Optional[AutoTopupBody] = None

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


def settings_view(user_id: str, user_data: Optional[Mapping[str, Any]], now: datetime) -> dict[str, Any]:
    """`GET /users/{user_id}/settings` of a stored user document (None: no record)."""
    return {
        "user_id": user_id,
        LOW_BALANCE_THRESHOLD: _threshold_of(user_data),
        AUTO_TOPUP: autotopup.view(autotopup.setting_of(user_data), now),
    }


def _write_threshold(value: Optional[int], user_data: Optional[Mapping[str, Any]]) -> Any:
    return REMOVED if value is None else value


def _write_topup(value: Optional[TopupSetting], user_data: Optional[Mapping[str, Any]]) -> Any:
    if value is None:
        # What the removed setting must not forget (a pending attempt, the month's count) stays.
        kept = autotopup.removed_setting(autotopup.setting_of(user_data))
        return REMOVED if kept is None else kept.to_dict()
    return autotopup.put_setting(value, autotopup.setting_of(user_data)).to_dict()


# How each setting is stored on the user document (given what is stored): its value, or REMOVED.
WRITERS: dict[str, Callable[[Any, Optional[Mapping[str, Any]]], Any]] = {
    LOW_BALANCE_THRESHOLD: _write_threshold,
    AUTO_TOPUP: _write_topup,
}


def _unchanged(name: str, value: Any, current: Mapping[str, Any]) -> bool:
    # A put auto top-up setting always restarts its state, so only its removal can change nothing.
    if name == AUTO_TOPUP:
        return value is None and current.get(name) is None
    return current.get(name) == value


def decide_settings(snap: Snapshot, changes: Mapping[str, Any]) -> Change[dict[str, Any]]:
    """The settings change: the named settings written on the user document, or nothing if they
    already hold those values; its result is what `GET` answers after it (before the attempt the
    commit may add, which `settings_service` reads back)."""
    user_id = snap.account.user_id
    current = settings_view(user_id, snap.user_data, snap.now)
    stored = {name: WRITERS[name](value, snap.user_data) for name, value in changes.items()
              if not _unchanged(name, value, current)}
    if not stored:
        return Change(result=current)
    account, migration = accounts.migrate(snap.account)
    after = {**(snap.user_data or {}), **{k: v for k, v in stored.items() if v is not REMOVED}}
    for name, value in stored.items():
        if value is REMOVED:
            after.pop(name, None)
    written = records.records(user_id, migration, None, snap.now, at=snap.position) if migration else []
    return Change(result=settings_view(user_id, after, snap.now), account=account, records=written, user_fields=stored)


def reput_topup(setting: TopupSetting, enabled: bool) -> TopupSetting:
    """The stored setting as a `PUT` giving the same preferences and `enabled` would store it
    (before `put_setting` restarts its state): validated by the same `AutoTopupBody`, with the
    credits per unit it was put with (`credits` is `permanent_credits x quantity`)."""
    body = AutoTopupBody(enabled=enabled, threshold=setting.threshold, price_id=setting.price_id,
                         quantity=setting.quantity, monthly_limit=setting.monthly_limit,
                         customer=setting.customer, payment_method=setting.payment_method)
    return body.setting(setting.credits // max(setting.quantity, 1))


def decide_topup_switch(snap: Snapshot, enabled: bool) -> Change[dict[str, Any]]:
    """The user's auto top-up setting put again with `enabled` changed, decided on the user
    document the commit is conditioned on (a setting put meanwhile is the one switched)."""
    setting = autotopup.setting_of(snap.user_data)
    if setting is None or setting.removed:  # a removed setting's stub is no setting to switch
        raise NotFound(f"{snap.account.user_id} has no auto top-up setting: the app puts one with "
                       "PUT /users/{user_id}/settings")
    return decide_settings(snap, {AUTO_TOPUP: reput_topup(setting, enabled)})
