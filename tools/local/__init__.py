"""What the local run adds to the system: a stand-in for the Stripe API and signed Stripe events."""
