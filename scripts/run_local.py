"""Run the whole system locally: both emulators, a Stripe API stand-in and every function, until Ctrl-C.

Ports (each can be moved with the environment variable named beside it):
  Firestore emulator  8080  FIRESTORE_PORT
  Pub/Sub emulator    8085  PUBSUB_PORT
  spend               8081  SPEND_PORT
  stripe_webhook      8082  STRIPE_WEBHOOK_PORT
  promo_grant         8083  PROMO_GRANT_PORT
  ledger_events       8084  LEDGER_EVENTS_PORT  (fed by scripts/local_events.py, as Eventarc would)
  Stripe API stand-in 8086  STRIPE_API_PORT     (tools/local/stripe_api.py; STRIPE_API_BASE points at it)
  balance page        8087  WEB_PORT            (tools/local/web_page.py: clients/web, the balance live)
  operator_sweeps     8088  OPERATOR_SWEEPS_PORT  (the sweeps Cloud Scheduler calls in Google Cloud)
  auto_topup          8089  AUTO_TOPUP_PORT   (fed each new credits_topups attempt by scripts/local_events.py)
  support console     8090  CONSOLE_PORT      (functions/console, with the development sign-in: name
                                               yourself and pick a role; IAP does this in Google Cloud)

The Stripe stand-in answers auto top-up's prices, customers and PaymentIntents and sends the
matching webhooks (`payment_intent.succeeded` / `.payment_failed`), signed, to the local
`stripe_webhook`, as Stripe would.

The Firestore emulator enforces terraform/firestore.rules on clients, as Google Cloud does (the
functions and the operator command use the emulator's owner credential, which rules do not govern).
Every port is checked before anything starts: a port something else serves stops the run with its
name, so the functions never talk to a stranger's server. Everything listens on 127.0.0.1 only.
Each process writes its output to a log file of its own under the log directory (printed at start);
the previous run's logs are moved to `previous/` inside it, so the last two runs' logs are kept.
Emulator data lives in memory and is lost when the run stops, unless `--keep-data DIR`: then the
Firestore data is exported to DIR when the run stops and imported from it at the next start.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.emulators import PROJECT, Emulator  # noqa: E402

HOST = "127.0.0.1"
FUNCTIONS = {"spend": 8081, "stripe_webhook": 8082, "promo_grant": 8083, "ledger_events": 8084,
             "operator_sweeps": 8088, "auto_topup": 8089}
# What the run serves, in start order: name -> (default port, what it is).
SERVICES = {
    "firestore": (8080, "Firestore emulator"),
    "pubsub": (8085, "Pub/Sub emulator"),
    "stripe_api": (8086, "Stripe API stand-in"),
    **{name: (number, f"function {name}") for name, number in FUNCTIONS.items()},
    "web": (8087, "balance page"),
    "console": (8090, "support console"),
}
RULES = ROOT / "terraform" / "firestore.rules"
EXPORT_NAME = "firestore_export"
SEED_USER, SEED_CREDITS = "user123", 500
LOCAL_WEBHOOK_SECRET = "whsec_local_development_secret"
LOCAL_API_KEY = "sk_test_local_development_key"


class RunError(Exception):
    """The local run cannot start or keep running; the message says why and what to do."""


def port_variable(name: str) -> str:
    return f"{name.upper()}_PORT"


def port(name: str, default: int) -> int:
    text = os.environ.get(port_variable(name), str(default))
    try:
        number = int(text)
    except ValueError:
        raise RunError(f"{port_variable(name)}={text!r} is not a port number") from None
    if not 0 < number < 65536:
        raise RunError(f"{port_variable(name)}={number} is not a port number")
    return number


def ports() -> dict[str, int]:
    """Every service's port, from the environment; two services on one port is refused."""
    chosen = {name: port(name, default) for name, (default, _) in SERVICES.items()}
    seen: dict[int, str] = {}
    for name, number in chosen.items():
        if number in seen:
            raise RunError(f"port {number} is given to both {SERVICES[seen[number]][1]} ({port_variable(seen[number])}) "
                           f"and {SERVICES[name][1]} ({port_variable(name)})")
        seen[number] = name
    return chosen


def port_in_use(number: int, host: str = HOST) -> bool:
    """Whether something answers on the port, or holds it so that we could not bind it."""
    with socket.socket() as probe:
        probe.settimeout(1)
        if probe.connect_ex((host, number)) == 0:
            return True
    with socket.socket() as probe:
        # SO_REUSEADDR: a port left in TIME_WAIT by an earlier run is free; a listener is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, number))
        except OSError:
            return True
    return False


def check_ports_free(chosen: dict[str, int]) -> None:
    taken = [name for name, number in chosen.items() if port_in_use(number)]
    if taken:
        lines = [
            f"port {chosen[name]} ({SERVICES[name][1]}) is already in use on {HOST}: "
            f"stop what listens there, or move it, e.g. {port_variable(name)}={free_port_hint(chosen[name])}"
            for name in taken
        ]
        raise RunError("\n".join(lines) + "\nnothing was started.")


def rotate_logs(log_dir: Path) -> Optional[Path]:
    """Move the last run's logs into `log_dir/previous` (replacing the run before it); where they went,
    or None when there were none."""
    logs = sorted(log_dir.glob("*.log")) if log_dir.is_dir() else []
    if not logs:
        return None
    previous = log_dir / "previous"
    if previous.exists():
        for old in previous.glob("*.log"):
            old.unlink()
    previous.mkdir(parents=True, exist_ok=True)
    for log in logs:
        log.rename(previous / log.name)
    return previous


def free_port_hint(number: int) -> int:
    candidate = number + 10000 if number < 55000 else number - 10000
    return candidate


def function_command(name: str, number: int) -> list[str]:
    """functions-framework serving one function on the loopback interface only."""
    return [str(Path(sys.executable).parent / "functions-framework"), "--source",
            str(ROOT / "functions" / name / "main.py"), "--target", name, "--host", HOST, "--port", str(number)]


def stripe_api_command(number: int, api_key: str, webhook_url: Optional[str] = None,
                       webhook_secret: Optional[str] = None) -> list[str]:
    command = [sys.executable, "-m", "tools.local.stripe_api", "--host", HOST, "--port", str(number),
               "--api-key", api_key]
    if webhook_url and webhook_secret:
        # The webhooks Stripe would send for auto top-up's PaymentIntents, signed, to the local endpoint.
        command += ["--webhook-url", webhook_url, "--webhook-secret", webhook_secret]
    return command


def web_page_command(number: int, firestore_host: str, project: str) -> list[str]:
    """The example balance page (clients/web), read from the Firestore emulator under the client rules."""
    return [sys.executable, "-m", "tools.local.web_page", "--host", HOST, "--port", str(number),
            "--firestore", firestore_host, "--project", project, "--user", SEED_USER]


def console_env(env: dict[str, str]) -> dict[str, str]:
    """The support console's settings for a local run: the development sign-in (never in Google
    Cloud: the console refuses it where K_SERVICE is set), a signing key for this run only."""
    return {**env, "CONSOLE_DEV_SIGN_IN": "1", "CONSOLE_SECRET_KEY": secrets.token_urlsafe(32),
            "CONSOLE_AGENT_ADJUST_LIMIT": env.get("CONSOLE_AGENT_ADJUST_LIMIT", "1000")}


def wait_for_port(number: int, process: subprocess.Popen, what: str, log_path: Path, timeout: float = 60) -> None:
    """Until `process` serves `number`; the port was free before it started, so the server is ours."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RunError(f"{what} exited with {process.returncode} before serving port {number}; see {log_path}")
        with socket.socket() as sock:
            if sock.connect_ex((HOST, number)) == 0:
                return
        time.sleep(0.2)
    raise RunError(f"{what} does not serve port {number} after {timeout:.0f}s; see {log_path}")


_PAGE_TOKEN_KEY = secrets.token_urlsafe(32)


def function_env(firestore: Emulator, pubsub: Emulator, stripe_api_port: Optional[int] = None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOOGLE_CLOUD_PROJECT", PROJECT)
    env["FIRESTORE_EMULATOR_HOST"] = firestore.host
    env["PUBSUB_EMULATOR_HOST"] = pubsub.host
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("CREDITS_CATALOG", str(ROOT / "config" / "catalog.example.json"))
    env.setdefault("STRIPE_WEBHOOK_SECRET", LOCAL_WEBHOOK_SECRET)
    env.setdefault("STRIPE_API_KEY", LOCAL_API_KEY)
    if stripe_api_port is not None:
        # Never Stripe itself: the key is a made-up one, and add-on packs are read from the stand-in.
        env["STRIPE_API_BASE"] = f"http://{HOST}:{stripe_api_port}"
    # One key for this run, so page tokens continue across the functions' restarts of this run.
    env.setdefault("CREDITS_PAGE_TOKEN_KEY", _PAGE_TOKEN_KEY)
    return env


def export_metadata(directory: Path) -> Path:
    return directory / EXPORT_NAME / f"{EXPORT_NAME}.overall_export_metadata"


def _emulator_call(firestore: Emulator, project: str, action: str, body: dict[str, str]) -> None:
    request = urllib.request.Request(
        f"http://{firestore.host}/emulator/v1/projects/{project}:{action}",
        data=json.dumps({"database": f"projects/{project}/databases/(default)", **body}).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )
    urllib.request.urlopen(request, timeout=120).close()


def import_data(firestore: Emulator, project: str, directory: Path) -> bool:
    """Load what an earlier run exported to `directory`; False when there is nothing there yet."""
    metadata = export_metadata(directory)
    if not metadata.exists():
        return False
    _emulator_call(firestore, project, "import", {"export_directory": str(metadata)})
    return True


def export_data(firestore: Emulator, project: str, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    _emulator_call(firestore, project, "export", {"export_directory": str(directory), "export_name": EXPORT_NAME})


@dataclass
class Started:
    name: str
    process: subprocess.Popen
    log_path: Path


class LocalRun:
    """The processes of one run, started in order and stopped in reverse."""

    def __init__(self, log_dir: Path, keep_data: Optional[Path]) -> None:
        self.log_dir = log_dir
        self.keep_data = keep_data
        self.chosen = ports()
        # The client rules in force, so the balance page reads exactly what the app's client may.
        self.firestore = Emulator("firestore", self.chosen["firestore"], extra_args=(f"--rules={RULES}",))
        self.pubsub = Emulator("pubsub", self.chosen["pubsub"])
        self.firestore.log_path = log_dir / "firestore-emulator.log"
        self.pubsub.log_path = log_dir / "pubsub-emulator.log"
        self.started: list[Started] = []
        self.project = os.environ.get("GOOGLE_CLOUD_PROJECT") or PROJECT
        self.exported = False

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def spawn(self, name: str, command: list[str], env: dict[str, str]) -> Started:
        log_path = self.log(name)
        with open(log_path, "wb") as log_file:
            # A session of its own, so stop() reaches the worker processes a server forks too.
            process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=ROOT,
                                       start_new_session=True)
        started = Started(name, process, log_path)
        self.started.append(started)
        return started

    def start_emulator(self, emulator: Emulator, what: str) -> None:
        emulator.log_path.write_bytes(b"")
        try:
            emulator.start()
        except RuntimeError as exc:
            raise RunError(f"{what} did not start on {emulator.host}: {exc}") from None
        # Answering is not enough: it must be the process we started (the port was free before).
        time.sleep(0.5)
        if emulator.process is None or emulator.process.poll() is not None:
            raise RunError(f"{what} exited right after starting on {emulator.host}; see {emulator.log_path}")

    def start(self) -> None:
        check_ports_free(self.chosen)
        previous = rotate_logs(self.log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        print(f"logs in {self.log_dir}" + (f" (the previous run's in {previous})" if previous else ""), flush=True)
        print(f"starting Firestore emulator on {self.firestore.host} and Pub/Sub emulator on {self.pubsub.host} ...",
              flush=True)
        self.start_emulator(self.firestore, "the Firestore emulator")
        if self.keep_data and import_data(self.firestore, self.project, self.keep_data):
            print(f"Firestore data      imported from {self.keep_data}", flush=True)
        self.start_emulator(self.pubsub, "the Pub/Sub emulator")
        env = function_env(self.firestore, self.pubsub, self.chosen["stripe_api"])
        secret = env["STRIPE_WEBHOOK_SECRET"].split(",")[0].strip()
        stripe_api = self.spawn("stripe-api", stripe_api_command(
            self.chosen["stripe_api"], env["STRIPE_API_KEY"], f"http://{HOST}:{self.chosen['stripe_webhook']}/",
            secret), env)
        wait_for_port(self.chosen["stripe_api"], stripe_api.process, "the Stripe API stand-in", stripe_api.log_path)
        for name in FUNCTIONS:
            if not (ROOT / "functions" / name / "main.py").exists():
                continue
            started = self.spawn(name, function_command(name, self.chosen[name]), env)
            wait_for_port(self.chosen[name], started.process, f"function {name}", started.log_path)
        self.after_start(env)
        web = self.spawn("web", web_page_command(self.chosen["web"], self.firestore.host, self.project), env)
        wait_for_port(self.chosen["web"], web.process, "the balance page", web.log_path)
        console = self.spawn("console", function_command("console", self.chosen["console"]), console_env(env))
        wait_for_port(self.chosen["console"], console.process, "the support console", console.log_path)

    def after_start(self, env: dict[str, str]) -> None:
        """Wiring that needs the emulators and functions up (topics, subscriptions, forwarders)."""
        subprocess.run([sys.executable, str(ROOT / "scripts" / "local_pubsub.py"),
                        f"http://{HOST}:{self.chosen['promo_grant']}/"], env=env, check=True)
        # Creates the events topic, then forwards document changes until stopped.
        self.spawn("ledger-events-forwarder", [sys.executable, str(ROOT / "scripts" / "local_events.py"),
                                               f"http://{HOST}:{self.chosen['ledger_events']}/",
                                               f"http://{HOST}:{self.chosen['auto_topup']}/"], env)

    def seed(self, env: dict[str, str]) -> None:
        """Grant the demo user credits through the operator command (once: the key makes it idempotent)."""
        subprocess.run([sys.executable, "-m", "tools.credits", "adjust", SEED_USER, "--pool", "permanent",
                        f"--amount={SEED_CREDITS}", "--reason", "local demo credits", "--operator", "run-local",
                        "--idempotency-key", f"local-seed-{SEED_USER}"],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"seeded              {SEED_USER} with {SEED_CREDITS} permanent credits (once per Firestore data)",
              flush=True)

    def summary(self) -> None:
        f, p = self.firestore, self.pubsub
        print(f"Firestore emulator  listening on {f.host}   (FIRESTORE_EMULATOR_HOST={f.host})  log {f.log_path}")
        print(f"Pub/Sub emulator    listening on {p.host}   (PUBSUB_EMULATOR_HOST={p.host})  log {p.log_path}")
        print(f"Stripe API stand-in listening on http://{HOST}:{self.chosen['stripe_api']}/  log {self.log('stripe-api')}")
        for started in self.started:
            if started.name in FUNCTIONS:
                print(f"{started.name:<19} listening on http://{HOST}:{self.chosen[started.name]}/  log {started.log_path}")
        print(f"{'events forwarder':<19} log {self.log('ledger-events-forwarder')}")
        print(f"{'balance page':<19} http://{HOST}:{self.chosen['web']}/?uid={SEED_USER}  log {self.log('web')}")
        print(f"{'support console':<19} http://{HOST}:{self.chosen['console']}/  (sign in with any name and a role)  "
              f"log {self.log('console')}")
        if self.keep_data:
            print(f"Firestore data is exported to {self.keep_data} when the run stops (Ctrl-C).")
        else:
            print("Emulator data is in memory only: it is lost when the run stops (keep it with --keep-data DIR).")
        print("Operator command: `source .venv/bin/activate` in another shell, then `credits --help`.")
        print("Ctrl-C stops everything.", flush=True)

    def watch(self) -> None:
        """Until a process exits: then the run stops, naming it and its log."""
        while True:
            for started in self.started:
                if started.process.poll() is not None:
                    raise RunError(f"{started.name} exited with {started.process.returncode}; see {started.log_path}")
            for emulator, what in ((self.firestore, "the Firestore emulator"), (self.pubsub, "the Pub/Sub emulator")):
                if emulator.process is not None and emulator.process.poll() is not None:
                    raise RunError(f"{what} exited; see {emulator.log_path}")
            time.sleep(0.5)

    def stop(self) -> list[str]:
        """Stop everything this run started, in reverse order; what was stopped, by name."""
        stopped = [started.name for started in reversed(self.started)]
        stopped += [what for emulator, what in ((self.pubsub, "Pub/Sub emulator"), (self.firestore, "Firestore emulator"))
                    if emulator.process is not None]
        for started in reversed(self.started):
            _signal_group(started.process, signal.SIGTERM)
        for started in reversed(self.started):
            try:
                started.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            # Whatever is left of its group (a worker stuck where no signal handler runs) is killed.
            _signal_group(started.process, signal.SIGKILL)
            started.process.wait()
        self.pubsub.stop()
        if self.keep_data and self.firestore.process is not None and self.firestore.answers():
            try:
                export_data(self.firestore, self.project, self.keep_data)
                self.exported = True
                print(f"Firestore data exported to {self.keep_data}", flush=True)
            except OSError as exc:
                print(f"could not export the Firestore data to {self.keep_data}: {exc}", file=sys.stderr, flush=True)
        self.firestore.stop()
        return stopped


def _signal_group(process: subprocess.Popen, number: int) -> None:
    try:
        os.killpg(process.pid, number)
    except (ProcessLookupError, PermissionError):
        pass


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run-local.sh", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep-data", metavar="DIR", type=Path,
                        help="import the Firestore data from DIR at start (if exported there) and export it there at stop")
    parser.add_argument("--seed", action="store_true",
                        help=f"grant {SEED_USER} {SEED_CREDITS} permanent credits once, as `credits adjust` does")
    parser.add_argument("--check-ports", action="store_true",
                        help="only check that every port is free (exit 1 naming a taken one), start nothing")
    parser.add_argument("--log-dir", type=Path, default=Path(os.environ.get("CREDITS_LOCAL_LOGS") or ROOT / ".local-run" / "logs"),
                        help="where each process writes its log (default .local-run/logs, or $CREDITS_LOCAL_LOGS)")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    run: Optional[LocalRun] = None
    if args.check_ports:
        try:
            check_ports_free(ports())
            return 0
        except RunError as exc:
            print(f"run-local: {exc}", file=sys.stderr, flush=True)
            return 1
    try:
        run = LocalRun(args.log_dir.resolve(), args.keep_data.resolve() if args.keep_data else None)
        run.start()
        if args.seed:
            run.seed(function_env(run.firestore, run.pubsub, run.chosen["stripe_api"]))
        run.summary()
        run.watch()
        return 0
    except RunError as exc:
        print(f"run-local: {exc}", file=sys.stderr, flush=True)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"run-local: {' '.join(map(str, exc.cmd[:4]))} ... failed with {exc.returncode}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        if run is not None:
            stopped = run.stop()
            if stopped:
                data = (f"Firestore data exported to {run.keep_data}" if run.exported
                        else f"Firestore data NOT exported to {run.keep_data}" if run.keep_data
                        else "emulator data discarded (keep it with --keep-data DIR)")
                print(f"\nrun-local: stopped {', '.join(stopped)}; {data}; logs in {run.log_dir}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
