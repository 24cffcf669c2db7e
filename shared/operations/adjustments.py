"""Operator adjustments: add or remove credits in one pool, with an audit entry.

Rules enforced here:
- an adjustment is one `adjustment` record in one commit with the user's pools and an audit
  document (`credit_adjustments/{id}`) naming the operator and the reason; it never takes a pool
  below zero;
- with an idempotency key the audit document's id is derived from the key and created only
  once, so a repeat changes nothing and a different request under the same key is refused;
  the operator is not part of the request's identity (a colleague re-running it is a repeat);
- a positive adjustment first pays what the user owes (`accounts.grant_and_collect`), in the
  same commit;
- an adjustment made in the support console also creates the console's audit entry in that
  commit (`ledger.audit.audited`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

from ..common import ids, log
from ..common.errors import InvalidRequest
from ..ledger import accounts, codec, collections, records
from ..ledger.accounts import Entry
from ..ledger.audit import AuditEntry, audited, reads_of
from ..ledger.change import Change, Snapshot
from ..ledger.idempotency import Once
from ..ledger.models import CreditPool, TransactionType
from ..store.commit import change_user

MAX_ADJUSTMENT = 1_000_000_000
MAX_REASON = 400
MAX_OPERATOR = 100


@dataclass(frozen=True)
class AdjustmentResult:
    adjustment_id: str
    replayed: bool
    transaction: dict[str, Any]
    balance: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "adjustment_id": self.adjustment_id,
            "replayed": self.replayed,
            "transaction": self.transaction,
            "balance": self.balance,
        }


@dataclass(frozen=True)
class Adjustment:
    """A validated adjustment request and its audit identity."""

    user_id: str
    pool: CreditPool
    amount: int
    reason: str
    operator: str
    adjustment_id: str
    idempotency_key: Optional[str] = None

    @property
    def command(self) -> Once:
        return Once(
            namespace="adjustment",
            key=self.idempotency_key or self.adjustment_id,
            path=collections.path(collections.ADJUSTMENTS, self.adjustment_id),
            fingerprint=ids.fingerprint(self.user_id, self.pool.value, self.amount, self.reason),
        )


def validate(user_id: str, pool: str, amount: int, reason: str, operator: str,
             idempotency_key: Optional[str] = None) -> Adjustment:
    """The adjustment the arguments describe, or InvalidRequest naming the bad one."""
    try:
        target = CreditPool(pool)
    except ValueError:
        raise InvalidRequest(
            f"pool must be monthly or permanent, not {pool!r}",
            fields=[{"field": "pool", "problem": "must be monthly or permanent"}]) from None
    if type(amount) is not int or amount == 0 or abs(amount) > MAX_ADJUSTMENT:
        raise InvalidRequest(
            f"amount must be a non-zero integer of at most {MAX_ADJUSTMENT:,}",
            fields=[{"field": "amount", "problem": f"must be a non-zero integer of at most {MAX_ADJUSTMENT:,}"}])
    reason, operator = (reason or "").strip(), (operator or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise InvalidRequest(
            f"a reason of 1 to {MAX_REASON} characters is required",
            fields=[{"field": "reason", "problem": f"must be 1 to {MAX_REASON} characters"}])
    if not operator or len(operator) > MAX_OPERATOR:
        raise InvalidRequest(
            f"an operator name of 1 to {MAX_OPERATOR} characters is required",
            fields=[{"field": "operator", "problem": f"must be 1 to {MAX_OPERATOR} characters"}])
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 255:
        raise InvalidRequest(
            "the idempotency key must be 1 to 255 characters",
            fields=[{"field": "idempotency_key", "problem": "must be 1 to 255 characters"}])
    return Adjustment(user_id, target, amount, reason, operator, ids.adjustment_id(idempotency_key), idempotency_key)


def decide_adjustment(snap: Snapshot, request: Adjustment) -> Change[AdjustmentResult]:
    """The adjustment's change: a replay, or its record, the pools and the audit document."""
    command = request.command
    seen = snap.documents[command.path]
    if command.ran(seen):
        balance = codec.stored_balance_view(request.user_id, snap.user_data)
        return Change(result=AdjustmentResult(request.adjustment_id, True, json.loads(seen["transaction"]), balance))
    account, migration = accounts.migrate(snap.account)
    entry = Entry(TransactionType.ADJUSTMENT, request.pool, request.amount,
                  f"Adjustment by {request.operator}: {request.reason}")
    after, entries = accounts.grant_and_collect(account, [entry])
    written = records.records(request.user_id, migration + entries, request.adjustment_id, snap.now,
                              at=snap.position)
    record = written[len(migration)]
    transaction = record.model_dump(mode="json")
    audit = command.record(
        snap.now,
        adjustment_id=request.adjustment_id,
        user_id=request.user_id,
        pool=request.pool.value,
        amount=request.amount,
        reason=request.reason,
        operator=request.operator,
        idempotency_key=request.idempotency_key,
        transaction_id=record.transaction_id,
        transaction=json.dumps(transaction, separators=(",", ":")),
    )
    return Change(
        result=AdjustmentResult(request.adjustment_id, False, transaction,
                                codec.balance_view(after, snap.now, codec.held(snap.user_data, snap.now))),
        account=after,
        records=written,
        create={command.path: audit},
    )


def adjust(
    user_id: str,
    pool: str,
    amount: int,
    reason: str,
    operator: str,
    idempotency_key: Optional[str] = None,
    audit: Optional[AuditEntry] = None,
) -> AdjustmentResult:
    """Add (or with a negative amount remove) `amount` credits to one pool of the user; with
    `audit`, its entry is created in the same commit (`ledger.audit`)."""
    request = validate(user_id, pool, amount, reason, operator, idempotency_key)
    result = change_user(user_id, audited(lambda snap: decide_adjustment(snap, request), audit),
                         reads=[request.command.path, *reads_of(audit)], operation="adjust")
    log.info(
        "adjustment replayed" if result.replayed else "adjustment applied",
        user_id=user_id,
        source=request.adjustment_id,
        outcome="replayed" if result.replayed else "applied",
        pool=request.pool.value,
        amount=amount,
        operator=operator,
    )
    return result
