"""`credits events tail`: the events `ledger_events` publishes, one line each, as they arrive.

It reads a pull subscription on the events topic (`credits-events-tail` unless told otherwise,
made if missing), prints each event and acknowledges it only once printed, so an event is
never lost to an interrupted tail (one printed but not yet acknowledged comes again).
"""

from __future__ import annotations

import json
import time
from typing import Any, TextIO

from shared.common import errors
from shared.events import rules, subscriber

from ..common import EXIT_OK, add_command
from ..output import ELLIPSIS, WIDTH

PULL_BATCH = 100
# One pull waits at most this long, so --timeout and Ctrl-C are noticed soon enough.
PULL_WAIT_S = 2.0


def add_parser(subparsers):
    p = add_command(
        subparsers,
        "events",
        help="watch the events published to the events topic",
        description=(
            "events tail: pull the events topic (CREDITS_EVENTS_TOPIC, default credits-events) through a "
            "subscription made if missing, print one line per event (event_type, user_id, event_id, a "
            "summary of its data), or one JSON object per line with --json, and acknowledge what was "
            "printed. Runs until --max events or --timeout seconds, or Ctrl-C. Uses the Pub/Sub emulator "
            "when PUBSUB_EMULATOR_HOST is set, else GOOGLE_CLOUD_PROJECT."
        ),
    )
    p.add_argument("action", choices=["tail"], help="tail: print events as they arrive, acknowledging them")
    p.add_argument("--subscription", default=subscriber.TAIL_SUBSCRIPTION,
                   help=f"pull subscription to read (default {subscriber.TAIL_SUBSCRIPTION})")
    p.add_argument("--max", type=int, metavar="N", help="stop after N events")
    p.add_argument("--timeout", type=float, metavar="S", help="stop after S seconds")
    return p


def summary(event_type: str, data: Any) -> str:
    """A few words on what the event says, by type."""
    if not isinstance(data, dict):
        return str(data)[:60]
    if event_type == rules.TRANSACTION_CREATED:
        amount = data.get("amount")
        shown = f"{amount:+d}" if isinstance(amount, int) else str(amount)
        return f"{data.get('type')} {shown} {data.get('pool')}"
    if event_type == rules.BALANCE_UPDATED:
        return (f"balance {data.get('balance')} (monthly {data.get('credits_monthly')}, "
                f"permanent {data.get('credits_permanent')})")
    if event_type == rules.BALANCE_LOW:
        return f"balance {data.get('balance')} below {data.get('threshold')}"
    return ", ".join(f"{key}={value}" for key, value in list(data.items())[:3])


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + ELLIPSIS


def line_of(event_type: str, user_id: str, event_id: str, text: str) -> str:
    """One event in at most `output.WIDTH` characters: the summary is kept whole where it can be,
    long user and event ids are cut with an ellipsis (--json has everything)."""
    text = _cut(text, 48)
    user_id = _cut(user_id, 24)
    room = WIDTH - len(f"{event_type:<19}  {user_id}    {text}")
    return _cut(f"{event_type:<19}  {user_id}  {_cut(event_id, room)}  {text}", WIDTH)


def run(args, out: TextIO, err: TextIO) -> int:
    if args.max is not None and args.max < 1:
        raise errors.InvalidRequest("--max must be at least 1", fields=["max"])
    if args.timeout is not None and args.timeout <= 0:
        raise errors.InvalidRequest("--timeout must be more than 0", fields=["timeout"])
    tail = subscriber.Tail(args.subscription)
    try:
        path = tail.ensure()
        if not args.json:
            err.write(f"reading {path} (Ctrl-C to stop)\n")
        return _tail(tail, args, out)
    except KeyboardInterrupt:
        return EXIT_OK  # the way a tail ends; what was printed is acknowledged already
    finally:
        tail.close()


def _tail(tail: subscriber.Tail, args, out: TextIO) -> int:
    printed = 0
    deadline = time.monotonic() + args.timeout if args.timeout else None
    while args.max is None or printed < args.max:
        wait = PULL_WAIT_S
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
            if wait <= 0:
                break
        wanted = PULL_BATCH if args.max is None else min(PULL_BATCH, args.max - printed)
        shown = tail.pull(wanted, wait)
        for message in shown:
            if args.json:
                out.write(json.dumps(message.as_dict(), default=str, ensure_ascii=False, separators=(",", ":")) + "\n")
            else:
                out.write(line_of(message.event_type, str(message.user_id), str(message.event_id),
                                  summary(message.event_type, message.data)) + "\n")
        out.flush()
        tail.acknowledge(shown)
        printed += len(shown)
    return EXIT_OK
