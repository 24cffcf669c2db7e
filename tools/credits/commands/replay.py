"""`credits replay`: stored unapplied Stripe events and rejected promo messages, listed or applied
again (each applies at most once however often it is replayed)."""

from __future__ import annotations

from typing import Any, TextIO

from shared.billing import service as webhooks
from shared.billing import unapplied
from shared.common import errors
from shared.ledger import collections
from shared.promotions import rejected

from ..common import EXIT_OK, EXIT_PROBLEMS, add_command, login
from ..output import emit_json, write_table

# Outcomes that leave an event or message waiting: the cause is not fixed yet, or a fault.
_NOT_DONE = {"unapplied", "failed", "still_rejected", "not_found", "changed"}


def add_parser(subparsers):
    p = add_command(
        subparsers,
        "replay",
        help="list or re-apply stored unapplied Stripe events and rejected promo messages",
        description=(
            "Without an action (or with --list): list the Stripe events kept in webhook_unapplied and the "
            "promotion messages kept in promo_rejected. --event-id / --message-id applies one again, "
            "--all applies every one; each applies at most once however often it is replayed. --discard and "
            "--discard-event give up on one that can never apply, with --reason (kept for audit)."
        ),
    )
    action = p.add_mutually_exclusive_group()
    action.add_argument("--list", action="store_true", help="list what is waiting (the default)")
    action.add_argument("--event-id", help="replay one stored Stripe event")
    action.add_argument("--message-id", help="replay one stored promotion message")
    action.add_argument("--all", action="store_true", help="replay every stored event and message")
    action.add_argument("--discard", metavar="MESSAGE_ID",
                        help="give up on a promotion message that can never succeed (needs --reason; kept for audit)")
    action.add_argument("--discard-event", metavar="EVENT_ID",
                        help="give up on a kept Stripe event that can never apply (needs --reason; its journal "
                             "entry says discarded, by whom and why)")
    p.add_argument("--reason", help="why the message or event is discarded (with --discard or --discard-event)")
    p.add_argument("--operator", default=login(), help="who discards it (default: your login name)")
    return p


def run(args, out: TextIO, err: TextIO) -> int:
    if args.discard or args.discard_event:
        return _discard(args, out)
    if not (args.event_id or args.message_id or args.all):
        return _list_waiting(args, out)
    results: list[dict[str, Any]] = []
    if args.event_id or args.all:
        events = webhooks.replay_unapplied(event_id=args.event_id)
        if args.event_id and not events:
            events = [{"event_id": args.event_id, "outcome": "not_found", "reason": "no such stored event"}]
        results += [{"kind": "stripe_event", "id": e.get("event_id"), **e} for e in events]
    if args.message_id or args.all:
        messages = rejected.replay_rejected(message_id=args.message_id)
        for message in messages:
            if message["outcome"] == "not_found":
                message.setdefault("reason", "no such kept message")
        results += [{"kind": "promo_message", "id": m.get("message_id"), **m} for m in messages]
    if args.json:
        emit_json(out, {"results": results})
    elif results:
        rows = [[r["kind"], r["id"], r["outcome"], r.get("user_id") or r.get("grant_id") or "", r.get("reason") or ""] for r in results]
        write_table(out, ["kind", "id", "outcome", "user / grant", "reason"], rows, wrap=["reason"])
    else:
        out.write("nothing waiting to replay\n")
    return EXIT_PROBLEMS if any(r["outcome"] in _NOT_DONE for r in results) else EXIT_OK


def _list_waiting(args, out: TextIO) -> int:
    events = [
        {
            "event_id": e.get("event_id"),
            "event_type": e.get("event_type"),
            "user_id": e.get("user_id"),
            "customer_id": e.get("customer_id"),
            "reason": e.get("reason"),
            "last_replay_reason": e.get("last_replay_reason"),
            "attempts": e.get("attempts"),
            "last_attempt_at": e.get("last_attempt_at"),
        }
        for e in unapplied.pending()
    ]
    messages = [
        {
            "message_id": data.get("message_id", doc_id),
            "reason": data.get("reason"),
            "rejected_at": data.get("rejected_at"),
            "last_replay_reason": data.get("last_replay_reason"),
            "raw_text": data.get("raw_text"),
        }
        for doc_id, data, _ in rejected.kept_messages(status="rejected")
    ]
    # Anything waiting is work for an operator: exit 1, as for a replay that leaves something.
    waiting = EXIT_PROBLEMS if events or messages else EXIT_OK
    if args.json:
        emit_json(out, {"stripe_events": events, "promo_messages": messages})
        return waiting
    out.write(f"Stripe events waiting in {collections.UNAPPLIED_EVENTS}: {len(events)}\n")
    if events:
        rows = [[e["event_id"], e["event_type"], e["user_id"] or e["customer_id"] or "", e["attempts"], e["reason"]] for e in events]
        write_table(out, ["event_id", "type", "user / customer", "attempts", "reason"], rows, wrap=["reason"])
    out.write(f"\npromo messages waiting in {collections.PROMO_REJECTED}: {len(messages)}\n")
    if messages:
        rows = [[m["message_id"], m["last_replay_reason"] or m["reason"], (m["raw_text"] or "")[:60]] for m in messages]
        write_table(out, ["message_id", "reason", "data"], rows, wrap=["reason"])
    return waiting


def _discard(args, out: TextIO) -> int:
    reason, operator = (args.reason or "").strip(), (args.operator or "").strip()
    option = "--discard-event" if args.discard_event else "--discard"
    if not reason:
        raise errors.InvalidRequest(f"{option} needs --reason", fields=[{"field": "reason", "problem": f"required with {option}"}])
    if not operator:
        raise errors.InvalidRequest("no login name; pass --operator", fields=[{"field": "operator", "problem": "required"}])
    if args.discard_event:
        result = unapplied.discard(args.discard_event, reason, operator)
        kind, key = "stripe_event", result["event_id"]
    else:
        result = rejected.discard(args.discard, reason, operator)
        kind, key = "promo_message", result["message_id"]
    if args.json:
        emit_json(out, {"results": [{"kind": kind, "id": key, **result}]})
    else:
        write_table(out, ["kind", "id", "outcome", "reason"], [[kind, key, result["outcome"], result["reason"]]],
                    wrap=["reason"])
    return EXIT_OK if result["outcome"] == "discarded" else EXIT_PROBLEMS
