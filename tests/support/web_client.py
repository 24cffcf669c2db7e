"""The app's own client in the tests: the real Firebase JavaScript SDK (clients/web, npm package
`firebase`) under Node, signed in as one user against a Firestore emulator.

`SdkClient` runs `clients/web/test/sdk_driver.mjs`, sends it commands and waits for what the SDK
reports (JSON lines), so a test reads like the app's session: open a listener, change something
through a function, see the listener report it.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "clients" / "web"
DRIVER = WEB / "test" / "sdk_driver.mjs"
NODE = shutil.which("node") or "node"

Event = dict[str, Any]


class SdkClient:
    """One Node process with one Firestore instance of the SDK, signed in as `uid` (or nobody)."""

    def __init__(self, host: str, project: str, uid: Optional[str]) -> None:
        address, port = host.rsplit(":", 1)
        args = [NODE, str(DRIVER), "--host", address, "--port", port, "--project", project]
        if uid is not None:
            args += ["--uid", uid]
        self.uid = uid
        self.process = subprocess.Popen(args, cwd=WEB, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, bufsize=1)
        self.events: "queue.Queue[Event]" = queue.Queue()
        self.seen: list[Event] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        self._ids = 0
        self._cursors: dict[str, int] = {}

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            event = json.loads(line)
            event["received_at"] = time.monotonic()
            self.events.put(event)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    def send(self, op: str, **fields: Any) -> str:
        """Send one command; its id (given, or a new one)."""
        if "id" not in fields:
            self._ids += 1
            fields["id"] = f"{op}-{self._ids}"
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.process.stdin.flush()
        return fields["id"]

    def _pump(self, timeout: float) -> bool:
        """Move what the driver reported into `seen`; False if nothing came within `timeout`."""
        try:
            event = self.events.get(timeout=max(timeout, 0.01))
        except queue.Empty:
            if self.process.poll() is not None:
                raise AssertionError(f"the SDK driver exited: {''.join(self.stderr)[-2000:]}") from None
            return False
        self.seen.append(event)
        while not self.events.empty():
            self.seen.append(self.events.get_nowait())
        return True

    def wait_for(self, command_id: str, match: Callable[[Event], bool], timeout: float = 15.0,
                 what: str = "an event") -> Event:
        """The next event of `command_id` (after the last one this returned) that `match`es, or
        that is an error: a listener's events are waited for in order, whatever others came between."""
        deadline = time.monotonic() + timeout
        while True:
            start = self._cursors.get(command_id, 0)
            for index in range(start, len(self.seen)):
                event = self.seen[index]
                if event["id"] == command_id and (event["event"] == "error" or match(event)):
                    self._cursors[command_id] = index + 1
                    return event
            self._cursors[command_id] = max(start, len(self.seen))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {what} within {timeout}s; events: {self.views(command_id)[-5:]}; "
                                     f"stderr: {''.join(self.stderr)[-2000:]}")
            self._pump(min(remaining, 0.5))

    def settle(self, command_id: str, quiet: float = 1.0, timeout: float = 15.0) -> Event:
        """The last event of `command_id` once it reported nothing new for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            count = len(self.views(command_id))
            until = time.monotonic() + quiet
            while time.monotonic() < until:
                self._pump(until - time.monotonic())
            if len(self.views(command_id)) == count and count:
                return self.views(command_id)[-1]
        raise AssertionError(f"{command_id} did not settle within {timeout}s: {self.views(command_id)[-5:]}")

    def result(self, op: str, timeout: float = 15.0, **fields: Any) -> Event:
        """Run a one-shot command (`get`, `query`, `write`) and return its result."""
        command_id = self.send(op, **fields)
        return self.wait_for(command_id, lambda e: e["event"] == "result", timeout, f"result of {op} {fields}")

    def views(self, command_id: str) -> list[Event]:
        return [e for e in self.seen if e["id"] == command_id]

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.close()
                self.process.wait(timeout=10)
            except (subprocess.TimeoutExpired, BrokenPipeError):
                self.process.kill()
                self.process.wait()
