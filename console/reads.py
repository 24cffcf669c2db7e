"""What the support console's pages show, read through the same services as the API and `credits`.

Rules enforced here:
- nothing here writes; every figure comes from a feature's read (balances, owed and history from
  `spending.service`, holds from `spending.holds_service`, settings from `settings_service`,
  payments, subscriptions and kept events from `billing.lookups`, promo messages from
  `promotions.rejected`, usage and health from `operations`, audit from `operations.audit_log`);
- a search tries the text as a user id, a Stripe customer id, a spend key and a hold id, and
  lists every user it finds, each with how it was found;
- a debt is shown beside the payment it came from: `credits_owed_by` is keyed by the charge or
  dispute id that took the credits back;
- dates are UTC days; a usage range is at most `MAX_USAGE_DAYS` days (as `credits report`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Optional

from shared.billing import lookups as billing
from shared.common.errors import InvalidRequest
from shared.common.validation import path_id_problem
from shared.ledger.models import CreditPool, TransactionType
from shared.operations import audit_log, health, usage
from shared.operations.usage_rules import CATEGORIES, DayUsage, bucket_size, bucket_usage, usage_totals
from shared.promotions import rejected
from shared.spending import holds_service, lookups, settings_service
from shared.spending import service as spending
from shared.store.scans import HistoryFilter

MAX_QUERY = 255
MAX_USAGE_DAYS = 3660
TYPES = tuple(t.value for t in TransactionType)
POOLS = tuple(p.value for p in CreditPool)


@dataclass(frozen=True)
class Match:
    user_id: str
    found_by: str


def is_user_id(text: str) -> bool:
    return 1 <= len(text) <= 128 and path_id_problem(text) is None


def find(query: str) -> list[Match]:
    """Every user the text names, as a user id, Stripe customer id, spend key or hold id."""
    text = (query or "").strip()
    if not text or len(text) > MAX_QUERY:
        return []
    found: list[Match] = []
    if is_user_id(text) and lookups.has_record(text):
        found.append(Match(text, "user id"))
    for how, look in (("Stripe customer", billing.user_of_customer), ("spend key", lookups.user_of_spend_key),
                      ("hold id", lookups.user_of_hold)):
        user_id = look(text)
        if user_id:
            found.append(Match(user_id, how))
    return found


def user_id_of(text: str) -> str:
    if not is_user_id(text):
        raise InvalidRequest(f"{text[:40]!r} is not a user id", fields=[{"field": "user_id", "problem": "not a user id"}])
    return text


def overview(user_id: str) -> dict[str, Any]:
    """Everything the user page shows but the ledger."""
    balance = spending.balance(user_id)
    owed = spending.owed(user_id)
    customer = billing.customer_of(user_id)
    payments = billing.payments_of(user_id)
    owed_by = dict(owed["credits_owed_by"])
    for payment in payments:
        sources = [c["charge_id"] for c in payment["charges"]] + [d["dispute_id"] for d in payment["disputes"]]
        payment["owed"] = sum(owed_by.get(source, 0) for source in sources)
    held = holds_service.list_holds(user_id, limit=20)["holds"]
    return {
        "user_id": user_id,
        "exists": lookups.has_record(user_id),
        "balance": balance,
        "owed": owed,
        "customer_id": customer,
        "holds": held,
        "open_holds": [h for h in held if h.get("status") == "held"],
        "recent": spending.history(user_id, 10)["transactions"],
        "subscriptions": billing.subscriptions_of(user_id),
        "payments": payments,
        "settings": settings_service.get_settings(user_id),
        "attempts": lookups.topup_attempts(user_id),
        "kept_events": billing.kept_events_of(user_id, customer),
        "audit": audit_log.of_user(user_id, limit=20),
    }


def day_of(text: Optional[str], field: str) -> Optional[date]:
    if not text:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequest(f"{field} is not a date (YYYY-MM-DD)", fields=[{"field": field, "problem": "not a date"}]) from None


def ledger_filter(types: list[str], pool: Optional[str], since: Optional[str], until: Optional[str]) -> HistoryFilter:
    """The history filter of the ledger page's form: `until` is a day included whole."""
    bad = [t for t in types if t not in TYPES]
    if bad:
        raise InvalidRequest(f"unknown type {bad[0]!r}", fields=[{"field": "type", "problem": "unknown type"}])
    if pool and pool not in POOLS:
        raise InvalidRequest(f"unknown pool {pool!r}", fields=[{"field": "pool", "problem": "unknown pool"}])
    first, last = day_of(since, "since"), day_of(until, "until")
    return HistoryFilter(
        types=tuple(sorted(set(types))),
        pool=pool or None,
        since=datetime.combine(first, time(), timezone.utc) if first else None,
        until=datetime.combine(last + timedelta(days=1), time(), timezone.utc) if last else None,
    )


def ledger(user_id: str, where: HistoryFilter, page_token: Optional[str], limit: int = 25) -> dict[str, Any]:
    return spending.history(user_id, limit, page_token or None, where)


def kept() -> dict[str, Any]:
    """The kept Stripe events and the promo messages kept rejected, with their reasons."""
    from shared.billing import unapplied

    messages = [
        {"message_id": data.get("message_id", doc_id), "reason": data.get("reason"),
         "last_replay_reason": data.get("last_replay_reason"), "rejected_at": data.get("rejected_at"),
         "raw_text": (data.get("raw_text") or "")[:300]}
        for doc_id, data, _ in rejected.kept_messages(status="rejected")
    ]
    events = [
        {key: event.get(key) for key in ("event_id", "event_type", "user_id", "customer_id", "reason",
                                         "last_replay_reason", "attempts", "last_attempt_at")}
        for event in unapplied.pending()
    ]
    return {"events": events, "messages": messages}


def usage_report(start: date, end: date) -> dict[str, Any]:
    if end < start:
        raise InvalidRequest("the end is before the start", fields=[{"field": "to", "problem": "is before from"}])
    if (end - start).days + 1 > MAX_USAGE_DAYS:
        raise InvalidRequest(f"a report covers at most {MAX_USAGE_DAYS} days",
                             fields=[{"field": "from", "problem": "too long a range"}])
    days = usage.usage(start, end)
    total = usage_totals(days, start).as_dict()
    total["date"] = "total"
    size = bucket_size(len(days))
    return {"days": [day.as_dict() for day in days], "total": total, "bucket": size,
            "chart": chart(bucket_usage(days, size))}


def chart(buckets: list[DayUsage], width: int = 640, height: int = 220) -> dict[str, Any]:
    """Bar geometry of an SVG chart: per bucket, credits granted and spent of both pools, one bar
    each, on one linear scale from zero (the table beside it has every figure)."""
    series = [(pool, category) for pool in POOLS for category in ("granted", "spent")]
    values = [[bucket.figures[pool][category] for pool, category in series] for bucket in buckets]
    top = max([max(row) for row in values] + [1])
    slot = width / max(len(buckets), 1)
    bar = max(slot / (len(series) + 1), 1.0)
    bars = []
    for index, (bucket, row) in enumerate(zip(buckets, values)):
        for position, ((pool, category), value) in enumerate(zip(series, row)):
            tall = round(value / top * (height - 20), 1)
            bars.append({"x": round(index * slot + position * bar, 1), "y": round(height - tall, 1),
                         "width": round(bar, 1), "height": tall, "series": f"{pool}-{category}",
                         "label": f"{bucket.day.isoformat()} {pool} {category}: {value}"})
    return {"width": width, "height": height, "top": top, "bars": bars,
            "series": [f"{pool}-{category}" for pool, category in series], "categories": CATEGORIES}


def health_report() -> dict[str, Any]:
    return health.check().as_dict()


def audit_latest(limit: int = 100) -> list[dict[str, Any]]:
    return audit_log.latest(limit)
