"""A few of the simulation's histories through the real functions on the emulators.

The same generator as `tests/simulation/test_user_months.py` (`months.generate`, `months.plan`,
without the in-memory Firestore's faults: Stripe's and Pub/Sub's messages still arrive late, out
of order and twice, and the app still makes calls again): each step goes over HTTP to the
functions-framework apps of `stripe_webhook` (signed by the stripe library's own
`WebhookSignature.generate_signature_header`, with line items read from the Stripe API stand-in),
`spend` and `promo_grant` (a Pub/Sub push), served in this process on the Firestore emulator;
operator adjustments go through the `credits adjust` command. The apps are served in this process
so that the simulated clock (`runner.SimClock`) is the one every decision reads: a hold expires
when the history says it does.

After every step the ledger invariant and the step's answer are checked as in the simulation
(`runner.Runner`). Then the history is judged as there (`runner.judge`): the reference runs
(the plan as it took effect, or creation order) are delivered to the services on the in-memory
Firestore, so the emulator's answers, records, pools and debts must also agree with the double's.

`CREDITS_SIM_EMULATOR_HISTORIES` sets how many seeds run (default 20, from seed 1, less the seeds
of known bugs); `CREDITS_SIM_SEED=<seed>` runs one.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import time
from typing import Any

import pytest
import requests
import stripe

from shared.common import settings
from tests.simulation import months
from tests.simulation.found import KNOWN_BUGS
from tests.simulation.months import APP, PROMO, STRIPE, Delivery, History
from tests.simulation.runner import Answer, Ledger, Runner, SimClock, judge, order
from tests.support.fake_fixtures import retry_quickly
from tests.support.functions import function_app
from tests.support.ledger import records_of, user_doc
from tests.support.promo import push_body, serve_app
from tests.support.stripe_webhook import SECRET
from tools.credits.__main__ import main as credits

HISTORIES = int(os.environ.get("CREDITS_SIM_EMULATOR_HISTORIES", "20"))
TIMEOUT_S = 30
# `credits` exit codes (tools/credits/common.py) as the HTTP statuses the judge compares.
EXIT_STATUS = {0: 200, 2: 400, 3: 409, 4: 503}


class Served:
    """The real functions, served over HTTP in this process, on the Firestore emulator."""

    def __init__(self, history: History, urls: dict[str, str], db, fake_stripe) -> None:
        self.history, self.urls, self.db = history, urls, db
        for session_id, items in history.line_items.items():
            fake_stripe.add_session(session_id, *items)
        self.messages = 0

    def deliver(self, delivery: Delivery) -> Answer:
        kind, body = delivery.fact.kind, delivery.body
        if kind == STRIPE:
            payload = json.dumps(body)
            header = stripe.WebhookSignature.generate_signature_header(payload, SECRET)
            response = requests.post(self.urls["stripe_webhook"], data=payload.encode(), timeout=TIMEOUT_S,
                                     headers={"Stripe-Signature": header, "Content-Type": "application/json"})
            return Answer(response.status_code, response.json())
        if kind == PROMO:
            self.messages += 1
            data = json.dumps(body).encode()
            response = requests.post(self.urls["promo_grant"], timeout=TIMEOUT_S,
                                     json=push_body(data, f"{delivery.fact.key}-{self.messages}"))
            # Acknowledged (any 2xx), or a fault Pub/Sub redelivers.
            return Answer(200 if response.ok else response.status_code, {})
        return self._app(body)

    def _app(self, op: dict[str, Any]) -> Answer:
        user_id, spend = self.history.user_id, self.urls["spend"]
        kind = op["op"]
        if kind == "adjust":
            return self._adjust(op)
        if kind == "spend":
            path, request = "/spend", {"user_id": user_id, "amount": op["amount"], "description": op["description"]}
            if op["key"]:
                request["idempotency_key"] = op["key"]
        elif kind == "hold":
            path, request = "/holds", {"user_id": user_id, "amount": op["amount"], "hold_id": op["hold_id"],
                                       "expires_in": op["expires_in"]}
        elif kind in ("capture", "release"):
            path = f"/holds/{op['hold_id']}/{kind}"
            request = {"amount": op["amount"]} if op.get("amount") else {}
        else:
            path, request = "/refunds", {"user_id": user_id, "spend_key": op["spend_key"]}
            if op.get("amount"):
                request["amount"] = op["amount"]
            if op.get("key"):
                request["idempotency_key"] = op["key"]
        response = requests.post(spend + path, json=request, timeout=TIMEOUT_S)
        return Answer(response.status_code, response.json(), response.headers.get("Idempotent-Replayed") == "true")

    def _adjust(self, op: dict[str, Any]) -> Answer:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = credits(["adjust", self.history.user_id, "--pool", op["pool"], f"--amount={op['amount']}",
                            "--reason", "simulated correction", "--operator", "simulation",
                            "--idempotency-key", op["key"], "--json"])
        body = json.loads(out.getvalue())
        return Answer(EXIT_STATUS.get(code, 500), body, bool(body.get("replayed")))

    def balance(self) -> dict[str, Any]:
        return requests.get(f"{self.urls['spend']}/balance/{self.history.user_id}", timeout=TIMEOUT_S).json()

    def ledger(self) -> Ledger:
        user_id = self.history.user_id
        return Ledger(user_doc(self.db, user_id) or {}, sorted(records_of(self.db, user_id), key=order))


@pytest.fixture
def served(db, stripe_settings):
    with contextlib.ExitStack() as stack:
        urls = {name: stack.enter_context(serve_app(function_app(name))).url.rstrip("/")
                for name in ("stripe_webhook", "spend", "promo_grant")}
        yield urls


def test_a_few_of_the_simulated_histories_keep_the_ledger_whole_through_the_real_functions_on_the_emulators(
        served, db, fake_stripe, monkeypatch, capsys):
    if os.environ.get("CREDITS_SIM_SEED"):
        seeds = [int(os.environ["CREDITS_SIM_SEED"])]
    else:
        seeds = [seed for seed in range(1, 1 + HISTORIES + len(KNOWN_BUGS)) if seed not in KNOWN_BUGS][:HISTORIES]
    clock = SimClock().install(monkeypatch)
    started = time.monotonic()
    steps = 0
    for seed in seeds:
        # Auto top-up's triggers and charges are the in-memory run's (tests/simulation/topups.py).
        history = months.generate(seed, topup=False)
        plan = months.plan(history, random.Random(seed), faults=False)
        backend = Served(history, served, db, fake_stripe)
        try:
            run = Runner(history, backend, clock, random.Random(seed)).run(plan, close=history.app)
            steps += len(run.steps)
            # The references run on the in-memory Firestore; the emulator's client comes back after.
            with pytest.MonkeyPatch.context() as references:
                retry_quickly(references)
                judge(history, run, references, clock)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n  replay it alone: CREDITS_SIM_SEED={seed} .venv/bin/python -m pytest "
                                 f"tests/e2e/test_user_months_on_emulators.py -q") from None
        finally:
            settings.reset()
        capsys.readouterr()  # the functions' logs of a passing history are not kept
    print(f"emulators: {len(seeds)} histories, {steps} steps, in {time.monotonic() - started:.1f}s")
