"""Stripe events for tests: the builders live in `tools.local.stripe_events`, which the local run
(`scripts/local-stripe-event`) uses as well."""

from tools.local.stripe_events import *  # noqa: F401,F403
