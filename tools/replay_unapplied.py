"""Apply stored unapplied Stripe events again, once their cause is fixed.

    ./scripts/replay-unapplied                 # every event kept in webhook_unapplied
    ./scripts/replay-unapplied evt_1Pgc76...   # one event

Prints one JSON line per event tried (event_id, event_type, outcome, user_id, reason) and
exits 0 when none is left unapplied, 1 when some still are (or failed transiently), 2 on a
configuration error. Uses the functions' environment: GOOGLE_CLOUD_PROJECT,
FIRESTORE_EMULATOR_HOST, CREDITS_CATALOG, STRIPE_API_KEY, STRIPE_API_BASE, STRIPE_WEBHOOK_SECRET.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

from shared import log, webhooks
from shared.errors import CreditsError


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="replay-unapplied", description=__doc__.split("\n\n")[0])
    parser.add_argument("event_id", nargs="?", help="replay only this event (default: all of them)")
    args = parser.parse_args(argv)
    # Logs go to stderr so stdout holds only the outcomes.
    log.configure(sys.stderr, "WARNING")
    try:
        outcomes = webhooks.replay_unapplied(args.event_id)
    except CreditsError as exc:
        sys.stderr.write(f"replay-unapplied: {exc.code}: {exc.message}\n")
        return 4 if exc.transient else 2
    for outcome in outcomes:
        sys.stdout.write(json.dumps(outcome) + "\n")
    if args.event_id and not outcomes:
        sys.stderr.write(f"replay-unapplied: no unapplied event {args.event_id}\n")
    return 1 if any(o["outcome"] in ("unapplied", "failed") for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
