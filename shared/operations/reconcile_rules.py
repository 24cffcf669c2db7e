"""The pure rules of reconciliation (no I/O): does a user's ledger explain their document?

Rules enforced here:
- each pool must equal the sum of the user's records in that pool, and the totals must equal
  the records under the rule `accounts.totals_change` applies;
- a legacy document's balance is outside the ledger until migrated, so its ledger must be empty;
- a migrated legacy document's stored baseline (`legacy_total_earned`, `legacy_total_spent`),
  kept by whichever write migrated it (`credits migrate` or a function's first change), is added
  to the ledger's totals; a document a function migrated before functions kept the baseline (a
  `migration` record, no baseline) can only be checked for totals at least the ledger's;
- a pool that is not stored as an integer is drift;
- what is owed (`credits_owed`) must equal the sum of its parts by source (`credits_owed_by`),
  and what the user's add-on payments (`stripe_payments`) have claimed by refunds and disputes
  must equal what the ledger took back for their charges and disputes (`addon_refunded` less
  `addon_reinstated`) plus what is still owed: claimed = taken + owed;
- what is derived from the ledger must agree with it too (each drift names its `kind`):
  - `spend_refunds`: a spend's (or hold's) `given_back`, pool by pool, and its `total` equal that
    spend's `refund` records (the user's records of type `refund` whose `source` is the spend
    key); it never exceeds what the spend's `spent` records drew from a pool; the refunded
    monthly credits that expired at once (its `monthly_expired` records) are at most its monthly
    refunds; and refund records of a source with no such document are drift;
  - `hold`: a hold's `spent` records (source `hold_id`) draw its `amount`, pool by pool as its
    `drawn`; `held`: nothing given back, nothing captured, and listed in the user's
    `open_holds` with its amount; `released` or `expired`: every pool given back all it drew,
    nothing captured; `captured`: `captured` = spent - what its settlement gave back, the
    settlement's refund records being in the ledger as written (later refunds of the capture
    are `spend_refunds`' to check); a settled hold is not in `open_holds`, and an `open_holds`
    entry needs a held hold document;
  - `payment`: per add-on payment, `refund_claimed` = what the ledger took back for its charges
    plus what they still owe, and each dispute's claim (0 once won) = what was taken back for
    it plus what it still owes; credits taken back for a source no payment names are drift;
- every record carries `seq` and `balance_after` (`sequence`): the user's records are numbered
  1..n with no gap and no repeat, walking them in `seq` order each `balance_after` is the
  running sums of the pools so far, and the document's `last_seq` (when it has one) is n; the
  first break is reported (records written before `seq` existed are numbered by
  `credits migrate`);
- a plain pool drift is corrected in the ledger, never in the pool: one `adjustment` record of
  stored - ledger (`correction`), with an id derived from the drift; other drift (totals, debts,
  derived documents) is reported, never corrected;
- a scheduled pass adds each page's counts to the pass's running totals and moves its cursor;
  the page that reaches the end completes the pass, which becomes the last pass, and the next
  page starts a new one from the first user (`after_page`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping, Optional

from ..common import ids
from ..ledger.accounts import totals_change
from ..ledger.codec import (
    CREDITS_OWED,
    last_seq,
    LEGACY_EARNED,
    LEGACY_SPENT,
    UNATTRIBUTED,
    is_legacy_document,
    read_account,
    read_owed,
)
from ..ledger.holds import CAPTURED, EXPIRED, HELD, RELEASED, open_holds_of
from ..ledger.models import CreditPool, TransactionType

# Which check a drift comes from: the user document against the ledger, a record that names no
# user, or one of the documents derived from the ledger (a spend's give-back totals, a hold, an
# add-on payment).
ACCOUNT, RECORD, SPEND_REFUNDS, HOLD, PAYMENT, SEQUENCE = (
    "account", "record", "spend_refunds", "hold", "payment", "sequence")
POOLS = (CreditPool.MONTHLY.value, CreditPool.PERMANENT.value)


@dataclass
class LedgerSums:
    """The running sums of one user's transaction records."""

    monthly: int = 0
    permanent: int = 0
    earned: int = 0
    spent: int = 0
    records: int = 0
    migrated: bool = False
    # Net credits taken back per source (charge or dispute id): -(addon_refunded + addon_reinstated).
    taken_by_source: dict[str, int] = field(default_factory=dict)
    # The sources whose spends and expiries are kept one by one (None: every source): the keys of
    # the user's derived documents, so thousands of spends with keys do not each take memory.
    wanted: Optional[frozenset[str]] = None
    # Every `refund` record by source, then by id: (pool, amount). Refunds are few (each comes
    # with a give-back document), and a refund whose source has no document is drift.
    refunds: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict)
    # Credits each wanted source's `spent` records drew, by pool.
    drawn_by_source: dict[str, dict[str, int]] = field(default_factory=dict)
    # Credits each wanted source's `monthly_expired` records expired.
    expired_by_source: dict[str, int] = field(default_factory=dict)
    # Each record's place in the ledger: (seq, pool, amount, balance_after, id); None where absent.
    numbering: list[tuple[Optional[int], Any, int, Optional[tuple[int, int]], str]] = field(default_factory=list)

    def refunded(self, source: str) -> dict[str, int]:
        """What the `refund` records of `source` gave back, by pool."""
        back = dict.fromkeys(POOLS, 0)
        for pool, amount in self.refunds.get(source, {}).values():
            back[pool] += amount
        return back

    def drawn(self, source: str) -> dict[str, int]:
        """What the `spent` records of `source` drew, by pool (a wanted source only)."""
        return {pool: self.drawn_by_source.get(source, {}).get(pool, 0) for pool in POOLS}

    def _by_source(self, kind: Optional[TransactionType], record: Mapping[str, Any], pool: Any, amount: int) -> None:
        source = record.get("source")
        if not isinstance(source, str) or pool not in POOLS:
            return
        if kind is TransactionType.REFUND:
            by_id = self.refunds.setdefault(source, {})
            by_id[str(record.get("transaction_id") or f"#{len(by_id)}")] = (pool, amount)
        elif self.wanted is not None and source not in self.wanted:
            return
        elif kind is TransactionType.SPENT:
            drawn = self.drawn_by_source.setdefault(source, dict.fromkeys(POOLS, 0))
            drawn[pool] -= amount
        elif kind is TransactionType.MONTHLY_EXPIRED:
            self.expired_by_source[source] = self.expired_by_source.get(source, 0) - amount

    def add(self, record: Mapping[str, Any]) -> None:
        amount = record.get("amount")
        amount = amount if isinstance(amount, int) and not isinstance(amount, bool) else 0
        pool = record.get("pool")
        if pool == CreditPool.MONTHLY.value:
            self.monthly += amount
        elif pool == CreditPool.PERMANENT.value:
            self.permanent += amount
        try:
            kind = TransactionType(record.get("type"))
        except ValueError:
            kind = None
        self.numbering.append((_seq(record.get("seq")), pool, amount, _after(record.get("balance_after")),
                               str(record.get("transaction_id"))))
        if kind is not None:
            earned, spent = totals_change(kind, amount)
            self.earned += earned
            self.spent += spent
            self.migrated = self.migrated or kind is TransactionType.MIGRATION
            if kind in (TransactionType.ADDON_REFUNDED, TransactionType.ADDON_REINSTATED):
                source = str(record.get("source"))
                self.taken_by_source[source] = self.taken_by_source.get(source, 0) - amount
            elif kind in (TransactionType.REFUND, TransactionType.SPENT, TransactionType.MONTHLY_EXPIRED):
                self._by_source(kind, record, pool, amount)
        self.records += 1


def _seq(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _after(value: Any) -> Optional[tuple[int, int]]:
    if not isinstance(value, Mapping):
        return None
    monthly, permanent = value.get("credits_monthly"), value.get("credits_permanent")
    if _seq(monthly) is None or _seq(permanent) is None:
        return None
    return monthly, permanent


@dataclass(frozen=True)
class Drift:
    """One stored figure that disagrees with the user's ledger."""

    user_id: str
    field: str
    stored: int
    ledger: int
    note: str = ""
    kind: str = ACCOUNT
    # The derived document's key (spend key, hold id, payment intent or charge); None: the user's.
    subject: Optional[str] = None

    @property
    def difference(self) -> int:
        return self.stored - self.ledger

    def as_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "kind": self.kind,
            "subject": self.subject,
            "field": self.field,
            "stored": self.stored,
            "ledger": self.ledger,
            "difference": self.difference,
            "note": self.note,
        }


def compare(user_id: str, data: Optional[Mapping[str, Any]], sums: LedgerSums) -> list[Drift]:
    """Every figure of the user's document that its ledger does not explain."""
    if data is None:
        note = "records without a user document"
        return [
            Drift(user_id, f"credits_{pool}", 0, ledger, note)
            for pool, ledger in (("monthly", sums.monthly), ("permanent", sums.permanent))
            if ledger
        ]
    if is_legacy_document(data):
        note = "legacy document: its balance is outside the ledger until migrated"
        return [
            Drift(user_id, f"credits_{pool}", 0, ledger, note)
            for pool, ledger in (("monthly", sums.monthly), ("permanent", sums.permanent))
            if ledger
        ]
    account = read_account(user_id, data)
    drifts = [
        Drift(user_id, "credits_monthly", account.monthly, sums.monthly),
        Drift(user_id, "credits_permanent", account.permanent, sums.permanent),
    ]
    totals = (("total_earned", account.total_earned, sums.earned), ("total_spent", account.total_spent, sums.spent))
    if LEGACY_EARNED in data or LEGACY_SPENT in data:
        base = {"total_earned": _whole(data.get(LEGACY_EARNED)), "total_spent": _whole(data.get(LEGACY_SPENT))}
        drifts += [Drift(user_id, name, stored, base[name] + ledger, "ledger plus legacy totals") for name, stored, ledger in totals]
    elif sums.migrated:
        # Migrated by a live function: the legacy baseline is unknown, but it is never negative.
        drifts += [
            Drift(user_id, name, stored, ledger, "below what the ledger explains")
            for name, stored, ledger in totals
            if stored < ledger
        ]
    else:
        drifts += [Drift(user_id, name, stored, ledger) for name, stored, ledger in totals]
    drifts = [d for d in drifts if d.difference]
    for pool_field in ("credits_monthly", "credits_permanent"):
        raw = data.get(pool_field, 0)
        if not isinstance(raw, int) or isinstance(raw, bool):
            drifts.append(Drift(user_id, pool_field, 0, 0, f"stored value {raw!r} is not an integer"))
    return drifts


def _whole(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _claimed(payment: Mapping[str, Any]) -> int:
    """What a payment document says its refunds and still-holding disputes have claimed."""
    disputes = payment.get("disputes") or {}
    holding = sum(_whole(d.get("claimed")) for d in disputes.values() if isinstance(d, Mapping) and not d.get("reinstated"))
    return _whole(payment.get("refund_claimed")) + holding


def _sources(payment: Mapping[str, Any]) -> set[str]:
    return set(payment.get("charges") or {}) | set(payment.get("disputes") or {})


def owed_drift(
    user_id: str, data: Optional[Mapping[str, Any]], sums: LedgerSums, payments: Iterable[Mapping[str, Any]]
) -> list[Drift]:
    """Drift in what the user owes: its parts, and claimed = taken + owed over the user's payments."""
    if data is None or is_legacy_document(data):
        return []
    owed_by = dict(read_owed(data))
    drifts = []
    if CREDITS_OWED in data and _whole(data.get(CREDITS_OWED)) != sum(owed_by.values()):
        drifts.append(Drift(user_id, CREDITS_OWED, _whole(data.get(CREDITS_OWED)), sum(owed_by.values()),
                            "credits_owed is not the sum of credits_owed_by"))
    payments = list(payments)
    sources = set().union(*(_sources(p) for p in payments)) if payments else set()
    claimed = sum(_claimed(p) for p in payments)
    taken = sum(sums.taken_by_source.get(source, 0) for source in sources)
    owed = sum(owed_by.values())
    if claimed - taken != owed:
        drifts.append(Drift(user_id, CREDITS_OWED, owed, claimed - taken,
                            f"add-on payments claimed {claimed}, the ledger took back {taken}"))
    return drifts


@dataclass
class Derived:
    """A user's documents derived from their ledger, as stored."""

    spend_refunds: list[Mapping[str, Any]] = field(default_factory=list)
    holds: list[Mapping[str, Any]] = field(default_factory=list)
    payments: list[Mapping[str, Any]] = field(default_factory=list)

    @property
    def sources(self) -> frozenset[str]:
        """The sources whose spends and expiries the checks need one by one (`LedgerSums.wanted`)."""
        return frozenset(str(d.get("spend_key")) for d in self.spend_refunds) | frozenset(
            str(h.get("hold_id")) for h in self.holds)


def sequence_drift(user_id: str, data: Optional[Mapping[str, Any]], sums: LedgerSums) -> list[Drift]:
    """The first break in the numbering of the user's records (see the module's rules), if any.

    Records without a user document, or beside a legacy one, are drift already (`compare`);
    their numbering waits for the document."""
    if data is None or is_legacy_document(data):
        return []
    entries = sums.numbering
    total = len(entries)
    lacking = [entry for entry in entries if entry[0] is None or entry[3] is None]
    if lacking:
        return [Drift(user_id, "seq", total - len(lacking), total,
                      f"{len(lacking)} of {total} records lack seq or balance_after; credits migrate numbers them",
                      SEQUENCE, lacking[0][4])]
    ordered = sorted(entries, key=lambda entry: entry[0])
    for expected, entry in enumerate(ordered, start=1):
        if entry[0] != expected:
            what = "repeats" if expected > 1 and entry[0] == ordered[expected - 2][0] else "skips to"
            return [Drift(user_id, "seq", entry[0], expected, f"the records' numbering {what} seq {entry[0]}",
                          SEQUENCE, entry[4])]
    monthly = permanent = 0
    for seq, pool, amount, after, record_id in ordered:
        if pool == CreditPool.MONTHLY.value:
            monthly += amount
        elif pool == CreditPool.PERMANENT.value:
            permanent += amount
        if after != (monthly, permanent):
            name, stored, ledger = (("credits_monthly", after[0], monthly) if after[0] != monthly
                                    else ("credits_permanent", after[1], permanent))
            return [Drift(user_id, f"balance_after.{name}", stored, ledger,
                          f"record seq {seq}: balance_after is not the running sum of its records", SEQUENCE,
                          record_id)]
    stored = last_seq(data)
    if stored is not None and stored != total:
        return [Drift(user_id, "last_seq", stored, total, "the user document's last_seq is not its records' count",
                      SEQUENCE)]
    return []


def user_drift(user_id: str, data: Optional[Mapping[str, Any]], sums: LedgerSums, derived: Derived) -> list[Drift]:
    """Every drift of one user: their document, their debts and their derived documents."""
    return (compare(user_id, data, sums) + sequence_drift(user_id, data, sums)
            + owed_drift(user_id, data, sums, derived.payments)
            + spend_refunds_drift(user_id, sums, derived.spend_refunds)
            + holds_drift(user_id, data, sums, derived.holds)
            + payments_drift(user_id, data, sums, derived.payments))


def _pools(stored: Any) -> dict[str, int]:
    stored = stored if isinstance(stored, Mapping) else {}
    return {pool: _whole(stored.get(pool)) for pool in POOLS}


def spend_refunds_drift(user_id: str, sums: LedgerSums, documents: Iterable[Mapping[str, Any]]) -> list[Drift]:
    """Drift between each spend's give-back totals (`spend_refunds`) and its records."""
    drifts, seen = [], set()
    for doc in documents:
        key = str(doc.get("spend_key"))
        seen.add(key)
        given, refunded, drawn = _pools(doc.get("given_back")), sums.refunded(key), sums.drawn(key)

        def drift(name: str, stored: int, ledger: int, note: str) -> None:
            drifts.append(Drift(user_id, name, stored, ledger, note, SPEND_REFUNDS, key))

        for pool in POOLS:
            if given[pool] != refunded[pool]:
                drift(f"given_back.{pool}", given[pool], refunded[pool], "the spend's refund records")
            elif given[pool] > drawn[pool]:
                drift(f"given_back.{pool}", given[pool], drawn[pool], "more given back than the spend's records drew")
        if _whole(doc.get("total")) != sum(refunded.values()):
            drift("total", _whole(doc.get("total")), sum(refunded.values()), "the spend's refund records")
        expired = sums.expired_by_source.get(key, 0)
        if expired > refunded[POOLS[0]]:
            # Only refunded monthly credits expire under the spend's key, right after their refund.
            drift("given_back.monthly", given[POOLS[0]], expired, "more expired at once than was refunded")
    for source in sorted(set(sums.refunds) - seen):
        drifts.append(Drift(user_id, "given_back", 0, sum(sums.refunded(source).values()),
                            "refund records without a spend_refunds document", SPEND_REFUNDS, source))
    return drifts


def _settlement(hold: Mapping[str, Any]) -> Optional[list[tuple[str, str, int]]]:
    """The refund records a hold's settlement wrote, as (id, pool, amount); None if it kept none."""
    raw = hold.get("settlement")
    if not isinstance(raw, str):
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    listed = body.get("transactions") if isinstance(body, Mapping) else None
    return [(str(t.get("transaction_id")), str(t.get("pool")), _whole(t.get("amount")))
            for t in listed or [] if isinstance(t, Mapping) and t.get("type") == TransactionType.REFUND.value]


def holds_drift(user_id: str, data: Optional[Mapping[str, Any]], sums: LedgerSums,
                holds: Iterable[Mapping[str, Any]]) -> list[Drift]:
    """Drift between each hold's document (status, captured, drawn), its records and `open_holds`."""
    drifts = []
    open_entries = {str(entry.get("hold_id")): entry for entry in open_holds_of(data).values()}
    documents = set()
    for hold in holds:
        hold_id = str(hold.get("hold_id"))
        documents.add(hold_id)
        status, amount, captured = hold.get("status"), _whole(hold.get("amount")), _whole(hold.get("captured"))
        stored_drawn = {pool: sum(_whole(d.get("amount")) for d in hold.get("drawn") or []
                                  if isinstance(d, Mapping) and d.get("pool") == pool) for pool in POOLS}
        drawn, refunded = sums.drawn(hold_id), sums.refunded(hold_id)
        listed = _whole((open_entries.get(hold_id) or {}).get("amount"))

        def drift(name: str, stored: int, ledger: int, note: str) -> None:
            drifts.append(Drift(user_id, name, stored, ledger, note, HOLD, hold_id))

        if amount != sum(drawn.values()):
            drift("amount", amount, sum(drawn.values()), "the hold's spent records")
        else:
            for pool in POOLS:
                if stored_drawn[pool] != drawn[pool]:
                    drift(f"drawn.{pool}", stored_drawn[pool], drawn[pool], "the hold's spent records in this pool")
        settlement = _settlement(hold)
        settled_back = 0
        for txn_id, pool, back in settlement or []:
            if sums.refunds.get(hold_id, {}).get(txn_id) != (pool, back):
                found = sums.refunds.get(hold_id, {}).get(txn_id, (pool, 0))[1]
                drift("settlement", back, found, f"record {txn_id} of the settlement is not in the ledger as written")
            else:
                settled_back += back
        if status == HELD:
            if captured:
                drift("captured", captured, 0, "an open hold has captured nothing")
            for pool in POOLS:
                if refunded[pool]:
                    drift(f"given_back.{pool}", 0, refunded[pool], "an open hold gives nothing back until it settles")
            if listed != amount:
                drift("open_holds", listed, amount, "an open hold is listed in the user's open_holds")
            continue
        if status in (RELEASED, EXPIRED):
            if captured:
                drift("captured", captured, 0, f"a hold {status} captured nothing")
            for pool in POOLS:
                if refunded[pool] != stored_drawn[pool]:
                    drift(f"given_back.{pool}", stored_drawn[pool], refunded[pool],
                          f"a hold {status} gives back all it drew")
        elif status == CAPTURED:
            if settlement is not None:
                if captured != sum(drawn.values()) - settled_back:
                    drift("captured", captured, sum(drawn.values()) - settled_back,
                          "spent records less what the capture gave back")
            elif sum(refunded.values()) < amount - captured:
                # No settlement kept: at least the uncaptured part must have gone back.
                drift("captured", captured, sum(drawn.values()) - sum(refunded.values()),
                      "the capture gave back less than it did not keep")
        else:
            drift("status", 0, 0, f"unknown status {status!r}")
        if listed:
            drift("open_holds", listed, 0, f"a hold {status} is still listed in the user's open_holds")
    for hold_id in sorted(set(open_entries) - documents):
        drifts.append(Drift(user_id, "open_holds", _whole(open_entries[hold_id].get("amount")), 0,
                            "an open hold without a hold document", HOLD, hold_id))
    return drifts


def payments_drift(user_id: str, data: Optional[Mapping[str, Any]], sums: LedgerSums,
                   payments: Iterable[Mapping[str, Any]]) -> list[Drift]:
    """Drift between each add-on payment's claims and what the ledger took back for it plus what is owed.

    Each claim is taken under its own source (a refund under one of the payment's charges, a
    dispute under its id), and what the pools could not cover is owed under that source; paying
    a debt later moves credits from owed to taken under the same source, so per source,
    taken + owed stays what was claimed, and 0 once a won dispute gave it back.
    """
    owed = dict(read_owed(data)) if data is not None and not is_legacy_document(data) else {}

    def ledger(source: str) -> int:
        return sums.taken_by_source.get(source, 0) + owed.get(source, 0)

    drifts, named = [], set()
    for payment in payments:
        payment_intent = str(payment.get("payment_intent"))
        charges = payment.get("charges") if isinstance(payment.get("charges"), Mapping) else {}
        disputes = payment.get("disputes") if isinstance(payment.get("disputes"), Mapping) else {}
        # A refund is taken under the payment's first refunded charge (the payment itself if it has none).
        refund_sources = set(charges) | {payment_intent}
        named |= refund_sources | set(disputes)
        claimed = _whole(payment.get("refund_claimed"))
        taken = sum(ledger(source) for source in refund_sources)
        if claimed != taken:
            drifts.append(Drift(user_id, "refund_claimed", claimed, taken,
                                "taken back for its charges plus what they still owe", PAYMENT, payment_intent))
        for dispute_id, dispute in sorted(disputes.items()):
            if not isinstance(dispute, Mapping):
                continue
            holding = 0 if dispute.get("reinstated") else _whole(dispute.get("claimed"))
            if holding != ledger(dispute_id):
                drifts.append(Drift(user_id, f"disputes.{dispute_id}.claimed", holding, ledger(dispute_id),
                                    "taken back for the dispute plus what it still owes (0 once won)",
                                    PAYMENT, payment_intent))
    for source, taken in sorted(sums.taken_by_source.items()):
        if taken and source not in named and source != UNATTRIBUTED:
            drifts.append(Drift(user_id, "addon_refunded", 0, taken,
                                "taken back for a charge or dispute that no add-on payment of the user names",
                                PAYMENT, source))
    return drifts


# Drift in these fields of a two-pool document (with no note: a plain disagreement) can be
# corrected by a record; everything else is for a person to look at.
_POOL_FIELDS = {"credits_monthly": CreditPool.MONTHLY, "credits_permanent": CreditPool.PERMANENT}


@dataclass(frozen=True)
class Correction:
    """The ledger-only record that makes a user's records explain the pool they have stored."""

    user_id: str
    pool: CreditPool
    stored: int
    ledger: int
    correction_id: str

    @property
    def amount(self) -> int:
        return self.stored - self.ledger

    @property
    def field(self) -> str:
        return f"credits_{self.pool.value}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "correction_id": self.correction_id,
            "user_id": self.user_id,
            "pool": self.pool.value,
            "stored": self.stored,
            "ledger": self.ledger,
            "amount": self.amount,
        }


def correction(drift: Drift) -> Optional[Correction]:
    """The correction of one drift, or None when a record cannot be the fix.

    The stored pool is what the user sees and spends, so it stays; the ledger gains one
    `adjustment` record of stored - ledger in that pool. Only a plain pool drift of a two-pool
    document qualifies: totals, what is owed, records without a user document, legacy documents,
    pools not stored as integers and every derived document are reported, not corrected (a
    record would make the pools disagree to make a derived document agree).
    """
    pool = _POOL_FIELDS.get(drift.field)
    if drift.kind != ACCOUNT or pool is None or drift.note or not drift.difference:
        return None
    return Correction(drift.user_id, pool, drift.stored, drift.ledger,
                      ids.correction_id(drift.user_id, drift.field, drift.stored, drift.ledger))


# The counts a scheduled pass adds up page by page, and keeps for its last completed pass.
PASS_COUNTS = ("users", "transactions", "drift", "drift_users", "unconfirmed", "pages")


@dataclass(frozen=True)
class PageCounts:
    """What one page of a scheduled pass reconciled."""

    users: int
    transactions: int
    drift: int
    drift_users: int
    unconfirmed: int
    pages: int = 1


def after_page(
    state: Mapping[str, Any], page: PageCounts, cursor: Optional[str], completed: bool, now: datetime
) -> tuple[dict[str, Any], Optional[dict[str, Any]]]:
    """The bookkeeping document after one page, and the pass it completed (None if it did not).

    `state` is the stored document ({} before the first run); `cursor` is the last user the page
    reconciled. The whole document is returned, so a write never depends on fields it did not see.
    """
    started = state.get("pass_started_at") or now
    totals = {name: _whole(state.get(name)) + getattr(page, name) for name in PASS_COUNTS}
    kept = {"last_pass": state.get("last_pass"), "passes_completed": _whole(state.get("passes_completed"))}
    if not completed:
        return {"pass_started_at": started, "cursor": cursor, **totals, **kept, "updated_at": now}, None
    finished = {"started_at": started, "finished_at": now, "duration_s": round((now - started).total_seconds(), 3),
                **totals}
    fresh = {name: 0 for name in PASS_COUNTS}
    return ({"pass_started_at": None, "cursor": None, **fresh, "last_pass": finished,
             "passes_completed": kept["passes_completed"] + 1, "updated_at": now}, finished)
