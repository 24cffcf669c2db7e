"""Start a function the way Cloud Functions runs it: a real `functions-framework` process."""

from __future__ import annotations

import collections
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Iterator, Mapping, Optional

from tests.support.emulators import free_port

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS_FRAMEWORK = str(Path(sys.executable).parent / "functions-framework")
# The last lines of a function's output, kept to explain a function that exits.
OUTPUT_TAIL_LINES = 200


def _drain(stream: IO[bytes], tail: collections.deque) -> None:
    """Read the function's output as it comes: unread, it would fill the pipe and block the function."""
    with stream:
        for line in iter(stream.readline, b""):
            tail.append(line)


@contextlib.contextmanager
def serve_function(
    name: str,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[Path] = None,
    source: Optional[str] = None,
    timeout: float = 60.0,
) -> Iterator[str]:
    """Run `functions-framework --target name` and yield its base URL until the block ends."""
    port = free_port()
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    args = [FUNCTIONS_FRAMEWORK, "--target", name, "--port", str(port),
            "--source", source or str(ROOT / "functions" / name / "main.py")]
    process = subprocess.Popen(args, env=full_env, cwd=cwd or ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    tail: collections.deque = collections.deque(maxlen=OUTPUT_TAIL_LINES)
    reader = threading.Thread(target=_drain, args=(process.stdout, tail), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                reader.join(timeout=5)
                raise RuntimeError(f"{name} exited: {b''.join(tail).decode(errors='replace')}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not listen within {timeout}s")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=5)


# Variables the system and its tests read: a test's own fixtures may have set them in this process
# (a fake Stripe's address, an emulator's host, a catalog), and a local run started by a test must
# not inherit them, as a developer's fresh shell would not have them.
_SYSTEM_PREFIXES = ("STRIPE_", "CREDITS_", "CONSOLE_")
_SYSTEM_NAMES = {"GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "SPEND_URL", "PYTHONPATH", "VIRTUAL_ENV"}


def outside_environ() -> dict[str, str]:
    """This process's environment as a fresh shell would have it: without the system's variables."""
    return {name: value for name, value in os.environ.items()
            if not name.startswith(_SYSTEM_PREFIXES) and name not in _SYSTEM_NAMES
            and not name.endswith("_EMULATOR_HOST")}


def read_until(stream, marker: str, timeout: float) -> str:
    """What `stream` printed up to the line holding `marker` (a started local run's ready line)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"{marker!r} not printed within {timeout}s:\n{''.join(seen)}")
