"""Run the whole system locally: both emulators and every function, until Ctrl-C.

Ports (each can be moved with the environment variable named beside it):
  Firestore emulator  8080  FIRESTORE_PORT
  Pub/Sub emulator    8085  PUBSUB_PORT
  spend               8081  SPEND_PORT
  stripe_webhook      8082  STRIPE_WEBHOOK_PORT
  promo_grant         8083  PROMO_GRANT_PORT
  ledger_events       8084  LEDGER_EVENTS_PORT  (fed by scripts/local_events.py, as Eventarc would)
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.emulators import PROJECT, Emulator  # noqa: E402

FUNCTIONS = {"spend": 8081, "stripe_webhook": 8082, "promo_grant": 8083, "ledger_events": 8084}


def port(name: str, default: int) -> int:
    return int(os.environ.get(f"{name.upper()}_PORT", default))


def wait_for_port(port_number: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process on port {port_number} exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port_number)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on port {port_number} after {timeout}s")


_PAGE_TOKEN_KEY = secrets.token_urlsafe(32)


def function_env(firestore: Emulator, pubsub: Emulator) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOOGLE_CLOUD_PROJECT", PROJECT)
    env["FIRESTORE_EMULATOR_HOST"] = firestore.host
    env["PUBSUB_EMULATOR_HOST"] = pubsub.host
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("CREDITS_CATALOG", str(ROOT / "config" / "catalog.example.json"))
    env.setdefault("STRIPE_WEBHOOK_SECRET", "whsec_local_development_secret")
    env.setdefault("STRIPE_API_KEY", "sk_test_local_development_key")
    # One key for this run, so page tokens continue across the functions' restarts of this run.
    env.setdefault("CREDITS_PAGE_TOKEN_KEY", _PAGE_TOKEN_KEY)
    return env


def after_start(firestore: Emulator, pubsub: Emulator, ports: dict[str, int]) -> list[subprocess.Popen]:
    """Wiring that needs the emulators and functions up (topics, subscriptions, forwarders)."""
    promo = ROOT / "scripts" / "local_pubsub.py"
    if promo.exists() and "promo_grant" in ports:
        subprocess.run(
            [sys.executable, str(promo), f"http://127.0.0.1:{ports['promo_grant']}/"],
            env=function_env(firestore, pubsub),
            check=True,
        )
    events = ROOT / "scripts" / "local_events.py"
    if events.exists() and "ledger_events" in ports:
        # Creates the events topic, then forwards document changes until stopped.
        return [subprocess.Popen([sys.executable, str(events), f"http://127.0.0.1:{ports['ledger_events']}/"],
                                 env=function_env(firestore, pubsub))]
    return []


def main() -> int:
    firestore = Emulator("firestore", port("firestore", 8080))
    pubsub = Emulator("pubsub", port("pubsub", 8085))
    processes: list[subprocess.Popen] = []

    def shutdown(*_args) -> None:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        pubsub.stop()
        firestore.stop()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        print(f"starting Firestore emulator on {firestore.host} and Pub/Sub emulator on {pubsub.host} ...", flush=True)
        firestore.start()
        pubsub.start()
        env = function_env(firestore, pubsub)
        ports: dict[str, int] = {}
        for name, default in FUNCTIONS.items():
            source = ROOT / "functions" / name / "main.py"
            if not source.exists():
                continue
            ports[name] = port(name, default)
            processes.append(
                subprocess.Popen(
                    [str(Path(sys.executable).parent / "functions-framework"), "--source", str(source),
                     "--target", name, "--port", str(ports[name])],
                    env=env,
                )
            )
            wait_for_port(ports[name], processes[-1])
        processes.extend(after_start(firestore, pubsub, ports))
        print(f"Firestore emulator  listening on {firestore.host}   (FIRESTORE_EMULATOR_HOST={firestore.host})")
        print(f"Pub/Sub emulator    listening on {pubsub.host}   (PUBSUB_EMULATOR_HOST={pubsub.host})")
        for name, number in ports.items():
            print(f"{name:<19} listening on http://127.0.0.1:{number}/")
        print("Ctrl-C stops everything.", flush=True)
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
        print("a function exited; stopping", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        shutdown()


if __name__ == "__main__":
    sys.exit(main())
