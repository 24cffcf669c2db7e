"""End to end: the `spend` function as a real functions-framework server over HTTP."""

import json
import urllib.error
import urllib.request

from tests.support.ledger import assert_ledger_invariant, seed
from tests.support.servers import serve_function


def call(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_a_user_spends_over_http_and_reads_balance_and_history(db):
    seed("sam", monthly=100, permanent=20)
    with serve_function("spend") as base:
        status, _, body = call("POST", f"{base}/spend", {"user_id": "sam", "amount": 50, "description": "Video"},
                               {"Idempotency-Key": "sam-video-1"})
        assert status == 200
        assert [(t["pool"], t["amount"]) for t in body["transactions"]] == [("permanent", -20), ("monthly", -30)]
        status, headers, again = call("POST", f"{base}/spend", {"user_id": "sam", "amount": 50,
                                                                "description": "Video"},
                                      {"Idempotency-Key": "sam-video-1"})
        assert status == 200 and headers["Idempotent-Replayed"] == "true" and again == body
        status, _, balance = call("GET", f"{base}/balance/sam")
        assert status == 200 and balance == body["balance"] | {"last_updated": balance["last_updated"]}
        assert (balance["credits_monthly"], balance["credits_permanent"], balance["balance"]) == (70, 0, 70)
        status, _, history = call("GET", f"{base}/transactions/sam?limit=2")
        assert status == 200 and len(history["transactions"]) == 2 and history["next_page_token"]
        status, _, short = call("POST", f"{base}/spend", {"user_id": "sam", "amount": 71})
        assert status == 402 and short["error"]["code"] == "insufficient_credits"
    assert_ledger_invariant(db, "sam")
