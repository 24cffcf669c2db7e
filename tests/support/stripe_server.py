"""The local stand-in for the Stripe API: it lives in `tools.local.stripe_api`, which the local run
starts as well."""

from tools.local.stripe_api import FakeStripe  # noqa: F401
