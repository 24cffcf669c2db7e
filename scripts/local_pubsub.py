"""Wire the local Pub/Sub emulator to the local `promo_grant`: topic and push subscription.

    python scripts/local_pubsub.py http://127.0.0.1:8083/

Needs PUBSUB_EMULATOR_HOST. Safe to run again: what exists is kept, and the subscription's
push endpoint is set to the URL given. functions-framework turns each push into the
`messagePublished` CloudEvent the function expects.
"""

from __future__ import annotations

import os
import sys

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1

TOPIC = "promo-grants"
SUBSCRIPTION = "promo-grants-promo-grant"
# Long enough for a 500-user message on a slow laptop; a push unanswered by then is redelivered.
ACK_DEADLINE_S = 60


def wire(push_endpoint: str, project: str, topic: str = TOPIC, subscription: str = SUBSCRIPTION) -> str:
    """Create the topic and push subscription if missing; returns the subscription path."""
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic_path = publisher.topic_path(project, topic)
    subscription_path = subscriber.subscription_path(project, subscription)
    try:
        publisher.create_topic(name=topic_path)
    except gexc.AlreadyExists:
        pass
    push_config = pubsub_v1.types.PushConfig(push_endpoint=push_endpoint)
    try:
        subscriber.create_subscription(
            name=subscription_path, topic=topic_path, push_config=push_config, ack_deadline_seconds=ACK_DEADLINE_S
        )
    except gexc.AlreadyExists:
        subscriber.modify_push_config(subscription=subscription_path, push_config=push_config)
    subscriber.close()
    return subscription_path


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not os.environ.get("PUBSUB_EMULATOR_HOST"):
        print("usage: PUBSUB_EMULATOR_HOST=host:port python scripts/local_pubsub.py <push endpoint URL>", file=sys.stderr)
        return 2
    project = os.environ.get("GOOGLE_CLOUD_PROJECT", "demo-credits")
    path = wire(argv[1], project)
    print(f"Pub/Sub topic       projects/{project}/topics/{TOPIC} pushes to {argv[1]} ({path})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
