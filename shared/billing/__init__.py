"""Stripe billing: events, the catalog, subscription and add-on rules, the webhook service."""
