"""Each function's deploy bundle, built from exactly Terraform's file list, serves a real request.

A bundle runs the way Cloud Functions runs it: `functions-framework --target <name>` started
from inside the bundle's folder, with no PYTHONPATH and an interpreter that cannot see this
repository, against the Firestore emulator.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.support import deploy
from tests.support.emulators import PROJECT, free_port

ROOT = deploy.ROOT
CATALOG = ROOT / "config" / "catalog.example.json"
WEBHOOK_SECRET = "whsec_bundle_test_secret"
PROMO_TOPIC = f"projects/{PROJECT}/topics/credits-promo-grants"

# The console package as terraform/console.tf ships it beside the console's main.py.
CONSOLE_FILES = {
    path.relative_to(ROOT).as_posix(): path
    for pattern in ("console/**/*.py", "console/templates/*.html", "console/static/*.css")
    for path in ROOT.glob(pattern)
}

# What terraform/main.tf's local.functions (and console.tf) add per function: extra bundle files and settings.
EXTRA_FILES = {
    "spend": {"openapi.json": ROOT / "functions" / "spend" / "openapi.json", "catalog.json": CATALOG},
    "stripe_webhook": {"catalog.json": CATALOG},
    "console": {**CONSOLE_FILES, "catalog.json": CATALOG},
}
SETTINGS = {
    "spend": {"CREDITS_SPEND_ORDER": "permanent_first", "CREDITS_CATALOG": "catalog.json"},
    "stripe_webhook": {
        "CREDITS_CATALOG": "catalog.json",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_KEY": "sk_test_bundle",
        # Nothing listens there: the request below must not need the Stripe API.
        "STRIPE_API_BASE": "http://127.0.0.1:9",
    },
    "promo_grant": {},
    "ledger_events": {"CREDITS_LOW_BALANCE": "100"},
    "operator_sweeps": {},
    "auto_topup": {"STRIPE_API_KEY": "sk_test_bundle", "STRIPE_API_BASE": "http://127.0.0.1:9"},
    "console": {"CREDITS_CATALOG": "catalog.json", "CONSOLE_SECRET_KEY": "bundle-secret",
                "CONSOLE_VIEWERS": "val@example.com"},
}


def needs_code(function: str):
    return pytest.mark.skipif(
        not (ROOT / "functions" / function / "main.py").exists(), reason=f"functions/{function}/main.py does not exist"
    )


def call(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.fixture(scope="module")
def clean_python(tmp_path_factory):
    return deploy.make_clean_python(tmp_path_factory.mktemp("bundle-python") / "venv")


@pytest.fixture
def serve(clean_python, firestore_emulator, tmp_path):
    """Builds a function's bundle into a temporary folder and serves it from there."""
    started: list[deploy.FunctionProcess] = []

    def start(function: str) -> deploy.FunctionProcess:
        folder = deploy.build(deploy.bundle(function, EXTRA_FILES.get(function)), tmp_path / function)
        env = deploy.clean_env(
            GOOGLE_CLOUD_PROJECT=PROJECT, FIRESTORE_EMULATOR_HOST=firestore_emulator.host, **SETTINGS[function]
        )
        process = deploy.FunctionProcess(clean_python, folder, function, free_port(), env)
        started.append(process)
        return process.wait_ready()

    yield start
    for process in started:
        process.stop()


def test_every_function_with_code_has_a_bundle_check():
    assert "spend" in deploy.functions_with_code()
    assert set(deploy.functions_with_code()) <= set(SETTINGS)


@pytest.mark.parametrize("function", deploy.functions_with_code())
def test_a_bundle_holds_its_main_the_shared_package_and_the_requirements_and_nothing_else(function):
    bundle = deploy.bundle(function, EXTRA_FILES.get(function))

    shared = {path.relative_to(ROOT).as_posix() for path in (ROOT / "shared").rglob("*.py")}
    expected = {"main.py", "requirements.txt", *shared, *EXTRA_FILES.get(function, {})}
    assert set(bundle.files) == expected
    assert bundle.files["main.py"] == ROOT / "functions" / function / "main.py"
    assert bundle.files["requirements.txt"] == ROOT / "requirements.txt"
    assert all(bundle.files[name] == ROOT / name for name in shared)


def test_the_source_object_name_changes_with_the_content_and_only_with_it(tmp_path):
    catalog = tmp_path / "catalog.json"
    catalog.write_text('{"plans": {}, "addons": {}}')
    first = deploy.bundle("spend", {"catalog.json": catalog}).sha256
    deploy._evaluate.cache_clear()
    again = deploy.bundle("spend", {"catalog.json": catalog}).sha256
    catalog.write_text('{"plans": {}, "addons": {"price_x": {"permanent_credits": 1}}}')
    deploy._evaluate.cache_clear()
    changed = deploy.bundle("spend", {"catalog.json": catalog}).sha256

    assert first == again
    assert changed != first
    # ...and that digest is what names the uploaded zip.
    functions_tf = (deploy.TERRAFORM_DIR / "functions.tf").read_text()
    assert 'name   = "${each.key}/${module.function_source[each.key].sha256}.zip"' in functions_tf


def test_the_bundle_interpreter_cannot_see_the_repository(clean_python, tmp_path):
    folder = deploy.build(deploy.bundle("spend"), tmp_path / "spend")
    probe = "import shared, sys; print(shared.__file__); print('\\n'.join(sys.path))"

    inside = subprocess.run([str(clean_python), "-c", probe], cwd=folder, env=deploy.clean_env(),
                            capture_output=True, text=True, check=True)
    outside = subprocess.run([str(clean_python), "-c", "import shared"], cwd=tmp_path, env=deploy.clean_env(),
                             capture_output=True, text=True, check=False)

    shared_file, *path = inside.stdout.splitlines()
    assert Path(shared_file).resolve() == (folder / "shared" / "__init__.py").resolve()
    assert str(ROOT) not in path and str(ROOT / "shared") not in path
    assert outside.returncode != 0 and "No module named 'shared'" in outside.stderr


def test_the_bundles_requirements_are_what_the_bundle_runs_with(tmp_path):
    folder = deploy.build(deploy.bundle("spend"), tmp_path / "spend")
    lines = [line.split("#")[0].strip() for line in (folder / "requirements.txt").read_text().splitlines()]
    requirements = [Requirement(line) for line in lines if line]

    assert requirements
    for requirement in requirements:
        assert requirement.specifier.contains(metadata.version(requirement.name)), requirement


@needs_code("console")
def test_the_console_bundle_serves_a_user_page_to_a_person_iap_names(db, serve):
    db.collection("users_credits").document("bundle-user").set({"user_id": "bundle-user", "balance": 7})
    console = serve("console")
    iap = {"X-Goog-Authenticated-User-Email": "accounts.google.com:val@example.com"}

    status, body = call("GET", f"{console.url}/users/bundle-user", headers=iap)
    assert status == 200, console.log()
    page = body.decode()
    assert "val@example.com" in page and 'data-testid="balance">7<' in page
    status, _ = call("GET", f"{console.url}/static/console.css", headers=iap)
    assert status == 200, console.log()
    # Nobody IAP names, or someone no list names, sees nothing.
    assert call("GET", f"{console.url}/users/bundle-user")[0] == 403
    assert call("GET", f"{console.url}/", headers={"X-Goog-Authenticated-User-Email": "accounts.google.com:x@y.z"})[0] == 403


@needs_code("spend")
def test_the_spend_bundle_serves_a_balance_read_from_firestore(db, serve):
    db.collection("users_credits").document("bundle-user").set({"user_id": "bundle-user", "balance": 7})
    spend = serve("spend")

    status, body = call("GET", f"{spend.url}/balance/bundle-user")

    assert status == 200, spend.log()
    balance = json.loads(body)
    # A legacy document reads as its migrated view: proof the answer came from the emulator.
    assert balance["user_id"] == "bundle-user"
    assert (balance["credits_monthly"], balance["credits_permanent"], balance["balance"]) == (0, 7, 7)

    # The bundle carries the API's document and serves it.
    status, body = call("GET", f"{spend.url}/openapi.json")
    assert status == 200, spend.log()
    assert json.loads(body) == json.loads((ROOT / "functions" / "spend" / "openapi.json").read_text())


@needs_code("spend")
def test_the_spend_bundle_answers_what_its_server_refuses_in_the_envelope(db, serve):
    spend = serve("spend")
    port = int(spend.url.rsplit(":", 1)[1])

    def exchange(raw: bytes) -> tuple[bytes, dict]:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(raw)
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        return head.split(b"\r\n")[0], json.loads(body)

    status, body = exchange(b"GET /balance/x HTTP/1.1\r\nHost: x\r\nX-Note: a\x01b\r\n\r\n")
    assert status == b"HTTP/1.1 400 Bad Request" and body["error"]["code"] == "invalid_request", spend.log()
    status, body = exchange(b"POST /spend HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n{}")
    assert status == b"HTTP/1.1 413 Payload Too Large" and body["error"]["code"] == "payload_too_large"


@needs_code("operator_sweeps")
def test_the_operator_bundle_runs_a_hold_sweep_and_a_reconcile_page(db, serve):
    operator = serve("operator_sweeps")

    holds = call("POST", f"{operator.url}/sweep/holds", b"", {"Content-Type": "application/json"})
    reconcile = call("POST", f"{operator.url}/sweep/reconcile", b'{"limit": 10}', {"Content-Type": "application/json"})

    assert holds == (200, b'{"released":0,"users":0,"more":false}'), operator.log()
    assert reconcile[0] == 200 and json.loads(reconcile[1])["completed"] is True


@needs_code("stripe_webhook")
def test_the_stripe_webhook_bundle_checks_a_signed_event_and_answers_it(db, serve):
    webhook = serve("stripe_webhook")
    now = int(time.time())
    event = {
        "id": "evt_bundle_check",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": now,
        "livemode": False,
        "type": "customer.created",
        "data": {"object": {"id": "cus_bundle", "object": "customer"}},
    }
    payload = json.dumps(event).encode()
    signature = hmac.new(WEBHOOK_SECRET.encode(), f"{now}.".encode() + payload, hashlib.sha256).hexdigest()

    signed = call("POST", webhook.url + "/", payload,
                  {"Content-Type": "application/json", "Stripe-Signature": f"t={now},v1={signature}"})
    forged = call("POST", webhook.url + "/", payload,
                  {"Content-Type": "application/json", "Stripe-Signature": f"t={now},v1={'0' * 64}"})

    assert signed[0] == 200, webhook.log()
    assert json.loads(signed[1]) == {"received": True, "outcome": "ignored"}
    assert forged[0] == 400


@needs_code("promo_grant")
def test_the_promo_grant_bundle_applies_a_message_pushed_by_the_subscription(db, serve):
    promo = serve("promo_grant")
    message = {"grant_id": "bundle-grant", "user_ids": ["bundle-user"], "amount": 25, "description": "Welcome"}
    # Exactly what the Terraform push subscription sends: Pub/Sub's push envelope, to the
    # function's URL followed by the topic's path.
    push = {
        "message": {
            "data": base64.b64encode(json.dumps(message).encode()).decode(),
            "messageId": "1001",
            "publishTime": "2026-01-01T00:00:00Z",
            "attributes": {},
        },
        "subscription": f"projects/{PROJECT}/subscriptions/credits-promo-grants-push",
    }

    status, _ = call("POST", f"{promo.url}/{PROMO_TOPIC}", json.dumps(push).encode(),
                     {"Content-Type": "application/json"})

    assert status in (200, 204), promo.log()
    user = db.collection("users_credits").document("bundle-user").get().to_dict()
    assert user["credits_permanent"] == 25 and user["credits_monthly"] == 0


@needs_code("ledger_events")
def test_the_ledger_events_bundle_publishes_a_real_firestore_event(clean_python, pubsub_emulator, tmp_path):
    from tests.support.events import EventsTopic, document_event, user

    topic = EventsTopic()
    folder = deploy.build(deploy.bundle("ledger_events"), tmp_path / "ledger_events")
    env = deploy.clean_env(GOOGLE_CLOUD_PROJECT=PROJECT, PUBSUB_EMULATOR_HOST=pubsub_emulator.host,
                           CREDITS_EVENTS_TOPIC=topic.name, **SETTINGS["ledger_events"])
    process = deploy.FunctionProcess(clean_python, folder, "ledger_events", free_port(), env).wait_ready()
    try:
        headers, body = document_event("users_credits/bundle-user", user("bundle-user", 0, 50),
                                       user("bundle-user", 0, 150))
        status, _ = call("POST", process.url + "/", body, headers)
        received = topic.pull(2)
    finally:
        process.stop()
        topic.close()

    assert status in (200, 204), process.log()
    assert [m.event_type for m in received] == ["balance.updated", "balance.low"]


@needs_code("auto_topup")
def test_the_auto_topup_bundle_charges_an_attempt_delivered_as_eventarc_delivers_it(clean_python, firestore_emulator,
                                                                                   db, tmp_path):
    from shared.ledger.autotopup import TopupSetting
    from shared.spending import settings_service
    from tests.support.events import CREATED, document_event
    from tools.local.stripe_api import FakeStripe

    stand_in = FakeStripe(SETTINGS["auto_topup"]["STRIPE_API_KEY"]).start()
    stand_in.add_price("price_pack_500", 499)
    stand_in.add_customer("cus_bundle", default_payment_method="pm_card_visa")
    folder = deploy.build(deploy.bundle("auto_topup", EXTRA_FILES.get("auto_topup")), tmp_path / "auto_topup")
    env = deploy.clean_env(GOOGLE_CLOUD_PROJECT=PROJECT, FIRESTORE_EMULATOR_HOST=firestore_emulator.host,
                           **{**SETTINGS["auto_topup"], "STRIPE_API_BASE": stand_in.base})
    process = deploy.FunctionProcess(clean_python, folder, "auto_topup", free_port(), env).wait_ready()
    try:
        # A user with no credits puts a setting: the same commit creates the attempt.
        setting = TopupSetting(enabled=True, threshold=100, price_id="price_pack_500", credits=500,
                               customer="cus_bundle")
        attempt_id = settings_service.put_settings("bundle-topup", {"auto_topup": setting})["auto_topup"]["pending_attempt"]
        attempt = db.collection("credits_topups").document(attempt_id).get().to_dict()
        headers, body = document_event(f"credits_topups/{attempt_id}", attempt, event_type=CREATED)
        status, _ = call("POST", process.url + "/", body, headers)
    finally:
        process.stop()
        stand_in.stop()

    assert status in (200, 204), process.log()
    assert db.collection("credits_topups").document(attempt_id).get().to_dict()["status"] == "succeeded"
    [intent] = stand_in.intents.values()
    assert (intent["amount"], intent["customer"], intent["metadata"]["topup_attempt_id"]) == (499, "cus_bundle", attempt_id)
    assert db.collection("users_credits").document("bundle-topup").get().to_dict()["credits_permanent"] == 500
