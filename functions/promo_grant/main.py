"""CloudEvent function `promo_grant`: marketing's promotion messages from Pub/Sub.

Decodes the Pub/Sub message, validates it, and calls the promotions service. Every outcome
is decided in one place (`promo_grant`): returning acknowledges the message, raising makes
Pub/Sub deliver it again, which is right only for a fault that may heal. No business rules
live here.
"""

from __future__ import annotations

import base64
import binascii
import traceback
from dataclasses import dataclass, field
from typing import Any, Optional

import functions_framework

from shared.common import http, log, server
from shared.common.errors import CreditsError, InvalidPayload
from shared.promotions import rejected, schemas, service

MESSAGE_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"

# What functions-framework refuses (a GET, a body that is not a CloudEvent) and what this function
# raises on purpose (a transient fault, so Pub/Sub redelivers) answer with the error envelope.
functions_framework.errorhandler(Exception)(http.envelope_handler("promo_grant"))
# So do requests the server refuses before this function runs (Pub/Sub's pushes are never malformed,
# but a push endpoint answers whoever reaches it). A push body has no limit of ours: Pub/Sub bounds it.
server.install("promo_grant")


@dataclass(frozen=True)
class Delivery:
    message_id: str
    raw: bytes = b""
    attributes: dict[str, str] = field(default_factory=dict)
    # Why the event can never be read as a message, or None.
    problem: Optional[str] = None


def _delivery(cloud_event) -> Delivery:
    """The message's id, raw data and attributes, and what makes it unreadable if anything."""
    data: Any = cloud_event.data
    message = data.get("message") if isinstance(data, dict) else None
    if cloud_event["type"] != MESSAGE_PUBLISHED or not isinstance(message, dict):
        return Delivery(str(cloud_event["id"]), problem=f"not a Pub/Sub message event ({cloud_event['type']})")
    message_id = str(message.get("messageId") or message.get("message_id") or cloud_event["id"])
    attributes = message.get("attributes")
    attributes = {str(k): str(v) for k, v in attributes.items()} if isinstance(attributes, dict) else {}
    encoded = message.get("data") or ""
    if not isinstance(encoded, str):
        return Delivery(message_id, str(encoded).encode(), attributes, "message data is not a base64 string")
    try:
        return Delivery(message_id, base64.b64decode(encoded, validate=True), attributes)
    except (binascii.Error, ValueError):
        return Delivery(message_id, encoded.encode(), attributes, "message data is not base64")


@functions_framework.cloud_event
def promo_grant(cloud_event) -> None:
    delivery = _delivery(cloud_event)
    try:
        if delivery.problem:
            raise InvalidPayload(delivery.problem)
        message = schemas.parse_message(delivery.raw)
        service.grant(message, message_id=delivery.message_id)
    except CreditsError as err:
        if err.transient:
            log.warning(
                "promo message will be redelivered", message_id=delivery.message_id, outcome=err.code, detail=err.message
            )
            raise
        # Permanent: keep it for review and replay, and acknowledge so it is not redelivered.
        # Keeping it may itself hit a fault that may heal; that raises and Pub/Sub redelivers.
        rejected.reject(delivery.message_id, err.message, delivery.raw, delivery.attributes)
    except Exception:
        # A bug, not a bad message: redelivery (and the subscription's dead-letter topic) keep it.
        log.error(
            "unexpected fault", message_id=delivery.message_id, outcome="internal", exc_info=traceback.format_exc()
        )
        raise
