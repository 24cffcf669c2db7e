"""The Python client (clients/python) against the OpenAPI document, and its authentication rules.

The client is kept in step with functions/spend/openapi.json: every route there is a client
method and every client method calls a route there; every error code there is an exception
carrying the fields the document gives that error. Its behaviour against the real function is
tests/e2e/test_python_client.py.
"""

from __future__ import annotations

import base64
import inspect
import json
from pathlib import Path

import httpx
import pytest

import credits_client
from credits_client import CreditsClient, CreditsError, UnexpectedResponse, errors
from credits_client.auth import GoogleIdTokenAuth

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = json.loads((ROOT / "functions" / "spend" / "openapi.json").read_text())
METHODS = {"get", "put", "post", "delete", "patch"}


def document_routes() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in DOCUMENT["paths"].items() for method in item if method in METHODS}


def client_routes() -> set[tuple[str, str]]:
    return {member.route for _, member in inspect.getmembers(CreditsClient, inspect.isfunction)
            if hasattr(member, "route")}


def document_errors() -> dict[str, set[str]]:
    """code -> the envelope's fields besides code and message, for every error schema of the document."""
    found = {}
    for schema in DOCUMENT["components"]["schemas"].values():
        error = schema.get("properties", {}).get("error", {}).get("properties")
        if error and "code" in error:
            for code in error["code"]["enum"]:
                found[code] = set(error) - {"code", "message"}
    return found


def token_expiring_at(exp: int) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part({'aud': 'x', 'exp': exp})}.{part({'sig': 1})}"


def test_every_route_of_the_openapi_document_has_a_client_method_and_every_method_a_route():
    assert client_routes() == document_routes()


def test_every_error_code_of_the_openapi_document_is_an_exception_with_its_fields():
    codes = document_errors()
    assert set(codes) == set(errors.BY_CODE)
    for code, fields in codes.items():
        cls = errors.BY_CODE[code]
        assert issubclass(cls, CreditsError) and cls.code == code
        assert cls.__name__ in credits_client.__all__
        example = {"code": code, "message": "m", **{name: 7 for name in fields}}
        raised = errors.error_from(409, {"error": example})
        assert type(raised) is cls and raised.error == example
        for name in fields - {"status"}:  # hold_not_open's status is `hold_status`
            assert getattr(raised, name) == 7, (code, name)


def test_a_refusal_carries_its_numbers_as_attributes():
    short = errors.error_from(402, {"error": {"code": "insufficient_credits", "message": "m", "balance": 5,
                                              "requested": 9}})
    assert (short.balance, short.requested, short.status) == (5, 9, 402)
    over = errors.error_from(409, {"error": {"code": "refund_exceeds_spend", "message": "m", "refundable": 3}})
    assert over.refundable == 3
    closed = errors.error_from(409, {"error": {"code": "hold_not_open", "message": "m", "status": "released"}})
    assert (closed.hold_status, closed.status) == ("released", 409)


def test_an_answer_outside_the_envelope_or_with_an_unknown_code_is_an_unexpected_response():
    assert type(errors.error_from(403, None)) is UnexpectedResponse
    assert type(errors.error_from(418, {"error": {"code": "teapot", "message": "m"}})) is UnexpectedResponse


def test_the_client_package_reports_the_version_its_pyproject_declares():
    pyproject = (ROOT / "clients" / "python" / "pyproject.toml").read_text()
    assert f'version = "{credits_client.__version__}"' in pyproject


@pytest.mark.parametrize("url", ["http://127.0.0.1:8081", "http://localhost:8081/", "http://[::1]:8081"])
def test_the_local_run_is_called_without_a_token(url):
    def fetch(audience):
        raise AssertionError("no token for the local run")

    seen = []
    transport = httpx.MockTransport(lambda request: seen.append(request) or httpx.Response(
        200, json={"user_id": "u", "low_balance_threshold": None, "auto_topup": None}))
    with CreditsClient(url, fetch_id_token=fetch, transport=transport) as client:
        client.settings("u")
    assert "Authorization" not in seen[0].headers


def test_the_deployed_function_gets_a_google_id_token_for_its_url_fetched_once_until_it_expires():
    url = "https://europe-west1-p.cloudfunctions.net/credits-spend"
    now = [1_000_000.0]
    fetched = []

    def fetch(audience):
        fetched.append(audience)
        return token_expiring_at(int(now[0]) + 3600)

    seen = []
    transport = httpx.MockTransport(lambda request: seen.append(request) or httpx.Response(
        200, json={"user_id": "u", "low_balance_threshold": None, "auto_topup": None}))
    with CreditsClient(url + "/", fetch_id_token=fetch, transport=transport) as client:
        client._auth._clock = lambda: now[0]
        client.settings("u")
        client.settings("u")
        assert fetched == [url]
        now[0] += 3600 - 60  # within the refresh margin of its expiry: a new token
        client.settings("u")
    assert fetched == [url, url]
    assert all(r.headers["Authorization"] == f"Bearer {token_expiring_at(1_000_000 + 3600)}" for r in seen[:2])
    assert seen[2].headers["Authorization"].startswith("Bearer ") and seen[2].headers != seen[0].headers


def test_an_explicit_flag_turns_authentication_off_or_on():
    assert CreditsClient("https://example.test", authenticate=False)._auth is None
    forced = CreditsClient("http://127.0.0.1:1", authenticate=True, fetch_id_token=lambda a: "t")
    assert isinstance(forced._auth, GoogleIdTokenAuth) and forced._auth.audience == "http://127.0.0.1:1"
