"""Start and stop the real gcloud emulators on free loopback ports, for tests and benchmarks.

By default every test session starts its own emulators. `CREDITS_TEST_FIRESTORE` and
`CREDITS_TEST_PUBSUB` (`host:port`) point a session at emulators that are already running
instead, and `CREDITS_TEST_PROJECT` gives it a project id of its own there, so several
sessions can share two emulators without seeing each other's documents.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Optional

PROJECT = os.environ.get("CREDITS_TEST_PROJECT", "demo-credits")


# Ports the tests give their servers come from below the kernel's ephemeral range: the emulators
# bind a few extra ports of their own there (the Firestore emulator three, Pub/Sub one), chosen by
# the kernel, and one of them could otherwise take a port picked here before its server binds it.
_PICKED = range(20000, 32000)
_taken_here: set[int] = set()


def _ephemeral_start() -> int:
    try:
        return int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port free now, outside the ephemeral range, and not handed out before in this process."""
    top = min(_PICKED.stop, _ephemeral_start())
    for _ in range(200):
        number = random.randrange(_PICKED.start, top)
        if number in _taken_here:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", number))
            except OSError:
                continue
        _taken_here.add(number)
        return number
    with socket.socket() as sock:  # a machine whose low ports are all in use: the kernel's choice
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Emulator:
    """One gcloud emulator process group: `start()` waits until it answers, `stop()` kills it."""

    COMMANDS = {
        "firestore": ["gcloud", "emulators", "firestore", "start"],
        "pubsub": ["gcloud", "beta", "emulators", "pubsub", "start", f"--project={PROJECT}"],
    }

    def __init__(self, kind: str, port: Optional[int] = None, extra_args: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.port = port or free_port()
        self.extra_args = extra_args
        self.process: Optional[subprocess.Popen] = None
        self.log_path = Path(tempfile.gettempdir()) / f"{kind}-emulator-{self.port}.log"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @classmethod
    def shared_or_started(cls, kind: str) -> "Emulator":
        """The running emulator named by `CREDITS_TEST_<KIND>`, or a new one of this session's."""
        host = os.environ.get(f"CREDITS_TEST_{kind.upper()}")
        if host:
            emulator = cls(kind, port=int(host.rsplit(":", 1)[1]))
            emulator.shared = True
            if not emulator.answers():
                raise RuntimeError(f"CREDITS_TEST_{kind.upper()}={host} does not answer")
            return emulator
        return cls(kind).start()

    shared = False

    def start(self, timeout: float = 90.0) -> "Emulator":
        log = open(self.log_path, "ab")
        args = self.COMMANDS[self.kind] + [f"--host-port={self.host}", *self.extra_args]
        # A session of its own, so stop() can kill gcloud and the Java process it spawns.
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} emulator exited; see {self.log_path}")
            if self.answers():
                return self
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"{self.kind} emulator did not start in {timeout}s; see {self.log_path}")

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}/", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.shared or self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process = None
        # The port is free again only once the Java process is gone.
        deadline = time.monotonic() + 15
        while self.answers() and time.monotonic() < deadline:
            time.sleep(0.2)

    def reset(self, project: str = PROJECT) -> None:
        """Delete every document of `project` (Firestore only): each test starts from an empty database."""
        request = urllib.request.Request(
            f"http://{self.host}/emulator/v1/projects/{project}/databases/(default)/documents", method="DELETE"
        )
        urllib.request.urlopen(request, timeout=30).close()

    def load_rules(self, project: str, rules: Path) -> None:
        """Put `rules` in force for `project` only (Firestore only), as the Firebase emulator tools do.

        Other projects keep the rules the emulator started with; server clients (the functions,
        the tests' admin client) send the emulator's `Bearer owner` credential, which rules do
        not govern, as server credentials in production."""
        body = json.dumps({"rules": {"files": [{"name": rules.name, "content": rules.read_text()}]}}).encode()
        request = urllib.request.Request(
            f"http://{self.host}/emulator/v1/projects/{project}:securityRules", data=body, method="PUT",
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=30).close()
