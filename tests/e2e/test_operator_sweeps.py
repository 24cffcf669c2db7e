"""The operator function (`operator_sweeps`): the sweeps Cloud Scheduler calls, served by their own
functions-framework process, and no longer by the app's `spend`."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.support.ledger import seed
from tests.support.servers import serve_function


def test_the_operator_function_serves_both_sweeps_over_http(db):
    seed("op", permanent=5)
    with serve_function("operator_sweeps") as url:
        answers = {}
        for path, body in (("/sweep/holds", b""), ("/sweep/reconcile", b'{"limit": 50}')):
            request = urllib.request.Request(url + path, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                answers[path] = (response.status, json.loads(response.read()))

    assert answers["/sweep/holds"] == (200, {"released": 0, "users": 0, "more": False})
    status, page = answers["/sweep/reconcile"]
    assert status == 200 and page["users"] == 1 and page["drift"] == 0 and page["completed"] is True


@pytest.mark.parametrize("path", ["/sweep/holds", "/sweep/reconcile"])
def test_spend_does_not_serve_the_operator_routes(spend_client, path):
    response = spend_client.post(path, json={})

    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("method, path, status, code", [
    ("GET", "/sweep/holds", 405, "method_not_allowed"),
    ("POST", "/sweep/nothing", 404, "not_found"),
    ("POST", "/spend", 404, "not_found"),
])
def test_the_operator_function_refuses_other_routes_and_methods_in_the_envelope(operator_client, method, path,
                                                                                status, code):
    response = operator_client.open(path, method=method)

    assert response.status_code == status and response.get_json()["error"]["code"] == code
    if status == 405:
        assert response.headers["Allow"] == "POST"


@pytest.mark.parametrize("body, field", [(b"[1]", "body"), (b'{"limit": 0}', "limit"), (b'{"limit": 1001}', "limit"),
                                         (b'{"limit": 2.0}', "limit"), (b"{", "body")])
def test_a_bad_sweep_body_is_400_naming_the_field(operator_client, body, field):
    response = operator_client.post("/sweep/holds", data=body, content_type="application/json")

    assert response.status_code == 400 and response.get_json()["error"]["fields"][0]["field"] == field
