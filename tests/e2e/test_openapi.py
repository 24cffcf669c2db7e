"""The spend function's OpenAPI document: valid, served by the function, and true of its answers.

Every response the spend tests see through `spend_client` is checked against the document (see
tests/e2e/conftest.py); these tests check the document itself and that the check has teeth.
"""

from __future__ import annotations

import json

import pytest
from openapi_spec_validator import validate

from tests.support import openapi

ERROR_CODES_OF_SPEND = {
    "invalid_request", "not_found", "method_not_allowed", "payload_too_large", "insufficient_credits",
    "idempotency_conflict", "spend_not_found", "hold_not_found", "refund_exceeds_spend",
    "capture_exceeds_hold", "hold_not_open", "too_many_open_holds", "unavailable", "unknown_price",
}


def test_the_document_is_a_valid_openapi_3_0_document():
    document = openapi.document()
    validate(document)
    # 3.0, whose integer is a JSON number without a fraction or exponent, as the API reads it
    # (3.1's JSON Schema counts 286.0 as an integer, and fuzzers send it).
    assert document["openapi"] == "3.0.3"


def test_the_document_names_every_route_of_spend_and_no_operator_route():
    assert set(openapi.document()["paths"]) == {
        "/spend", "/balance/{user_id}", "/transactions/{user_id}", "/refunds", "/holds", "/holds/{hold_id}",
        "/holds/{hold_id}/capture", "/holds/{hold_id}/release", "/users/{user_id}/settings", "/openapi.json",
    }


def test_the_document_says_callers_bring_a_google_id_token_and_where_the_function_lives():
    document = openapi.document()
    schemes = document["components"]["securitySchemes"]
    assert document["security"] == [{"googleIdToken": []}]
    assert schemes["googleIdToken"]["type"] == "http" and schemes["googleIdToken"]["scheme"] == "bearer"
    urls = [server["url"] for server in document["servers"]]
    assert urls == ["https://{region}-{project}.cloudfunctions.net/{function}", "http://127.0.0.1:8081"]


def test_the_document_s_integers_refuse_a_fraction_as_the_api_does():
    assert openapi.conforms({"user_id": "u", "amount": 286}, "SpendRequest")
    assert not openapi.conforms({"user_id": "u", "amount": 286.0}, "SpendRequest")
    assert not openapi.conforms({"low_balance_threshold": 5.0}, "SettingsChange")


def test_every_error_code_spend_answers_with_is_documented():
    schemas = openapi.document()["components"]["schemas"]
    documented = {
        code for name, schema in schemas.items() if name.endswith("Error")
        for code in schema["properties"]["error"]["properties"]["code"]["enum"]
    }
    assert documented == ERROR_CODES_OF_SPEND


def test_the_function_serves_the_document_at_get_openapi_json(spend_client):
    response = spend_client.get("/openapi.json")

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.get_json() == json.loads(openapi.DOCUMENT.read_text())


def test_the_document_route_takes_get_only(spend_client):
    response = spend_client.post("/openapi.json")

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"


JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    "method, path, status, headers, body, complaint",
    [
        ("GET", "/balance/u1", 200, JSON, b'{"user_id": "u1"}', "does not match"),
        ("GET", "/balance/u1", 500, JSON, b'{"error": {"code": "internal", "message": "x"}}', "not documented"),
        ("GET", "/balance/u1", 200, {"Content-Type": "text/html"}, b"<p>", "content type"),
        ("POST", "/spend", 503, JSON, b'{"error": {"code": "unavailable", "message": "x"}}', "Retry-After"),
        ("DELETE", "/spend", 405, JSON, b'{"error": {"code": "method_not_allowed", "message": "x"}}', "Allow"),
        ("POST", "/spend", 400, JSON, b'{"error": {"code": "invalid_request", "message": "x", "fields": ["amount"]}}',
         "does not match"),
        ("POST", "/spend", 402, JSON, b'{"error": {"code": "insufficient_credits", "message": "x"}}', "does not match"),
        ("POST", "/refunds", 409, JSON, b'{"error": {"code": "refund_exceeds_spend", "message": "x"}}', "does not match"),
        ("POST", "/holds/h1/release", 409, JSON, b'{"error": {"code": "hold_not_open", "message": "x"}}', "does not match"),
    ],
)
def test_the_check_refuses_a_response_the_document_does_not_describe(method, path, status, headers, body, complaint):
    with pytest.raises(openapi.ResponseMismatch, match=complaint):
        openapi.check(method, path, status, headers, body)


def test_the_check_accepts_the_documented_error_bodies():
    openapi.check("POST", "/spend", 402, JSON,
                  b'{"error": {"code": "insufficient_credits", "message": "x", "balance": 1, "requested": 2}}')
    openapi.check("POST", "/spend", 503, {**JSON, "Retry-After": "1"},
                  b'{"error": {"code": "unavailable", "message": "x", "outcome": "unknown"}}')
    openapi.check("GET", "/transactions/u1", 400, JSON,
                  b'{"error": {"code": "invalid_request", "message": "x", "fields": [{"field": "limit", "problem": "p"}]}}')
