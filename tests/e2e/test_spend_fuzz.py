"""Schemathesis fuzzes a started `spend` (functions-framework, on the Firestore emulator) from its
own OpenAPI document, with every check it has but one: no server error, documented status codes,
content types, headers and response schemas, valid data accepted, invalid data refused, 405 with
Allow for every other method. (Not whether calls without credentials are refused: Cloud Run
refuses them before the function runs, and the function served here takes none.)

Bounded and seeded so the run is the same every time and stays well under a minute.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
import schemathesis
from hypothesis import assume
from schemathesis.config import SchemathesisConfig

from shared.spending.schemas import parse_time
from tests.support.openapi import DOCUMENT as OPENAPI_DOCUMENT
from tests.support.servers import serve_function

SEED = 20260101
CATALOG = Path(__file__).resolve().parents[2] / "config" / "catalog.example.json"
CATALOG_ADDON = "price_pack_500"
MAX_EXAMPLES = 25

# What a valid request may be answered with besides 2xx: these are outcomes, not refusals
# (402: the user cannot afford it; 404: no such spend or hold; 409: a key or hold already used;
# 503: retry later, nothing written).
ACCEPTED_OUTCOMES = ["2xx", "402", "404", "409", "503"]


@pytest.fixture(scope="module")
def spend_url(firestore_emulator):
    firestore_emulator.reset()
    with serve_function("spend", env={"CREDITS_PAGE_TOKEN_KEY": "fuzz-page-token-key",
                                      "CREDITS_CATALOG": str(CATALOG)}) as url:
        yield url


# The document the function serves is this file (tests/e2e/test_openapi.py checks they agree); it is
# loaded at collection so that each operation is a test of its own.
schema = schemathesis.openapi.from_path(
    OPENAPI_DOCUMENT,
    config=SchemathesisConfig.from_dict({
        "seed": SEED,
        # Callers authenticate to Cloud Run (IAM, a Google ID token), which refuses anyone else before
        # the function runs (with its own page, not the function's); the function served here takes
        # no credentials, so none are generated and their absence is not a case.
        # An unknown query parameter is ignored, as an unknown body field is (the document lists
        # what is read), so one added is not a case the API must refuse.
        "generation": {"max-examples": MAX_EXAMPLES, "mode": "all", "deterministic": True,
                       "with-security-parameters": False, "allow-extra-parameters": False},
        "checks": {
            "positive_data_acceptance": {"expected-statuses": ACCEPTED_OUTCOMES},
            "ignored_auth": {"enabled": False},
        },
    }),
)


def _as_one_caller_would_send_it(case) -> None:
    """Valid data as the document cannot say it: a key in both the header and the body must be
    the same key, a page token must be one the API issued (any other is a 400, as the document
    says), an auto top-up's price must be a catalog add-on (any other is a 400 `unknown_price`), and a time must be one the calendar holds (as_of also not in the future). Negative
    cases go out as generated. (Integers need no help: the document is OpenAPI 3.0, whose integer
    has no fraction, so 286.0 is never sent as a valid amount.)"""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    header = (case.headers or {}).get("Idempotency-Key")
    # A hold needs its id in the body or the header; the document can only say "optional" of each.
    assume(case.path != "/holds" or header is not None or (isinstance(case.body, dict) and "hold_id" in case.body))
    if header is not None and isinstance(case.body, dict):
        field = "hold_id" if case.path == "/holds" else "idempotency_key"
        if field in case.body:
            case.body[field] = header
    if case.query and "page_token" in case.query:
        case.query.pop("page_token")
    topup = case.body.get("auto_topup") if isinstance(case.body, dict) else None
    if isinstance(topup, dict) and "price_id" in topup:
        topup["price_id"] = CATALOG_ADDON
    for name in ("as_of", "since", "until"):
        if case.query and name in case.query and not _an_instant(case.query[name], past=name == "as_of"):
            # A time the calendar cannot hold in UTC (year 1 at +05:00), or an as_of in the
            # future, is a 400 the document states in words.
            case.query[name] = "2026-01-01T00:00:00Z"


def _an_instant(value, past: bool) -> bool:
    try:
        return not past or parse_time(value) <= datetime.now(timezone.utc)
    except ValueError:
        return False


@schema.parametrize()
def test_spend_answers_every_generated_request_as_its_document_says(case, spend_url):
    _as_one_caller_would_send_it(case)
    case.call_and_validate(base_url=spend_url)
