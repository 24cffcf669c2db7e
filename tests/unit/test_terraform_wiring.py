"""Terraform is wired to what the code handles: the Stripe events the webhook endpoint must be
subscribed to are every event type the webhook changes credits for, and every Firestore document
pattern the contract names as a trigger (sections 1, 8 and 9) has an Eventarc trigger.

Read as text (providers cannot be downloaded here, so there is no `terraform validate`)."""

from __future__ import annotations

import re
from pathlib import Path

from shared.billing.plans import PLANNERS

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
CONTRACT = ROOT.parent / "shared" / "CONTRACT.md"

# Answered `ignored` whatever it carries (invoice.paid carries the renewal): subscribing is optional.
OPTIONAL_EVENTS = {"invoice.payment_succeeded"}


def terraform_text() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(TERRAFORM.glob("*.tf")))


def webhook_events_output() -> set[str]:
    block = re.search(r'output "stripe_webhook_events" \{.*?value = \[(.*?)\]', terraform_text(), re.S)
    return set(re.findall(r'"([a-z_.]+)"', block.group(1)))


def test_the_webhook_endpoint_is_subscribed_to_every_event_that_changes_credits():
    assert webhook_events_output() == set(PLANNERS) - OPTIONAL_EVENTS


def test_every_firestore_trigger_of_the_contract_has_an_eventarc_trigger():
    table = [line for line in CONTRACT.read_text(encoding="utf-8").splitlines()
             if line.startswith("| `") and "CloudEvent" in line]  # section 1's table of functions
    named = set(re.findall(r"`((?:users_credits|credits_[a-z]+)/\{[a-z_]+\})`", "\n".join(table)))
    triggers = set(re.findall(r'"((?:users_credits|credits_[a-z]+)/\{[a-z_]+\})"', terraform_text()))
    assert {"credits_transactions/{transaction_id}", "users_credits/{user_id}",
            "credits_topups/{attempt_id}"} <= triggers
    assert named <= triggers, f"no Eventarc trigger for {sorted(named - triggers)}"
