"""CloudEvent function `ledger_events`: Firestore's committed changes out to the events topic.

Eventarc delivers `google.cloud.firestore.document.v1.created` (credits_transactions) and
`.written` (users_credits) with a protobuf `DocumentEventData` body; the service turns each into
`transaction.created`, `balance.updated` and `balance.low` messages. Every outcome is decided
here: returning acknowledges the event, raising makes Eventarc deliver it again (503 `unavailable`
for a transient fault, in the error envelope), which is right only for a fault that may heal. No business rules live here.

It is an `async` CloudEvent function (`functions_framework.aio`), which functions-framework serves
on its ASGI stack (Starlette on uvicorn workers under gunicorn): a request waiting for Pub/Sub holds
no thread, so many concurrent events share one publisher batch, and the stack costs about half the
CPU per request of the threaded WSGI one (measured in benchmarks/bench_events.py).
"""

from __future__ import annotations

import traceback

import functions_framework.aio

from shared.common import http, log
from shared.common.errors import CreditsError
from shared.events import service

# A raised transient fault (so Eventarc redelivers) and whatever functions-framework refuses
# answer with the error envelope. The async stack builds its app after loading this module, with
# its outermost exception middleware looked up by name then; ours takes its place.
functions_framework.aio.ExceptionHandlerMiddleware = http.asgi_envelope("ledger_events")


@functions_framework.aio.cloud_event
async def ledger_events(cloud_event) -> None:
    attributes = cloud_event.get_attributes()
    event_id = str(attributes.get("id"))
    try:
        outcome = await service.handle(str(attributes.get("type")), attributes, cloud_event.data)
    except CreditsError as err:
        if err.transient:
            log.warning("document event will be redelivered", cloud_event_id=event_id,
                        document=attributes.get("document"), outcome=err.code, detail=err.message)
            raise
        # It can never be published; redelivering it would only fail again.
        log.warning("document event acknowledged without publishing", cloud_event_id=event_id,
                    document=attributes.get("document"), outcome=err.code, detail=err.message)
        return
    except Exception:
        log.error("unexpected fault", cloud_event_id=event_id, document=attributes.get("document"),
                  outcome="internal", exc_info=traceback.format_exc())
        raise
    log.info("document event handled", cloud_event_id=event_id, document=outcome.path, user=outcome.user_id,
             outcome=outcome.name, event_ids=list(outcome.event_ids))
