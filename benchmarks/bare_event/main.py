"""The lightest CloudEvent function there is, on the stack `ledger_events` uses (async, ASGI): the
ceiling functions-framework itself sets on the machine."""

import functions_framework.aio


@functions_framework.aio.cloud_event
async def bare_event(cloud_event) -> None:
    return None
