"""The local run (`scripts/run_local.py`): it refuses a taken port before starting anything, listens
on the loopback interface only, keeps its Firestore data when asked, its Stripe stand-in and
event script buy, refund and dispute an add-on pack through the real webhook, and the script's
`topup` makes an auto top-up happen on a started run."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.emulators import PROJECT, free_port
from tests.support.ledger import user_doc
from tests.support.servers import outside_environ, read_until, serve_function
from tests.support.stripe_webhook import API_KEY, CATALOG, SECRET
from tools.local import stripe_event
from tools.local.stripe_api import FakeStripe

ROOT = Path(__file__).resolve().parents[2]
RUN_LOCAL = ROOT / "scripts" / "run_local.py"


def _load_run_local():
    spec = importlib.util.spec_from_file_location("run_local", RUN_LOCAL)
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_local"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


run_local = _load_run_local()


def _free_ports_env() -> dict[str, str]:
    return {run_local.port_variable(name): str(free_port()) for name in run_local.SERVICES}


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("taken", ["firestore", "spend"])
def test_a_taken_port_stops_the_run_naming_the_port_before_anything_starts(tmp_path, taken):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    number = holder.getsockname()[1]
    env = {**outside_environ(), **_free_ports_env(), run_local.port_variable(taken): str(number)}
    log_dir = tmp_path / "logs"
    started = time.monotonic()
    try:
        process = subprocess.Popen([sys.executable, str(RUN_LOCAL), "--log-dir", str(log_dir)], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            out, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    finally:
        holder.close()
    assert process.returncode == 1
    assert time.monotonic() - started < 30
    message = err.decode()
    assert f"port {number}" in message and run_local.port_variable(taken) in message
    assert "already in use" in message and "nothing was started" in message
    assert "listening" not in out.decode() and "Ctrl-C" not in out.decode()
    # Nothing was started: no log directory, and no process of the run's group is left.
    assert not log_dir.exists()
    deadline = time.monotonic() + 5
    while not _group_gone(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _group_gone(process.pid)


def test_the_same_port_for_two_services_is_refused_before_anything_starts(monkeypatch):
    for name, value in _free_ports_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PUBSUB_PORT", os.environ["FIRESTORE_PORT"])
    with pytest.raises(run_local.RunError, match="FIRESTORE_PORT.*PUBSUB_PORT"):
        run_local.ports()


def test_a_port_in_time_wait_or_unused_counts_as_free_and_a_listener_as_taken():
    number = free_port()
    assert not run_local.port_in_use(number)
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", number))
        listener.listen()
        assert run_local.port_in_use(number)


def _listening_only_on_loopback(number: int) -> None:
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", number)) == 0
    if sys.platform.startswith("linux"):
        # All of 127/8 is this machine on Linux: a server bound to 0.0.0.0 would answer here too.
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.2", number)) != 0


def test_the_local_console_asks_who_you_are_and_never_runs_its_sign_in_in_google_cloud(firestore_emulator, tmp_path):
    number = free_port()
    env = run_local.console_env({**os.environ, "PYTHONPATH": str(ROOT), "FIRESTORE_EMULATOR_HOST": firestore_emulator.host})
    log_path = tmp_path / "console.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(run_local.function_command("console", number), env=env, stdout=log_file,
                                   stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        run_local.wait_for_port(number, process, "console", log_path, timeout=60)
        _listening_only_on_loopback(number)
        with urllib.request.urlopen(f"http://127.0.0.1:{number}/", timeout=10) as page:
            assert page.url.endswith("/sign-in?next=/?")  # redirected to name the actor
            assert 'name="actor"' in page.read().decode()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    # Where Cloud Run runs it (K_SERVICE set) the development sign-in is refused, not served.
    from console.config import load
    from shared.common.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        load({**env, "K_SERVICE": "console"})


@pytest.mark.parametrize("which", ["spend", "operator_sweeps", "stripe_api"])
def test_the_local_run_serves_its_functions_and_stand_in_on_127_0_0_1_only(firestore_emulator, tmp_path, which):
    number = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FIRESTORE_EMULATOR_HOST": firestore_emulator.host}
    command = (run_local.stripe_api_command(number, API_KEY) if which == "stripe_api"
               else run_local.function_command(which, number))
    log_path = tmp_path / f"{which}.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        run_local.wait_for_port(number, process, which, log_path, timeout=60)
        _listening_only_on_loopback(number)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def test_kept_firestore_data_comes_back_after_an_export_and_a_wipe(firestore_emulator, db, tmp_path):
    db.collection("users_credits").document("kept-user").set({"credits_monthly": 0, "credits_permanent": 7})
    assert not run_local.import_data(firestore_emulator, PROJECT, tmp_path)  # nothing exported yet
    run_local.export_data(firestore_emulator, PROJECT, tmp_path)
    firestore_emulator.reset()
    assert user_doc(db, "kept-user") is None
    assert run_local.import_data(firestore_emulator, PROJECT, tmp_path)
    assert user_doc(db, "kept-user")["credits_permanent"] == 7


@pytest.fixture
def local_stripe(firestore_emulator, db, monkeypatch):
    """The stand-in and the real webhook as the local run wires them, and the event script's settings."""
    stand_in = FakeStripe(API_KEY).start()
    env = {"FIRESTORE_EMULATOR_HOST": firestore_emulator.host, "STRIPE_API_BASE": stand_in.base,
           "STRIPE_API_KEY": API_KEY, "STRIPE_WEBHOOK_SECRET": SECRET, "CREDITS_CATALOG": str(CATALOG),
           "GOOGLE_CLOUD_PROJECT": PROJECT}
    try:
        with serve_function("stripe_webhook", env=env) as url:
            for name in ("STRIPE_API_BASE", "STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET"):
                monkeypatch.setenv(name, env[name])
            monkeypatch.setenv("STRIPE_WEBHOOK_URL", url + "/")
            yield stand_in
    finally:
        stand_in.stop()



def test_a_local_pack_is_granted_then_taken_back_by_its_refund(local_stripe, db, capsys):
    assert stripe_event.main(["pack", "local-buyer"]) == 0
    assert "checkout.session.completed" in capsys.readouterr().out
    assert local_stripe.created  # the session was created at the stand-in, as the app would at Stripe
    assert user_doc(db, "local-buyer")["credits_permanent"] == 500
    assert stripe_event.main(["refund", "local-buyer", "--refunded", "500"]) == 0
    assert user_doc(db, "local-buyer")["credits_permanent"] == 250
    assert stripe_event.main(["refund", "local-buyer"]) == 0
    assert user_doc(db, "local-buyer")["credits_permanent"] == 0
    out = capsys.readouterr().out
    assert "charge.refunded" in out and "-> 200" in out


def test_a_local_dispute_takes_a_pack_back_and_a_won_dispute_returns_it(local_stripe, db, capsys):
    assert stripe_event.main(["pack", "local-disputer", "--quantity", "2"]) == 0
    assert user_doc(db, "local-disputer")["credits_permanent"] == 1000
    assert stripe_event.main(["dispute", "local-disputer"]) == 0
    assert user_doc(db, "local-disputer")["credits_permanent"] == 0
    assert stripe_event.main(["dispute", "local-disputer", "--close", "won"]) == 0
    assert user_doc(db, "local-disputer")["credits_permanent"] == 1000


def test_the_event_script_says_what_to_do_when_the_user_has_no_local_pack(local_stripe, capsys):
    assert stripe_event.main(["refund", "nobody-bought"]) == 2
    assert "pack nobody-bought" in capsys.readouterr().err


def test_the_topup_script_says_what_to_do_when_there_is_no_top_up_or_no_local_run(local_stripe, capsys,
                                                                                   monkeypatch):
    assert stripe_event.main(["topup", "nobody-topped-up", "--resend"]) == 2
    assert "topup nobody-topped-up" in capsys.readouterr().err
    assert stripe_event.main(["topup", "nobody-topped-up", "--complete"]) == 2
    assert "that is requires_action" in capsys.readouterr().err
    monkeypatch.setenv("SPEND_URL", f"http://127.0.0.1:{free_port()}")
    assert stripe_event.main(["topup", "nobody-topped-up"]) == 2
    assert "run-local.sh running?" in capsys.readouterr().err
    # The card was saved at the stand-in before the spend function was asked.
    customer = local_stripe.customers["cus_local_nobody-topped-up"]
    assert customer["invoice_settings"]["default_payment_method"] == "pm_card_visa"


def test_the_previous_runs_logs_are_moved_beside_the_new_ones_and_only_one_run_back(tmp_path):
    logs = tmp_path / "logs"
    assert run_local.rotate_logs(logs) is None  # a first run: nothing to keep
    logs.mkdir()
    (logs / "spend.log").write_text("run 1\n")
    assert run_local.rotate_logs(logs) == logs / "previous"
    assert (logs / "previous" / "spend.log").read_text() == "run 1\n" and not (logs / "spend.log").exists()
    (logs / "spend.log").write_text("run 2\n")
    run_local.rotate_logs(logs)
    assert (logs / "previous" / "spend.log").read_text() == "run 2\n"


def _top_up_on_the_run(env: dict[str, str]) -> None:
    """On a started local run, as an app developer would: a spend below the threshold is charged at
    the stand-in, the credits land, and `topup.succeeded` reaches the events topic; then a declined
    card, and a payment waiting for authentication that the customer completes."""
    user = "local-topper"
    tools = {**env, "PYTHONPATH": str(ROOT), "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{env['FIRESTORE_PORT']}",
             "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{env['PUBSUB_PORT']}",
             "GOOGLE_CLOUD_PROJECT": env.get("GOOGLE_CLOUD_PROJECT") or PROJECT}

    def run(*argv: str, code: int = 0) -> str:
        done = subprocess.run(list(argv), env=tools, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == code, done.stdout + done.stderr
        return done.stdout + done.stderr

    def topup(*argv: str, code: int = 0) -> str:
        return run(str(ROOT / "scripts" / "local-stripe-event"), "topup", user, *argv, code=code)

    run(sys.executable, "-m", "tools.credits", "adjust", user, "--pool", "permanent", "--amount=150",
        "--reason", "local top-up test", "--operator", "test")
    out = topup()
    assert "spent 51 credits: the balance went from 150 to 99" in out, out
    assert "succeeded; the setting is active, 0 failures; balance 599" in out, out
    assert '"outcome":"duplicate"' in topup("--resend").replace(" ", "")

    events: list[dict] = []
    deadline = time.monotonic() + 60
    while not any(e["event_type"] == "topup.succeeded" for e in events) and time.monotonic() < deadline:
        tail = run(sys.executable, "-m", "tools.credits", "events", "tail", "--json", "--timeout", "2")
        events += [json.loads(line) for line in tail.splitlines() if line.startswith("{")]
    [succeeded] = [e for e in events if e["event_type"] == "topup.succeeded"]
    assert (succeeded["user_id"], succeeded["data"]["credits"]) == (user, 500)

    out = topup("--card", "declined", "--threshold", "700")
    assert "requires_payment_method; the setting is active, 1 failures; balance 599" in out, out
    out = topup("--card", "authentication-required", "--threshold", "700")
    assert "requires_action; the setting is action_required (authentication_required)" in out, out
    assert f"topup {user} --complete" in out
    assert "balance 599 -> 1099" in topup("--complete")


def test_the_local_run_tops_up_end_to_end_refuses_a_second_run_and_ctrl_c_says_what_it_stopped(tmp_path):
    env = {**outside_environ(), **_free_ports_env(), "CREDITS_LOCAL_LOGS": str(tmp_path / "logs")}
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "spend.log").write_text("the run before\n")
    first = subprocess.Popen([str(ROOT / "scripts" / "run-local.sh")], env=env, cwd=ROOT, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        started = read_until(first.stdout, "Ctrl-C stops everything.", timeout=180)
        assert "the previous run's in" in started
        assert (tmp_path / "logs" / "previous" / "spend.log").read_text() == "the run before\n"
        assert "source .venv/bin/activate" in started
        console = f"http://127.0.0.1:{env['CONSOLE_PORT']}/"
        assert f"support console     {console}" in started
        with urllib.request.urlopen(console + "sign-in", timeout=10) as page:
            assert "Sign in (development)" in page.read().decode()
        _top_up_on_the_run(env)

        # A second run while the first one runs: the taken port is named before any install.
        clock = time.monotonic()
        second = subprocess.run([str(ROOT / "scripts" / "run-local.sh")], env=env, cwd=ROOT, text=True,
                                capture_output=True, timeout=60)
        elapsed = time.monotonic() - clock
        assert second.returncode == 1, second.stdout + second.stderr
        assert "already in use" in second.stderr and "FIRESTORE_PORT" in second.stderr
        assert elapsed < 5, f"the second run took {elapsed:.1f}s to refuse"

        # Ctrl-C in the terminal: SIGINT to the run's whole process group.
        os.killpg(first.pid, signal.SIGINT)
        rest, _ = first.communicate(timeout=90)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    assert first.returncode == 0, rest
    stopped = next(line for line in rest.splitlines() if line.startswith("run-local: stopped "))
    for name in ("spend", "stripe_webhook", "promo_grant", "ledger_events", "stripe-api", "console",
                 "Pub/Sub emulator", "Firestore emulator"):
        assert name in stopped
    assert "emulator data discarded" in stopped
    ports = [int(v) for k, v in env.items() if k.endswith("_PORT") and k[:-5].lower() in run_local.SERVICES]
    deadline = time.monotonic() + 20
    while any(run_local.port_in_use(p) for p in ports) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in ports if run_local.port_in_use(p)]


def test_a_local_subscription_lives_its_whole_life_through_the_real_webhook(local_stripe, db, capsys, tmp_path,
                                                                            monkeypatch):
    from shared.spending import service as spending

    state = tmp_path / "state"
    monkeypatch.setenv("CREDITS_LOCAL_STATE", str(state))
    monkeypatch.setenv("CREDITS_CATALOG", str(CATALOG))  # the webhook's catalog: starter 300, pro 1000 (cap 500)
    user = "local-subscriber"

    def step(*argv, code=0):
        assert stripe_event.main([*argv, user]) == code
        return capsys.readouterr()

    def monthly():
        return user_doc(db, user)["credits_monthly"]

    out = step("subscribe").out
    assert "checkout.session.completed" in out and "invoice.paid" in out and "price_starter_monthly, period 1" in out
    assert monthly() == 300
    spending.spend(user, 100, "a story")
    step("renew")
    assert monthly() == 300  # starter rolls nothing over
    step("upgrade")
    assert monthly() == 1000  # pro's allowance less what starter granted this period
    step("renew")
    assert monthly() == 1500  # pro: 1000, and 500 of the 1000 left
    assert '"outcome":"ignored"' in step("downgrade").out.replace(" ", "")  # the smaller plan comes at renewal
    assert monthly() == 1500
    step("pause")
    assert monthly() == 0
    refused = step("renew", code=2)
    assert "paused" in refused.err and "nothing was sent" in refused.err
    step("resume")
    assert monthly() == 0
    out = step("renew").out
    assert "price_starter_monthly, period 4" in out and monthly() == 300
    step("cancel")
    assert monthly() == 0
    assert "subscribe local-subscriber" in step("renew", code=2).err

    kept = json.loads((state / "stripe-subscriptions.json").read_text())[user]
    assert (kept["period"], kept["status"], kept["price"]) == (4, "canceled", "price_starter_monthly")
    assert not (ROOT / "stripe-subscriptions.json").exists()
    # A new subscription after the cancellation starts over at period 1.
    step("subscribe", "--price", "price_pro_monthly")
    assert monthly() == 1000


def test_the_install_step_installs_nothing_when_nothing_changed():
    install = [str(ROOT / "scripts" / "install.sh")]
    first = subprocess.run(install, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    stamp = ROOT / ".venv" / ".install.sha256"
    written = stamp.stat().st_mtime_ns
    clock = time.monotonic()
    again = subprocess.run(install, capture_output=True, text=True, timeout=600)
    elapsed = time.monotonic() - clock
    assert again.returncode == 0, again.stderr
    assert elapsed < 3, f"the install step took {elapsed:.1f}s with nothing changed"
    assert stamp.stat().st_mtime_ns == written  # no install ran, so the stamp was not rewritten
