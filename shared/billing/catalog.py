"""The credits catalog (`CREDITS_CATALOG`): which Stripe prices grant which credits.

Rules enforced here:
- the file is read and validated once per instance; a bad file fails the start with a message
  naming the file and the bad entry (`CatalogError`), never a silent default;
- `plans` map a recurring price to `monthly_credits` (a positive int) and an optional
  `rollover_cap` (an int, 0 by default: a plain reset); `addons` map a one-time price to
  `permanent_credits` (a positive int);
- a price is a plan or an add-on, never both; unknown keys are refused, so a typo such as
  `rolover_cap` cannot silently mean 0.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping, Optional

from ..common import settings
from ..common.errors import CatalogError, UnknownPrice

ENV = "CREDITS_CATALOG"
MAX_CREDITS = 1_000_000_000


@dataclass(frozen=True)
class Plan:
    """A subscription price: its monthly allowance and how much of last month may roll over."""

    price_id: str
    monthly_credits: int
    rollover_cap: int = 0


@dataclass(frozen=True)
class Addon:
    """A one-time price: permanent credits per unit bought."""

    price_id: str
    permanent_credits: int


@dataclass(frozen=True)
class Catalog:
    plans: Mapping[str, Plan]
    addons: Mapping[str, Addon]

    def plan(self, price_id: Optional[str]) -> Optional[Plan]:
        return self.plans.get(price_id) if price_id else None

    def addon(self, price_id: Optional[str]) -> Optional[Addon]:
        return self.addons.get(price_id) if price_id else None

    def topup_credits(self, price_id: str) -> int:
        """The permanent credits one unit of an auto top-up's price grants: the price must be a
        catalog add-on (UnknownPrice otherwise). The API's settings `PUT` and the support
        console both join a setting to the catalog through here."""
        addon = self.addon(price_id)
        if addon is None:
            raise UnknownPrice(f"price {price_id!r} is not an add-on of the catalog",
                               fields=[{"field": "auto_topup.price_id", "problem": "not a catalog add-on"}])
        return addon.permanent_credits


def _credits(where: str, entry: Mapping[str, Any], name: str, minimum: int, required: bool) -> int:
    if name not in entry:
        if required:
            raise CatalogError(f"{where}: `{name}` is missing")
        return 0
    value = entry[name]
    # bool is an int in Python, and a float is never a credit count.
    if type(value) is not int or not minimum <= value <= MAX_CREDITS:
        raise CatalogError(f"{where}.{name} must be an integer from {minimum} to {MAX_CREDITS}, got {value!r}")
    return value


def _section(source: str, data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    section = data.get(name, {})
    if not isinstance(section, dict):
        raise CatalogError(f"{source}: `{name}` must be an object mapping price ids to entries")
    for price_id, entry in section.items():
        where = f"{source}: {name}.{price_id}"
        if not price_id.strip() or price_id != price_id.strip():
            raise CatalogError(f"{where}: a price id must be non-empty, without surrounding spaces")
        if not isinstance(entry, dict):
            raise CatalogError(f"{where} must be an object, got {entry!r}")
    return section


def parse(data: Any, source: str = "catalog") -> Catalog:
    """The catalog a decoded JSON document describes, or CatalogError naming the bad entry."""
    if not isinstance(data, dict):
        raise CatalogError(f"{source}: the catalog must be a JSON object with `plans` and `addons`")
    unknown = sorted(set(data) - {"plans", "addons"})
    if unknown:
        raise CatalogError(f"{source}: unknown top-level key(s) {unknown}; only `plans` and `addons` are allowed")
    plans: dict[str, Plan] = {}
    for price_id, entry in _section(source, data, "plans").items():
        where = f"{source}: plans.{price_id}"
        extra = sorted(set(entry) - {"monthly_credits", "rollover_cap"})
        if extra:
            raise CatalogError(f"{where}: unknown key(s) {extra}")
        plans[price_id] = Plan(
            price_id,
            _credits(where, entry, "monthly_credits", 1, required=True),
            _credits(where, entry, "rollover_cap", 0, required=False),
        )
    addons: dict[str, Addon] = {}
    for price_id, entry in _section(source, data, "addons").items():
        where = f"{source}: addons.{price_id}"
        extra = sorted(set(entry) - {"permanent_credits"})
        if extra:
            raise CatalogError(f"{where}: unknown key(s) {extra}")
        if price_id in plans:
            raise CatalogError(f"{where}: the price is also a plan; a price is one or the other")
        addons[price_id] = Addon(price_id, _credits(where, entry, "permanent_credits", 1, required=True))
    return Catalog(MappingProxyType(plans), MappingProxyType(addons))


def load(path: Optional[str] = None) -> Catalog:
    """Read and validate the catalog file at `path` (default: `$CREDITS_CATALOG`)."""
    path = path if path is not None else os.environ.get(ENV, "").strip()
    if not path:
        raise CatalogError(f"{ENV} is not set; it must name the catalog JSON file")
    source = f"{ENV}={path}"
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise CatalogError(f"{source}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{source}: cannot be read ({exc})") from None
    except ValueError as exc:
        raise CatalogError(f"{source}: not valid JSON ({exc})") from None
    return parse(data, source)


@settings.cached
def get() -> Catalog:
    """The instance's catalog, loaded on first use and kept for the instance's life."""
    return load()
